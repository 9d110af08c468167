"""Quiet by default: the entry points print progress, warnings and results only.

Orbax and TFDS log every checkpoint write and split at INFO through absl's logger
(hundreds of lines in a short run); TensorFlow's C++, where TensorFlow is installed and
TFDS imports it, logs its oneDNN set-up; JAX logs which backends it did not find.
`configure()` keeps those at WARNING unless the command line asked for a verbosity
(`--verbosity=0` shows the library INFO logs, `-v=1` debug). relight_jax's own progress
lines (stdlib `logging` on the root logger) stay.
"""

import logging
import os


def silence_tensorflow():
  """Should an installed TensorFlow get imported (this project never imports it, but a
  user's code or a TFDS path may): no C++ INFO logs, and no GPU memory taken up front.

  This project runs no TensorFlow kernel, so its oneDNN kernels (whose start-up notice is
  printed whatever the log level) are turned off, and TensorFlow grows its GPU memory on
  demand instead of reserving it beside JAX's. Call before TensorFlow is imported.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def configure():
  """After absl parsed the flags: library logs at WARNING unless --verbosity was given."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present:
    return
  for name in ("absl", "jax"):
    logging.getLogger(name).setLevel(logging.WARNING)
  logging.getLogger().setLevel(logging.INFO)
