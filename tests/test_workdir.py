"""The workdir lock, and training stopped by SIGTERM / SIGINT resuming to the same result."""

import json
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
from conftest import load_config

from relight_jax import main
from relight_jax.training import checkpointing
from relight_jax.training import train
from relight_jax.training import workdir

REPO = pathlib.Path(__file__).resolve().parents[1]


def _holder(path):
  text = (path / workdir.LOCK_FILE).read_text()
  return json.loads(text) if text.strip() else None


def test_lock_records_its_holder_and_empties_the_file_on_release(tmp_path):
  path = tmp_path / "new" / "run"
  with workdir.lock(path) as locked:
    assert locked == path and path.is_dir()
    holder = _holder(path)
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["since"].endswith("+00:00")
  assert _holder(path) is None
  with workdir.lock(path):  # released: free again
    pass


def test_second_lock_is_refused_naming_the_holder(tmp_path):
  with workdir.lock(tmp_path):
    # A second open file conflicts even in this process: flocks belong to open files.
    with pytest.raises(workdir.WorkdirBusyError,
                       match=rf"{tmp_path} is in use by pid {os.getpid()} on .* since .*"
                             r"another --workdir"):
      with workdir.lock(tmp_path):
        pass
    assert _holder(tmp_path)["pid"] == os.getpid()  # the refusal left the record alone


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  dead = {"host": "crashed-host", "pid": 4242, "since": "2024-01-01T00:00:00+00:00"}
  (tmp_path / workdir.LOCK_FILE).write_text(json.dumps(dead))  # written, held by no one
  with caplog.at_level(logging.WARNING):
    with workdir.lock(tmp_path):
      assert _holder(tmp_path)["pid"] == os.getpid()
  assert "stale lock" in caplog.text and "pid 4242 on crashed-host" in caplog.text


def test_secondary_processes_do_not_lock(tmp_path):
  with workdir.lock(tmp_path):
    with workdir.lock(tmp_path, primary=False):
      pass


def test_workdir_that_is_a_file_is_refused(tmp_path):
  path = tmp_path / "file"
  path.write_text("")
  with pytest.raises(workdir.BadWorkdirError, match=rf"--workdir {path} is a file"):
    with workdir.lock(path):
      pass
  with pytest.raises(workdir.BadWorkdirError, match=rf"lies under the file {path}"):
    workdir.prepare(path / "run")


def test_main_turns_workdir_errors_into_one_line_exits(tmp_path):
  config = load_config("envmap", "smoke")
  path = tmp_path / "file"
  path.write_text("")
  for mode in ("train", "train_and_evaluate"):
    with pytest.raises(SystemExit, match=rf"^error: --workdir {path} is a file"):
      main.run(mode, config, path)
    with workdir.lock(tmp_path / "busy"):
      with pytest.raises(SystemExit, match=rf"^error: workdir .* in use by pid {os.getpid()}"):
        main.run(mode, config, tmp_path / "busy")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_main_exits_with_the_status_of_the_signal(signum, status, tmp_path, monkeypatch,
                                                  capsys):
  def stopped(config, path, **kwargs):
    del config, kwargs
    raise train.Preempted(7, signum, pathlib.Path(path) / checkpointing.CHECKPOINT_DIR)

  monkeypatch.setattr(train, "train", stopped)
  with pytest.raises(SystemExit) as stop:
    main.run("train", None, tmp_path)
  assert stop.value.code == status
  assert capsys.readouterr().err == (
      f"stopped by {signal.Signals(signum).name} at step 7; checkpoint saved in "
      f"{tmp_path / checkpointing.CHECKPOINT_DIR}; rerun the same command to resume\n")


