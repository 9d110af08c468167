"""The GPU benchmark's pieces, checked on a CPU: MFU and device-memory columns, the
prepared script (bench/gpu_check.sh) at a tiny size, and that the train step and the
benchmarks import no TensorFlow, TFDS, clu or grain (the GPU image has none of them)."""

import json
import os
import pathlib
import subprocess
import sys
import types

import jax
import pytest

from bench import common

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4),
    ("NVIDIA H100 80GB HBM3", "float32", 494.7),
    ("NVIDIA H100 PCIe", "bfloat16", 756.0),
    ("NVIDIA H200", "bfloat16", 989.4),
    ("NVIDIA A100-SXM4-80GB", "float32", 156.0),
    ("cpu", "float32", None),
])
def test_peak_tflops_by_device_kind(kind, dtype, peak):
  assert common.peak_tflops(types.SimpleNamespace(device_kind=kind), dtype) == peak
  assert common.peak_tflops(types.SimpleNamespace(device_kind=kind), dtype, 0.5) == 0.5


def test_device_peak_memory():
  assert common.device_peak_mib(jax.devices("cpu")[0]) is None  # no allocator stats
  gpu_like = types.SimpleNamespace(memory_stats=lambda: {"peak_bytes_in_use": 3 * 2**20})
  assert common.device_peak_mib(gpu_like) == 3.0


def test_step_and_benchmarks_import_no_data_or_logging_stack():
  code = ("import sys, relight_jax.step, relight_jax.state, relight_jax.relight, "
          "bench.train_step, bench.inference; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'clu', 'grain', 'mitsuba', 'colour'}))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "[]"


def test_gpu_check_script_runs_at_a_tiny_size(tmp_path):
  env = dict(os.environ, PY=sys.executable, OUT=str(tmp_path), MODELS="envmap", SIZE="32",
             BATCH="2", WIDTH="0.0625", INFER_SIZE="32", STEPS="1", PEAK_TFLOPS="0.5")
  result = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  record = json.loads((tmp_path / "train_step.jsonl").read_text().splitlines()[-1])
  rows = {row["variant"]: row for row in record["rows"]}
  assert set(rows) == {"default", "bf16"}
  assert rows["bf16"]["dtype"] == "bfloat16" and rows["default"]["dtype"] == "float32"
  for row in rows.values():
    assert row["mfu"] == pytest.approx(row["tflops_per_s"] / 0.5)
    assert row["tflops_per_s"] == pytest.approx(row["model_tflops_per_step"] / row["step_s"])
  # Direct convolutions, not the compiled program's (Winograd on a CPU): the same model
  # in both dtypes (bf16 adds its casts: 4% at this tiny width, 0.07% at paper size),
  # more than the compiled count of the float32 step.
  assert rows["bf16"]["model_tflops_per_step"] == pytest.approx(
      rows["default"]["model_tflops_per_step"], rel=0.1)
  assert rows["default"]["model_tflops_per_step"] * 1e3 >= rows["default"]["gflops_per_step"]
  assert list((tmp_path / "profile").glob("envmap_32px_b2/**/perfetto_trace.json.gz"))
  assert (tmp_path / "traces" / "envmap_32px_b2.perfetto_trace.json.gz").is_file()
  assert "s/pair" in (tmp_path / "inference.txt").read_text()
  assert not (tmp_path / "jax_cache").exists()
  bad = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, capture_output=True,
                       text=True, env=dict(env, PART="both"), check=False)
  assert bad.returncode == 2 and "PART=both" in bad.stderr
