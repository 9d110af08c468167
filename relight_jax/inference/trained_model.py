"""Trained relighters for inference: from a workdir, an exported file or the bundled model.

`load_workdir` (config.json + checkpoint), `load_exported` (a file written by
`python -m relight_jax.export`) and `load_pretrained` (the reference model bundled in
relight_jax/pretrained/, or any folder written by `save_bundle`) return an
`InferenceModel`, which relight.py applies to photos and export.py serialises.
`make_relight_fn` is the jitted inference function of a Linen relighter with its
variables closed over. Loading an exported file imports neither flax nor orbax nor the
model code.

Relighting by a light label ("W,3500": direction, kelvin) instead of a target image:
`lights.parse_light` reads the label and `InferenceModel.relight_light_fn` relights by
it, as the model's spec says (`models/registry.ModelSpec.label_light`): the envmap models
decode the envmap generated for that light (envmap.py, the maps they learned to predict,
report §3.4); a model without a generated form of a light (the IlluminationPredicter,
whose light latent is a free feature map) uses the mean light latent of its training
images under that light (the reference images' latent).

A model that composes light itself (`ModelSpec.light_composition`: the transport model)
also gets `InferenceModel.relight_coloured_fn`, relighting by coloured direction weights
[B, 8, 3] in one composition, and `estimate_coloured_fn`, its estimate of an image's
light as 8 direction weights and a colour: light_mix.LightMixer makes every light from
them exactly, where it mixes a label model's outputs.
"""

import dataclasses
import hashlib
import json
import logging
import pathlib
import stat
from collections.abc import Callable

import jax
import numpy as np

from relight_jax.common import atomic
from relight_jax.config import defaults
from relight_jax.data import lights

# An exported file is this line, then the serialised `jax.export.Exported`:
#   EXPORTED_MAGIC + <64 hex digits: sha256 of the serialised bytes> + b"\n"
# The digest travels inside the one file, so a truncated download or a flipped bit is
# refused by name instead of deserialising into a wrong model or an obscure error.
EXPORTED_MAGIC = b"relight_jax exported sha256="
_DIGEST_CHARS = 64


@dataclasses.dataclass(frozen=True)
class InferenceModel:
  """A trained relighter ready for inference, at its working resolution.

  Attributes:
    relight_fn: (input_image [B, S, S, 3], target_image [B, S, S, 3]) -> relit
      [B, S, S, 3], float32 in [0, 1].
    image_size: the default working resolution S (the training resolution).
    size_multiple: working resolutions must be multiples of this (the encoder's total
      downsampling); 0 when only `image_size` works (an exported function).
    description: where it came from, for logs.
    relight_light_fn: (input_image [B, S, S, 3], temperature_k, direction_index) ->
      relit [B, S, S, 3]: relighting by a light label; None where the model cannot
      (an exported function).
    light_source: how a light label becomes the model's light latent (for logs and
      the model card).
    any_label_temperature: a label may name any temperature of the data's range, not
      only a rendered one (lights.parse_light).
    envmap_convention: the generated envmaps the model learned (model.envmap_convention,
      data/envmap.py): a light label's picture is drawn in it; "" where unknown.
    estimate_light_fn: (input_image [B, S, S, 3], white=False) -> (azimuth deg [B],
      kelvin [B]), the model's own estimate of an image's light (its envmap or its
      prediction); with `white`, an envmap model's kelvin is the renderer's white
      (envmap.NEUTRAL_K): the input's own light in the ratio form (relight.py). None
      where the model cannot (an exported function).
    relight_coloured_fn: (input_image [B, S, S, 3], coloured [B, 8, 3], form) -> relit
      [B, S, S, 3]: relighting by coloured direction weights (each basis direction's
      weight times its light's linear colour, lights summed), composed once by a model
      that composes light itself, in form "absolute" (the network's image) or "ratio"
      (the input times the change of light); None for a label model.
    estimate_coloured_fn: (input_image [B, S, S, 3]) -> (direction weights [B, 8], linear
      colour [B, 3]), such a model's estimate of an image's light; None where
      `relight_coloured_fn` is.
  """

  relight_fn: Callable
  image_size: int
  size_multiple: int
  description: str = ""
  relight_light_fn: Callable | None = None
  light_source: str = ""
  any_label_temperature: bool = False
  envmap_convention: str = ""
  estimate_light_fn: Callable | None = None
  relight_coloured_fn: Callable | None = None
  estimate_coloured_fn: Callable | None = None


