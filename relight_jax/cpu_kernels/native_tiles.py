"""Winograd tile transforms compiled from C++ (winograd_tiles.cc) and called as XLA FFI.

winograd.py's transforms in jax.numpy compile, on XLA:CPU, to one fused loop per tile
entry, each streaming the whole map again; winograd_tiles.cc reads each tile once:
5-9x faster on the Envmap model's 256 px maps, and what made the Winograd convolutions
pay on nearly every 3x3 layer of the paper models (docs/benchmark_history.md,
section 8).

The library is built on first use with the C++ compiler of the machine (`c++`, or
$CXX; `-O3 -march=native`, ~3 s) against the XLA FFI headers that jaxlib ships, and
cached under $RELIGHT_JAX_NATIVE_DIR (default ~/.cache/relight_jax/native, or
$XDG_CACHE_HOME/relight_jax/native), keyed by the source, the flags, the compiler,
jaxlib's version and the CPU's feature flags. Nothing is downloaded. Code in that
directory runs in this process, so it is loaded only once verified:

- the directory (created with mode 0o700) must be owned by the user and writable by
  no one else, else `BuildError` says how to fix it (chmod 700, or a private
  $RELIGHT_JAX_NATIVE_DIR);
- beside the library `<library>.sha256` records the sha256 of its bytes and the cache key;
  both files must be regular files owned by the user and writable by no one else, the
  bytes must hash to the recorded sha256 and the recorded key must be the one computed
  from the shipped source now. A library that fails any of these (or has no manifest)
  is not loaded: a warning names it and why, it is rebuilt and verified again, and
  `BuildError` is raised if the rebuilt one still fails.

Library and manifest are each written to a temporary name and renamed, so concurrent
builds (pytest-xdist) are safe. `available()` is False where the build fails (no
compiler): the callers then keep the jax.numpy transforms (winograd.py's transforms =
'auto') or raise (= 'native').

The transforms work on each device's slice of a batch-sharded array (`jax.shard_map`
over the array's mesh axis), so data parallelism keeps the batch split.
"""

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import os
import pathlib
import platform
import shutil
import stat
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from relight_jax.cpu_kernels import matrices

_SOURCE = pathlib.Path(__file__).with_name("winograd_tiles.cc")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
_TARGETS = {  # FFI target name: exported handler symbol
    "relight_winograd_input": "RelightWinogradInput",
    "relight_winograd_output_gradient": "RelightWinogradOutputGradient",
    "relight_winograd_output": "RelightWinogradOutput",
    "relight_winograd_kernel": "RelightWinogradKernel",
    "relight_winograd_flipped_kernel": "RelightWinogradFlippedKernel",
    "relight_winograd_kernel_gradient": "RelightWinogradKernelGradient",
}
ENV_DIR = "RELIGHT_JAX_NATIVE_DIR"


class BuildError(RuntimeError):
  """The C++ transforms could not be compiled or loaded."""


def _cache_dir():
  if os.environ.get(ENV_DIR):
    return pathlib.Path(os.environ[ENV_DIR])
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "relight_jax" / "native"


def _cpu_flags():
  """The CPU's feature flags (-march=native compiles for them); without /proc/cpuinfo
  (macOS) the processor's name."""
  with contextlib.suppress(OSError):
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith(("flags", "Features")):
        return line
  return platform.processor()


def _compiler():
  compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if not compiler:
    raise BuildError("no C++ compiler found (set CXX, or install g++)")
  return compiler


def _manifest(library):
  return library.with_name(library.name + ".sha256")


def _sha256(path):
  with open(path, "rb") as file:
    return hashlib.file_digest(file, "sha256").hexdigest()


def _foreign_writable(status):
  """Why a file or directory with os.stat result `status` could be changed by someone
  other than the user (None: it cannot). Without os.getuid (Windows) the owner is not
  checked."""
  mode = stat.S_IMODE(status.st_mode)
  problems = []
  if hasattr(os, "getuid") and status.st_uid != os.getuid():
    problems.append(f"is owned by uid {status.st_uid}, not by you (uid {os.getuid()})")
  if mode & 0o022:
    problems.append(f"has mode {mode:#o}, writable by group or others")
  return " and ".join(problems) or None


def _check_private(directory):
  """Raises BuildError unless only the user can write to `directory`: anyone else who
  can would choose the code that load() runs."""
  try:
    problem = _foreign_writable(os.stat(directory))
  except OSError as error:
    raise BuildError(f"cannot stat the native library cache {directory}: {error}") from error
  if problem:
    raise BuildError(f"the native library cache {directory} {problem}; it must be owned by "
                     f"you and writable by you only: run `chmod 700 {directory}`, or set "
                     f"${ENV_DIR} to a private directory")


