"""logs.configure(): library INFO logs are off unless the command line asks for them."""

import logging
import subprocess
import sys

_PROBE = """
import logging, sys
from absl import app
from relight_jax.common import logs

def main(argv):
  logs.configure()
  print(logging.getLogger("absl").getEffectiveLevel(), logging.getLogger().getEffectiveLevel())

app.run(main, argv=[sys.argv[0], *sys.argv[1:]])
"""


def _levels(*flags):
  completed = subprocess.run([sys.executable, "-c", _PROBE, *flags], capture_output=True,
                             text=True, check=True, timeout=60)
  return tuple(int(level) for level in completed.stdout.split())


def test_library_logs_are_quiet_unless_verbosity_is_given():
  # Default: orbax/clu/tfds (absl's logger) at WARNING, relight_jax's progress at INFO.
  assert _levels() == (logging.WARNING, logging.INFO)
  # An explicit --verbosity is the user's: absl's logger follows it.
  assert _levels("--verbosity=0") == (logging.INFO, logging.INFO)
