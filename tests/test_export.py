"""Tests of relight_jax/export.py: jax.export round trip, batch polymorphism, no model code."""

import json
import logging
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import checkpointed_workdir

from relight_jax import export
from relight_jax import relight
from relight_jax.inference import trained_model
from relight_jax.models import registry
from relight_jax.training import state as state_lib

REPO = pathlib.Path(__file__).resolve().parents[1]

# Loads an exported file in a fresh interpreter and fails if any model code got imported.
_LOADER = """
import sys
import numpy as np
from relight_jax.inference import trained_model
relighter = trained_model.load_exported(sys.argv[1])
images = np.load(sys.argv[2])
relit = np.asarray(relighter.relight_fn(images["input_image"], images["target_image"]))
np.save(sys.argv[3], relit)
leaked = sorted(name for name in sys.modules
                if name.startswith(("relight_jax.models", "flax", "orbax", "relight_jax.relight")))
print(relighter.image_size, repr(leaked))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir with a smoke-size envmap model's checkpoint, and its variables."""
  path = tmp_path_factory.mktemp("workdir")
  config, train_state = checkpointed_workdir(path, 5)
  return path, config, jax.device_get(state_lib.variables_of(train_state))


def test_exported_file_matches_the_model_at_any_batch_without_its_code(workdir, tmp_path):
  path, config, variables = workdir
  output = tmp_path / "relighter.bin"
  assert export.main([f"--workdir={path}", f"--output={output}"]) == 0
  size = config.data.image_size
  rng = np.random.default_rng(0)
  images = {name: rng.random((3, size, size, 3), dtype=np.float32)
            for name in ("input_image", "target_image")}
  model = registry.create_model(config.model)
  in_process = trained_model.make_relight_fn(model, variables)(
      images["input_image"], images["target_image"])  # [3, S, S, 3]

  # A fresh interpreter, batch 3: same outputs, and no model code imported.
  np.savez(tmp_path / "images.npz", **images)
  environment = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(
      jax.config.jax_compilation_cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  completed = subprocess.run(
      [sys.executable, "-c", _LOADER, str(output), str(tmp_path / "images.npz"),
       str(tmp_path / "relit.npy")],
      capture_output=True, text=True, cwd=REPO, env=environment, timeout=120, check=False)
  assert completed.returncode == 0, completed.stderr
  image_size, leaked = completed.stdout.split(maxsplit=1)
  assert int(image_size) == size
  assert leaked.strip() == "[]"  # no model code, not even flax, in the loading process
  np.testing.assert_allclose(np.load(tmp_path / "relit.npy"), in_process, atol=1e-5)

  # In this process, batch 1 of the same file: the batch dimension is symbolic.
  loaded = trained_model.load_exported(output).relight_fn
  assert loaded.exported.platforms == ("cpu", "cuda")
  assert str(loaded.exported.in_avals[0].shape[0]) == "batch"
  relit = np.asarray(loaded(images["input_image"][:1], images["target_image"][:1]))
  assert relit.shape == (1, size, size, 3)
  np.testing.assert_allclose(relit, in_process[:1], atol=1e-5)

  # The relight API runs on the loaded file too, at its fixed size only.
  relighter = trained_model.load_exported(output)
  photo = (rng.random((40, 24, 3)) * 255).astype(np.uint8)
  assert relight.relight(relighter, photo, photo).shape == (40, 24, 3)
  with pytest.raises(relight.RelightError, match="only runs at its exported size 32"):
    relight.relight(relighter, photo, photo, size=64)


def test_load_exported_refuses_other_files(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"not": "a model"}))
  with pytest.raises(ValueError, match="config.json: not a serialised jax.export relighter"):
    trained_model.load_exported(tmp_path / "config.json")
  with pytest.raises(FileNotFoundError, match="missing.bin: no such file"):
    trained_model.load_exported(tmp_path / "missing.bin")
  assert export.main([f"--workdir={tmp_path}", f"--output={tmp_path / 'x.bin'}"]) == 1
  assert not (tmp_path / "x.bin").exists()


def test_a_damaged_exported_file_is_refused_by_name(tmp_path, caplog):
  def blend(input_image, target_image):  # stands in for a relighter: the format is tested
    return (input_image + target_image) / 2

  exported = export.export_relight_fn(blend, 8, platforms=("cpu",))
  path = tmp_path / "relighter.bin"
  export.save_exported(exported, path)
  assert trained_model.load_exported(path).image_size == 8
  data = path.read_bytes()
  assert data.startswith(trained_model.EXPORTED_MAGIC)
  digest_byte = len(trained_model.EXPORTED_MAGIC) + 5
  for name, position in (("body", len(data) // 2), ("digest", digest_byte)):
    damaged = bytearray(data)
    damaged[position] ^= 0x01
    (tmp_path / f"{name}.bin").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=rf"{name}\.bin: damaged: .*sha256") as raised:
      trained_model.load_exported(tmp_path / f"{name}.bin")
    assert "\n" not in str(raised.value)
  (tmp_path / "truncated.bin").write_bytes(data[:-100])
  with pytest.raises(ValueError, match=r"truncated\.bin: damaged"):
    trained_model.load_exported(tmp_path / "truncated.bin")

  # A file exported before the checksum line still loads, with a warning.
  (tmp_path / "older.bin").write_bytes(exported.serialize())
  with caplog.at_level(logging.WARNING):
    assert trained_model.load_exported(tmp_path / "older.bin").image_size == 8
  assert "older.bin has no checksum" in caplog.text
