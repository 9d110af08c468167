"""Tests of training/checkpointing.py: manifests, and falling back past damaged steps."""

import json
import logging
import shutil

import jax
import numpy as np
import pytest
from conftest import checkpointed_workdir
from conftest import load_config
from conftest import unoptimised_jit

from relight_jax.training import checkpointing
from relight_jax.training import state as state_lib

EARLIER, LATEST = 3, 5


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A workdir with checkpoints at steps 3 and 5 of different weights, and their variables."""
  path = tmp_path_factory.mktemp("pristine")
  _, earlier = checkpointed_workdir(path, EARLIER, seed=1)
  config, latest = checkpointed_workdir(path, LATEST, seed=2)
  variables = {step: jax.device_get(state_lib.variables_of(train_state))
               for step, train_state in ((EARLIER, earlier), (LATEST, latest))}
  return path, config, variables, latest


@pytest.fixture
def workdir(pristine, tmp_path):
  """A copy of the pristine workdir, for a test to damage."""
  path = tmp_path / "workdir"
  shutil.copytree(pristine[0], path)
  return path


def _step(workdir, step):
  return workdir / checkpointing.CHECKPOINT_DIR / str(step)


def _largest_array_file(workdir, step):
  """The biggest file of the step's state item: it holds the weights."""
  files = [path for path in (_step(workdir, step) / "state").rglob("*") if path.is_file()]
  return max(files, key=lambda path: path.stat().st_size)


def _flip_bytes(path):
  data = bytearray(path.read_bytes())
  for position in range(len(data) // 3, len(data) // 3 + 8):
    data[position] ^= 0xFF
  path.write_bytes(bytes(data))


def _assert_same(variables, expected):
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(variables), expected)


def _skipped(caplog):
  return [record.getMessage() for record in caplog.records
          if record.getMessage().startswith("skipping checkpoint")]


def test_manifest_lists_every_file_with_its_size_and_sha256(pristine):
  directory = _step(pristine[0], LATEST)
  manifest = json.loads((directory / checkpointing.MANIFEST_FILE).read_text())
  on_disk = {path.relative_to(directory).as_posix(): path for path in directory.rglob("*")
             if path.is_file() and path.name != checkpointing.MANIFEST_FILE}
  assert set(manifest["files"]) == set(on_disk) and "state/_METADATA" in on_disk
  for name, entry in manifest["files"].items():
    assert entry["size"] == on_disk[name].stat().st_size
  assert checkpointing.manifest_problem(directory) is None


def test_async_save_gets_its_manifest_once_finished(pristine, workdir):
  manager = checkpointing.create_manager(workdir, async_save=True)
  checkpointing.save(manager, 7, pristine[3], {"position": 7})
  checkpointing.save(manager, 9, pristine[3], {"position": 9})
  manager.wait_until_finished()
  manager.close()
  for step in (7, 9):
    assert (_step(workdir, step) / checkpointing.MANIFEST_FILE).is_file()
    assert checkpointing.manifest_problem(_step(workdir, step)) is None


def test_flipped_bytes_in_the_latest_step_fall_back_to_the_previous(pristine, workdir, caplog):
  _flip_bytes(_largest_array_file(workdir, LATEST))
  with caplog.at_level(logging.WARNING):
    _, variables, step = checkpointing.load_inference_variables(workdir)
  assert step == EARLIER
  _assert_same(variables, pristine[2][EARLIER])
  (message,) = _skipped(caplog)
  assert f"checkpoints/{LATEST}:" in message and "sha256" in message


def test_a_missing_file_in_the_latest_step_falls_back_to_the_previous(
    pristine, workdir, caplog):
  missing = _largest_array_file(workdir, LATEST)
  missing.unlink()
  with caplog.at_level(logging.WARNING):
    _, variables, step = checkpointing.load_inference_variables(workdir, LATEST)
  assert step == EARLIER
  _assert_same(variables, pristine[2][EARLIER])
  (message,) = _skipped(caplog)
  assert f"checkpoints/{LATEST}:" in message and f"{missing.name} is missing" in message


def test_a_resumed_run_deletes_the_damaged_steps_and_can_save_them_again(pristine, workdir):
  _flip_bytes(_largest_array_file(workdir, LATEST))
  manager = checkpointing.create_manager(workdir, async_save=False)
  try:
    train_state, data_state, step = checkpointing.restore_latest_good(
        manager, pristine[1], checkpointing.replicated_sharding(), delete_skipped=True)
    assert step == EARLIER and data_state == {"position": 0}
    assert manager.all_steps() == [EARLIER] and not _step(workdir, LATEST).exists()
    assert checkpointing.save(manager, LATEST, train_state, data_state)
  finally:
    manager.close()
  assert checkpointing.manifest_problem(_step(workdir, LATEST)) is None


