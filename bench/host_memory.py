"""Minor page faults per call of a jitted step, with and without `host_memory.tune()`.

  python -m bench.host_memory                      # RELIGHT_JAX_MALLOC=reuse, then system
  python -m bench.host_memory --calls=20 --settings=reuse

Each setting runs in a fresh interpreter (the allocator settings are process-wide and
must precede XLA's threads): a jitted train-step-like update (4 3x3 convolutions on an
[8, 128, 128, 16] batch, their gradients and an SGD update) whose XLA temporaries take
`temp_pages` 4 KiB pages is called --warmup times, then --calls times while getrusage
counts the process's minor page faults and system CPU time. glibc's defaults fault all
the temporaries anew on every call (measured: 20,488 faults for 20,480 temp pages);
tuned, most runs fault none, but now and then one call still gets fresh pages (in 12
runs: averages over 10 calls of 0 in 11 runs, 0.1 x temp_pages in one; over 5 calls up
to 0.4). relight_jax/common/host_memory.py quotes what this costs a real train step.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

from relight_jax.common import host_memory

SETTINGS = ("reuse", "system")
_REPO = pathlib.Path(__file__).resolve().parents[1]


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--settings", default=",".join(SETTINGS),
                      help=f"comma-separated RELIGHT_JAX_MALLOC values, of {SETTINGS}")
  parser.add_argument("--calls", type=int, default=10, help="calls counted per setting")
  parser.add_argument("--warmup", type=int, default=12, help="calls before counting")
  parser.add_argument("--probe", action="store_true",
                      help="(internal) run the probe in this process and print its JSON")
  return parser.parse_args(argv)


def probe(calls, warmup):
  """Tunes the allocator as the entry points do, then counts faults of the step.

  Must run before anything starts XLA (or numpy's BLAS) threads in this process.

  Returns:
    {'applied', 'temp_pages', 'faults_per_call', 'sys_s_per_call', 'wall_s'}.
  """
  applied = host_memory.tune()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def loss(kernels, x):
    for kernel in kernels:
      x = jax.nn.relu(jax.lax.conv_general_dilated(
          x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    return jnp.mean(x ** 2)

  @jax.jit
  def step(kernels, x):
    grads = jax.grad(loss)(kernels, x)
    return [k - 0.1 * g for k, g in zip(kernels, grads, strict=True)]

  keys = jax.random.split(jax.random.key(0), 4)
  kernels = [0.1 * jax.random.normal(key, (3, 3, 16, 16)) for key in keys]
  x = jax.random.uniform(jax.random.key(1), (8, 128, 128, 16))  # 8 MiB per activation
  temp_bytes = step.lower(kernels, x).compile().memory_analysis().temp_size_in_bytes
  for _ in range(warmup):
    kernels = jax.block_until_ready(step(kernels, x))
  walls = []
  before = resource.getrusage(resource.RUSAGE_SELF)
  for _ in range(calls):
    start = time.perf_counter()
    kernels = jax.block_until_ready(step(kernels, x))
    walls.append(time.perf_counter() - start)
  after = resource.getrusage(resource.RUSAGE_SELF)
  return {"applied": applied, "temp_pages": temp_bytes / 4096,
          "faults_per_call": (after.ru_minflt - before.ru_minflt) / calls,
          "sys_s_per_call": (after.ru_stime - before.ru_stime) / calls,
          "wall_s": statistics.median(walls)}


def measure(setting, calls, warmup):
  """One row: the probe of a fresh interpreter under RELIGHT_JAX_MALLOC=setting."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env[host_memory.ENV_VARIABLE] = setting
  env.pop("XLA_FLAGS", None)  # one device, as an entry point sees it
  done = subprocess.run(
      [sys.executable, "-m", "bench.host_memory", "--probe", f"--calls={calls}",
       f"--warmup={warmup}"], cwd=_REPO, env=env, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"probe with {host_memory.ENV_VARIABLE}={setting} failed:\n"
                       + done.stderr[-3000:])
  row = json.loads(done.stdout.strip().splitlines()[-1])
  row["setting"] = setting
  row["faults_per_temp_page"] = row["faults_per_call"] / row["temp_pages"]
  return row


def main(argv=None):
  args = _parse_args(argv)
  if args.probe:
    print(json.dumps(probe(args.calls, args.warmup)), flush=True)
    return
  # Not at the top: the probe's interpreter imports this module before tune(), and
  # bench.common imports numpy, whose BLAS threads would take arenas of their own first.
  from bench import common  # pylint: disable=g-import-not-at-top
  rows = []
  for setting in args.settings.split(","):
    rows.append(measure(setting, args.calls, args.warmup))
    print("ROW", rows[-1], flush=True)
  columns = [("setting", "RELIGHT_JAX_MALLOC", None), ("applied", "tuned", None),
             ("temp_pages", "temp pages", "{:.0f}"),
             ("faults_per_call", "faults/call", "{:.1f}"),
             ("faults_per_temp_page", "faults/temp page", "{:.2f}"),
             ("sys_s_per_call", "sys s/call", "{:.4f}"), ("wall_s", "s/call", "{:.4f}")]
  common.emit("host_memory", rows, columns, {"args": vars(args)})


if __name__ == "__main__":
  main()
