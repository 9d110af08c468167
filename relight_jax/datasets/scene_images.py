"""Random access to a built 40-illumination `vidit` split: images and renderer maps.

`SceneImages` addresses the images of one split by (scene position, light) through
`tfds.data_source` (array_record files, no TensorFlow), in the record order of
`data/lights.py` (record = scene * 40 + light). The training pipeline composes triplets
from it (data/input_pipeline.py); inference reads reference images from it (a model that
relights a light label by its training images' mean light latent).

The v2 synthetic records from version 2.2.0 on also hold the linear light transport the
images are composed from; `transport` and `fixed_light` read it on demand, and the AOV
"transport" reads all of a scene's (the 8 main-light renders and the fixed lights) once,
for the input pipeline (models/transport.py learns to predict it).
"""

import functools
import logging
import pathlib
import threading

import numpy as np
import PIL.Image

from relight_jax.data import lights

# Maps of the renderer a split can add to its triplets (SceneImages(aovs=...)). Depth and
# normals are the same under all 40 lights, so each is read once per scene, from its first
# record; shading depends on the light's direction only, so 8 are read per scene.
# "transport" is the scene's linear light transport (v2 from 2.2.0 on): the 8 white
# main-light renders and the fixed lights' render, read once per scene; two maps.
AOVS = ("depth", "normals", "shading", "transport")
PER_DIRECTION_AOVS = ("shading",)
# AOVs that are several maps: {aov: the names `aov()` reads them by}.
AOV_MAPS = {"transport": ("transport", "fixed_light")}


class DamagedDatasetError(ValueError):
  """A built split whose files cannot be read (the message names them and the rebuild)."""