@dataclasses.dataclass(frozen=True)
class ExportedFunction:
  """A deserialised relight function: called like `RelightFunction`.

  Attributes:
    exported: the `jax.export.Exported`.
    image_size: its fixed resolution S.
  """

  exported: jax.export.Exported

  @property
  def image_size(self):
    return int(self.exported.in_avals[0].shape[1])

  def __call__(self, input_image, target_image):
    """relit [B, S, S, 3] from input_image and target_image [B, S, S, 3] float32."""
    return self.exported.call(np.asarray(input_image, np.float32),
                              np.asarray(target_image, np.float32))


class RelightFunction:
  """relight_fn(input_image, target_image) -> relit of a Linen relighter whose variables
  are closed over; jitted, traced once per shape.

  The Winograd convolutions' transformed kernels (cpu_kernels/winograd.py) depend on the
  variables only: they are computed once per input shape (`registry.recording_kernels`,
  the models' one seam to cpu_kernels) and replayed to every call, which saves 8-12% of a
  256 px relighting at batch 1 with the C++ kernel transforms, 12-22% with the
  jax.numpy ones (docs/benchmark_history.md, section 9). They take up to 4x the memory of the
  kernels they stand for (0.56 GiB for the paper-size Envmap models, 0.31 GiB for
  IlluminationPredicter); only the latest input shape's are kept. Called inside another
  trace (jax.export, an enclosing jax.jit), the function traces the plain model instead.
  """

  def __init__(self, model, variables):
    # Imported here so that loading an exported file needs jax alone.
    from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
    self.variables = variables

    def relit(variables, input_image, target_image):
      return model.apply(variables, input_image, target_image, train=False)["relit"]

    def record(variables, input_image, target_image):
      with registry.recording_kernels() as tape:
        relit(variables, input_image, target_image)  # dead code but for the kernels
      return tape.kernels

    def replay(variables, kernels, input_image, target_image):
      with registry.replaying_kernels(kernels) as tape:
        result = relit(variables, input_image, target_image)
      tape.check_used()
      return result

    self.plain = jax.jit(relit)
    self._record = jax.jit(record)
    self._replay = jax.jit(replay)
    self._kernels = (None, None)  # (input shapes and dtypes, transformed kernels)
    # plain(variables, input_image, target_image): jitted, transforms the kernels in
    # every call (the function before the kernel cache; bench/inference.py compares).

  def kernels(self, input_image, target_image):
    """The transformed kernels for inputs of these shapes (computed on the first call)."""
    key = tuple((np.shape(image), str(image.dtype))
                for image in (input_image, target_image))
    if self._kernels[0] != key:
      self._kernels = (None, None)  # free the previous shape's before computing these
      self._kernels = (key, self._record(self.variables, input_image, target_image))
    return self._kernels[1]

  def lower(self, input_image, target_image):
    """The jitted function of a call on these inputs, lowered (for compile and cost
    analysis: bench/inference.py)."""
    return self._replay.lower(self.variables, self.kernels(input_image, target_image),
                              input_image, target_image)

  def __call__(self, input_image, target_image):
    if any(isinstance(image, jax.core.Tracer) for image in (input_image, target_image)):
      return self.plain(self.variables, input_image, target_image)
    return self._replay(self.variables, self.kernels(input_image, target_image),
                        input_image, target_image)


def make_relight_fn(model, variables):
  """The inference function of a Linen relighter with its variables closed over.

  Args:
    model: a module of `models.registry` (called as model.apply(variables, input_image,
      target_image, train=False) -> {'relit': ...}).
    variables: {'params': ..., 'batch_stats': ...}.

  Returns:
    A `RelightFunction`: relight_fn(input_image, target_image) -> relit, each
    [B, S, S, 3]; jitted, traced once per shape.
  """
  return RelightFunction(model, variables)


