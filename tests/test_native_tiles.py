"""models/native_tiles.py: the C++ Winograd transforms build, are cached, refuse to run with
matrices that differ from winograd.py's, and equal the jax.numpy transforms."""

import ctypes
import os

import jax
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
