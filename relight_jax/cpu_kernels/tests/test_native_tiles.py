"""cpu_kernels/native_tiles.py: the C++ Winograd transforms build, are cached, are loaded only
from a private directory and when they hash to their manifest, refuse to run with matrices that
differ from winograd.py's, and equal the jax.numpy transforms."""

import collections
import ctypes
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relight_jax.cpu_kernels import native_tiles
from relight_jax.cpu_kernels import winograd

Cache = collections.namedtuple("Cache", "directory library manifest key")


def _sha256(path):
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """One library and manifest built for this module's tests (each compile takes seconds)."""
  directory = tmp_path_factory.mktemp("built") / "native"
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(native_tiles.ENV_DIR, str(directory))
    library = native_tiles._build(native_tiles._compiler())
  return library


@pytest.fixture
def cache(built, tmp_path, monkeypatch):
  """A private cache directory holding a copy of `built` and its manifest, in use."""
  directory = tmp_path / "native"
  directory.mkdir(mode=0o700)
  for path in (built, native_tiles._manifest(built)):
    shutil.copy2(path, directory)
  monkeypatch.setenv(native_tiles.ENV_DIR, str(directory))
  library = directory / built.name
  manifest = native_tiles._manifest(library)
  return Cache(directory, library, manifest, json.loads(manifest.read_text())["key"])


def _counting_compiles(monkeypatch, built=None):
  """The compiler invocations that compile winograd_tiles.cc (not `--version`), from now;
  with `built`, each writes a copy of it instead of compiling (seconds each)."""
  commands = []
  run = native_tiles.subprocess.run
  def counting(command, *args, **kwargs):
    if str(native_tiles._SOURCE) not in command:
      return run(command, *args, **kwargs)
    commands.append(command)
    if built is None:
      return run(command, *args, **kwargs)
    shutil.copy(built, command[command.index("-o") + 1])
    return native_tiles.subprocess.CompletedProcess(command, 0, "", "")
  monkeypatch.setattr(native_tiles.subprocess, "run", counting)
  return commands


@pytest.fixture
def compiles(built, monkeypatch):
  """The compilations of winograd_tiles.cc from now on, each standing in for the compiler
  with a copy of the module's `built` library: the tests that use it check when the
  library is rebuilt and what is loaded; test_build_is_cached_by_content compiles."""
  return _counting_compiles(monkeypatch, built)


def test_build_is_cached_by_content(tmp_path, monkeypatch):
  compiles = _counting_compiles(monkeypatch)
  directory = tmp_path / "new" / "native"
  monkeypatch.setenv(native_tiles.ENV_DIR, str(directory))
  compiler = native_tiles._compiler()
  library = native_tiles._build(compiler)
  assert library.parent == directory and library.suffix == ".so"
  assert len(compiles) == 1
  assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700  # created private
  manifest = native_tiles._manifest(library)
  assert manifest.name == library.name + ".sha256"
  recorded = json.loads(manifest.read_text())
  assert recorded["sha256"] == _sha256(library)
  assert library.name == f"winograd_tiles-{recorded['key'][:16]}.so"
  for path in (library, manifest):
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
  inode = os.stat(library).st_ino
  assert native_tiles._build(compiler) == library  # verified and reused, not rebuilt
  assert len(compiles) == 1
  assert os.stat(library).st_ino == inode
  # No scratch left behind.
  assert sorted(p.name for p in directory.iterdir()) == [library.name, manifest.name]


