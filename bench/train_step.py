"""Train-step throughput of the JAX relighters (pairs/s), compile times, FLOPs, memory.

Times `relight_jax.training.step.train_step` jitted exactly as the training loop jits it (over
the `data` mesh of `parallel.create_placement()`, state donated) on a synthetic batch
already on the device: this is the step alone, the input pipeline is measured by
`bench/input_pipeline.py`. For each model / resolution / batch it reports

  * lowering time, cold compile time (empty persistent cache) and compile time with
    the persistent compilation cache warm (same HLO compiled again);
  * median seconds per step over >= 5 timed steps after warm-up, pairs/s;
  * FLOPs per step from XLA's cost analysis of the compiled program and the achieved
    GFLOP/s; the model's FLOPs (direct convolutions, `model_flops`), its TFLOP/s and MFU
    (over the device's peak, where known: a GPU of common.PEAK_TFLOPS, or --peak_tflops);
  * the process's peak RSS and the device's peak memory so far (getrusage and the
    allocator's statistics, None on a CPU; monotone over the rows of one run).

With `--torch_python=/tmp/torchvenv/bin/python` the PyTorch re-creation of the original
models (`bench/torch_original.py --serve`) runs in a subprocess and its steps are
interleaved with ours round by round at equal model / batch / resolution, so both see
the same machine load; the ratio column is JAX pairs/s over PyTorch pairs/s.

  python -m bench.train_step                                 # short default (3 x 64 px)
  python -m bench.train_step --full                          # 64/128/256 px x batch 1/4/8
  python -m bench.train_step --sizes=256 --batches=4,8 \\
      --torch_python=/tmp/torchvenv/bin/python               # the same-session ratio
  python -m bench.train_step --sizes=256 --profile_dir=/tmp/prof  # where a step's time goes
  XLA_FLAGS=... python -m bench.train_step ...               # flag experiments
"""

import argparse
import functools
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import jax
import numpy as np

from bench import common
from bench import step_profile
from relight_jax.common import host_memory


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--models", default=",".join(common.MODELS))
  parser.add_argument("--sizes", default="64")
  parser.add_argument("--batches", default="4")
  parser.add_argument("--full", action="store_true",
                      help="sizes 64,128,256 and batches 1,4,8 (overrides the two above)")
  parser.add_argument("--width", type=float, default=1.0, help="model.width (1.0 = paper)")
  parser.add_argument("--dtype", default="float32", help="model.dtype: float32 | bfloat16")
  parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
  parser.add_argument("--rounds", type=int, default=1,
                      help="rounds of (JAX steps, PyTorch steps); medians pool all rounds")
  parser.add_argument("--cache_dir", default="",
                      help="persistent compilation cache (default: a fresh empty temp dir, "
                           "so the first compile is cold)")
  parser.add_argument("--no_donate", action="store_true", help="jit without donating state")
  parser.add_argument("--variants", default="default",
                      help=f"comma-separated, timed interleaved in one process: {VARIANTS}")
  parser.add_argument("--matmul_precision", default="",
                      help="jax_default_matmul_precision (e.g. 'bfloat16', 'float32')")
  parser.add_argument("--torch_python", default="",
                      help="python of a venv with torch: interleave the original's steps")
  parser.add_argument("--torch_threads", type=int, default=2)
  parser.add_argument("--json_out", default="", help="also append the JSON record here")
  parser.add_argument("--profile_dir", default="",
                      help="also profile one step of each row's first variant here and "
                           "print where its time goes (bench/step_profile.py)")
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="the device's peak TFLOP/s for the MFU column (default: "
                           "bench/common.py's table of GPUs; none on a CPU)")
  parser.add_argument("--conv_probe", action="store_true",
                      help="only time PROBE_CONVS (fwd + bwd), e.g. to screen XLA_FLAGS")
  return parser.parse_args(argv)


def _count_files(directory):
  path = pathlib.Path(directory)
  return sum(1 for _ in path.iterdir()) if path.is_dir() else 0


