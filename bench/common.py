"""Helpers shared by the JAX benchmarks: configs, synthetic batches, timing, reporting.

Every benchmark prints one JSON line (prefixed `BENCH_JSON `, machine-readable) and a
human table. Timings are medians over >= 5 timed steps after warm-up; the machine is
shared, so medians (and min/max) are reported, never means.
"""

import contextlib
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import time

import numpy as np

from relight_jax.config import config_utils

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("envmap", "envmap_scene", "illumination_predictor")


def load_config(model, arg="preset=paper", *, image_size=None, batch_size=None, width=None,
                dtype=None):
  """Loads configs/<model>.py:<arg> and overrides the benchmark's knobs.

  Args:
    model: a key of MODELS (also the config file's name).
    arg: the config string (the paper preset by default: width 1.0, 256 px).
    image_size: data.image_size override.
    batch_size: train.batch_size override.
    width: model.width override.
    dtype: model.dtype override ('float32' | 'bfloat16').

  Returns:
    The (unlocked-then-relocked) ConfigDict.
  """
  config = config_utils.config_from_file(f"{model}.py:{arg}")
  with config.unlocked():
    if image_size is not None:
      config.data.image_size = image_size
    if batch_size is not None:
      config.train.batch_size = batch_size
    if width is not None:
      config.model.width = width
    if dtype is not None:
      config.model.dtype = dtype
  return config


def synthetic_batch(batch_size, image_size, seed=0):
  """A random host batch following the batch contract of `objectives.py` (uint8 images).

  Args:
    batch_size: examples.
    image_size: pixels per side.
    seed: numpy seed.

  Returns:
    Dict of numpy arrays.
  """
  rng = np.random.default_rng(seed)
  batch = {}
  for role in ("input_image", "target_image", "ground_truth"):
    batch[role] = rng.integers(0, 256, (batch_size, image_size, image_size, 3), np.uint8)
  for role in ("input", "target", "ground_truth"):
    batch[f"{role}_temperature"] = rng.choice(
        np.array([2500, 3500, 4500, 5500, 6500], np.float32), batch_size)
    batch[f"{role}_direction"] = rng.integers(0, 8, batch_size).astype(np.int32)
    batch[f"{role}_envmap"] = rng.uniform(0.0, 1.0, (batch_size, 16, 32, 3)).astype(np.float32)
    hsv = rng.uniform(0.0, 1.0, (batch_size, 514)).astype(np.float32)
    batch[f"{role}_envmap_hsv"] = hsv
  return batch


def timed(fn, steps, warmup=1):
  """Runs fn() warmup + steps times; returns (wall seconds, CPU seconds) per timed call.

  fn must block until its work is done (e.g. call `jax.block_until_ready`). CPU seconds
  are this process's user + system time over all its threads (`time.process_time`):
  on a machine shared with other jobs they move much less than wall time, so the
  benchmarks report both (CPU time also counts the spinning of idle pool threads).
  """
  for _ in range(warmup):
    fn()
  walls, cpus = [], []
  for _ in range(steps):
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - start_cpu)
  return walls, cpus


def summarize(times):
  """Median / min / max of a list of seconds."""
  return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
          "n": len(times)}