class _LightRelighter:
  """relight_light_fn of a Linen relighter: a light label -> its light latent -> relit."""

  def __init__(self, model, variables, config, spec):
    self.model_name = config.model.name
    self.spec = spec
    self.config = config
    self._apply = jax.jit(lambda variables, image, light: model.apply(
        variables, image, light, method="relight_with_light"))
    self._encode = jax.jit(lambda variables, image: model.apply(
        variables, image, train=False, method="encode"))
    self.variables = variables
    self._references = {}

  def encode(self, input_image):
    """The model's encoding of images [B, S, S, 3] (its encode() outputs)."""
    return self._encode(self.variables, np.asarray(input_image, np.float32))

  def light_latent(self, temperature_k, direction_index):
    """The light latent [1, ...] of a light (the model spec's `label_light`)."""
    if self.spec.label_light is not None:
      return self.spec.label_light(temperature_k, direction_index,
                                   self.config.model.envmap_convention)
    return self._reference_latent(lights.temperature_index_of(temperature_k), direction_index)

  def _reference_latent(self, temperature_index, direction_index):
    key = (temperature_index, direction_index)
    if key not in self._references:
      # Imported here: only such models need their training data (and TFDS) at inference.
      from relight_jax.datasets import scene_images  # pylint: disable=g-import-not-at-top
      data = self.config.data
      try:
        images = scene_images.SceneImages(data.name, data.train_split, data.data_dir,
                                          data.image_size)
      except FileNotFoundError as error:
        raise ValueError(f"relighting the {self.model_name} model by a light label needs "
                         f"reference images of that light from its training data: {error}"
                         ) from None
      light = int(lights.light_index(temperature_index, direction_index))
      stack = np.stack([images.image(scene, light) for scene in range(images.num_scenes)])
      latents = self._encode(self.variables, stack.astype(np.float32) / 255.0)["light"]
      self._references[key] = np.mean(np.asarray(latents), axis=0, keepdims=True)
    return self._references[key]

  def estimate(self, input_image, white=False):
    """The model's estimate of each image's light: (azimuth deg [B], kelvin [B]).

    Read from what its encoder predicts (registry.ModelSpec.light_output): the
    IlluminationPredicter's (direction, temperature) as is, an envmap as the light it shows
    (envmap.estimate_light). With `white`, an envmap's kelvin is envmap.NEUTRAL_K: a
    photo's camera has white-balanced its light, but the model, trained on renders
    whose white is a 6500 K light, reads a warm photo's colours as a warm light (a red
    cup and brown wood as 2500 K), from which a "warm" 3500 K label would cool it.
    """
    # Imported here: relighting by a target image never reads an envmap.
    from relight_jax.data import envmap  # pylint: disable=g-import-not-at-top
    encoded = self.encode(input_image)
    if self.spec.light_output == "prediction":
      prediction = np.asarray(encoded["prediction"], np.float64)  # [b, 2] (deg, K)
      azimuths, kelvins = prediction[:, 0] % 360.0, prediction[:, 1]
    else:
      estimates = [envmap.estimate_light(envmap_map, self.config.model.envmap_convention)
                   for envmap_map in np.asarray(encoded["envmap"], np.float32)]
      azimuths, kelvins = (np.asarray(values) for values in zip(*estimates, strict=True))
      if white:
        kelvins = np.full_like(kelvins, envmap.NEUTRAL_K, dtype=np.float64)
    return azimuths, np.clip(kelvins, *lights.LABEL_TEMPERATURE_RANGE_K)

  def _batch_latent(self, input_image, temperature_k, direction_index):
    latent = self.light_latent(temperature_k, direction_index)
    latent = np.broadcast_to(latent, (np.shape(input_image)[0], *latent.shape[1:]))
    return np.asarray(latent, np.float32)

  def __call__(self, input_image, temperature_k, direction_index):
    return self._apply(self.variables, input_image,
                       self._batch_latent(input_image, temperature_k, direction_index))


class _ColouredRelighter:
  """relight_coloured_fn of a model that composes light itself (its spec's
  `light_composition`): coloured direction weights -> relit, one composition."""

  def __init__(self, model, variables, composition, encode):
    self.variables = variables
    self.composition = composition
    self._encode = encode
    self._apply = jax.jit(
        lambda variables, image, coloured, form: composition.relight(
            model, variables, image, coloured, form), static_argnums=3)

  def estimate(self, input_image):
    """(direction weights [B, 8], linear colour [B, 3]) of each image's light."""
    weights, colour = self.composition.own_light(self._encode(input_image))
    return np.asarray(weights, np.float64), np.asarray(colour, np.float64)

  def __call__(self, input_image, coloured, form="absolute"):
    if form not in self.composition.forms:
      raise ValueError(f"form={form!r}: expected one of {self.composition.forms}")
    coloured = np.asarray(coloured, np.float32)
    if coloured.shape != (np.shape(input_image)[0], lights.NUM_DIRECTIONS, 3):
      raise ValueError(f"coloured weights of shape {coloured.shape}; expected "
                       f"[{np.shape(input_image)[0]}, {lights.NUM_DIRECTIONS}, 3] (batch, "
                       "directions, linear RGB)")
    return self._apply(self.variables, np.asarray(input_image, np.float32), coloured, form)


