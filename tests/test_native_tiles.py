"""models/native_tiles.py: the C++ Winograd transforms build, are cached, refuse to run with
matrices that differ from winograd.py's, and equal the jax.numpy transforms."""

import ctypes
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relight_jax.models import native_tiles
from relight_jax.models import winograd


def test_build_is_cached_by_content(tmp_path, monkeypatch):
  monkeypatch.setenv(native_tiles.ENV_DIR, str(tmp_path))
  compiler = native_tiles._compiler()
  library = native_tiles._build(compiler)
  assert library.parent == tmp_path and library.suffix == ".so"
  built_at = os.stat(library).st_mtime_ns
  assert native_tiles._build(compiler) == library  # found, not rebuilt
  assert os.stat(library).st_mtime_ns == built_at
  assert [p.name for p in tmp_path.iterdir()] == [library.name]  # no scratch left behind


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
