"""Command line of the main job: train and/or evaluate a relighting model.

  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap
  python -m relight_jax.main --config=configs/envmap.py:smoke --workdir=/tmp/smoke
  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap --mode=evaluate

Everything else lives in importable modules (`train`, `evaluate`).
"""

import logging
import sys

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from relight_jax import host_memory
from relight_jax import logs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/envmap.py:smoke.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard events and results.")
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate", ["train", "evaluate", "train_and_evaluate"],
                          "What to run.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl flag parsing that turns an unknown config field into a one-line error."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:
    sys.exit(f"error: bad --config override: {error}")
  except flags.Error as error:
    sys.exit(f"error: {error}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  host_memory.tune()  # before XLA's threads allocate: no per-step page faults
  logs.configure()
  logs.silence_tensorflow()
  # TensorFlow is only used for data/TensorBoard plumbing: keep it off the GPUs.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  from relight_jax import evaluate  # pylint: disable=g-import-not-at-top
  from relight_jax import train  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  if _MODE.value == "train":
    train.train(config, _WORKDIR.value)
  elif _MODE.value == "evaluate":
    _, table = evaluate.run_workdir(config, _WORKDIR.value)
    print(table)
  else:
    _, _, table = train.train_and_evaluate(config, _WORKDIR.value)
    print(table)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