def from_model(model, variables, model_config, image_size, description="", config=None):
  """An `InferenceModel` from a model and its variables (tests, notebooks, `load_workdir`).

  Args:
    model, variables: the Linen relighter and its {'params', 'batch_stats'}.
    model_config: its config's `model` section.
    image_size: the working resolution.
    description: where it came from.
    config: the whole config, needed to relight by a light label (a model without a
      generated form of a light reads reference images of its training data); without
      it `relight_light_fn` is None.
  """
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  spec = registry.spec_of(model_config.name)
  light_fn, light_source, coloured_fn = None, "", None
  if config is not None and not tuple(model_config.target_skips):
    light_fn = _LightRelighter(model, variables, config, spec)
    light_source = spec.label_source
    if spec.light_composition is not None:
      coloured_fn = _ColouredRelighter(model, variables, spec.light_composition,
                                       light_fn.encode)
  return InferenceModel(make_relight_fn(model, variables), int(image_size),
                        registry.encoder_downsampling(model_config), description,
                        relight_light_fn=light_fn, light_source=light_source,
                        any_label_temperature=spec.any_label_temperature,
                        envmap_convention=model_config.envmap_convention,
                        estimate_light_fn=light_fn.estimate if light_fn else None,
                        relight_coloured_fn=coloured_fn,
                        estimate_coloured_fn=coloured_fn.estimate if coloured_fn else None)


def load_workdir(workdir, *, step=None, on_host=False):
  """Loads the model trained in `workdir` (config.json + latest or given checkpoint).

  Args:
    workdir: a training workdir.
    step: a checkpoint step; default the latest.
    on_host: keep the variables as host (numpy) arrays: the constants of an exported
      function, whatever devices restored them.

  Returns:
    An `InferenceModel` at the training resolution (variables on the present devices
    unless `on_host`).

  Raises:
    FileNotFoundError: no config or no checkpoint in `workdir`.
    ValueError: a config.json of another version (names the keys).
  """
  # Imported here so that loading an exported file needs jax alone (a server without
  # flax, orbax or the model code).
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  from relight_jax.training import checkpointing  # pylint: disable=g-import-not-at-top
  config, variables, step = checkpointing.load_inference_variables(workdir, step)
  if on_host:
    variables = jax.device_get(variables)
  model = registry.create_model(config.model)
  return from_model(model, variables, config.model, config.data.image_size,
                    f"{workdir} step {step} ({config.model.name})", config=config)


# A bundled model's folder (save_bundle, load_pretrained): the training config, the
# variables as flax msgpack (a plain, versioned serialisation of the arrays: unlike a
# jax.export file it does not depend on the JAX version that wrote it), and a manifest
# with the step and the variables' sha256.
BUNDLE_CONFIG = "config.json"
BUNDLE_VARIABLES = "variables.msgpack"
BUNDLE_MANIFEST = "bundle.json"
# The bundled reference model's folder inside the package.
PRETRAINED_PACKAGE = "relight_jax.pretrained"