class SceneImages:
  """Random access to the images of one split, addressed by (scene position, light).

  Decodes through `tfds.data_source` (array_record, no TensorFlow). When the decoded
  split fits in `cache_mib`, every image is decoded once into one uint8 array.
  """

  def __init__(self, name, split, data_dir, image_size, cache_mib=0, aovs=()):
    # Importing the package registers the `vidit` builder with TFDS.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from relight_jax.datasets import vidit  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

    self.name, self.split, self.image_size = name, split, image_size
    self._data_dir = data_dir
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises several types for a missing dataset.
      raise FileNotFoundError(
          f"cannot open {name!r} split {split!r} in data_dir {data_dir!r}: {error}\n"
          f"Build it first: python -m relight_jax.datasets.build {name} --data_dir={data_dir}"
      ) from error
    count = len(self._source)
    if count == 0 or count % lights.NUM_LIGHTS:
      raise ValueError(
          f"{name} split {split!r} has {count} records; expected a positive multiple of "
          f"{lights.NUM_LIGHTS} (every scene under all 40 illuminations, scene-major)")
    self.num_scenes = count // lights.NUM_LIGHTS
    self._lock = threading.Lock()
    self._cache = None
    bytes_needed = count * image_size * image_size * 3
    if bytes_needed <= cache_mib * 2**20:
      logging.info("Decoding %d images of %s/%s into memory (%.0f MiB)", count, name, split,
                   bytes_needed / 2**20)
      self._cache = np.stack([self._decode(record) for record in range(count)])
    unknown = sorted(set(aovs) - set(AOVS))
    if unknown:
      raise ValueError(f"data.aovs={tuple(aovs)}: {unknown} not among {AOVS}")
    self.aovs = tuple(aovs)
    self._aovs = {}
    for name in self.aovs:
      if name in AOV_MAPS:
        self._aovs.update(self._decode_transport())
      else:
        self._aovs[name] = np.stack([self._decode_aov(name, scene)
                                     for scene in range(self.num_scenes)])

  def _decode_transport(self):
    """{"transport": [scenes, 8, S, S, 3], "fixed_light": [scenes, S, S, 3]} as float16.

    float16 is the records' precision; kept so in memory (half of float32's footprint),
    widened per example (`aov`). Averaging down to `image_size` is done in float32 first.
    """
    transport = np.stack([np.stack([self.transport(scene, direction)
                                    for direction in range(lights.NUM_DIRECTIONS)])
                          for scene in range(self.num_scenes)]).astype(np.float16)
    fixed = np.stack([self.fixed_light(scene)
                      for scene in range(self.num_scenes)]).astype(np.float16)
    return {"transport": transport, "fixed_light": fixed}

  def _record(self, index):
    """Record `index` of the split; a damaged file is a ValueError naming it and the fix."""
    try:
      return self._source[index]
    except Exception as error:  # pylint: disable=broad-except  # Riegeli: RuntimeError, ...
      files = sorted(pathlib.Path(self._data_dir).glob(
          f"{self.name}/*/*-{self.split}.array_record*"))
      where = ", ".join(map(str, files)) or f"{self._data_dir}/{self.name}"
      first = " ".join(str(error).split())[:200]
      raise DamagedDatasetError(
          f"{where}: record {index} of split {self.split!r} cannot be read "
          f"({type(error).__name__}: {first}); the file is damaged or truncated: delete "
          f"{pathlib.Path(self._data_dir) / self.name} and rebuild it with python -m "
          f"relight_jax.datasets.build {self.name} --data_dir={self._data_dir}") from None

  def _decode_aov(self, name, scene):
    if name in PER_DIRECTION_AOVS:  # [8, S, S], light index = temperature * 8 + direction
      return np.stack([self._decode_aov_of(name, scene, direction)
                       for direction in range(lights.NUM_DIRECTIONS)])
    return self._decode_aov_of(name, scene, 0)

  def _decode_aov_of(self, name, scene, light):
    record = self._record(int(lights.record_index(scene, light)))
    if name in PER_DIRECTION_AOVS:
      if name not in record:
        raise ValueError(f"{self.name} split {self.split!r} has no {name} maps: "
                         f"data.aovs={self.aovs} needs a v2 synthetic dataset "
                         "(vidit/synthetic_v2*)")
      return self._resize_aov(name, np.asarray(record[name])[..., 0].astype(np.float32) / 255)
    if not bool(record.get(f"has_{name}", False)):
      raise ValueError(f"{self.name} split {self.split!r} has no {name} for scene {scene} "
                       f"(has_{name} is false): data.aovs={self.aovs} needs a dataset "
                       "rendered with them (the synthetic configs)")
    value = np.asarray(record[name])
    if name == "normals":  # stored as the uint8 image (n + 1) * 127.5
      value = value.astype(np.float32) / 127.5 - 1.0
      value /= np.maximum(np.linalg.norm(value, axis=-1, keepdims=True), 1e-6)
    return self._resize_aov(name, value.astype(np.float32))

  def _resize_aov(self, name, value):
    if value.shape[0] != self.image_size:
      factor = value.shape[0] // self.image_size
      if factor * self.image_size != value.shape[0]:
        raise ValueError(f"{self.name}: {name} maps of {value.shape[0]} px cannot be "
                         f"averaged down to data.image_size={self.image_size}")
      value = value.reshape(self.image_size, factor, self.image_size, factor,
                            *value.shape[2:]).mean(axis=(1, 3))
    return value

  @functools.cached_property
  def locations(self):
    """int [num_scenes] location of every scene position, or None where unknown.

    The synthetic releases store each scene's global location id (views of one location
    share it); real VIDIT stores -1 (its public release has no location labels).
    """
    found = []
    for scene in range(self.num_scenes):
      record = self._source[int(lights.record_index(scene, 0))]
      found.append(int(record.get("location", -1)))
    if min(found) < 0:
      return None
    return np.asarray(found, np.int64)

  def aov(self, name, scene, light=0):
    """float32 map `name` of scene position `scene` (see AOVS and the module docstring).

    `light` matters only for the per-direction maps (shading): its direction's map. The
    AOV "transport" is read as two maps (AOV_MAPS): "transport" [8, S, S, 3] (the white
    main light from each direction, `transport`) and "fixed_light" [S, S, 3].
    """
    if name in PER_DIRECTION_AOVS:
      return self._aovs[name][scene][lights.direction_of(light)]
    return self._aovs[name][scene].astype(np.float32, copy=False)

  def transport(self, scene, direction):
    """float32 [size, size, 3] linear render M_d of the white main light in `direction`.

    The record feature `transport` of scene position `scene`, direction index
    `direction` (0..7, `lights.DIRECTIONS`), in `mitsuba_scene.compose`'s units. With
    `fixed_light` it recomposes the scene's images: image(t, d) = srgb_uint8(EXPOSURE *
    (c_t * M_d + F)) (`vidit_dataset_builder`'s docstring), up to float16 rounding, at
    the stored size (a smaller `image_size` averages the linear values).

    Raises:
      ValueError: the split's records hold no transport (not v2 2.2.0 or later).
    """
    if not 0 <= direction < lights.NUM_DIRECTIONS:
      raise ValueError(f"direction {direction}: expected an index in "
                       f"[0, {lights.NUM_DIRECTIONS})")
    return self._linear("transport", scene, lights.light_index(0, direction))

  def fixed_light(self, scene):
    """float32 [size, size, 3] linear render F of the fixed lights of scene position `scene`.

    The record feature `fixed_light` (the same in all 40 records of a scene); see
    `transport`.
    """
    return self._linear("fixed_light", scene, 0)

  def _linear(self, name, scene, light):
    record = self._record(int(lights.record_index(scene, light)))
    if name not in record:
      info = getattr(self._source, "dataset_info", None)
      version = f" version {info.version}" if info is not None else ""
      # An earlier v2 build is rebuilt at the config's current version; others need v2.
      config = self.name.partition(":")[0]
      if not config.startswith("vidit/synthetic_v2"):
        config = "vidit/synthetic_v2_small"
      raise ValueError(
          f"{self.name}{version} split {self.split!r} has no {name}: the linear light "
          "transport is stored by the v2 synthetic configs (vidit/synthetic_v2*) from "
          f"version 2.2.0 on; build one: python -m relight_jax.datasets.build {config} "
          f"--data_dir={self._data_dir}")
    return self._resize_aov(name, np.asarray(record[name]).astype(np.float32))

  def _decode(self, record):
    image = np.asarray(self._record(int(record))["image"])
    if image.shape[:2] != (self.image_size, self.image_size):
      image = np.asarray(PIL.Image.fromarray(image).resize(
          (self.image_size, self.image_size), PIL.Image.Resampling.BOX if
          image.shape[0] > self.image_size else PIL.Image.Resampling.BICUBIC))
    return image[..., :3]

  def image(self, scene, light):
    """uint8 [size, size, 3] image of scene position `scene` under illumination `light`."""
    record = int(lights.record_index(scene, light))
    if self._cache is not None:
      return self._cache[record]
    return self._decode(record)
