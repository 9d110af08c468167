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

The allowed globals are not harmless on their own, so the unpickler also checks what
they are given before numpy acts on it:
  * Size: a few bytes of pickle can declare any shape, and numpy allocates it. Every
    array (and the header of a numeric `.npy`) is checked against `MAX_ARRAY_ELEMENTS`
    (the image loader's pixel limit: a depth map has one value per pixel) and, for all
    arrays of one file together, `MAX_ARRAY_BYTES`, before anything is allocated.
  * Array state: numpy's `ndarray.__setstate__` reads as many items from an object
    array's list as the declared shape has elements, past the end of a shorter list.
  * Dtype state: `dtype.__setstate__` accepts field offsets beyond the item size, an
    alignment of 0 and flags that make raw bytes count as object pointers. Depth files
    hold plain numeric arrays, so a dtype's state may only restate what it already is.
  * `numpy.ndarray` may only be handed to `_reconstruct` (as numpy's pickles do), never
    called: a call allocates any shape or views any buffer.
  * `_codecs.encode` only turns text into latin-1 bytes; other codecs chained would
    double the data at every step.
"""

import codecs
import io
import math
import operator
import pickle

import numpy as np

from relight_jax.common import image_io

# A depth map has one value per pixel of its image, so it gets the image loader's limit;
# 8 bytes per element leaves room for float64, the widest depth type.
MAX_ARRAY_ELEMENTS = image_io.MAX_PIXELS
MAX_ARRAY_BYTES = 8 * MAX_ARRAY_ELEMENTS

# numpy's own array/scalar reconstructors, fetched from numpy rather than imported by
# module path: numpy 1.x pickles name `numpy.core.multiarray`, numpy 2.x
# `numpy._core.multiarray`; both resolve to the same functions.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_SCALAR = np.float64(0.0).__reduce__()[0]
# Pickle protocol 5 rebuilds contiguous arrays from a byte buffer instead.
_FROMBUFFER = np.zeros((1,)).__reduce_ex__(5)[0]

_RECONSTRUCT_NAMES = (("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct"))
_FROMBUFFER_NAMES = (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"))
_CODECS_ENCODE_NAME = ("_codecs", "encode")
_NDARRAY_NAME = ("numpy", "ndarray")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # Protocols 0-2 name the builtins module by its Python 2 name.
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}
# numpy >= 1.25 pickles dtypes as e.g. `numpy.dtypes.Float32DType`; those classes only
# describe a dtype and are as harmless as `numpy.dtype`.
_ALLOWED_DTYPE_MODULE = "numpy.dtypes"

# Protocols 0-2 (Python 2 era files) spell bytes as `_codecs.encode(str, "latin1")`.
_LATIN1_NAMES = ("latin1", "latin-1")
# The dtype flags that make numpy treat an item's bytes as Python object pointers.
_OBJECT_FLAGS = np.dtype(object).flags

_NPY_MAGIC = b"\x93NUMPY"
_MB = 10**6


class UnsafePickleError(ValueError):
  """A pickle asked for more than rebuilding plain numpy arrays needs.

  A global outside the allow-list, a call of `numpy.ndarray`, an array or dtype state
  numpy would act on unsafely, or a codec other than latin-1.
  """


class ArrayTooLargeError(ValueError):
  """A depth file declared an array over `MAX_ARRAY_ELEMENTS` or `MAX_ARRAY_BYTES`."""


class _Refused(Exception):
  """Raised by the unpickler's checks; `RestrictedUnpickler.load` adds the file name."""


class _Ndarray:
  """What the name `numpy.ndarray` resolves to in a pickle.

  numpy's pickles only pass the class to `_reconstruct`, which swaps in the real one;
  calling it (REDUCE, NEWOBJ, INST, OBJ) is refused.
  """

  def __new__(cls, *args, **kwargs):
    del args, kwargs  # Never used: nothing is built.
    raise _Refused("refusing to call numpy.ndarray (numpy's own pickles never do)")


def _dims(shape) -> tuple[int, ...]:
  """`shape` (an int or a sequence of ints, as numpy accepts) as a tuple of ints."""
  try:
    if isinstance(shape, (tuple, list)):
      dims = tuple(operator.index(d) for d in shape)
    else:
      dims = (operator.index(shape),)
  except TypeError:
    raise _Refused(f"array shape {shape!r} is not a tuple of integers") from None
  if any(d < 0 for d in dims):
    raise _Refused(f"array shape {dims} has a negative dimension")
  return dims


def check_array_size(shape, dtype, origin: str, bytes_before: int = 0) -> int:
  """Refuses an array over the size limits, before it is allocated.

  Args:
    shape: the declared shape (int or sequence of ints).
    dtype: the declared dtype (anything `np.dtype` accepts).
    origin: file name used in error messages.
    bytes_before: bytes of arrays already read from the same file.

  Returns:
    The array's size in bytes.

  Raises:
    ArrayTooLargeError: more than `MAX_ARRAY_ELEMENTS` elements, or more than
      `MAX_ARRAY_BYTES` bytes together with `bytes_before`.
    UnsafePickleError: `shape` is not a shape.
  """
  try:
    dims = _dims(shape)
  except _Refused as err:
    raise UnsafePickleError(f"{origin}: {err}") from None
  dtype = np.dtype(dtype)
  # A subarray dtype such as ("f4", (4096, 4096)) multiplies the elements per item.
  elements = math.prod(dims) * math.prod(dtype.shape)
  nbytes = math.prod(dims) * dtype.itemsize
  if elements > MAX_ARRAY_ELEMENTS or bytes_before + nbytes > MAX_ARRAY_BYTES:
    before = f" after {bytes_before / _MB:,.0f} MB of other arrays" if bytes_before else ""
    raise ArrayTooLargeError(
        f"{origin}: refusing an array of shape {dims} and dtype {dtype} ({elements:,} "
        f"elements, {nbytes / _MB:,.0f} MB{before}); a depth file may hold at most "
        f"{MAX_ARRAY_ELEMENTS:,} elements per array (the image pixel limit) and "
        f"{MAX_ARRAY_BYTES / _MB:,.0f} MB in all (the file is corrupt or malicious: it "
        "was NOT loaded)")
  return nbytes


def _check_ndarray_state(state) -> tuple:
  """Checks `ndarray.__setstate__`'s argument; returns (shape, dtype)."""
  if not isinstance(state, tuple) or len(state) not in (4, 5):
    raise _Refused("malformed numpy array state")
  shape, dtype, _, rawdata = state[-4:]
  if not isinstance(dtype, np.dtype) or dtype.shape:
    # numpy folds subarray dtypes into the shape, so its pickles never hold one here.
    raise _Refused(f"array state has dtype {dtype!r}, expected a plain dtype")
  if dtype.hasobject:
    elements = math.prod(_dims(shape))
    if not isinstance(rawdata, list) or len(rawdata) != elements:
      items = len(rawdata) if isinstance(rawdata, list) else type(rawdata).__name__
      raise _Refused(
          f"object array state of shape {tuple(shape)} lists {items} items, expected "
          f"{elements}")
  return shape, dtype


def _check_dtype_state(dtype: np.dtype, state) -> None:
  """Checks `dtype.__setstate__`'s argument: it may only restate `dtype` as it is."""
  # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]),
  # what numpy has written since 1.x; -1 stands for "the type's own" size and alignment.
  if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
    raise _Refused("unsupported numpy dtype state (expected version 3 or 4)")
  _, byteorder, subarray, names, fields, elsize, alignment, flags = state[:8]
  if subarray is not None or names is not None or fields is not None:
    raise _Refused(
        "refusing a structured or subarray dtype; a depth file holds plain numeric arrays")
  if (byteorder not in ("<", ">", "=", "|") or elsize not in (-1, dtype.itemsize)
      or alignment not in (-1, dtype.alignment)
      or not isinstance(flags, int) or (flags ^ dtype.flags) & _OBJECT_FLAGS):
    raise _Refused(
        f"dtype state {state[:8]!r} does not describe {dtype} (byte order, item size, "
        "alignment or object flags differ)")


class RestrictedUnpickler(pickle._Unpickler):
  """Unpickler that only rebuilds numpy arrays, dtypes, scalars and plain containers.

  It derives from the pure-Python unpickler because checking array and dtype states
  needs a hook on the BUILD opcode, which the C unpickler does not offer; depth files
  are a few opcodes around one large byte string, so speed is the same.

  Args:
    file: binary file object holding the pickle stream.
    origin: the file name shown in errors (a path, or `archive.zip!member`).
  """

  dispatch = dict(pickle._Unpickler.dispatch)

  def __init__(self, file, origin: str):
    super().__init__(file)
    self._origin = origin
    self._array_bytes = 0  # Of all arrays read so far: the limit is per file.

  def load(self):
    try:
      return super().load()
    except _Refused as err:
      raise UnsafePickleError(
          f"{self._origin}: {err} (the file is corrupt or malicious: it was NOT loaded)"
      ) from None

  def _claim(self, shape, dtype) -> None:
    self._array_bytes += check_array_size(shape, dtype, self._origin, self._array_bytes)

  def _reconstruct(self, subtype, shape, dtype):
    if subtype is not _Ndarray:
      raise _Refused(f"_reconstruct of {subtype!r}, expected numpy.ndarray")
    self._claim(shape, dtype)
    return _RECONSTRUCT(np.ndarray, shape, dtype)

  def _frombuffer(self, buf, dtype, shape, order):
    self._claim(shape, dtype)
    return _FROMBUFFER(buf, dtype, shape, order)

  @staticmethod
  def _encode(text, encoding="utf-8", errors="strict"):
    if encoding not in _LATIN1_NAMES:
      raise _Refused(f"refusing _codecs.encode with codec {encoding!r}, expected latin1")
    return codecs.encode(text, encoding, errors)

  def find_class(self, module: str, name: str):
    key = (module, name)
    if key in _RECONSTRUCT_NAMES:
      return self._reconstruct
    if key in _FROMBUFFER_NAMES:
      return self._frombuffer
    if key == _CODECS_ENCODE_NAME:
      return self._encode
    if key == _NDARRAY_NAME:
      return _Ndarray
    allowed = _ALLOWED_GLOBALS.get(key)
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

  def load_build(self):
    """BUILD: checked for arrays and dtypes, refused on anything else."""
    state, inst = self.stack[-1], self.stack[-2]
    if isinstance(inst, np.ndarray):
      self._claim(*_check_ndarray_state(state))
    elif isinstance(inst, np.dtype):
      _check_dtype_state(inst, state)
    else:
      # numpy's pickles only BUILD arrays and dtypes; on anything else BUILD sets
      # attributes, e.g. on the classes this module hands out.
      raise _Refused(f"refusing to set the state of {type(inst).__name__}")
    super().load_build()

  dispatch[pickle.BUILD[0]] = load_build


def restricted_loads(data: bytes, origin: str):
  """Unpickles `data` with `RestrictedUnpickler`.

  Args:
    data: the pickle stream.
    origin: file name used in error messages.

  Returns:
    The unpickled object (numpy arrays, numpy scalars, dicts, lists, tuples, ...).

  Raises:
    UnsafePickleError: the stream names a global outside the allow-list, or asks numpy
      for something unsafe (see the module docstring).
    ArrayTooLargeError: an array over the size limits.
    ValueError: the stream is not a readable pickle.
  """
  try:
    return RestrictedUnpickler(io.BytesIO(data), origin).load()
  except (UnsafePickleError, ArrayTooLargeError):
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
    # np.load allocates the whole declared shape before reading the data.
    check_array_size(shape, dtype, origin)
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