def _unverified(library, key):
  """Why `library` must not be loaded (None: it may): its manifest is missing or
  unreadable, records another key, or another sha256 than its bytes', or either file is
  not a regular file only the user can write."""
  manifest = _manifest(library)
  for path in (library, manifest):
    try:
      status = os.lstat(path)  # a link would let a file outside the directory be loaded
    except FileNotFoundError:
      return f"{path.name} is missing"
    except OSError as error:
      return f"cannot stat {path.name}: {error}"
    if not stat.S_ISREG(status.st_mode):
      return f"{path.name} is not a regular file"
    problem = _foreign_writable(status)
    if problem:
      return f"{path.name} {problem}"
  try:
    recorded = json.loads(manifest.read_text())
    recorded_sha256, recorded_key = str(recorded["sha256"]), str(recorded["key"])
  except (OSError, ValueError, KeyError, TypeError) as error:
    return f"its manifest {manifest.name} is unreadable ({type(error).__name__}: {error})"
  if recorded_key != key:
    return (f"its manifest records the key {recorded_key[:16]}, not the shipped source's "
            f"{key[:16]}")
  try:
    actual = _sha256(library)
  except OSError as error:
    return f"it cannot be read: {error}"
  if actual != recorded_sha256:
    return f"its sha256 {actual} is not the one its manifest records, {recorded_sha256}"
  return None


def _compile(compiler, library, key):
  """Compiles winograd_tiles.cc into `library` and writes its manifest, each to a
  temporary name first, then renamed over the old files.

  Raises:
    BuildError: the compiler fails.
    OSError: the directory cannot be written.
  """
  with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
    partial = pathlib.Path(scratch) / library.name
    command = [compiler, *_FLAGS, "-isystem", jax.ffi.include_dir(), str(_SOURCE),
               "-o", str(partial)]
    logging.info("native_tiles: compiling %s -> %s", _SOURCE.name, library)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
      raise BuildError(f"compiling {_SOURCE} failed ({' '.join(command)}):\n"
                       f"{result.stderr[-4000:]}")
    os.chmod(partial, 0o700)  # not the umask's: group-writable files are not loaded
    partial_manifest = pathlib.Path(scratch) / _manifest(library).name
    partial_manifest.write_text(json.dumps({"sha256": _sha256(partial), "key": key}) + "\n")
    os.chmod(partial_manifest, 0o600)
    # A concurrent build writes the same bytes (the compiler is deterministic), so the
    # pair stays consistent; if it did not, the next verification rebuilds.
    os.replace(partial, library)
    os.replace(partial_manifest, _manifest(library))


def _build(compiler):
  """Finds in the cache, verified, or compiles winograd_tiles.cc (once per source,
  compiler, jaxlib and CPU): the library's path.

  Raises:
    BuildError: the compiler fails or cannot be run, the cache directory cannot be
      written (naming it and $RELIGHT_JAX_NATIVE_DIR) or others can write to it, or the
      library does not verify even when just rebuilt.
  """
  try:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             check=False).stdout.split("\n")[0]
  except OSError as error:
    raise BuildError(f"cannot run the C++ compiler {compiler!r}: {error}") from error
  key = hashlib.sha256("\n".join([_SOURCE.read_text(), " ".join(_FLAGS), version,
                                  jax.lib.__version__, _cpu_flags()]).encode()).hexdigest()
  directory = _cache_dir()
  library = directory / f"winograd_tiles-{key[:16]}.so"
  try:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
  except OSError as error:
    raise BuildError(f"cannot build into {directory} ({error}); set ${ENV_DIR} to a "
                     "writable directory") from error
  _check_private(directory)
  reason = _unverified(library, key)
  if reason is None:
    return library
  if os.path.lexists(library) or os.path.lexists(_manifest(library)):
    logging.warning("native_tiles: not loading %s: %s; rebuilding it", library, reason)
  try:
    _compile(compiler, library, key)
  except OSError as error:
    raise BuildError(f"cannot build into {directory} ({error}); set ${ENV_DIR} to a "
                     "writable directory") from error
  reason = _unverified(library, key)
  if reason is not None:
    raise BuildError(f"{library}, just rebuilt, does not verify: {reason}")
  return library


def _check_matrices(library, transforms):
  """The library's compiled-in B^T, A^T, A, G and G^T equal winograd.py's (`transforms`),
  rounded to float32."""
  out = (ctypes.c_float * 36)()
  for m, matrix_set in transforms.items():
    for which, expected in enumerate((matrix_set["BT"], matrix_set["AT"], matrix_set["AT"].T,
                                      matrix_set["G"], matrix_set["G"].T)):
      expected = expected.astype(np.float32)
      count = library.RelightWinogradMatrix(m, which, out)
      actual = np.frombuffer(out, np.float32)[:count]
      if count != expected.size or not np.array_equal(actual, expected.ravel()):
        raise BuildError(f"{_SOURCE.name}'s matrix {which} for m={m} differs from "
                         f"winograd.py's: {actual} vs {expected.ravel()}")