def test_a_checkpoint_holding_nan_is_skipped(pristine, workdir, caplog):
  train_state = pristine[3]
  poisoned = train_state.replace(
      params=jax.tree_util.tree_map(lambda leaf: leaf * np.nan, train_state.params))
  manager = checkpointing.create_manager(workdir, async_save=False)
  checkpointing.save(manager, 7, poisoned, {"position": 7})
  manager.close()
  assert checkpointing.manifest_problem(_step(workdir, 7)) is None  # intact files, bad values
  with caplog.at_level(logging.WARNING):
    _, variables, step = checkpointing.load_inference_variables(workdir)
  assert step == LATEST
  _assert_same(variables, pristine[2][LATEST])
  (message,) = _skipped(caplog)
  assert "checkpoints/7:" in message and "NaN" in message and "params" in message


def test_a_step_without_manifest_loads_unverified_with_a_warning(pristine, workdir, caplog):
  (_step(workdir, LATEST) / checkpointing.MANIFEST_FILE).unlink()
  with caplog.at_level(logging.WARNING):
    _, variables, step = checkpointing.load_inference_variables(workdir)
  assert step == LATEST
  _assert_same(variables, pristine[2][LATEST])
  assert f"checkpoints/{LATEST} has no manifest.json" in caplog.text
  assert "unverified" in caplog.text and not _skipped(caplog)


def test_a_damaged_step_without_manifest_falls_back_when_orbax_fails(
    pristine, workdir, caplog):
  (_step(workdir, LATEST) / checkpointing.MANIFEST_FILE).unlink()
  _largest_array_file(workdir, LATEST).unlink()
  with caplog.at_level(logging.WARNING):
    _, variables, step = checkpointing.load_inference_variables(workdir)
  assert step == EARLIER
  _assert_same(variables, pristine[2][EARLIER])
  (message,) = _skipped(caplog)
  assert f"checkpoints/{LATEST}: orbax cannot restore it" in message


def test_no_intact_checkpoint_is_one_clear_error(workdir):
  _flip_bytes(_largest_array_file(workdir, LATEST))
  (_step(workdir, EARLIER) / "state" / "_METADATA").unlink()
  with pytest.raises(checkpointing.CorruptCheckpointError) as raised:
    checkpointing.load_inference_variables(workdir)
  message = str(raised.value)
  assert "\n" not in message and "no intact checkpoint in" in message
  assert f"tried step {LATEST} (" in message
  assert f"; step {EARLIER} (state/_METADATA is missing)" in message
  assert isinstance(raised.value, ValueError)  # what the entry points report as errors


def test_another_optimizer_structure_raises_instead_of_falling_back(pristine, workdir):
  config = pristine[1]
  other = config.copy_and_resolve_references()
  with other.unlocked():
    other.train.lr_decay = "cosine"  # adds a step count to the optimizer state
    other.train.num_steps = other.train.warmup_steps + 10
  manager = checkpointing.create_manager(workdir, async_save=False)
  try:
    with pytest.raises(checkpointing.ConfigMismatchError,
                       match=rf"checkpoints/{LATEST} holds a training state.*train.lr_decay"):
      checkpointing.restore_latest_good(manager, other, checkpointing.replicated_sharding())
  finally:
    manager.close()


def test_a_step_that_does_not_exist_is_named(workdir):
  with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 4 .*\[3, 5\]"):
    checkpointing.load_inference_variables(workdir, 4)


def test_states_saved_replica_parallel_or_from_one_replica_restore_alike(tmp_path):
  # Checkpoints written before checkpointing.py chose one replica used orbax's CPU default
  # (each replica writes a slice of every array): both kinds restore bit for bit.
  import orbax.checkpoint as ocp

  from relight_jax.training import parallel
  config = load_config("envmap", "smoke")
  placement = parallel.create_placement()
  train_state = unoptimised_jit(lambda key: state_lib.create_train_state(config, key),
                                out_shardings=placement.replicated)(state_lib.init_key(4))
  expected = jax.device_get(train_state)
  for replica_parallel in (True, False):
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=replica_parallel),
        override=True)
    try:
      manager = checkpointing.create_manager(tmp_path / str(replica_parallel), async_save=False)
      checkpointing.save(manager, 1, train_state, {"position": 0})
    finally:
      checkpointing._save_arrays_from_one_replica()
    restored, data_state = checkpointing.restore(manager, config, placement.replicated)
    for got, want in zip(jax.tree_util.tree_leaves(jax.device_get(restored)),
                         jax.tree_util.tree_leaves(expected), strict=True):
      np.testing.assert_array_equal(got, want)
    assert data_state == {"position": 0}
