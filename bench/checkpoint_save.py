"""Seconds per synchronous checkpoint save of a replicated train state, by orbax setting.

  python -m bench.checkpoint_save                     # the smoke envmap model, 4 devices
  python -m bench.checkpoint_save --preset=cpu --saves=5

Each setting runs in a fresh interpreter on JAX_NUM_CPU_DEVICES devices (the first save
pays for compiling what it runs): `replica_parallel` is orbax's default on CPU (each of R
replicas writes 1/R of every array, cut out by eager slices), `single_replica` what
relight_jax/training/checkpointing.py registers (replica 0 writes whole arrays; orbax's
own default on GPU). Prints the first save and the median of the others, and checks the
state restores bit for bit.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench import common

SETTINGS = ("replica_parallel", "single_replica")


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--preset", default="smoke", help="config preset of the envmap model")
  parser.add_argument("--devices", type=int, default=4, help="JAX_NUM_CPU_DEVICES")
  parser.add_argument("--saves", type=int, default=6, help="saves timed per setting")
  parser.add_argument("--probe", choices=SETTINGS, help="(internal) run one setting here")
  return parser.parse_args(argv)


def _probe(args):
  # Imported here: the device count must be set before JAX starts.
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  from relight_jax.training import checkpointing  # pylint: disable=g-import-not-at-top
  from relight_jax.training import parallel  # pylint: disable=g-import-not-at-top
  from relight_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top

  if args.probe == "replica_parallel":  # undo checkpointing.py's registration
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=True), override=True)
  config = common.load_config("envmap", f"preset={args.preset}")
  placement = parallel.create_placement()
  state = jax.device_put(state_lib.create_train_state(config, state_lib.init_key(0)),
                         placement.replicated)
  seconds = []
  with tempfile.TemporaryDirectory() as folder:
    manager = checkpointing.create_manager(folder, async_save=False, owner=True)
    for step in range(1, args.saves + 1):
      started = time.perf_counter()
      checkpointing.save(manager, step, state, {"step": step}, force=True)
      seconds.append(time.perf_counter() - started)
    restored, _ = checkpointing.restore(manager, config, placement.replicated)
  same = all(np.array_equal(a, b) for a, b in zip(
      jax.tree_util.tree_leaves(jax.device_get(state)),
      jax.tree_util.tree_leaves(jax.device_get(restored)), strict=True))
  print(json.dumps({"seconds": seconds, "leaves": len(jax.tree_util.tree_leaves(state)),
                    "restored_bit_for_bit": same}))


def main(argv=None):
  args = _parse_args(argv)
  if args.probe:
    _probe(args)
    return
  rows = {}
  for setting in SETTINGS:
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(args.devices), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-m", "bench.checkpoint_save", f"--probe={setting}",
         f"--preset={args.preset}", f"--saves={args.saves}"],
        cwd=common.REPO, env=env, capture_output=True, text=True, check=True)
    rows[setting] = json.loads(out.stdout.strip().splitlines()[-1])
  print("BENCH_JSON " + json.dumps({"bench": "checkpoint_save", "preset": args.preset,
                                    "devices": args.devices, "settings": rows}))
  print(f"| setting ({args.preset}, {args.devices} CPU devices) | first save s | "
        f"median of the next {args.saves - 1} s | restored bit for bit |")
  print("|---|---:|---:|---|")
  for setting, row in rows.items():
    print(f"| {setting} | {row['seconds'][0]:.2f} | "
          f"{statistics.median(row['seconds'][1:]):.2f} | {row['restored_bit_for_bit']} |")


if __name__ == "__main__":
  main()
