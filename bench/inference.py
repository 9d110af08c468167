"""Inference latency per pair (batch 1 by default) at 256 and 1024 px.

Times the jitted inference function of `trained_model.make_relight_fn`
(relight_jax/inference; I and T encoded in one batched encoder call, BatchNorm with
running statistics, no ground truth) on float32 images already on the device, with
randomly initialised weights of the paper-size model. Compile time and XLA's FLOPs are
reported separately. With `--torch_python=...` the original PyTorch model's eval-mode
forward (I and T encoded, no G) is timed interleaved at the same size.

  python -m bench.inference                              # envmap, 256 + 1024 px
  python -m bench.inference --models=envmap,envmap_scene,illumination_predictor \\
      --torch_python=/tmp/torchvenv/bin/python
  python -m bench.inference --sizes=256 --variants=default,xla_convs   # Winograd or not

`--variants` takes bench/train_step.py's convolution and patch variants (default,
xla_convs, xla_forward, no_space_to_depth, ...) and `per_call_kernels`
(the Winograd kernels transformed in every call, as before inference.RelightFunction
cached them), timed interleaved in one process. "kernels s" is the one-off cost of
computing the cached kernels (compile + run) for a new input shape.
"""

import argparse
import functools
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp

from bench import common
from bench import train_step as train_step_bench
from relight_jax.common import host_memory

VARIANTS = ("default", "per_call_kernels", *train_step_bench.CONV_SETTINGS, *common.PATCHES)


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--models", default="envmap")
  parser.add_argument("--sizes", default="256,1024")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--width", type=float, default=1.0)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--cache_dir", default="")
  parser.add_argument("--torch_python", default="")
  parser.add_argument("--torch_threads", type=int, default=2)
  parser.add_argument("--torch_sizes", default="256",
                      help="sizes at which the PyTorch original is also timed")
  parser.add_argument("--variants", default="default",
                      help=f"comma-separated, of {VARIANTS}")
  return parser.parse_args(argv)