def build_step(config, placement, donate):
  """The train step jitted as in `train.train` (replicated state, sharded batch)."""
  from relight_jax.training import step  # pylint: disable=g-import-not-at-top
  return jax.jit(
      functools.partial(step.train_step, config=config),
      in_shardings=(placement.replicated, placement.batch),
      out_shardings=(placement.replicated, placement.replicated),
      donate_argnums=0 if donate else ())


class TorchWorker:
  """The PyTorch original in a subprocess, timed on request (line protocol)."""

  def __init__(self, python, threads):
    self._process = subprocess.Popen(
        [python, "-m", "bench.torch_original", "--serve", f"--threads={threads}"],
        cwd=common.REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

  def time(self, model, batch, size, steps, warmup, mode="train"):
    request = {"model": model, "batch": batch, "size": size, "steps": steps,
               "warmup": warmup, "mode": mode}
    self._process.stdin.write(json.dumps(request) + "\n")
    self._process.stdin.flush()
    line = self._process.stdout.readline()
    if not line:
      raise RuntimeError("the PyTorch worker exited (see its stderr)")
    return json.loads(line)

  def close(self):
    self._process.stdin.close()
    self._process.wait(timeout=60)


# Variants timed side by side in one process (interleaved step by step):
#   default        the code as it is;
#   resize_upsample  relight_jax.models.unet.upsample2x replaced by common.resize_upsample2x
#                    while tracing (jax.image.resize: the model before the two-tap upsample);
#   bf16           model.dtype = 'bfloat16' (float32 master weights);
#   no_donate      the state buffers are not donated;
#   The conv_impl='cpu_fast' kernels (relight_jax/cpu_kernels/winograd.py) one part at a
#   time, as winograd.conv_function(kernel_grad, forward, transforms) settings:
#   xla_kernel_grad  XLA's kernel-gradient convolutions everywhere;
#   winograd       the Winograd kernel gradient for every 3x3 conv it applies to ('auto',
#                  the default, picks large layers);
#   xla_forward    XLA's forward and input-gradient convolutions everywhere;
#   winograd_forward  Winograd forward passes and input gradients for every 3x3 conv they
#                     apply to;
#   xla_convs      model.conv_impl = 'xla' (no rewrite at all);
#   xla_transforms  the Winograd tile transforms in jax.numpy, and the `auto` layer rules
#                   that go with them (the step without cpu_kernels/native_tiles.py);
#   no_space_to_depth  the 7x7 stem on XLA's convolution (cpu_kernels/space_to_depth.py off);
#   xla_strided_grads  the strided convs' kernel gradients by XLA's convolution
#                      (cpu_kernels/patch_gradient.py off);
#   xla_kernel_transforms  the Winograd kernel-side transforms as jax.numpy sums (the
#                          tile transforms stay C++).
# The last three (and resize_upsample) patch the code while tracing: common.PATCHES.
# The host allocator setting is process-wide: compare it across runs with
# RELIGHT_JAX_MALLOC=system (glibc defaults) against the default (relight_jax.common.host_memory).
CONV_SETTINGS = {  # (kernel_grad, forward, transforms) of winograd.conv_function
    "xla_kernel_grad": ("xla", "auto", "auto"),
    "winograd": ("winograd", "auto", "auto"),
    "xla_forward": ("auto", "xla", "auto"),
    "winograd_forward": ("auto", "winograd", "auto"),
    "xla_convs": ("xla", "xla", "auto"),
    "xla_transforms": ("auto", "auto", "xla"),
}
VARIANTS = ("default", "bf16", "no_donate", *CONV_SETTINGS, *common.PATCHES)


def _conv_variant_model(config, name):
  """The config's model with every conv computed under CONV_SETTINGS[name] (same params)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from relight_jax.cpu_kernels import winograd  # pylint: disable=g-import-not-at-top
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  function = winograd.conv_function(*CONV_SETTINGS[name])
  conv = nn.Conv if function is None else functools.partial(nn.Conv,
                                                            conv_general_dilated=function)
  return registry.create_model(config.model, conv=conv)


def model_flops(config, placement, state, batch):
  """FLOPs of the train step as written, with direct convolutions: the MFU numerator.

  Counted by XLA's cost analysis of the lowered (unoptimised) program with
  model.conv_impl = 'xla', under which every conv is
  `lax.conv_general_dilated` (no Winograd, stem or strided-conv rewrite). The compiled
  program's count misses cuDNN's convolutions on a GPU (custom calls: 28 GFLOP for a
  6 TFLOP step) and counts Winograd's cheaper products on a CPU.
  """
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  direct = config.copy_and_resolve_references()
  with direct.unlocked():
    direct.model.conv_impl = "xla"
  # The step applies the state's model: rebind it to the direct-convolution one.
  state = state.replace(apply_fn=registry.create_model(direct.model).apply)
  return common.flops_of(build_step(direct, placement, donate=False).lower(state, batch))


class _Variant:
  """One compiled train step and its state, with its own timings."""

  def __init__(self, name, model, size, batch_size, args, placement):
    from relight_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
    if name not in VARIANTS:
      raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")
    self.name = name
    self.dtype = dtype = "bfloat16" if name == "bf16" else args.dtype
    config = common.load_config(model, image_size=size, batch_size=batch_size,
                                width=args.width, dtype=dtype)
    donate = not args.no_donate and name != "no_donate"
    start = time.perf_counter()
    self.state = jax.jit(functools.partial(state_lib.create_train_state, config),
                         out_shardings=placement.replicated)(jax.random.key(0))
    if name in CONV_SETTINGS:
      self.state = self.state.replace(apply_fn=_conv_variant_model(config, name).apply)
    jax.block_until_ready(self.state)
    self.init_s = time.perf_counter() - start
    self.params = state_lib.parameter_count(self.state.params)
    self.batch = placement.put_batch(common.synthetic_batch(batch_size, size))
    self.cache_entries = _count_files(args.cache_dir)
    with common.patched(name):
      start = time.perf_counter()
      lowered = build_step(config, placement, donate).lower(self.state, self.batch)
      self.lower_s = time.perf_counter() - start
      start = time.perf_counter()
      self.compiled = lowered.compile()
      self.compile_s = time.perf_counter() - start
      # The same HLO again through a fresh jit object: served by the persistent cache.
      relowered = build_step(config, placement, donate).lower(self.state, self.batch)
    start = time.perf_counter()
    relowered.compile()
    self.cached_s = time.perf_counter() - start
    self.flops = common.flops_of(self.compiled)
    self.model_flops = model_flops(config, placement, self.state, self.batch)
    self.walls, self.cpus = [], []

  def step(self):
    self.state, metrics = self.compiled(self.state, self.batch)
    jax.block_until_ready(metrics)

  def run(self, steps, warmup):
    walls, cpus = common.timed(self.step, steps, warmup)
    self.walls += walls
    self.cpus += cpus


def measure(model, size, batch_size, args, placement, torch_worker=None):
  """Rows (one per variant): compile times, step times (interleaved), FLOPs, memory."""
  variants = [_Variant(name, model, size, batch_size, args, placement)
              for name in args.variants.split(",")]
  torch_walls, torch_cpus, torch_error = [], [], None
  for round_index in range(args.rounds):
    warmup = args.warmup if round_index == 0 else 0
    for variant in variants:
      variant.run(args.steps, warmup)
    if torch_worker is not None and torch_error is None:
      reply = torch_worker.time(model, batch_size, size, args.steps, warmup)
      torch_error = reply.get("error")  # e.g. the original IlluminationPredicter at 128 px
      torch_walls += reply.get("times", [])
      torch_cpus += reply.get("cpu_times", [])
  profile = None
  if args.profile_dir:
    out_dir = pathlib.Path(args.profile_dir) / f"{model}_{size}px_b{batch_size}"
    totals, longest, (variants[0].state, _) = step_profile.profile_step(
        variants[0].compiled, (variants[0].state, variants[0].batch), out_dir)
    profile = {"thunk_ms": totals, "longest": longest, "trace_dir": str(out_dir)}
    print(f"PROFILE {model} {size}px b{batch_size} ({variants[0].name}), thunk ms: "
          + ", ".join(f"{kind} {ms:.0f}" for kind, ms in sorted(totals.items(),
                                                                 key=lambda kv: -kv[1])))
    for ms, kind, op_name in longest:
      print(f"  {ms:8.1f} ms  {kind:16s} {op_name}")
  rows = []
  for variant in variants:
    median = statistics.median(variant.walls)
    cpu = statistics.median(variant.cpus)
    flops = variant.flops
    row = {"model": model, "size": size, "batch": batch_size, "variant": variant.name,
           "width": args.width, "params_m": variant.params / 1e6, "init_s": variant.init_s,
           "lower_s": variant.lower_s, "compile_cold_s": variant.compile_s,
           "compile_cached_s": variant.cached_s,
           # > 0: the cache dir was reused, so "cold" may have been a cache hit.
           "cache_entries_before": variant.cache_entries,
           "step": common.summarize(variant.walls), "step_s": median, "cpu_s": cpu,
           "pairs_per_s": batch_size / median,
           "gflops_per_step": None if flops is None else flops / 1e9,
           "gflops_per_s": None if flops is None else flops / 1e9 / median,
           "dtype": variant.dtype,
           "peak_rss_mib": common.peak_rss_mib(),
           "peak_device_mib": common.device_peak_mib(jax.local_devices()[0])}
    model_flops_ = variant.model_flops
    if model_flops_ is not None:
      row.update(model_tflops_per_step=model_flops_ / 1e12,
                 tflops_per_s=model_flops_ / 1e12 / median)
    # The FLOPs are those of one device's program; the peak is one device's too.
    peak = common.peak_tflops(jax.local_devices()[0], variant.dtype, args.peak_tflops)
    if peak is not None and model_flops_ is not None:
      row.update(peak_tflops=peak, mfu=model_flops_ / 1e12 / median / peak)
    if profile is not None and not rows:
      row["profile"] = profile
    if rows:
      row["speedup_vs_first"] = rows[0]["step_s"] / median
      row["cpu_speedup_vs_first"] = rows[0]["cpu_s"] / cpu
    if torch_error is not None:
      row["torch_error"] = torch_error
    if torch_walls:
      torch_median = statistics.median(torch_walls)
      torch_cpu = statistics.median(torch_cpus)
      row.update(torch_step=common.summarize(torch_walls), torch_step_s=torch_median,
                 torch_cpu_s=torch_cpu, torch_pairs_per_s=batch_size / torch_median,
                 ratio_vs_torch=torch_median / median, cpu_ratio_vs_torch=torch_cpu / cpu)
    rows.append(row)
  return rows


# Representative convolutions of the paper-size U-Net (NHWC input, HWIO kernel): the
# decoder's last upsampling conv at 256 px, a mid-level conv, and a bottleneck conv.
PROBE_CONVS = (("256px 128->32 b2", (2, 256, 256, 128), (3, 3, 128, 32)),
               ("64px 256->64 b4", (4, 64, 64, 256), (3, 3, 256, 64)),
               ("16px 512->512 b8", (8, 16, 16, 512), (3, 3, 512, 512)))


def _run_grad(grad, image, kernel):
  jax.block_until_ready(grad(image, kernel))


def conv_probe(args):
  """Forward + backward GFLOP/s of PROBE_CONVS: a quick screen for XLA_FLAGS and dtypes.

  Rates are given per wall second and per CPU second x 2 threads (stable on a shared
  machine). Run once per XLA_FLAGS setting, e.g.
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution \
        python -m bench.train_step --conv_probe
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
  rows = []
  for name, input_shape, kernel_shape in PROBE_CONVS:
    image = jax.random.normal(jax.random.key(0), input_shape).astype(dtype)
    kernel = (0.01 * jax.random.normal(jax.random.key(1), kernel_shape)).astype(dtype)

    def loss(image, kernel):
      out = jax.lax.conv_general_dilated(image, kernel, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
      return jnp.sum(out.astype(jnp.float32) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    walls, cpus = common.timed(functools.partial(_run_grad, grad, image, kernel), args.steps)
    # Forward, input gradient and kernel gradient: 3 convolutions of equal cost.
    flops = 3 * 2 * np.prod(input_shape) * kernel_shape[0] * kernel_shape[1] * kernel_shape[3]
    rows.append({"conv": name, "dtype": args.dtype,
                 "gflops_per_wall_s": flops / 1e9 / statistics.median(walls),
                 "gflops_per_cpu_s_x2": 2 * flops / 1e9 / statistics.median(cpus)})
  common.emit("conv_probe", rows, [("conv", "conv (fwd+bwd)", None), ("dtype", "dtype", None),
                                   ("gflops_per_wall_s", "GFLOP/s wall", "{:.0f}"),
                                   ("gflops_per_cpu_s_x2", "GFLOP/s per 2 CPU s", "{:.0f}")],
              {"args": vars(args)})


def main(argv=None):
  args = _parse_args(argv)
  # As the entry points do (RELIGHT_JAX_MALLOC=system: off); the JSON's args record it.
  args.malloc_tuned = host_memory.tune()
  if args.conv_probe:
    conv_probe(args)
    return None
  args.cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="bench_jax_cache_")
  common.setup_compilation_cache(args.cache_dir)
  if args.matmul_precision:
    jax.config.update("jax_default_matmul_precision", args.matmul_precision)
  from relight_jax.training import parallel  # pylint: disable=g-import-not-at-top
  placement = parallel.create_placement()
  sizes = (64, 128, 256) if args.full else tuple(int(s) for s in args.sizes.split(","))
  batches = (1, 4, 8) if args.full else tuple(int(b) for b in args.batches.split(","))
  torch_worker = TorchWorker(args.torch_python, args.torch_threads) if args.torch_python else None
  rows = []
  try:
    for model in args.models.split(","):
      for size in sizes:
        for batch_size in batches:
          for row in measure(model, size, batch_size, args, placement, torch_worker):
            rows.append(row)
            print("ROW " + json.dumps(row, default=float), flush=True)
  finally:
    if torch_worker is not None:
      torch_worker.close()
  columns = [("model", "model", None), ("size", "px", None), ("batch", "batch", None),
             ("variant", "variant", None),
             ("compile_cold_s", "compile cold s", "{:.1f}"),
             ("compile_cached_s", "compile cached s", "{:.2f}"),
             ("step_s", "s/step", "{:.3f}"), ("cpu_s", "CPU s/step", "{:.2f}"),
             ("pairs_per_s", "pairs/s", "{:.2f}"),
             ("gflops_per_step", "GFLOP/step", "{:.0f}"),
             ("gflops_per_s", "GFLOP/s", "{:.0f}"),
             ("torch_pairs_per_s", "torch pairs/s", "{:.2f}"),
             ("ratio_vs_torch", "JAX/torch", "{:.2f}"),
             ("cpu_ratio_vs_torch", "JAX/torch CPU", "{:.2f}"),
             ("speedup_vs_first", "vs 1st variant", "{:.2f}"),
             ("tflops_per_s", "model TFLOP/s", "{:.2f}"),
             ("mfu", "MFU", "{:.1%}"),
             ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
             ("peak_device_mib", "peak device MiB", "{:.0f}")]
  extra = {"args": vars(args), "devices": [str(d) for d in jax.devices()],
           "device_kind": jax.devices()[0].device_kind}
  common.emit("train_step", rows, columns, extra)
  if args.json_out:
    with pathlib.Path(args.json_out).open("a") as file:
      file.write(json.dumps({"bench": "train_step", "rows": rows, **extra}, default=float) + "\n")
  return np.asarray([row["pairs_per_s"] for row in rows])


if __name__ == "__main__":
  main()
