"""The `vidit` TFDS builder: synthetic VIDIT-like scenes and the real VIDIT releases.

Records of the 40-illumination configs ("synthetic", "lights") are stored in key order
(`disable_shuffling=True`, integer keys) and are scene-major:
`record = scene_position_in_split * 40 + light` (`relight_jax.data.lights.record_index`), so the
input pipeline composes (I, T, G) triplets by index arithmetic (report §3.1:
G = image(scene(I), light(T))).
Every stored scene has all 40 illuminations (incomplete real scenes are excluded with a
warning, see `real_layouts.py`). "pairs" configs hold the releases' fixed evaluation pairs,
one record per pair in pair-number order. Configs are listed in `configs.py`; the real
layouts are parsed by `real_layouts.py` from a `manual_tree.py` listing (folders or zips).
A synthetic config's records hold what its generator (`relight_jax.render.generators`)
renders: images, depth and normals for every generator, plus the AOVs it lists in
`stored_aovs` (their features and encodings: `AOV_FEATURES`).

The v2 records from version 2.2.0 on also hold the light transport their image is
composed from: `transport`, the linear render of the white main light in the record's
direction d (M_d), and `fixed_light`, that of the scene's fixed lights (F), both float16
[S, S, 3], in the units `mitsuba_scene.compose` takes (before `mitsuba_scene.EXPOSURE`).
Every image of a scene is, for its temperature t with linear colour c_t
(`illumination.light_rgbs()[t]`),

    image(t, d) = srgb_uint8(EXPOSURE * (c_t * M_d + F))   (`mitsuba_scene.srgb_uint8`)

exactly for the float32 renders, and up to float16 rounding (at most one code value,
rarely) for the stored ones.

Earlier versions a generator still builds (`Generator.earlier_versions`, e.g.
`synthetic_v2_tiny:2.1.0`) are configs of their own version (`configs.at_version`),
holding that version's features: TFDS itself prepares only a config's current version.
Importing `relight_jax.datasets.vidit` registers this builder as "vidit".
"""

import collections
import concurrent.futures
import dataclasses
import functools
import logging
import os
import shutil
import types
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from relight_jax.data import lights
from relight_jax.datasets.vidit import beam_render
from relight_jax.datasets.vidit import configs
from relight_jax.datasets.vidit import images
from relight_jax.datasets.vidit import manual_tree
from relight_jax.datasets.vidit import real_layouts
from relight_jax.datasets.vidit import safe_pickle
from relight_jax.render import mitsuba_scene
from relight_jax.render import synthetic

_ZLIB = tfds.features.Encoding.ZLIB
# Images decoded ahead of the writer (bounded, so 1024 px releases do not fill memory).
_PREFETCH = 2 * lights.NUM_LIGHTS
# Starting render worker processes ('spawn', importing Mitsuba) costs seconds each: more
# than rendering a couple of scenes (synthetic_tiny: 37 s with 2 workers vs 11 s in
# process on this 2-core machine), so tiny splits render in this process.
_IN_PROCESS_MAX_SCENES = 2

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Real VIDIT cannot be downloaded automatically. Get it from
https://github.com/majedelhelou/VIDIT (or the challenge pages it links) and put the
files OR the original zip archives (no need to extract) in manual_dir, by default
<data_dir>/downloads/manual/, or pass --manual_dir=DIR. If manual_dir holds several
releases, put each in a sub-folder named after its layout (full/, ntire21_track2/,
aim20_track3/). Configs and what they read:
* full_{256,512,1024}: the full release, flat ImageNNN_TTTT_D.png (e.g.
  Image000_4500_E.png, 1024x1024); Image000-299 -> train, 300-344 -> validation,
  345-389 -> test (splits with no scene present are left out); with only the train
  release, 000-239 -> train, 240-269 -> validation, 270-299 -> test.
* ntire21_track2_{256,512,1024}: NTIRE 2021 track 2 train, ImageNNN_TTTT_D.png plus one
  depth file ImageNNN.npy per scene (read without unpickling code).
* ntire21_track2_pairs_{256,512,1024}: its validation/test pairs, <split>/input/PairNNN.png,
  <split>/guide/PairNNN.png (+ PairNNN.npy depth) and ground truth <split>/PairNNN.png,
  where <split> is a folder or zip whose name contains "val" or "test".
