"""Quiet by default: the entry points print progress, warnings and results only.

Orbax, clu's metric writer and TFDS log every checkpoint write, scalar and split at INFO
through absl's logger (hundreds of lines in a short run); TensorFlow's C++ logs its
oneDNN set-up and JAX which backends it did not find. `configure()` keeps those at
WARNING unless the command line asked for a verbosity (`--verbosity=0` shows the library
INFO logs, `-v=1` debug). relight_jax's own progress lines (stdlib `logging` on the root
logger) stay.
"""

import logging
import os


def silence_tensorflow():
  """TensorFlow's C++ INFO logs off; call before TensorFlow is imported.

  TensorFlow only reads files and writes TensorBoard events here, so its oneDNN kernels
  (whose start-up notice is printed whatever the log level) are turned off as well.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def configure():
  """After absl parsed the flags: library logs at WARNING unless --verbosity was given."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present:
    return
  for name in ("absl", "jax"):
    logging.getLogger(name).setLevel(logging.WARNING)
  logging.getLogger().setLevel(logging.INFO)
