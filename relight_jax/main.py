"""Command line of the main job: train and/or evaluate a relighting model.

  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap
  python -m relight_jax.main --config=configs/envmap.py:smoke --workdir=/tmp/smoke
  python -m relight_jax.main --workdir=runs/envmap --mode=evaluate
  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap --mode=evaluate \
      --config.eval.split=validation

--mode=evaluate without --config evaluates with the workdir's config.json; with --config,
its evaluation settings are used, and its model section must be the workdir's (the
checkpoint's). Everything else lives in importable modules (`train`, `evaluate`). A
workdir in use by another run, or a file given as --workdir, stops with a one-line error
(status 1); SIGTERM or Ctrl-C while training saves a checkpoint and exits with 143 or 130,
as the signal would have.
"""

import logging
import sys

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from relight_jax import config_utils
from relight_jax import host_memory
from relight_jax import logs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/envmap.py:smoke (--mode=evaluate: default the "
    "workdir's config.json).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard events and results.")
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate", ["train", "evaluate", "train_and_evaluate"],
                          "What to run.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host runs).")
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
    sys.exit(f"error: {error}")


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
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  run(_MODE.value, _CONFIG.value, _WORKDIR.value)


def run(mode, config, workdir):
  """Runs `mode` ('train', 'evaluate' or 'train_and_evaluate'); prints the table.

  Args:
    mode: what to run.
    config: experiment config; for 'evaluate', None reads the workdir's config.json.
    workdir: checkpoints, TensorBoard events and results.

  Raises:
    SystemExit: a one-line message instead of a traceback when the workdir is busy or
      not a directory, when an evaluation's config does not fit the workdir, or when a
      signal stopped training (the status the signal gives).
  """
  # Imported here: the training stack is heavy, and main() tunes the host first.
  from relight_jax import evaluate  # pylint: disable=g-import-not-at-top
  from relight_jax import train  # pylint: disable=g-import-not-at-top
  with train.command_line_exits():
    if mode == "train":
      train.train(config, workdir)
    elif mode == "evaluate":
      try:
        config = evaluate.config_for_workdir(config, workdir)
      except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
      _, table = evaluate.run_workdir(config, workdir)
      print(table)
    else:
      _, _, table = train.train_and_evaluate(config, workdir)
      print(table)

def run_command():
  """The `relight-jax` console script (same as python -m relight_jax.main)."""
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run_command()