def peak_rss_mib():
  """Peak resident set size of this process so far (getrusage; Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# Dense peaks per device in TFLOP/s (NVIDIA data sheets), by a substring of jax's
# `device_kind`, first match wins: (bfloat16, float32). float32 is the TF32 tensor-core
# peak: XLA's default precision for float32 convolutions and matmuls on these GPUs.
PEAK_TFLOPS = (("H100 PCIe", 756.0, 378.0), ("H100", 989.4, 494.7),
               ("H200", 989.4, 494.7), ("A100", 312.0, 156.0))


def peak_tflops(device, dtype, override=0.0):
  """The device's peak TFLOP/s for dtype ('float32' | 'bfloat16'), None if unknown.

  Args:
    device: a jax Device.
    dtype: the model's compute dtype.
    override: a peak given on the command line (e.g. a CPU's measured FMA rate); used
      when > 0.
  """
  if override > 0:
    return float(override)
  for name, bfloat16, float32 in PEAK_TFLOPS:
    if name in device.device_kind:
      return bfloat16 if dtype == "bfloat16" else float32
  return None


def device_peak_mib(device):
  """Peak bytes in use on the device so far, in MiB (None where the backend keeps no
  allocator statistics, as on CPU)."""
  stats = device.memory_stats()  # None on a CPU
  if not stats or "peak_bytes_in_use" not in stats:
    return None
  return stats["peak_bytes_in_use"] / 2**20


def flops_of(compiled):
  """FLOPs of a compiled XLA executable from its cost analysis (None if unavailable)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis:
    return None
  value = analysis.get("flops")
  return None if value is None else float(value)


def machine():
  """A short description of the machine: CPU model, cores, load, versions, XLA_FLAGS."""
  model = ""
  try:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                               check=False).stdout.splitlines():
      if line.startswith("Model name:"):
        model = line.split(":", 1)[1].strip()
  except OSError:
    pass
  import jax  # pylint: disable=g-import-not-at-top
  return {"cpu": model, "cores": os.cpu_count(), "load_1min": os.getloadavg()[0],
          "python": platform.python_version(), "jax": jax.__version__,
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def setup_compilation_cache(cache_dir):
  """Enables JAX's persistent compilation cache in cache_dir (no-op when empty)."""
  import jax  # pylint: disable=g-import-not-at-top
  if not cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", str(cache_dir))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def emit(name, rows, columns, extra=None):
  """Prints the JSON line (`BENCH_JSON {...}`) and a human table of rows.

  Args:
    name: benchmark name.
    rows: list of dicts.
    columns: (key, header, format) triples for the table.
    extra: more top-level JSON fields.
  """
  record = {"bench": name, "machine": machine(), "rows": rows}
  record.update(extra or {})
  print("BENCH_JSON " + json.dumps(record, default=float), flush=True)
  headers = [header for _, header, _ in columns]
  lines = []
  for row in rows:
    cells = []
    for key, _, fmt in columns:
      value = row.get(key)
      cells.append("-" if value is None else (fmt.format(value) if fmt else str(value)))
    lines.append(cells)
  widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h)
            for i, h in enumerate(headers)]
  print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
  print("-|-".join("-" * w for w in widths))
  for cells in lines:
    print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), flush=True)


def resize_upsample2x(x):
  """Bilinear x2 of NHWC x through `jax.image.resize`, the model's upsampling before the
  two-tap `relight_jax.models.unet.upsample2x` replaced it (kept to measure the gain).

  `jax.image.resize` builds dense [out, in] interpolation matrices and contracts them
  with einsum: O(in) multiply-adds per output pixel (25.8 GFLOP for the fwd + bwd of
  one [4, 128, 128, 128] -> 256 px upsampling) where a x2 bilinear needs 2 taps per axis.
  """
  import jax  # pylint: disable=g-import-not-at-top
  batch, height, width, channels = x.shape
  return jax.image.resize(x, (batch, 2 * height, 2 * width, channels), method="bilinear")


# Benchmark variants that replace a piece of the code while a step is traced, to time
# the code without one of its speed-ups in the same process: name -> a function giving
# [(module, attribute, replacement), ...]. The imports wait for the call:
# bench/torch_original.py imports this module in a virtualenv without jax.
def _resize_upsample():
  # jax.image.resize upsampling (the model before the two-tap upsample).
  from relight_jax.models import unet  # pylint: disable=g-import-not-at-top
  return [(unet, "upsample2x", resize_upsample2x)]


def _no_space_to_depth():
  # The 7x7 stem on XLA's convolution: no space-to-depth factor for any kernel.
  from relight_jax.cpu_kernels import space_to_depth  # pylint: disable=g-import-not-at-top
  return [(space_to_depth, "factor", lambda *args: None)]


def _xla_strided_grads():
  # Strided convs with XLA's kernel gradient (no patch product).
  from relight_jax.cpu_kernels import winograd  # pylint: disable=g-import-not-at-top
  return [(winograd, "_patch_gradient", lambda *args: False)]


def _xla_kernel_transforms():
  # The Winograd kernel transforms (G g G^T, flipped, and the kernel gradient's G^T du G)
  # as jax.numpy sums, the tile transforms staying C++.
  from relight_jax.cpu_kernels import winograd  # pylint: disable=g-import-not-at-top
  transform, inverse = winograd._kernel_transform, winograd._kernel_gradient_inverse  # pylint: disable=protected-access
  return [(winograd, "_kernel_transform",
           lambda kernel, m, native, flip=False: transform(kernel, m, False, flip)),
          (winograd, "_kernel_gradient_inverse",
           lambda du, m, native: inverse(du, m, False))]


PATCHES = {"resize_upsample": _resize_upsample, "no_space_to_depth": _no_space_to_depth,
           "xla_strided_grads": _xla_strided_grads,
           "xla_kernel_transforms": _xla_kernel_transforms}


@contextlib.contextmanager
def patched(variant):
  """Applies the code patch of `variant` (a key of PATCHES) while inside; others: none."""
  if variant not in PATCHES:
    yield
    return
  replacements = PATCHES[variant]()
  originals = [(module, attribute, getattr(module, attribute))
               for module, attribute, _ in replacements]
  for module, attribute, replacement in replacements:
    setattr(module, attribute, replacement)
  try:
    yield
  finally:
    for module, attribute, original in originals:
      setattr(module, attribute, original)
