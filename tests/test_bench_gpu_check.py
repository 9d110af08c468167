"""The GPU benchmark's pieces, checked on a CPU without running a benchmark: the MFU and
device-memory columns, the JSON record, the commands bench/gpu_check.sh prepares (with a
stub python), and that the train step and the benchmarks import no TensorFlow, TFDS, clu
or grain (the GPU image has none of them)."""

import functools
import json
import os
import pathlib
import shlex
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from bench import common
from bench import inference
from bench import train_step
from relight_jax.training import parallel
from relight_jax.training import state as state_lib

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


def test_emit_prints_a_json_record_and_a_table(capsys):
  rows = [{"name": "a", "value": np.float32(1.5)}, {"name": "bb", "value": None}]
  common.emit("probe", rows, [("name", "name", None), ("value", "value s", "{:.2f}")],
              {"args": {"steps": 1}})
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith("BENCH_JSON ")
  record = json.loads(out[0][len("BENCH_JSON "):])
  assert record["bench"] == "probe" and record["args"] == {"steps": 1}
  assert record["rows"] == [{"name": "a", "value": 1.5}, {"name": "bb", "value": None}]
  assert {"cpu", "cores", "jax", "xla_flags", "date_utc"} <= set(record["machine"])
  table = [[cell.strip() for cell in line.split(" | ")] for line in out[1:]]
  assert table[0] == ["name", "value s"]
  assert table[2:] == [["a", "1.50"], ["bb", "-"]]  # a missing value prints as '-'
  assert common.summarize([3.0, 1.0, 2.0]) == {"median_s": 2.0, "min_s": 1.0, "max_s": 3.0,
                                                "n": 3}


class _StubVariant:
  """Stands for train_step._Variant: fixed FLOPs, and steps of 2 s (bf16: 1 s)."""

  def __init__(self, name, model, size, batch_size, args, placement):
    del model, size, batch_size, placement
    self.name = name
    self.dtype = "bfloat16" if name == "bf16" else args.dtype
    self.params, self.cache_entries = 1e6, 0
    self.init_s = self.lower_s = self.compile_s = self.cached_s = 0.0
    self.flops, self.model_flops = 4e9, 3e12
    self.walls, self.cpus = [], []
    self._seconds = 1.0 if name == "bf16" else 2.0

  def run(self, steps, warmup):
    del warmup
    self.walls += [self._seconds] * steps
    self.cpus += [2 * self._seconds] * steps


def test_train_step_rows_derive_mfu_from_the_model_flops(monkeypatch):
  monkeypatch.setattr(train_step, "_Variant", _StubVariant)
  args = train_step._parse_args(["--variants=default,bf16", "--steps=2", "--peak_tflops=0.5"])
  rows = {row["variant"]: row for row in train_step.measure("envmap", 32, 2, args, None)}
  assert set(rows) == {"default", "bf16"}
  assert rows["bf16"]["dtype"] == "bfloat16" and rows["default"]["dtype"] == "float32"
  for row in rows.values():
    assert row["model_tflops_per_step"] == 3.0 and row["gflops_per_step"] == 4.0
    assert row["tflops_per_s"] == pytest.approx(row["model_tflops_per_step"] / row["step_s"])
    assert row["mfu"] == pytest.approx(row["tflops_per_s"] / 0.5)
    assert row["pairs_per_s"] == pytest.approx(2 / row["step_s"])
    assert row["peak_device_mib"] is None  # a CPU keeps no allocator statistics
  assert rows["bf16"]["speedup_vs_first"] == pytest.approx(2.0)
  assert "speedup_vs_first" not in rows["default"]


