"""Faults a user meets, injected end to end through the command lines.

Each case ends in a result or in one line naming the path and the fix, never in a
traceback, a black image or lost work. The lower-level cases have their tests beside
their code: the workdir lock, signals, a full disk and a workdir that is a file
(tests/test_workdir.py); checkpoint manifests, bit flips, missing files, NaN states
(tests/test_checkpointing.py); a planted or tampered native library
(relight_jax/cpu_kernels/tests/test_native_tiles.py); malicious or huge depth pickles
(tests/test_vidit_errors.py); impossible settings (tests/test_config.py); the relight
command's path mistakes (tests/test_relight.py).
"""

import logging
import shutil

import numpy as np
import pytest
from conftest import checkpointed_workdir
from PIL import Image

from relight_jax import export
from relight_jax import relight
from relight_jax.training import checkpointing

EARLIER, LATEST = 3, 5


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A workdir with checkpoints at steps 3 and 5, a photo and a target."""
  path = tmp_path_factory.mktemp("faults")
  workdir = path / "run"
  checkpointed_workdir(workdir, EARLIER, seed=1)
  checkpointed_workdir(workdir, LATEST, seed=2)
  rng = np.random.default_rng(0)
  for name in ("photo", "target"):
    Image.fromarray((rng.random((40, 56, 3)) * 255).astype(np.uint8)).save(path / f"{name}.png")
  return path


@pytest.fixture
def scene(pristine, tmp_path):
  shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
  return tmp_path


def _relight(scene, output, *source):
  return relight.main([*source, f"--input={scene / 'photo.png'}",
                       f"--target={scene / 'target.png'}", f"--output={output}"])


def _largest_file(workdir, step):
  """The biggest file of a step's state: it holds the weights."""
  files = [path for path in (workdir / checkpointing.CHECKPOINT_DIR / str(step) /
                             "state").rglob("*") if path.is_file()]
  return max(files, key=lambda path: path.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_relight_uses_the_previous_checkpoint_when_the_latest_is_damaged(scene, damage, caplog):
  # What the fallback must give: the relit image of step 3 alone.
  shutil.copytree(scene / "run", scene / "earlier")
  shutil.rmtree(scene / "earlier" / checkpointing.CHECKPOINT_DIR / str(LATEST))
  assert _relight(scene, scene / "earlier.png", f"--workdir={scene / 'earlier'}") == 0
  assert _relight(scene, scene / "latest.png", f"--workdir={scene / 'run'}") == 0
  assert not np.array_equal(np.asarray(Image.open(scene / "latest.png")),
                            np.asarray(Image.open(scene / "earlier.png")))

  target = _largest_file(scene / "run", LATEST)
  data = target.read_bytes()
  if damage == "truncate":
    target.write_bytes(data[:len(data) // 2])
  else:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(flipped))
  with caplog.at_level(logging.WARNING):
    assert _relight(scene, scene / "relit.png", f"--workdir={scene / 'run'}") == 0
  warnings = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
  assert len(warnings) == 1 and f"{LATEST}" in warnings[0]
  relit = np.asarray(Image.open(scene / "relit.png"))
  np.testing.assert_array_equal(relit, np.asarray(Image.open(scene / "earlier.png")))


def test_a_damaged_export_is_refused_in_one_line(scene, capsys):
  exported = scene / "relighter.bin"
  assert export.main([f"--workdir={scene / 'run'}", f"--output={exported}"]) == 0
  data = bytearray(exported.read_bytes())
  data[len(data) // 2] ^= 0xFF
  exported.write_bytes(bytes(data))
  capsys.readouterr()
  assert _relight(scene, scene / "relit.png", f"--exported={exported}") == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and str(exported) in error[0] and "sha256" in error[0]
  assert not (scene / "relit.png").exists()
