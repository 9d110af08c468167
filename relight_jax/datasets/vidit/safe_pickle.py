"""Safe reading of VIDIT's pickled depth files (NTIRE 2021 track 2 `ImageNNN.npy`).

The NTIRE 2021 release stores one depth file per scene/pair as `np.save` of a Python
dict (`normalized_depth`, `ref_center_dis`): an `.npy` container with an *object* dtype
whose payload is a pickle. Unpickling runs arbitrary code named in the stream, so
`np.load(..., allow_pickle=True)` on downloaded files is never used here: a planted
file would run its code. Instead `RestrictedUnpickler` resolves only the few globals that rebuild
numpy arrays, dtypes and scalars; anything else (`os.system`, `builtins.exec`, ...) is
refused with an error naming the file. Plain containers (dict, list, tuple) come from
pickle opcodes and need no globals. The builder (`vidit_dataset_builder.py`) calls
`read_vidit_depth` on the bytes of each depth file.
"""

import codecs
import io
import pickle

import numpy as np

# numpy's own array/scalar reconstructors, fetched from numpy rather than imported by
# module path: numpy 1.x pickles name `numpy.core.multiarray`, numpy 2.x
# `numpy._core.multiarray`; both resolve to the same functions.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_SCALAR = np.float64(0.0).__reduce__()[0]
# Pickle protocol 5 rebuilds contiguous arrays from a byte buffer instead.
_FROMBUFFER = np.zeros((1,)).__reduce_ex__(5)[0]

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # Protocols 0-2 (Python 2 era files) spell bytes as `_codecs.encode(str, "latin1")`;
    # it only converts text to bytes.
    ("_codecs", "encode"): codecs.encode,
}
# numpy >= 1.25 pickles dtypes as e.g. `numpy.dtypes.Float32DType`; those classes only
# describe a dtype and are as harmless as `numpy.dtype`.
_ALLOWED_DTYPE_MODULE = "numpy.dtypes"

_NPY_MAGIC = b"\x93NUMPY"


class UnsafePickleError(ValueError):
  """A pickle asked for a global outside the numpy-array allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickler that only rebuilds numpy arrays, dtypes, scalars and plain containers.

  Args:
    file: binary file object holding the pickle stream.
    origin: the file name shown in errors (a path, or `archive.zip!member`).
  """

  def __init__(self, file, origin: str):
    super().__init__(file)
    self._origin = origin

  def find_class(self, module: str, name: str):
    allowed = _ALLOWED_GLOBALS.get((module, name))
    if allowed is not None:
      return allowed
    if module == _ALLOWED_DTYPE_MODULE and name.endswith("DType"):
      dtype_class = vars(np.dtypes).get(name)
      if isinstance(dtype_class, type) and issubclass(dtype_class, np.dtype):
        return dtype_class
    raise UnsafePickleError(
        f"{self._origin}: refusing to unpickle global {module}.{name}; a VIDIT depth file "
        "may only contain numpy arrays and plain containers (the file is corrupt or "
        "malicious: it was NOT loaded and no code from it was run)")


def restricted_loads(data: bytes, origin: str):
  """Unpickles `data` with `RestrictedUnpickler`.

  Args:
    data: the pickle stream.
    origin: file name used in error messages.

  Returns:
    The unpickled object (numpy arrays, numpy scalars, dicts, lists, tuples, ...).

  Raises:
    UnsafePickleError: the stream names a global outside the allow-list.
    ValueError: the stream is not a readable pickle.
  """
  try:
    return RestrictedUnpickler(io.BytesIO(data), origin).load()
  except UnsafePickleError:
    raise
  except Exception as err:  # pickle raises many types on garbage; report them uniformly.
    raise ValueError(f"{origin}: not a readable pickle ({type(err).__name__}: {err})") from err


def load_npy_or_pickle(data: bytes, origin: str):
  """Reads an `.npy` file (any dtype) or a bare pickle without running code.

  Args:
    data: file contents.
    origin: file name used in error messages.

  Returns:
    A numpy array for numeric `.npy` files; for object-dtype `.npy` files and bare
    pickles, the restricted-unpickled object (a 0-d object array is unwrapped to its
    item, which is what `np.load(...).item()` would give).
  """
  if not data.startswith(_NPY_MAGIC):
    return restricted_loads(data, origin)
  stream = io.BytesIO(data)
  try:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
      shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
      shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
  except ValueError as err:
    raise ValueError(f"{origin}: corrupt .npy header ({err})") from err
  if not dtype.hasobject:
    try:
      return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
      raise ValueError(f"{origin}: corrupt or truncated .npy file ({err})") from err
  # Object arrays: np.save wrote `pickle.dump(array)` after the header.
  obj = restricted_loads(data[stream.tell():], origin)
  if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
    return obj.item()
  return obj


def read_vidit_depth(data: bytes, origin: str) -> np.ndarray:
  """Reads a VIDIT depth file into a float32 [height, width] array.

  Accepts the NTIRE 2021 dict form (`{"normalized_depth": [H, W], "ref_center_dis": ..}`,
  as an object `.npy` or a bare pickle) and plain numeric `.npy` depth maps. Only
  `normalized_depth` is kept; `ref_center_dis` (the scene's reference distance) is not
  stored by the builder.

  Args:
    data: file contents.
    origin: file name used in error messages.

  Returns:
    float32 array [height, width].
  """
  obj = load_npy_or_pickle(data, origin)
  if isinstance(obj, dict):
    if "normalized_depth" not in obj:
      raise ValueError(
          f"{origin}: depth dict has keys {sorted(map(str, obj))}, expected "
          "'normalized_depth' (NTIRE 2021 track 2 format)")
    obj = obj["normalized_depth"]
  depth = np.asarray(obj)
  if depth.ndim == 3 and depth.shape[-1] == 1:
    depth = depth[..., 0]
  if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
    raise ValueError(
        f"{origin}: depth has shape {depth.shape} and dtype {depth.dtype}, expected a "
        "numeric [height, width] array")
  return depth.astype(np.float32)
