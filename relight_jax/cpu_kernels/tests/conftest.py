"""The kernels' tests run on 4 fake CPU devices (batch-sharded maps), with the
persistent compilation cache of the project's tests."""

import os
import pathlib

import jax

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "RELIGHT_JAX_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[3] / ".jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