def test_tampered_library_is_rebuilt_and_never_loaded(cache, compiles, monkeypatch, caplog):
  tampered = bytearray(cache.library.read_bytes())
  tampered[len(tampered) // 2] ^= 0xFF
  cache.library.write_bytes(bytes(tampered))  # not loaded yet: rewriting it in place is safe
  loaded = []
  load_library = ctypes.cdll.LoadLibrary
  def recording(path):
    loaded.append(_sha256(path))
    return load_library(path)
  monkeypatch.setattr(ctypes.cdll, "LoadLibrary", recording)
  monkeypatch.setattr(jax.ffi, "register_ffi_target", lambda *args, **kwargs: None)
  with caplog.at_level(logging.WARNING):
    assert native_tiles.load.__wrapped__() == str(cache.library)
  assert len(compiles) == 1
  rebuilt = json.loads(cache.manifest.read_text())["sha256"]
  assert loaded == [rebuilt] and rebuilt != hashlib.sha256(tampered).hexdigest()
  assert any(str(cache.library) in record.message and "sha256" in record.message
             for record in caplog.records if record.levelno == logging.WARNING)


@pytest.mark.parametrize("corrupt, reason", [
    (lambda c: c.manifest.write_text(json.dumps(
        {"sha256": _sha256(c.library), "key": "0" * 64})), "key 0000000000000000"),
    (lambda c: c.manifest.unlink(), "is missing"),
    (lambda c: c.manifest.write_text("not json"), "unreadable"),
    (lambda c: c.library.unlink(), "is missing"),
    (lambda c: os.chmod(c.library, 0o770), "writable by group or others"),
    (lambda c: os.chmod(c.manifest, 0o666), "writable by group or others"),
], ids=["other key", "no manifest", "unreadable manifest", "no library", "group-writable library",
        "world-writable manifest"])
def test_unverified_library_is_rebuilt(cache, compiles, caplog, corrupt, reason):
  corrupt(cache)
  assert native_tiles._unverified(cache.library, cache.key) is not None
  with caplog.at_level(logging.WARNING):
    assert native_tiles._build(native_tiles._compiler()) == cache.library
  assert len(compiles) == 1
  warnings = [record.message for record in caplog.records if record.levelno == logging.WARNING]
  assert len(warnings) == 1
  assert str(cache.library) in warnings[0] and reason in warnings[0]
  assert native_tiles._unverified(cache.library, cache.key) is None
  assert json.loads(cache.manifest.read_text()) == {"sha256": _sha256(cache.library),
                                                     "key": cache.key}


def test_library_that_does_not_verify_when_rebuilt_is_refused(cache, monkeypatch):
  def miscompile(compiler, library, key):
    library.write_bytes(b"not the library")
    native_tiles._manifest(library).write_text(json.dumps({"sha256": "0" * 64, "key": key}))
  monkeypatch.setattr(native_tiles, "_compile", miscompile)
  cache.manifest.unlink()
  with pytest.raises(native_tiles.BuildError, match="just rebuilt, does not verify: its sha256"):
    native_tiles._build(native_tiles._compiler())


def test_shared_cache_directory_is_refused(cache, compiles):
  os.chmod(cache.directory, 0o770)  # a verified library in it: still not loaded
  before = sorted(cache.directory.iterdir())
  message = (f"{re.escape(str(cache.directory))} .*mode 0o770.*chmod 700.*"
             f"{native_tiles.ENV_DIR} to a private directory")
  with pytest.raises(native_tiles.BuildError, match=message):
    native_tiles._build(native_tiles._compiler())
  assert compiles == [] and sorted(cache.directory.iterdir()) == before  # nor built into


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no file owners")
def test_cache_directory_of_another_user_is_refused(cache, compiles, monkeypatch):
  uid = os.getuid()
  monkeypatch.setattr(os, "getuid", lambda: uid + 1)
  with pytest.raises(native_tiles.BuildError,
                     match=f"{re.escape(str(cache.directory))} is owned by uid {uid}, not by you"):
    native_tiles._build(native_tiles._compiler())
  assert compiles == []


def test_without_owners_the_mode_is_still_checked(cache, compiles, monkeypatch):
  monkeypatch.delattr(os, "getuid", raising=False)
  assert native_tiles._build(native_tiles._compiler()) == cache.library  # verified
  os.chmod(cache.directory, 0o707)
  with pytest.raises(native_tiles.BuildError, match="mode 0o707, writable by group or others"):
    native_tiles._build(native_tiles._compiler())
  assert compiles == []


def test_failed_build_names_the_source_and_leaves_nothing(tmp_path, monkeypatch):
  monkeypatch.setenv(native_tiles.ENV_DIR, str(tmp_path))
  with pytest.raises(native_tiles.BuildError, match="compiling .*winograd_tiles.cc failed"):
    native_tiles._build("false")  # a "compiler" that exits 1
  assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_directory_is_named(tmp_path, monkeypatch):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  monkeypatch.setenv(native_tiles.ENV_DIR, str(blocker / "native"))
  with pytest.raises(native_tiles.BuildError,
                     match="cannot build into .*file.*RELIGHT_JAX_NATIVE_DIR"):
    native_tiles._build(native_tiles._compiler())
  with pytest.raises(native_tiles.BuildError, match="cannot run the C.. compiler"):
    native_tiles._build(str(tmp_path / "no-such-compiler"))


def test_missing_compiler_is_named(monkeypatch):
  monkeypatch.delenv("CXX", raising=False)
  monkeypatch.setenv("PATH", "")
  with pytest.raises(native_tiles.BuildError, match="no C.. compiler"):
    native_tiles._compiler()


def test_compiled_matrices_are_checked():
  library = ctypes.cdll.LoadLibrary(native_tiles.load())
  native_tiles._check_matrices(library, winograd.TRANSFORM_MATRICES)  # the real ones pass
  wrong = {m: dict(matrices) for m, matrices in winograd.TRANSFORM_MATRICES.items()}
  wrong[4]["AT"] = wrong[4]["AT"].copy()
  wrong[4]["AT"][3, 5] = 2.0
  with pytest.raises(native_tiles.BuildError, match="matrix 1 for m=4 differs"):
    native_tiles._check_matrices(library, wrong)
  wrong = {m: dict(matrices) for m, matrices in winograd.TRANSFORM_MATRICES.items()}
  wrong[2]["G"] = wrong[2]["G"] * 2.0
  with pytest.raises(native_tiles.BuildError, match="matrix 3 for m=2 differs"):
    native_tiles._check_matrices(library, wrong)


@pytest.mark.parametrize("tile", [2, 4])
def test_transforms_equal_the_jax_numpy_ones(tile):
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], (3, 8, 16, 19))  # 16 channels as a vector, 3 one by one
  product = jax.random.normal(keys[1], ((tile + 2) ** 2, 3, 8 // tile, 16 // tile, 19))
  pairs = [(native_tiles.input_transform(x, tile), winograd._input_transform(x, tile, False)),
           (native_tiles.output_gradient_transform(x, tile),
            winograd._output_gradient_transform(x, tile, False)),
           (native_tiles.output_transform(product, tile),
            winograd._output_transform(product, tile, False))]
  for actual, expected in pairs:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tile", [2, 4])
def test_kernel_transforms_equal_the_jax_numpy_ones(tile):
  keys = jax.random.split(jax.random.key(1), 2)
  kernel = jax.random.normal(keys[0], (3, 3, 5, 19))  # 16 out channels as a vector, 3 not
  du = jax.random.normal(keys[1], ((tile + 2) ** 2, 5, 19))
  pairs = [(native_tiles.kernel_transform(kernel, tile),
            winograd._kernel_transform(kernel, tile, False)),
           (native_tiles.kernel_transform(kernel, tile, flip=True),
            winograd._kernel_transform(jnp.flip(kernel, (0, 1)), tile, False)),
           (native_tiles.kernel_gradient_inverse(du, tile),
            winograd._kernel_gradient_inverse(du, tile, False))]
  for actual, expected in pairs:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_auto_falls_back_to_the_jax_numpy_transforms_without_the_library(monkeypatch):
  # `auto` asks available() at trace time; without the library the layer rules are the
  # jax.numpy transforms' (the 128 px 256 -> 64 conv: kernel gradient only), and the
  # program has no FFI call.
  auto = winograd.conv_function("auto", "auto", "auto")
  shapes = ((4, 128, 128, 256), (3, 3, 256, 64))
  assert winograd.winograd_parts(auto, *shapes) == (True, True)
  monkeypatch.setattr(native_tiles, "available", lambda: False)
  assert winograd.winograd_parts(auto, *shapes) == (False, True)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 16))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 16, 16))
  everywhere = winograd.conv_function("winograd", "winograd", "auto")
  conv = lambda x, k: everywhere(x, k, (1, 1), ((1, 1), (1, 1)),  # noqa: E731
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert "relight_winograd" not in jax.jit(conv).lower(x, kernel).as_text()


def test_native_setting_reports_a_failed_build(monkeypatch):
  def fail():
    raise native_tiles.BuildError("no C++ compiler found (set CXX, or install g++)")
  monkeypatch.setattr(native_tiles, "load", fail)
  native = winograd.conv_function("winograd", "winograd", "native")
  with pytest.raises(native_tiles.BuildError, match="no C.. compiler"):
    winograd.winograd_parts(native, (4, 16, 16, 8), (3, 3, 8, 8))