def test_command_line_refuses_a_workdir_another_process_holds(tmp_path):
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="1")
  with workdir.lock(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
         f"--workdir={tmp_path}", "--mode=train"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 1, done.stderr
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: workdir {tmp_path} is in use by pid {os.getpid()} on ")
  assert "Traceback" not in done.stderr


def test_stop_signals_are_left_alone_outside_the_main_thread():
  before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
  seen = {}

  def enter():
    with train._StopSignals():  # pylint: disable=protected-access
      seen.update({signum: signal.getsignal(signum) for signum in before})

  thread = threading.Thread(target=enter)
  thread.start()
  thread.join()
  assert seen == before


def _config(data_dir):
  # Checkpoints every 3 steps of 6, asynchronous: a stop at step 2 falls between two, and
  # its checkpoint must be complete when train() returns.
  return load_config("envmap", "smoke", **{
      "data.data_dir": data_dir, "train.eval_every": 100, "train.image_every": 100,
      "checkpoint.async_save": True})


def _arrays(train_state):
  fields = ("step", "params", "batch_stats", "opt_state", "discriminator")
  return jax.device_get({field: getattr(train_state, field) for field in fields})


def _train_until_signal(config, path, monkeypatch, signum, after_step):
  """train.train(config, path) with `signum` raised while step `after_step` gets its batch.

  Returns:
    The `train.Preempted` it raised.
  """
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers need the main thread")
  original_next = train._Prefetcher.next  # pylint: disable=protected-access
  calls = []

  def next_then_signal(prefetcher, stop=None):
    batch = original_next(prefetcher, stop)
    calls.append(1)
    if len(calls) == after_step:
      # Without train's handler the signal would end this test process.
      assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler)
      signal.raise_signal(signum)
    return batch

  before = signal.getsignal(signum)
  with monkeypatch.context() as patch:
    patch.setattr(train._Prefetcher, "next", next_then_signal)  # pylint: disable=protected-access
    with pytest.raises(train.Preempted) as stopped:
      train.train(config, path)
  assert signal.getsignal(signum) is before
  assert _holder(path) is None  # the lock was released
  return stopped.value


def _saved_steps(path):
  manager = checkpointing.create_manager(path, async_save=False)
  steps = manager.all_steps()
  manager.close()
  return list(steps)


def test_sigterm_saves_the_step_and_the_resumed_run_matches(tiny_data_dir, tmp_path,
                                                            monkeypatch, unoptimised_compiles):
  config = _config(tiny_data_dir)
  reference = _arrays(train.train(config, tmp_path / "reference"))
  path = tmp_path / "interrupted"
  stopped = _train_until_signal(config, path, monkeypatch, signal.SIGTERM, after_step=2)
  assert (stopped.step, stopped.signum, stopped.exit_status) == (2, signal.SIGTERM, 143)
  assert str(stopped) == (f"stopped by SIGTERM at step 2; checkpoint saved in "
                          f"{path / checkpointing.CHECKPOINT_DIR}; rerun the same command "
                          "to resume")
  assert _saved_steps(path) == [2]

  resumed = _arrays(train.train(config, path))
  assert int(resumed["step"]) == config.train.num_steps
  flat_reference, tree = jax.tree_util.tree_flatten(reference)
  flat_resumed, resumed_tree = jax.tree_util.tree_flatten(resumed)
  assert tree == resumed_tree and len(flat_reference) > 10
  for expected, actual in zip(flat_reference, flat_resumed, strict=True):
    np.testing.assert_array_equal(actual, expected)


def test_sigint_on_a_checkpoint_step_saves_it_once(tiny_data_dir, tmp_path, monkeypatch,
                                                    unoptimised_compiles):
  config = _config(tiny_data_dir)
  stopped = _train_until_signal(config, tmp_path, monkeypatch, signal.SIGINT, after_step=3)
  assert (stopped.step, stopped.signum, stopped.exit_status) == (3, signal.SIGINT, 130)
  assert _saved_steps(tmp_path) == [3]


def test_a_full_disk_ends_in_one_line(tmp_path, monkeypatch):
  def full(config, path, **kwargs):
    del config, kwargs
    try:
      raise OSError(28, "No space left on device", str(path / "checkpoints" / "3"))
    except OSError as error:
      raise RuntimeError("orbax: save failed") from error  # wrapped, as orbax does

  monkeypatch.setattr(train, "train", full)
  with pytest.raises(SystemExit) as exit_info:
    main.run("train", None, tmp_path)
  message = str(exit_info.value.code)
  assert message.startswith("error: no space left on device writing ")
  assert str(tmp_path / "checkpoints" / "3") in message and "\n" not in message


def test_evaluation_refuses_a_workdir_a_run_holds(tmp_path):
  from relight_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  with workdir.lock(tmp_path):
    with pytest.raises(workdir.WorkdirBusyError, match=f"pid {os.getpid()}"):
      evaluate.run_workdir(load_config("envmap", "smoke"), tmp_path)
