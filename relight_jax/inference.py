"""Trained relighters for inference: loaded from a workdir or from an exported file.

`load_workdir` (config.json + checkpoint) and `load_exported` (a file written by
`python -m relight_jax.export`) both return an `InferenceModel`, which relight.py
applies to photos and export.py serialises. `make_relight_fn` is the jitted inference
function of a Linen relighter with its variables closed over. Loading an exported file
imports neither flax nor orbax nor the model code.
"""

import dataclasses
import hashlib
import logging
import pathlib
from collections.abc import Callable

import jax
import numpy as np

from relight_jax.cpu_kernels import winograd

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
  """

  relight_fn: Callable
  image_size: int
  size_multiple: int
  description: str = ""


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
  variables only: they are computed once per input shape (`winograd.recording_kernels`)
  and replayed to every call (`winograd.replaying_kernels`), which saves 8-12% of a
  256 px relighting at batch 1 with the C++ kernel transforms, 12-22% with the
  jax.numpy ones (docs/benchmark_history.md, section 9). They take up to 4x the memory of the
  kernels they stand for (0.56 GiB for the paper-size Envmap models, 0.31 GiB for
  IlluminationPredicter); only the latest input shape's are kept. Called inside another
  trace (jax.export, an enclosing jax.jit), the function traces the plain model instead.
  """

  def __init__(self, model, variables):
    self.variables = variables

    def relit(variables, input_image, target_image):
      return model.apply(variables, input_image, target_image, train=False)["relit"]

    def record(variables, input_image, target_image):
      with winograd.recording_kernels() as tape:
        relit(variables, input_image, target_image)  # dead code but for the kernels
      return tape.kernels

    def replay(variables, kernels, input_image, target_image):
      with winograd.replaying_kernels(kernels) as tape:
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


def encoder_downsampling(model_config):
  """Total downsampling factor of the encoder (the stem's stride-2 conv + `depth` stages)."""
  return 2 ** (model_config.depth + 1)


def from_model(model, variables, model_config, image_size, description=""):
  """An `InferenceModel` from a model and its variables (tests, notebooks, `load_workdir`)."""
  return InferenceModel(make_relight_fn(model, variables), int(image_size),
                        encoder_downsampling(model_config), description)


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
  from relight_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  config, variables, step = checkpointing.load_inference_variables(workdir, step)
  if on_host:
    variables = jax.device_get(variables)
  model = registry.create_model(config.model)
  return from_model(model, variables, config.model, config.data.image_size,
                    f"{workdir} step {step} ({config.model.name})")


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
    data = path.read_bytes()
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: no such file; expected a file written by "
                            "python -m relight_jax.export") from None
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
