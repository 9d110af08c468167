"""Command line of the main job: train and/or evaluate a relighting model.

  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap
  python -m relight_jax.main --config=configs/envmap.py:smoke --workdir=/tmp/smoke
  python -m relight_jax.main --workdir=runs/envmap --mode=evaluate
  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap --mode=evaluate \
      --config.eval.split=validation
  python -m relight_jax.main --config=configs/envmap.py --workdir=/shared/runs/envmap \
      --coordinator_address=host0:8476 --num_processes=2 --process_id=0   # and =1 on host1

--mode=evaluate without --config evaluates with the workdir's config.json; with --config,
its evaluation settings are used, and its model section must be the workdir's (the
checkpoint's). Everything else lives in importable modules (`train`, `evaluate`). A
workdir in use by another run, or a file given as --workdir, stops with a one-line error
(status 1); SIGTERM or Ctrl-C while training saves a checkpoint and exits with 143 or 130,
as the signal would have (a second one stops at once, without that checkpoint). Resuming
with settings other than the workdir's config.json is refused, listing them, unless
--allow_config_change.

Several processes (hosts) join JAX's distributed runtime before anything else runs: with
--distributed alone JAX finds the coordinator, process count and id itself on SLURM,
Open MPI, Kubernetes and Cloud TPU (and reads $JAX_COORDINATOR_ADDRESS); elsewhere give
the three flags. Every process runs the same command on a workdir they all see; only
process 0 writes config.json, TensorBoard events and tables (docs/distributed.md).
"""

import logging
import sys

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from relight_jax.common import host_memory
from relight_jax.common import logs
from relight_jax.config import config_utils

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/envmap.py:smoke (--mode=evaluate: default the "
    "workdir's config.json).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard events and results.")
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate", ["train", "evaluate", "train_and_evaluate"],
                          "What to run.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join JAX's distributed runtime first (several processes); implied "
    "by the three flags below, which JAX detects itself on SLURM, Open MPI and Cloud TPU.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port where process 0 serves the coordinator (default "
    "$JAX_COORDINATOR_ADDRESS, or the cluster's).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 to "
                                   "num_processes - 1.", lower_bound=0)
_INIT_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "Seconds to wait for every process to join.", lower_bound=1)
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir although this run's settings differ from "
    "its config.json in what they train (image size, batch, rate, pairing, ...); the old "
    "config.json is kept as config.before-<time>.json.")
flags.mark_flags_as_required(["workdir"])


def parse_flags(argv):
  """absl flag parsing that turns an unknown config field into a one-line error."""
  try:
    argv = config_utils.resolve_config_flag(argv)
  except FileNotFoundError as error:
    sys.exit(f"error: --config: {error}")
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:
    sys.exit(f"error: bad --config override: {error}")
  except flags.Error as error:
    sys.exit(f"error: {one_line_flag_error(error)}")


def one_line_flag_error(error):
  """absl's message for a bad flag, with the traceback it embeds (a config file's own
  error, e.g. a config string typo) reduced to that error's last line."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not any(line.startswith("Traceback (most recent call last)") for line in lines):
    return " ".join(lines)
  return f"{lines[0].rstrip(':')}: {lines[-1]}"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None and _MODE.value != "evaluate":
    sys.exit(f"error: --config is required for --mode={_MODE.value} (only --mode=evaluate "
             "can read the workdir's config.json instead)")
  if _CONFIG.value is not None:
    try:
      # Again after the command line's --config.* overrides, which get_config never saw.
      config_utils.validate(_CONFIG.value)
    except ValueError as error:
      sys.exit(f"error: {error}")
  host_memory.tune()  # before XLA's threads allocate: no per-step page faults
  logs.configure()
  logs.silence_tensorflow()
  initialize_distributed()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  run(_MODE.value, _CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)


def initialize_distributed():
  """Joins JAX's distributed runtime when the flags ask for several processes.

  Raises:
    SystemExit: a one-line message when the flags contradict each other or JAX cannot
      complete them (no cluster detected) or the other processes never join.
  """
  explicit = {"coordinator_address": _COORDINATOR.value, "num_processes": _NUM_PROCESSES.value,
              "process_id": _PROCESS_ID.value}
  if not _DISTRIBUTED.value and all(value is None for value in explicit.values()):
    return
  if None not in (_NUM_PROCESSES.value, _PROCESS_ID.value) and (
      _PROCESS_ID.value >= _NUM_PROCESSES.value):
    sys.exit(f"error: --process_id={_PROCESS_ID.value} is not below "
             f"--num_processes={_NUM_PROCESSES.value}")
  try:
    jax.distributed.initialize(**explicit, initialization_timeout=_INIT_TIMEOUT.value)
  except (ValueError, RuntimeError) as error:  # RuntimeError: XlaRuntimeError, timeouts
    given = ", ".join(f"--{key}={value}" for key, value in explicit.items() if value is not None)
    sys.exit(f"error: jax.distributed.initialize({given or 'no arguments'}) failed: "
             f"{' '.join(str(error).split())[:500].rstrip('.')}; give --coordinator_address, "
             "--num_processes and --process_id where JAX cannot detect the cluster")


def run(mode, config, workdir, *, allow_config_change=False):
  """Runs `mode` ('train', 'evaluate' or 'train_and_evaluate'); prints the table.

  Args:
    mode: what to run.
    config: experiment config; for 'evaluate', None reads the workdir's config.json.
    workdir: checkpoints, TensorBoard events and results.
    allow_config_change: resume although the settings differ from the workdir's
      (train.train).

  Raises:
    SystemExit: a one-line message instead of a traceback when the workdir is busy or
      not a directory, when an evaluation's config does not fit the workdir, or when a
      signal stopped training (the status the signal gives).
  """
  # Imported here: the training stack is heavy, and main() tunes the host first.
  from relight_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  from relight_jax.training import train  # pylint: disable=g-import-not-at-top
  with train.command_line_exits():
    if mode == "train":
      train.train(config, workdir, allow_config_change=allow_config_change)
    elif mode == "evaluate":
      try:
        config = evaluate.config_for_workdir(config, workdir)
      except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
      _, table = evaluate.run_workdir(config, workdir)
    else:
      _, _, table = train.train_and_evaluate(config, workdir,
                                             allow_config_change=allow_config_change)
    if mode != "train" and jax.process_index() == 0:
      print(table)

def run_command():
  """The `relight-jax` console script (same as python -m relight_jax.main)."""
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run_command()
