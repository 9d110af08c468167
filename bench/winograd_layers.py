"""Per-layer times of the 3x3 convolutions: XLA's against Winograd with either transforms.

  python -m bench.winograd_layers                      # the Envmap model's 256 px layers
  python -m bench.winograd_layers --shapes=4,256,256,128,32 --steps=9

For each layer (batch, H, W, in -> out; the shapes of the paper-size Envmap train step at
256 px, batch 4: the encoder sees the 8 images [I; T]) it times, each jitted alone, the
forward pass, the kernel gradient and the input gradient computed by XLA's convolution
(`xla`), by cpu_kernels/winograd.py with the jax.numpy transforms (`wx`) and with the C++
transforms of cpu_kernels/native_tiles.py (`wn`), plus the input transform alone (jax.numpy /
C++). Medians of --steps calls after one warm-up. What `auto` picks for the layer under
each transform setting is listed beside (F = forward + input gradient, K = kernel
gradient). Timings belong here, not in tests; BENCHMARKS.md, section 8 of "Where the
time went", quotes a run.
"""

import argparse
import functools
import statistics

import jax

from bench import common
from relight_jax.common import host_memory
from relight_jax.cpu_kernels import winograd

# (batch, H, W, in, out) of the Envmap train step's 3x3 stride-1 convs at 256 px, batch 4.
ENVMAP_256_B4 = (
    (4, 256, 256, 128, 32), (4, 256, 256, 64, 3), (4, 128, 128, 256, 64),
    (4, 128, 128, 128, 64), (8, 128, 128, 64, 64), (4, 64, 64, 512, 128),
    (4, 64, 64, 256, 128), (8, 64, 64, 128, 128), (4, 32, 32, 1024, 256),
    (4, 32, 32, 512, 256), (8, 32, 32, 256, 256), (8, 16, 16, 512, 512),
    (8, 16, 16, 512, 2048), (4, 16, 16, 1536, 512), (4, 16, 16, 1024, 512),
    (4, 16, 16, 768, 512), (4, 16, 16, 512, 256),
)


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shapes", default="",
                      help="';'-separated batch,H,W,in,out (default: the Envmap 256 px layers)")
  parser.add_argument("--steps", type=int, default=7, help="timed calls per measurement")
  return parser.parse_args(argv)


def _xla_conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _median_ms(function, args, steps):
  walls, _ = common.timed(lambda: jax.block_until_ready(function(*args)), steps)
  return 1000 * statistics.median(walls)


def _auto_parts(shape, transforms):
  batch, height, width, in_channels, out_channels = shape
  function = winograd.conv_function("auto", "auto", transforms)
  forward, kernel_grad = winograd.winograd_parts(
      function, (batch, height, width, in_channels), (3, 3, in_channels, out_channels))
  return ("F" if forward else "") + ("K" if kernel_grad else "") or "-"


def measure(shape, steps):
  """One row: ms of each computation for one layer shape."""
  batch, height, width, in_channels, out_channels = shape
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (batch, height, width, in_channels))
  kernel = jax.random.normal(keys[1], (3, 3, in_channels, out_channels)) / in_channels
  dy = jax.random.normal(keys[2], (batch, height, width, out_channels))
  row = {"layer": f"{batch}x{height}px {in_channels}->{out_channels}",
         "auto_wx": _auto_parts(shape, "xla"), "auto_wn": _auto_parts(shape, "native")}
  row["fwd_xla"] = _median_ms(jax.jit(_xla_conv), (x, kernel), steps)
  row["kgrad_xla"] = _median_ms(
      jax.jit(lambda x, dy: jax.vjp(lambda k: _xla_conv(x, k), kernel)[1](dy)[0]), (x, dy), steps)
  row["igrad_xla"] = _median_ms(
      jax.jit(lambda dy, k: jax.vjp(lambda x_: _xla_conv(x_, k), x)[1](dy)[0]), (dy, kernel),
      steps)
  for name, native in (("wx", False), ("wn", True)):
    m = winograd.tile_size(height, width, native)
    row[f"fwd_{name}"] = _median_ms(
        jax.jit(functools.partial(winograd.correlation, m=m, native=native)), (x, kernel), steps)
    row[f"kgrad_{name}"] = _median_ms(
        jax.jit(functools.partial(winograd.kernel_gradient, m=m, native=native)), (x, dy), steps)
    row[f"igrad_{name}"] = _median_ms(
        jax.jit(functools.partial(winograd.input_gradient, m=m, native=native)), (dy, kernel),
        steps)
    row[f"transform_{name}"] = _median_ms(
        jax.jit(functools.partial(winograd._input_transform, m=m, native=native)),  # pylint: disable=protected-access
        (x,), steps)
  return row


def main(argv=None):
  args = _parse_args(argv)
  host_memory.tune()  # as the entry points do
  shapes = ENVMAP_256_B4
  if args.shapes:
    shapes = []
    for spec in args.shapes.split(";"):
      values = tuple(int(v) for v in spec.split(","))
      if len(values) != 5:
        raise SystemExit(f"--shapes: {spec!r} is not batch,H,W,in,out")
      shapes.append(values)
  rows = []
  for shape in shapes:
    rows.append(measure(shape, args.steps))
    print(rows[-1]["layer"], "done", flush=True)
  columns = [("layer", "layer", None), ("auto_wx", "auto (jnp)", None),
             ("auto_wn", "auto (C++)", None)]
  for part in ("fwd", "kgrad", "igrad", "transform"):
    for name in (("wx", "wn") if part == "transform" else ("xla", "wx", "wn")):
      columns.append((f"{part}_{name}", f"{part} {name} ms", "{:.1f}"))
  totals = {name: sum(row[f"{part}_{name}"] for row in rows for part in ("fwd", "kgrad", "igrad"))
            for name in ("xla", "wx", "wn")}
  common.emit("winograd_layers", rows, columns, extra={"totals_ms": totals,
                                                       "args": vars(args)})
  print("sum of fwd + kgrad + igrad over the layers, ms: "
        + ", ".join(f"{name} {total:.0f}" for name, total in totals.items()))


if __name__ == "__main__":
  main()