def create_model(model_config, variant):
  """The relighter of model_config, its convolutions as `variant` says.

  Args:
    model_config: a config's `model` section.
    variant: one of VARIANTS; those of train_step's CONV_SETTINGS compute every conv
      under their winograd.conv_function settings, the others as model.conv_impl says.

  Returns:
    An unbound `Relighter` (the same parameters whatever the variant).
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from relight_jax.cpu_kernels import winograd  # pylint: disable=g-import-not-at-top
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
  if variant not in train_step_bench.CONV_SETTINGS:
    return registry.create_model(model_config)
  function = winograd.conv_function(*train_step_bench.CONV_SETTINGS[variant])
  # None: XLA's convolution for every part, which nn.Conv calls by itself.
  conv = nn.Conv if function is None else functools.partial(nn.Conv,
                                                            conv_general_dilated=function)
  return registry.create_model(model_config, conv=conv)


def _compile(model_name, size, variant, args, images):
  """The compiled inference function of one variant (of the two images), its compile s,
  the s to compile and run the kernel preparation, FLOPs."""
  from relight_jax.inference import trained_model as inference_lib  # pylint: disable=g-import-not-at-top
  from relight_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  config = common.load_config(model_name, image_size=size, width=args.width, dtype=args.dtype)
  model = create_model(config.model, variant)
  variables = jax.jit(functools.partial(state_lib.init_variables, config))(jax.random.key(0))
  relight_fn = inference_lib.make_relight_fn(model, variables)
  with common.patched(variant):  # traced here: the patch variants of common.PATCHES
    if variant == "per_call_kernels":
      start = time.perf_counter()
      compiled = relight_fn.plain.lower(variables, *images).compile()
      return (functools.partial(compiled, variables), time.perf_counter() - start, 0.0,
              common.flops_of(compiled))
    # The transformed Winograd kernels, computed once (inference.RelightFunction), then
    # the function each call runs.
    start = time.perf_counter()
    kernels = jax.block_until_ready(relight_fn.kernels(*images))
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = relight_fn.lower(*images).compile()
    compile_s = time.perf_counter() - start
  return (functools.partial(compiled, variables, kernels), compile_s, prepare_s,
          common.flops_of(compiled))


def measure(model_name, size, args, torch_worker=None):
  """Rows (one per variant): compile time, latency per pair, FLOPs (and the original's)."""
  key_input, key_target = jax.random.split(jax.random.key(1))
  shape = (args.batch, size, size, 3)
  images = (jax.random.uniform(key_input, shape, jnp.float32),
            jax.random.uniform(key_target, shape, jnp.float32))
  variants = args.variants.split(",")
  compiled = {variant: _compile(model_name, size, variant, args, images)
              for variant in variants}
  times = {variant: [] for variant in variants}
  torch_times, torch_error = [], None
  for round_index in range(args.rounds):
    warmup = args.warmup if round_index == 0 else 0
    for variant, (function, _, _, _) in compiled.items():
      run = functools.partial(lambda f: jax.block_until_ready(f(*images)), function)
      times[variant] += common.timed(run, args.steps, warmup)[0]
    if torch_worker is not None and str(size) in args.torch_sizes.split(",") \
        and torch_error is None:
      reply = torch_worker.time(model_name, args.batch, size, args.steps, warmup,
                                mode="infer")
      torch_error = reply.get("error")
      torch_times += reply.get("times", [])
  rows = []
  for variant, (_, compile_s, prepare_s, flops) in compiled.items():
    median = statistics.median(times[variant])
    row = {"model": model_name, "size": size, "batch": args.batch, "variant": variant,
           "compile_s": compile_s, "prepare_s": prepare_s,
           "latency": common.summarize(times[variant]),
           "s_per_pair": median / args.batch,
           "gflops": None if flops is None else flops / 1e9,
           "gflops_per_s": None if flops is None else flops / 1e9 / median,
           "peak_rss_mib": common.peak_rss_mib(),
           "peak_device_mib": common.device_peak_mib(jax.local_devices()[0])}
    if rows:
      row["speedup_vs_first"] = rows[0]["s_per_pair"] / row["s_per_pair"]
    if torch_error is not None:
      row["torch_error"] = torch_error  # e.g. the original IlluminationPredicter at 1024 px
    if torch_times:
      torch_median = statistics.median(torch_times)
      row.update(torch_latency=common.summarize(torch_times),
                 torch_s_per_pair=torch_median / args.batch,
                 ratio_vs_torch=torch_median / median)
    rows.append(row)
  return rows


def main(argv=None):
  args = _parse_args(argv)
  # As the entry points do (RELIGHT_JAX_MALLOC=system: off); the JSON's args record it.
  args.malloc_tuned = host_memory.tune()
  common.setup_compilation_cache(args.cache_dir or tempfile.mkdtemp(prefix="bench_jax_cache_"))
  worker = None
  if args.torch_python:
    worker = train_step_bench.TorchWorker(args.torch_python, args.torch_threads)
  rows = []
  try:
    for model_name in args.models.split(","):
      for size in (int(s) for s in args.sizes.split(",")):
        for row in measure(model_name, size, args, worker):
          rows.append(row)
          print("ROW", row, flush=True)
  finally:
    if worker is not None:
      worker.close()
  columns = [("model", "model", None), ("size", "px", None), ("batch", "batch", None),
             ("variant", "variant", None), ("compile_s", "compile s", "{:.1f}"),
             ("prepare_s", "kernels s", "{:.1f}"),
             ("s_per_pair", "s/pair", "{:.3f}"),
             ("gflops", "GFLOP", "{:.0f}"), ("gflops_per_s", "GFLOP/s", "{:.0f}"),
             ("torch_s_per_pair", "torch s/pair", "{:.3f}"),
             ("ratio_vs_torch", "speed-up", "{:.2f}"),
             ("speedup_vs_first", "vs 1st variant", "{:.2f}"),
             ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
             ("peak_device_mib", "peak device MiB", "{:.0f}")]
  common.emit("inference", rows, columns, {"args": vars(args)})


if __name__ == "__main__":
  main()