def save_bundle(workdir, folder, *, step=None):
  """Writes a workdir's trained model as a bundle folder that `load_pretrained` reads.

  Args:
    workdir: a training workdir.
    folder: the bundle folder (created; its three files replaced atomically).
    step: a checkpoint step; default the latest intact one.

  Returns:
    The manifest written (dict).
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top

  from relight_jax.training import checkpointing  # pylint: disable=g-import-not-at-top
  config, variables, step = checkpointing.load_inference_variables(workdir, step)
  data = serialization.msgpack_serialize(
      jax.tree_util.tree_map(np.asarray, jax.device_get(variables)))
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  with atomic.replacing(folder / BUNDLE_VARIABLES) as stream:
    stream.write(data)
  # The training machine's data path means nothing where the bundle is used: the default.
  with config.unlocked():
    config.data.data_dir = defaults.base_config().data.data_dir
  checkpointing.save_config(config, folder / BUNDLE_CONFIG)
  manifest = {"model": config.model.name, "step": int(step),
              "image_size": int(config.data.image_size),
              "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
              "config_sha256": _file_sha256(folder / BUNDLE_CONFIG),
              "workdir": pathlib.Path(workdir).name}
  atomic.write_text(folder / BUNDLE_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
  return manifest


_BUNDLE_FILES = (BUNDLE_MANIFEST, BUNDLE_CONFIG, BUNDLE_VARIABLES)


def _file_sha256(path):
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


class BundleError(ValueError):
  """A bundle that cannot or must not be written (the message names the path and the fix)."""


def write_bundle(workdir, output=None, *, step=None, overwrite=False):
  """Writes the model of `workdir` as a bundle in `output` (default: the shipped one's).

  Returns:
    (folder, manifest dict).

  Raises:
    BundleError: `output` holds a bundle and not `overwrite`, the workdir has no model,
      or the folder cannot be written.
  """
  shipped = bundle_folder()
  folder = pathlib.Path(output) if output else shipped
  which = "the shipped reference model" if _same(folder, shipped) else "a model bundle"
  if folder.exists() and not folder.is_dir():
    raise BundleError(f"--output {folder} is a file; name a folder for the bundle")
  existing = [name for name in _BUNDLE_FILES if (folder / name).exists()]
  if existing and not overwrite:
    raise BundleError(f"{folder} holds {which} ({', '.join(existing)}); pass --output=DIR "
                      "for a new bundle, or --overwrite to replace it")
  try:
    manifest = save_bundle(workdir, folder, step=step)
  except (FileNotFoundError, ValueError) as error:
    raise BundleError(f"--workdir {workdir}: {error}") from None
  except OSError as error:
    raise BundleError(f"cannot write the bundle in {folder} ({error.strerror or error}); "
                      "pass --output=DIR, a folder you can write") from None
  return folder, manifest


def _same(path, other):
  try:
    return path.resolve() == other.resolve()
  except OSError:
    return False


def bundle_folder(folder=None):
  """The folder of a bundle: `folder`, or the bundled reference model's inside the package."""
  if folder is not None:
    return pathlib.Path(folder)
  import importlib.resources  # pylint: disable=g-import-not-at-top
  return pathlib.Path(str(importlib.resources.files(PRETRAINED_PACKAGE)))


def load_pretrained(folder=None):
  """Loads a bundled model: the reference model shipped in relight_jax/pretrained/.

  Args:
    folder: a folder written by `save_bundle`; default the bundled reference model.

  Returns:
    An `InferenceModel` at the model's training resolution; it relights by target
    images and by light labels.

  Raises:
    FileNotFoundError: a file of the bundle is missing.
    ValueError: the variables do not match their sha256 or the config's model.
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top

  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  from relight_jax.training import config_file  # pylint: disable=g-import-not-at-top
  folder = bundle_folder(folder)
  paths = [folder / name for name in (BUNDLE_MANIFEST, BUNDLE_CONFIG, BUNDLE_VARIABLES)]
  for path in paths:
    if not path.is_file():
      raise FileNotFoundError(f"{path}: no such file; a model bundle holds {BUNDLE_MANIFEST}, "
                              f"{BUNDLE_CONFIG} and {BUNDLE_VARIABLES} (inference.save_bundle)")
  try:
    manifest = json.loads(paths[0].read_text())
  except (ValueError, UnicodeDecodeError) as error:
    raise ValueError(f"{paths[0]}: not JSON ({error}); write the bundle again with "
                     "python -m relight_jax.pretrained") from None
  if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str):
    raise ValueError(f"{paths[0]}: expected a JSON object holding the variables' sha256, "
                     f"found a {type(manifest).__name__} without it; write the bundle again "
                     "with python -m relight_jax.pretrained")
  config = config_file.load_config(paths[1])
  data = paths[2].read_bytes()
  if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
    raise ValueError(f"{paths[2]}: damaged: its sha256 does not match {paths[0]}")
  restored = serialization.msgpack_restore(data)
  if manifest.get("config_sha256") != _file_sha256(paths[1]):
    # A config edited since save_bundle wrote the pair (or an older bundle, which did
    # not record it): check the variables against the model it describes, which traces
    # the model's init. An intact bundle needs no check: both files came from one
    # checkpoint, and the sha256s say that they are still those.
    _check_bundle_shapes(config, restored, paths[1], paths[2])
  variables = jax.device_put(restored)
  model = registry.create_model(config.model)
  return from_model(model, variables, config.model, config.data.image_size,
                    f"{folder} ({config.model.name}, step {manifest.get('step', '?')})",
                    config=config)


def _check_bundle_shapes(config, restored, config_path, variables_path):
  """ValueError unless `restored` has the shapes of `config`'s model's variables."""
  from relight_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  expected = jax.eval_shape(lambda key: state_lib.init_variables(config, key),
                            state_lib.init_key(0))
  shapes = lambda tree: {jax.tree_util.keystr(path): tuple(np.shape(leaf))
                         for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  found, wanted = shapes(restored), shapes(expected)
  if found != wanted:
    differing = sorted(set(found.items()) ^ set(wanted.items()))[:3]
    raise ValueError(f"{variables_path} does not hold the variables of {config_path}'s "
                     f"{config.model.name} model (e.g. {differing})")


def load_exported(path):
  """An `InferenceModel` from a file written by `python -m relight_jax.export`.

  The file holds the whole computation with the trained variables as constants: it runs
  as exported even where the model code has changed since. Fixed resolution.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a serialised relighter, or is damaged (its sha256 does
      not match).
  """
  function = _read_exported(path)
  return InferenceModel(function, function.image_size, 0, f"{path} (exported)")


def exported_header(serialized):
  """The first line of an exported file holding `serialized` (see EXPORTED_MAGIC)."""
  return EXPORTED_MAGIC + hashlib.sha256(serialized).hexdigest().encode("ascii") + b"\n"


# Larger than any exported relighter (the full-width model's constants are ~300 MB).
MAX_EXPORTED_BYTES = 4 << 30


def _read_exported(path):
  """Deserialises a file written by export.save_exported.

  A file without the checksum line (written by export.py before it had one) still loads,
  with a warning: its bytes cannot be checked, but damage usually fails to deserialise.

  Args:
    path: the .bin file.

  Returns:
    An `ExportedFunction`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a serialised relighter, or its bytes do not match the
      sha256 it carries (damaged).
  """
  path = pathlib.Path(path)
  try:
    status = path.stat()
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: no such file; expected a file written by "
                            "python -m relight_jax.export") from None
  # A FIFO would block and a device (/dev/zero) never end: only regular files are read.
  if not stat.S_ISREG(status.st_mode):
    raise ValueError(f"{path}: not a regular file (a folder, FIFO, socket or device); expected "
                     "a file written by python -m relight_jax.export")
  if status.st_size > MAX_EXPORTED_BYTES:
    raise ValueError(f"{path}: {status.st_size:,} bytes, more than any exported relighter "
                     f"({MAX_EXPORTED_BYTES:,}); expected a file written by "
                     "python -m relight_jax.export")
  data = path.read_bytes()
  checked = data.startswith(EXPORTED_MAGIC)
  serialized = data
  if checked:
    header_end = len(EXPORTED_MAGIC) + _DIGEST_CHARS + 1  # the digest, then b"\n"
    serialized = data[header_end:]
    if exported_header(serialized) != data[:header_end]:
      raise ValueError(f"{path}: damaged: its bytes do not match the sha256 in its first "
                       "line (truncated or altered); copy or export it again")
  try:
    exported = jax.export.deserialize(bytearray(serialized))
  except Exception:  # flatbuffers raises assorted errors on foreign bytes
    raise ValueError(f"{path}: not a serialised jax.export relighter; expected a file "
                     "written by python -m relight_jax.export") from None
  if not checked:
    logging.warning("%s has no checksum (exported by an older relight_jax): loaded "
                    "unverified; export it again to add one", path)
  shapes = [tuple(aval.shape) for aval in exported.in_avals]
  if len(shapes) != 2 or any(len(shape) != 4 or shape[3] != 3 for shape in shapes):
    raise ValueError(f"{path}: exported function takes {shapes}; expected two "
                     "[batch, S, S, 3] images")
  return ExportedFunction(exported)