def test_model_flops_count_the_same_model_in_both_dtypes():
  # Lowered only (the arguments are shapes): direct convolutions whatever the backend's
  # rewrites, so bf16 adds only its casts (4% at this tiny width, 0.07% at paper size).
  placement = parallel.create_placement()
  flops = {}
  for dtype in ("float32", "bfloat16"):
    config = common.load_config("envmap", image_size=32, batch_size=4, width=0.0625,
                                dtype=dtype)
    state = jax.eval_shape(functools.partial(state_lib.create_train_state, config),
                           jax.random.key(0))
    state = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=placement.replicated),
        state)
    batch = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=placement.batch),
        common.synthetic_batch(4, 32))
    flops[dtype] = train_step.model_flops(config, placement, state, batch)
  assert flops["float32"] > 0
  assert flops["bfloat16"] == pytest.approx(flops["float32"], rel=0.1)


def test_step_and_benchmarks_import_no_data_or_logging_stack():
  # clu's metrics are the step's averages; its writers, which import TensorFlow, are not
  # imported (tensorflow is in the set).
  code = ("import sys, relight_jax.training.step, relight_jax.training.state, relight_jax.relight, "
          "relight_jax.inference.trained_model, bench.train_step, bench.inference; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'grain', 'mitsuba', 'colour'}))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "[]"


# Stands for python in bench/gpu_check.sh: logs its arguments, one call a line, and
# leaves what the benchmarks would (a profile trace, the compilation cache).
_STUB_PYTHON = """#!/usr/bin/env bash
printf '%q ' "$@" >> "$CALLS"; echo >> "$CALLS"
for arg in "$@"; do
  case "$arg" in
    --profile_dir=*) trace="${arg#*=}/envmap_32px_b2/plugins/profile/run"
                     mkdir -p "$trace" && touch "$trace/perfetto_trace.json.gz" ;;
    --cache_dir=*) mkdir -p "${arg#*=}" ;;
  esac
done
"""


def _gpu_check(tmp_path, part):
  stub = tmp_path / "python"
  stub.write_text(_STUB_PYTHON)
  stub.chmod(0o755)
  out, calls = tmp_path / "out", tmp_path / "calls.txt"
  env = dict(os.environ, PY=str(stub), CALLS=str(calls), OUT=str(out), PART=part,
             MODELS="envmap", SIZE="32", BATCH="2", WIDTH="0.0625", INFER_SIZE="64",
             STEPS="1", PEAK_TFLOPS="0.5")
  result = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
  lines = calls.read_text().splitlines() if calls.exists() else []
  return result, out, [shlex.split(line) for line in lines]


@pytest.mark.parametrize("part", ["all", "train", "infer"])
def test_gpu_check_script_prepares_the_benchmark_commands(tmp_path, part):
  result, out, calls = _gpu_check(tmp_path, part)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert calls[0][0] == "-c" and (out / "devices.txt").is_file()
  benches = {call[1]: call[2:] for call in calls[1:] if call[0] == "-m"}
  assert set(benches) == {"all": {"bench.train_step", "bench.inference"},
                          "train": {"bench.train_step"}, "infer": {"bench.inference"}}[part]
  cache = f"--cache_dir={out}/jax_cache"
  if "bench.train_step" in benches:
    argv = benches["bench.train_step"]
    assert argv == ["--models=envmap", "--sizes=32", "--batches=2", "--width=0.0625",
                    "--variants=default,bf16", "--steps=1", "--warmup=2",
                    "--peak_tflops=0.5", cache, f"--json_out={out}/train_step.jsonl",
                    f"--profile_dir={out}/profile"]
    train_step._parse_args(argv)  # flags the benchmark takes
    # Each row's trace, copied flat.
    assert (out / "traces" / "envmap_32px_b2.perfetto_trace.json.gz").is_file()
  if "bench.inference" in benches:
    argv = benches["bench.inference"]
    assert argv == ["--models=envmap", "--sizes=64", "--width=0.0625", "--steps=1", cache]
    inference._parse_args(argv)
  assert not (out / "jax_cache").exists()


def test_gpu_check_script_rejects_an_unknown_part(tmp_path):
  result, _, calls = _gpu_check(tmp_path, "both")
  assert result.returncode == 2 and "PART=both" in result.stderr
  assert not calls  # nothing ran
