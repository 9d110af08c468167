"""bench/common.py's code-patch variants change what is traced and put the code back;
bench/inference.py times the cached-kernel function and its per-call variant."""

import json

import jax
import jax.numpy as jnp

from bench import common
from bench import inference
from relight_jax.models import winograd

_NHWC = ("NHWC", "HWIO", "NHWC")


def _rewritten(kernel_shape, strides):
  conv = winograd.conv_function("winograd", "winograd", "native")
  pad = kernel_shape[0] // 2
  jaxpr = jax.make_jaxpr(lambda x, k: conv(x, k, strides, ((pad, pad), (pad, pad)),
                                           dimension_numbers=_NHWC))(
      jax.ShapeDtypeStruct((2, 16, 16, kernel_shape[2]), jnp.float32),
      jax.ShapeDtypeStruct(kernel_shape, jnp.float32))
  return "custom_vjp" in str(jaxpr)


def test_patch_variants_change_the_traced_code_and_restore_it():
  stem, strided = ((7, 7, 3, 5), (1, 1)), ((3, 3, 4, 6), (2, 2))
  assert _rewritten(*stem) and _rewritten(*strided)
  with common.patched("no_space_to_depth"):
    assert not _rewritten(*stem) and _rewritten(*strided)
  with common.patched("xla_strided_grads"):
    assert _rewritten(*stem) and not _rewritten(*strided)
  assert _rewritten(*stem) and _rewritten(*strided)

  def kernel_transform_calls():
    kernel = jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32)
    return jax.jit(lambda k: winograd._kernel_transform(k, 4, True)).lower(kernel).as_text()

  assert "relight_winograd_kernel" in kernel_transform_calls()
  with common.patched("xla_kernel_transforms"):
    assert "relight_winograd" not in kernel_transform_calls()
  assert "relight_winograd_kernel" in kernel_transform_calls()
  with common.patched("default"):  # not a patch: nothing changes
    assert _rewritten(*stem)


def test_inference_bench_times_both_variants(capsys):
  inference.main(["--models=envmap", "--sizes=64", "--width=0.0625", "--steps=1",
                  "--variants=default,per_call_kernels,no_space_to_depth"])
  out = capsys.readouterr().out.splitlines()
  line = next(text for text in out if text.startswith("BENCH_JSON "))
  rows = json.loads(line[len("BENCH_JSON "):])["rows"]
  assert [row["variant"] for row in rows] == ["default", "per_call_kernels",
                                              "no_space_to_depth"]
  assert all(row["s_per_pair"] > 0 for row in rows)
  assert rows[1]["prepare_s"] == 0.0 and rows[0]["prepare_s"] > 0