@functools.cache
def load():
  """Builds (or finds in the cache, verified) and registers the transforms: the library's
  path.

  Raises:
    BuildError: no compiler, a failed compile, a cache directory others can write to, a
      library that does not verify even when rebuilt, or matrices that differ from
      winograd.py's (not cached: a later call tries again).
  """
  path = _build(_compiler())
  try:
    library = ctypes.cdll.LoadLibrary(str(path))
  except OSError as error:
    raise BuildError(f"loading {path} failed: {error}") from error
  _check_matrices(library, matrices.TRANSFORM_MATRICES)
  for target, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return str(path)


@functools.cache
def available():
  """Whether the C++ transforms can be used on this machine (built and registered)."""
  try:
    load()
  except BuildError as error:
    logging.warning("native_tiles: C++ Winograd transforms unavailable, using XLA's "
                    "(slower): %s", error)
    return False
  return True


def _per_device(function, x, batch_axis, out_batch_axis, out_ndim):
  """function(x) on each device's slice of x when x is sharded on batch_axis only."""
  sharding = jax.typeof(x).sharding
  spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
  if sharding.mesh.empty or all(axis is None for axis in spec):
    return function(x)
  if any(axis is not None for i, axis in enumerate(spec) if i != batch_axis):
    raise ValueError(f"native Winograd transforms need an array sharded on its batch axis "
                     f"only; got spec {spec}")
  out_spec = [None] * out_ndim
  out_spec[out_batch_axis] = spec[batch_axis]
  return jax.shard_map(function, mesh=sharding.mesh, in_specs=jax.P(*spec),
                       out_specs=jax.P(*out_spec))(x)


def _call(target, x, shape, m):
  return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(shape, jnp.float32),
                          vmap_method="sequential")(x, m=np.int64(m))


def _map_to_tiles(target, x, m):
  """[(m + 2)^2, batch, H / m, W / m, c] from a map x [batch, H, W, c] by FFI `target`."""
  load()
  def transform(x):
    batch, height, width, channels = x.shape
    return _call(target, x, ((m + 2) ** 2, batch, height // m, width // m, channels), m)
  return _per_device(transform, x, 0, 1, 5)


def input_transform(x, m):
  """B^T d B of every (m + 2)^2 tile of x [batch, H, W, c] padded by 1:
  [(m + 2)^2, batch, H / m, W / m, c] (winograd._input_transform's result)."""
  return _map_to_tiles("relight_winograd_input", x, m)


def output_gradient_transform(dy, m):
  """A dy A^T of every m x m tile of dy [batch, H, W, c]: [(m + 2)^2, batch, H / m, W / m, c]."""
  return _map_to_tiles("relight_winograd_output_gradient", dy, m)


def _replicated(function, x):
  """function(x) for a replicated x (a kernel): on each device of its mesh, if any."""
  sharding = jax.typeof(x).sharding
  if sharding.mesh.empty:
    return function(x)
  if any(axis is not None for axis in sharding.spec):
    raise ValueError(f"native Winograd kernel transforms need a replicated kernel; got "
                     f"spec {sharding.spec}")
  return jax.shard_map(function, mesh=sharding.mesh, in_specs=jax.P(),
                       out_specs=jax.P())(x)


def kernel_transform(kernel, m, flip=False):
  """G g G^T of a 3x3 HWIO kernel [3, 3, cin, cout] (turned by 180 degrees first with
  `flip`): [(m + 2)^2, cin, cout] (winograd._kernel_transform's result)."""
  load()
  target = "relight_winograd_flipped_kernel" if flip else "relight_winograd_kernel"
  return _replicated(
      lambda k: _call(target, k, ((m + 2) ** 2, *k.shape[2:]), m), kernel)


def kernel_gradient_inverse(du, m):
  """G^T du G of a Winograd-domain kernel gradient [(m + 2)^2, cin, cout]: the HWIO
  kernel gradient [3, 3, cin, cout]."""
  load()
  return _replicated(
      lambda d: _call("relight_winograd_kernel_gradient", d, (3, 3, *d.shape[1:]), m), du)


def output_transform(product, m):
  """A^T M A of every tile of product [(m + 2)^2, batch, tiles_h, tiles_w, c], assembled
  into the [batch, tiles_h * m, tiles_w * m, c] map."""
  load()
  def transform(product):
    _, batch, tiles_h, tiles_w, channels = product.shape
    return _call("relight_winograd_output", product,
                 (batch, tiles_h * m, tiles_w * m, channels), m)
  return _per_device(transform, product, 1, 0, 4)