* aim20_track3_{256,512}, aim20_track3_pairs_{256,512}: the AIM 2020 track 3 release
  (512x512), same naming, validation pairs in input/ + guide/.
Scenes missing some of their 40 illuminations are skipped with a warning.
"""


def _example_base(size):
  """Feature values meaning "absent" for the optional features (images as PNG bytes)."""
  return {
      "depth": np.zeros((size, size), np.float16),
      "image": images.encode_png(np.zeros((size, size, 3), np.uint8), size),
  }


def _encode_normals(normals):
  """Unit normals float [S, S, 3] -> uint8 image of (n + 1) / 2 (decode: x / 127.5 - 1)."""
  return np.round((np.clip(normals, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class AovFeature:
  """How a generator's stored AOV (a `RenderedScene` field) becomes a record feature.

  Attributes:
    feature: image size -> the TFDS feature, named as the AOV.
    values: (rendered scene, image size) -> the feature's value in the records of each of
      the 8 directions (`relight_jax.data.lights` direction order); the 5 temperatures of
      a direction share it.
  """
  feature: Callable[[int], tfds.features.FeatureConnector]
  values: Callable[[synthetic.RenderedScene, int], list]


def _albedo_values(rendered, size):
  # sRGB-encoded like `image`: one per scene.
  albedo = images.encode_png(mitsuba_scene.srgb_uint8(rendered.albedo), size)  # [S, S, 3]
  return [albedo] * lights.NUM_DIRECTIONS


def _shading_values(rendered, size):
  del size  # stored as rendered
  # The record's own direction, linear x 255.
  return [np.round(rendered.shading[direction] * 255.0).astype(np.uint8)[..., None]
          for direction in range(lights.NUM_DIRECTIONS)]  # [S, S, 1]


def _float16(linear, name):
  """Linear renders as float16, refusing values past its range (65504) instead of inf."""
  stored = np.asarray(linear).astype(np.float16)
  if not np.all(np.isfinite(stored)):
    raise ValueError(f"{name}: linear values up to {np.max(linear):.4g} do not fit float16 "
                     "(at most 65504)")
  return stored


def _transport_values(rendered, size):
  del size  # stored as rendered
  # The record's own direction: M_d of the module docstring.
  return [_float16(rendered.transport[direction], "transport")
          for direction in range(lights.NUM_DIRECTIONS)]  # [S, S, 3]


def _fixed_light_values(rendered, size):
  del size  # stored as rendered
  return [_float16(rendered.fixed_light, "fixed_light")] * lights.NUM_DIRECTIONS  # [S, S, 3]


def _linear_feature(size):
  return tfds.features.Tensor(shape=(size, size, 3), dtype=np.float16, encoding=_ZLIB)


# The AOVs generators may store (docs/data.md lists their conventions).
AOV_FEATURES = {
    "albedo": AovFeature(
        feature=lambda size: tfds.features.Image(shape=(size, size, 3), dtype=np.uint8),
        values=_albedo_values),
    # A zlib tensor, not a one-channel Image: TFDS encodes those with TensorFlow.
    "shading": AovFeature(
        feature=lambda size: tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8,
                                                  encoding=_ZLIB),
        values=_shading_values),
    # float16: 11 significant bits, finer than the 8-bit images everywhere (docs/data.md),
    # and room for the renders' highlights above 1, which the images clip.
    "transport": AovFeature(feature=_linear_feature, values=_transport_values),
    "fixed_light": AovFeature(feature=_linear_feature, values=_fixed_light_values),
}


def _prefetch_map(pool, function, items, depth=_PREFETCH):
  """pool.map with at most `depth` results computed ahead of the consumer, in order."""
  pending = collections.deque()
  for item in items:
    pending.append(pool.submit(function, item))
    if len(pending) >= depth:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()


class Vidit(tfds.core.GeneratorBasedBuilder):
  """VIDIT (Virtual Image Dataset for Illumination Transfer), synthetic or real."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Synthetic renders, real full/NTIRE 2021/AIM 2020 layouts."}
  BUILDER_CONFIGS = list(configs.CONFIGS.values())
  DEFAULT_BUILDER_CONFIG_NAME = configs.DEFAULT_CONFIG
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, *, file_format=None, render_workers=None, beam=False, **kwargs):
    """Creates the builder.

    Args:
      file_format: TFDS file format; default array_record, since random access
        (`tfds.data_source`) is what the input pipeline needs and TFDS' own default is
        tfrecord.
      render_workers: processes rendering synthetic scenes (default: all cores, or this
        process for splits of at most 2 scenes; 1 renders in this process).
      beam: render synthetic scenes as an Apache Beam pipeline (`beam_render.py`); the
        download config then needs a `beam_runner` or `beam_options`.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder`.
    """
    self._render_workers = render_workers
    self._beam = beam
    self._render_cache = None  # set by a synthetic build's _split_generators
    super().__init__(file_format=file_format or tfds.core.FileFormat.ARRAY_RECORD, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    image = tfds.features.Image(shape=(size, size, 3), dtype=np.uint8)
    depth = tfds.features.Tensor(shape=(size, size), dtype=np.float16, encoding=_ZLIB)
    if self.builder_config.source == "pairs":
      features = {
          "pair": tfds.features.Scalar(dtype=np.int32),
          "input_image": image,
          "target_image": image,
          "ground_truth": image,
          "has_ground_truth": tfds.features.Scalar(dtype=np.bool_),
          "input_depth": depth,
          "target_depth": depth,
          "has_input_depth": tfds.features.Scalar(dtype=np.bool_),
          "has_target_depth": tfds.features.Scalar(dtype=np.bool_),
          "input_filename": tfds.features.Text(),
          "target_filename": tfds.features.Text(),
          "ground_truth_filename": tfds.features.Text(),
      }
    else:
      features = {
          "image": image,
          "scene": tfds.features.Scalar(dtype=np.int32),
          "location": tfds.features.Scalar(dtype=np.int32),
          "light": tfds.features.Scalar(dtype=np.int32),
          "color_temperature": tfds.features.Scalar(dtype=np.int32),
          "direction": tfds.features.ClassLabel(names=lights.DIRECTIONS),
          "depth": depth,
          "has_depth": tfds.features.Scalar(dtype=np.bool_),
          "normals": tfds.features.Image(shape=(size, size, 3), dtype=np.uint8),
          "has_normals": tfds.features.Scalar(dtype=np.bool_),
          "filename": tfds.features.Text(),
      }
      generator = self._synthetic_generator()
      for aov in generator.stored_aovs_at(str(self.version)) if generator is not None else ():
        features[aov] = _aov_feature(aov, generator).feature(size)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://github.com/majedelhelou/VIDIT",
        disable_shuffling=True,
    )

  @classmethod
  def get_builder_config(cls, name, version=None):
    """TFDS' config lookup, plus the earlier versions synthetic configs still build.

    TFDS prepares only a config's own version; an earlier version a generator still
    builds is a config of that version (`configs.at_version`), so that
    `tfds.builder("vidit/synthetic_v2_tiny:2.1.0")` builds 2.1.0's records.
    """
    earlier = configs.at_version(name, version)
    return earlier or super().get_builder_config(name=name, version=version)

  def _synthetic_generator(self):
    """The `generators.Generator` of a synthetic config; None for real ones."""
    config = self.builder_config
    if config.source != "synthetic":
      return None
    return synthetic.generator_of(synthetic.SPECS[config.synthetic_spec])

  def _split_generators(self, dl_manager):
    config = self.builder_config
    if config.source == "synthetic":
      spec = synthetic.SPECS[config.synthetic_spec]
      if self._beam:
        # The records of the local path, from a picklable stand-in for `self`.
        records = functools.partial(Vidit._synthetic_records,
                                    types.SimpleNamespace(builder_config=config,
                                                          version=self.version))
        return {split: beam_render.split_transform(spec, split, config.image_size, records)
                for split, _ in spec.split_locations}
      cache_dir = self._render_cache_dir(dl_manager)
      return {split: self._generate_synthetic(spec, split, cache_dir)
              for split, _ in spec.split_locations}
    root = self._real_root(dl_manager)
    files = manual_tree.scan_manual_dir(root)
    # One size check for the whole build: every split must share one image size.
    size_check = images.SizeCheck(real_layouts.LAYOUTS[config.layout].nominal_size)
    if config.source == "lights":
      return {split: self._generate_light_scenes(scenes, root, size_check)
              for split, scenes in real_layouts.group_light_scenes(files, root).items()}
    return {split: self._generate_pairs(pairs, root, size_check)
            for split, pairs in real_layouts.group_eval_pairs(files, root).items()}

  def _generate_examples(self, **unused_kwargs):
    raise NotImplementedError("vidit splits are generated by _split_generators' generators")

  def _real_root(self, dl_manager) -> str:
    layout = real_layouts.LAYOUTS[self.builder_config.layout]
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError as err:
      # TFDS' message starts "Manual directory DIR does not exist or is empty."; keep that
      # and replace its generic advice by ours.
      problem = str(err).splitlines()[0].split(" Create it")[0]
      raise FileNotFoundError(
          f"vidit/{self.builder_config.name} reads {layout.title} from manual_dir, but "
          f"{problem}\n{MANUAL_DOWNLOAD_INSTRUCTIONS}\nThen run: python -m "
          f"relight_jax.datasets.build vidit/{self.builder_config.name} --data_dir=DIR "
          "--manual_dir=DIR") from None
    sub_folder = manual_dir / layout.name
    return os.fspath(sub_folder if sub_folder.is_dir() else manual_dir)

  def _render_cache_dir(self, dl_manager):
    """Where rendered scenes wait until the build is done: resuming one reuses them."""
    self._render_cache = os.path.join(os.fspath(dl_manager.download_dir), "renders",
                                      f"{self.builder_config.name}-{self.version}")
    return self._render_cache

  def download_and_prepare(self, *args, **kwargs):
    """TFDS' download_and_prepare; then the render cache of the finished build is removed."""
    super().download_and_prepare(*args, **kwargs)
    if self._render_cache is not None:
      shutil.rmtree(self._render_cache, ignore_errors=True)
      self._render_cache = None

  def _generate_synthetic(self, spec, split, cache_dir=None):
    """Yields the 40 records of every rendered scene, keyed scene_position * 40 + light.

    Scenes are kept in `cache_dir` until the build is done, so an interrupted build
    renders only what it had not; the log says how much rendering the split took.
    """
    refs = synthetic.split_scenes(spec, split)
    position_of = {ref: position for position, ref in enumerate(refs)}
    size = self.builder_config.image_size
    workers = self._render_workers
    if workers is None and len(refs) <= _IN_PROCESS_MAX_SCENES:
      workers = 1
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
      cpu_seconds = 0.0
      for ref, rendered in synthetic.render_split(spec, split, workers=workers,
                                                  cache_dir=cache_dir):
        if rendered.images.shape != (lights.NUM_LIGHTS, size, size, 3):
          raise ValueError(f"renderer returned images {rendered.images.shape} for {ref}, "
                           f"expected {(lights.NUM_LIGHTS, size, size, 3)}")
        cpu_seconds += rendered.cpu_seconds or 0.0
        pngs = list(pool.map(lambda image: images.encode_png(image, size), rendered.images))
        yield from self._synthetic_records(spec, ref, position_of[ref], rendered, pngs)
    logging.info("vidit/%s %s: %d scenes, %.0f CPU s of rendering (%.1f a scene)",
                 spec.name, split, len(refs), cpu_seconds, cpu_seconds / max(len(refs), 1))

  def _synthetic_records(self, spec, ref, position, rendered, pngs):
    """The 40 (key, record) pairs of one rendered scene; `pngs` are its encoded images."""
    size = self.builder_config.image_size
    depth = rendered.depth.astype(np.float16)  # [S, S]
    normals = images.encode_png(_encode_normals(rendered.normals), size)  # [S, S, 3]
    generator = synthetic.generator_of(spec)
    extra = [{} for _ in range(lights.NUM_DIRECTIONS)]
    for aov in generator.stored_aovs_at(str(self.version)):
      for direction, value in enumerate(_aov_feature(aov, generator).values(rendered, size)):
        extra[direction][aov] = value
    for light in range(lights.NUM_LIGHTS):
      temperature = int(lights.temperature_of(light))
      direction = int(lights.direction_of(light))
      yield int(lights.record_index(position, light)), {
          **extra[direction],
          "image": pngs[light],
          "scene": ref.scene,
          "location": ref.location,
          "light": light,
          "color_temperature": temperature,
          "direction": direction,
          "depth": depth,
          "has_depth": True,
          "normals": normals,
          "has_normals": True,
          "filename": (f"synthetic/{spec.name}/scene{ref.scene:05d}_{temperature}_"
                       f"{lights.DIRECTIONS[direction]}"),
      }

  def _generate_light_scenes(self, scenes, root, size_check):
    """Yields 40 records per complete real scene, keyed scene_position * 40 + light."""
    sources = [source for scene in scenes for source in scene.images]
    size = self.builder_config.image_size
    with manual_tree.ManualTree() as tree, \
        concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
      loaded = _prefetch_map(pool, lambda source: _load_image(tree, source, size), sources)
      base = _example_base(size)
      for position, scene in enumerate(scenes):
        depth = _load_depth(tree, scene.depth, size)
        for light in range(lights.NUM_LIGHTS):
          source, shape, image = next(loaded)
          size_check(shape, source.origin)
          direction = int(lights.direction_of(light))
          yield int(lights.record_index(position, light)), {
              "image": image,
              "scene": scene.scene,
              "location": -1,  # The public release has no location labels.
              "light": light,
              "color_temperature": int(lights.temperature_of(light)),
              "direction": direction,
              "depth": base["depth"] if depth is None else depth,
              "has_depth": depth is not None,
              "normals": base["image"],
              "has_normals": False,
              "filename": _relative_origin(source, root),
          }

  def _generate_pairs(self, pairs, root, size_check):
    """Yields one record per evaluation pair, keyed by its position in pair order."""
    size = self.builder_config.image_size
    base = _example_base(size)
    load_triplet = lambda tree, sources: tuple(
        None if source is None else _load_image(tree, source, size) for source in sources)
    with manual_tree.ManualTree() as tree, \
        concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
      jobs = [(pair.input_image, pair.target_image, pair.ground_truth) for pair in pairs]
      loaded = _prefetch_map(pool, lambda sources: load_triplet(tree, sources), jobs,
                             depth=16)
      for position, pair in enumerate(pairs):
        decoded = next(loaded)
        for source, shape, _ in filter(None, decoded):
          size_check(shape, source.origin)
        (_, _, input_image), (_, _, target_image), ground_truth = decoded
        input_depth = _load_depth(tree, pair.input_depth, size)
        target_depth = _load_depth(tree, pair.target_depth, size)
        yield position, {
            "pair": pair.pair,
            "input_image": input_image,
            "target_image": target_image,
            "ground_truth": base["image"] if ground_truth is None else ground_truth[2],
            "has_ground_truth": ground_truth is not None,
            "input_depth": base["depth"] if input_depth is None else input_depth,
            "target_depth": base["depth"] if target_depth is None else target_depth,
            "has_input_depth": input_depth is not None,
            "has_target_depth": target_depth is not None,
            "input_filename": _relative_origin(pair.input_image, root),
            "target_filename": _relative_origin(pair.target_image, root),
            "ground_truth_filename": ("" if pair.ground_truth is None
                                      else _relative_origin(pair.ground_truth, root)),
        }


def _aov_feature(aov, generator):
  if aov not in AOV_FEATURES:
    raise ValueError(f"generator {generator.name!r} stores AOV {aov!r}, which has no "
                     f"feature; expected one of {sorted(AOV_FEATURES)} (add it to AOV_FEATURES)")
  return AOV_FEATURES[aov]


def _load_image(tree, source, size):
  """Decodes, resizes and re-encodes one file; returns (source, original shape, PNG)."""
  rgb = images.decode_rgb(tree.read(source), source.origin)
  return source, rgb.shape, images.encode_png(images.resize_rgb(rgb, size), size)


def _load_depth(tree, source, size):
  """Safely reads and resizes a depth file to float16 [size, size]; None if absent."""
  if source is None:
    return None
  depth = safe_pickle.read_vidit_depth(tree.read(source), source.origin)
  if depth.shape[0] != depth.shape[1]:
    raise ValueError(f"{source.origin}: depth map is {depth.shape}, expected square")
  return images.resize_depth(depth, size).astype(np.float16)


def _relative_origin(source, root) -> str:
  """The file name stored in records: relative to manual_dir, `archive.zip!member` form."""
  relative = os.path.relpath(source.path, root)
  return relative if source.member is None else f"{relative}!{source.member}"
