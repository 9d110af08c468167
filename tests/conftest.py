"""Test-wide JAX settings: 4 fake CPU devices and the persistent compilation cache.

Set here (not at import of the package) so that library code has no import-time side
effects. Four devices make sharding bugs show up on a laptop.
"""

import os
import pathlib

# Mitsuba must be imported before TensorFlow, or the process aborts at exit
# (see relight_jax/render/mitsuba_scene.py); test modules import both.
import mitsuba  # noqa: F401  isort: skip
import jax  # noqa: E402  isort: skip

_REPO = pathlib.Path(__file__).resolve().parents[1]

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "RELIGHT_JAX_CACHE_DIR", str(_REPO / ".jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """TFDS data_dir holding a freshly built `vidit/synthetic_tiny` (rendered, seconds)."""
  import tensorflow_datasets as tfds

  from relight_jax.datasets import vidit  # noqa: F401  registers the builder

  data_dir = tmp_path_factory.mktemp("tfds")
  tfds.builder("vidit/synthetic_tiny", data_dir=str(data_dir)).download_and_prepare()
  return str(data_dir)


@pytest.fixture(scope="session")
def v2_tiny_data_dir(tmp_path_factory):
  """TFDS data_dir holding a freshly built `vidit/synthetic_v2_tiny` (with shading maps)."""
  import tensorflow_datasets as tfds

  from relight_jax.datasets import vidit  # noqa: F401  registers the builder

  data_dir = tmp_path_factory.mktemp("tfds_v2")
  tfds.builder("vidit/synthetic_v2_tiny", data_dir=str(data_dir)).download_and_prepare()
  return str(data_dir)


def load_config(name, arg="smoke", **overrides):
  """Loads configs/<name>.py with a config string, then applies dotted overrides."""
  from relight_jax.config import config_utils

  config = config_utils.config_from_file(f"{name}.py:{arg}")
  with config.unlocked():
    for dotted, value in overrides.items():
      section, key = dotted.split(".")
      config[section][key] = value
  return config


def checkpointed_workdir(path, step, seed=3):
  """Writes a smoke-size envmap model as a training workdir (config + checkpoint at `step`).

  Returns:
    (config, train_state).
  """
  import jax

  from relight_jax.training import checkpointing
  from relight_jax.training import state as state_lib

  config = load_config("envmap", "smoke")
  train_state = jax.jit(lambda rng: state_lib.create_train_state(config, rng))(
      jax.random.key(seed))
  checkpointing.save_config(config, path / checkpointing.CONFIG_FILE)
  manager = checkpointing.create_manager(path, async_save=False)
  checkpointing.save(manager, step, train_state, {"position": 0})
  manager.wait_until_finished()
  manager.close()
  return config, train_state
