"""Several processes on JAX's distributed runtime: 2 processes x 2 CPU devices on
127.0.0.1 against this process's 4 devices.

The worker processes run the real command line (`relight_jax.main` with
--coordinator_address / --num_processes / --process_id, or $JAX_COORDINATOR_ADDRESS),
its CPU collectives through gloo (JAX's default on CPU). They are bounded by a deadline
and killed, each by its pid, when one fails or the deadline passes.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import load_config

from relight_jax.data import input_pipeline
from relight_jax.evaluation import evaluate
from relight_jax.training import checkpointing
from relight_jax.training import parallel
from relight_jax.training import train

REPO = pathlib.Path(__file__).resolve().parents[1]
DEADLINE_S = 420  # both processes, startup to exit, on 2 busy cores
# 20 pairs in batches of 8: the last batch is half padding, all of it process 1's part.
# XLA's own convolutions: the workers compile every program themselves (see
# _run_two_processes), and the Winograd kernels take longer to compile.
OVERRIDES = {"eval.num_pairs": 20, "train.checkpoint_every": 1, "model.conv_impl": "xla"}


def _config(data_dir, steps):
  return load_config("envmap", "smoke", **{"data.data_dir": data_dir,
                                           "train.num_steps": steps, **OVERRIDES})


def _free_port():
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def _run_two_processes(workdir, data_dir, steps, log_dir):
  """Runs `main --mode=train_and_evaluate` as 2 processes x 2 CPU devices.

  Returns:
    (the two processes' outputs, their pids).
  """
  port = _free_port()
  command = [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
             f"--workdir={workdir}", "--mode=train_and_evaluate",
             f"--config.data.data_dir={data_dir}", f"--config.train.num_steps={steps}",
             *(f"--config.{key}={value}" for key, value in OVERRIDES.items()),
             "--num_processes=2", "--distributed_timeout=120"]
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  # No persistent compilation cache: on CPU its keys differ per process and only process
  # 0 writes entries, so process 0 would start its steps long before process 1 and gloo
  # gives up after 30 s waiting for a peer.
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  processes, logs = [], []
  for process_id in range(2):
    args = [*command, f"--process_id={process_id}"]
    process_env = dict(env)
    if process_id == 0:
      args.append(f"--coordinator_address=127.0.0.1:{port}")
      # JAX's coordinator listens on every interface unless told otherwise.
      process_env["JAX_COORDINATOR_BIND_ADDRESS"] = f"127.0.0.1:{port}"
    else:  # the environment variable JAX itself reads
      process_env["JAX_COORDINATOR_ADDRESS"] = f"127.0.0.1:{port}"
    log = log_dir / f"process{process_id}.log"
    logs.append(log)
    with open(log, "wb") as stream:
      processes.append(subprocess.Popen(args, cwd=REPO, env=process_env, stdout=stream,
                                        stderr=subprocess.STDOUT))
  deadline = time.monotonic() + DEADLINE_S
  try:
    while time.monotonic() < deadline:
      codes = [process.poll() for process in processes]
      if any(code not in (None, 0) for code in codes) or all(code == 0 for code in codes):
        break
      time.sleep(0.2)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
      process.wait()
  codes = [process.returncode for process in processes]
  if codes != [0, 0]:
    tails = "\n".join(f"--- process {i} (status {code}):\n{log.read_text()[-3000:]}"
                      for i, (code, log) in enumerate(zip(codes, logs, strict=True)))
    pytest.fail(f"2-process run failed or passed {DEADLINE_S} s:\n{tails}")
  return [log.read_text() for log in logs], [process.pid for process in processes]


def _max_difference(tree_a, tree_b, relative=False):
  """Max over leaves of max |a - b| (relative: divided by the leaf's max |a|)."""
  def difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / (max(float(np.max(np.abs(a))), 1e-6) if relative
                                           else 1.0)
  return max(jax.tree_util.tree_leaves(jax.tree_util.tree_map(difference, tree_a, tree_b)))


def _flat(tree):
  return np.concatenate([np.ravel(leaf).astype(np.float64)
                         for leaf in jax.tree_util.tree_leaves(tree)])


def _restore(workdir, config, placement, step):
  state, data_state, found = checkpointing.restore_workdir(workdir, config,
                                                           placement.replicated, step)
  assert found == step, (workdir, found)
  return state, data_state


def _events_files(workdir):
  return {path.name for path in pathlib.Path(workdir).glob("events.out.tfevents.*")}


@pytest.mark.xdist_group("processes")
def test_two_processes_train_and_evaluate_as_one(tiny_data_dir, tmp_path,
                                                 unoptimised_compiles):
  one, multi = tmp_path / "one", tmp_path / "multi"
  # Step 1 in this process (4 devices); the 2-process run resumes from its checkpoint.
  train.train(_config(tiny_data_dir, 1), one)
  shutil.copytree(one, multi)
  before = _events_files(multi)
  started = time.monotonic()
  outputs, pids = _run_two_processes(multi, tiny_data_dir, 2, tmp_path)
  wall = time.monotonic() - started
  # The same step 2 here, from the same checkpoint and the same global batch.
  config = _config(tiny_data_dir, 2)
  reference = jax.device_get(train.train(config, one))
  placement = parallel.create_placement()
  start, _ = _restore(one, config, placement, 1)
  # The 2-process checkpoint restores in 1 process, on 4 devices.
  restored, data_state = _restore(multi, config, placement, 2)
  host_restored = jax.device_get(restored)
  parameters = _max_difference(reference.params, host_restored.params)
  # Relative: BatchNorm variances run from ~1 to ~1e3.
  statistics = _max_difference(reference.batch_stats, host_restored.batch_stats,
                               relative=True)
  moments = _max_difference(reference.opt_state, host_restored.opt_state)
  updates = [_flat(state.params) - _flat(start.params) for state in (reference, host_restored)]
  update_error = np.linalg.norm(updates[1] - updates[0]) / np.linalg.norm(updates[0])
  print(f"2 processes x 2 devices vs 1 x 4, after step 2: max |difference| of params "
        f"{parameters:.3g}, batch_stats {statistics:.3g} (relative), Adam moments "
        f"{moments:.3g}; "
        f"|update difference| / |update| {update_error:.3g}; 2-process run {wall:.1f} s")
  # BatchNorm saw the same global batch and the gradients are the same, up to the order
  # of gloo's sums: the statistics and Adam's moments (running means of the gradients)
  # agree to float rounding (the statistics relative to their size). The parameters
  # agree less: Adam's step m / sqrt(v) turns rounding noise on near-zero gradients into
  # steps of up to the learning rate (1e-3), so they are compared as an update. A wrong
  # host slice or per-process BatchNorm changes every gradient: moments, statistics and
  # update off by tens of percent.
  assert statistics < 1e-5 and moments < 1e-6, (statistics, moments)
  assert update_error < 0.01 and parameters < 2 * config.train.learning_rate, (
      update_error, parameters)
  _, one_data_state = _restore(one, config, placement, 2)
  assert data_state == one_data_state  # the stream resumes at the same global batch

  # Only process 0 wrote TensorBoard events, config.json and the tables; it alone printed.
  # (an events file is named events.out.tfevents.<time>.<host>.<pid>.<n>; the host may
  # hold dots)
  written = _events_files(multi) - before
  writers = {re.search(r"\.(\d+)\.\d+$", name).group(1) for name in written}
  assert written and writers == {str(pids[0])}, (written, pids)
  # config.json rewritten with this run's first checkpoint: its num_steps, 2.
  assert checkpointing.load_config(multi / checkpointing.CONFIG_FILE).to_dict() == \
      config.to_dict()
  assert "| Score |" in outputs[0] and "| Score |" not in outputs[1]
  assert "JAX process 1/2" in outputs[1]

  # The evaluation across processes is the one of this process, pair for pair: every
  # subset counts its 20 pairs once, with the same means and scene-bootstrap intervals.
  across = json.loads((multi / "eval" / "metrics.json").read_text())
  here, _ = evaluate.run(config, tmp_path / "check", restored, placement, label="multi")
  assert set(across["subsets"]) == set(here["subsets"])
  for subset, summary in here["subsets"].items():
    assert across["subsets"][subset]["num_pairs"] == summary["num_pairs"] == 20, subset
    for key, value in summary["metrics"].items():
      np.testing.assert_allclose(across["subsets"][subset]["metrics"][key]["mean"],
                                 value["mean"], rtol=1e-5, atol=1e-7, err_msg=(subset, key))
      np.testing.assert_allclose(across["subsets"][subset]["metrics"][key]["ci95"],
                                 value["ci95"], rtol=1e-5, atol=1e-7, err_msg=(subset, key))
  assert (multi / "eval" / "table.md").exists() and (multi / "eval" / "sheet_eval.png").exists()


def test_distributed_without_a_cluster_or_flags_says_what_to_give(tmp_path):
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR", "KUBERNETES_", "TPU_"))}
  env["JAX_PLATFORMS"] = "cpu"
  result = subprocess.run(
      [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
       f"--workdir={tmp_path}", "--distributed", "--distributed_timeout=5"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1, result.stderr[-2000:]
  assert ("jax.distributed.initialize(no arguments) failed: coordinator_address should be "
          "defined; give --coordinator_address, --num_processes and --process_id"
          in result.stderr), result.stderr[-2000:]
  assert not (tmp_path / checkpointing.CONFIG_FILE).exists()


class _LabelledImages:
  """Stands in for `SceneImages`: image(scene, light) is the pair [scene, light] itself."""

  def image(self, scene, light):
    return np.array([scene, light], np.int64)


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_eval_batches_of_all_processes_hold_every_pair_once(processes):
  pairs = input_pipeline.eval_pairs(5, ("different_scene",), 21, seed=0)  # 21 = 2 x 8 + 5
  per_process = [list(input_pipeline.eval_batches(
      _LabelledImages(), pairs, 8, input_pipeline.HostSlice(index, processes)))
      for index in range(processes)]
  seen = []
  # Global batch b is process 0's part, then process 1's, ... (the mesh's device order).
  for parts in zip(*per_process, strict=True):
    for part in parts:
      assert len(part["mask"]) == 8 // processes
      real = part["mask"] > 0
      seen.extend(np.concatenate([part["input_image"], part["target_image"]], axis=1)[real])
  np.testing.assert_array_equal(np.asarray(seen), pairs)
