"""bench/common.py's code-patch variants change what is traced and put the code back;
bench/inference.py builds each variant's model and reports one row per variant (its
compilation and timing stubbed: timings belong to the benchmark, not to tests)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from bench import common
from bench import inference
from bench import train_step
from relight_jax.cpu_kernels import winograd

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


def _conv_settings(model):
  """The winograd.conv_function settings of a relighter's convolutions (None: XLA's)."""
  if model.conv is nn.Conv:
    return None
  return model.conv.keywords["conv_general_dilated"].settings


def test_inference_variants_build_their_convolutions():
  config = common.load_config("envmap", width=0.0625)
  for variant, settings in train_step.CONV_SETTINGS.items():
    expected = None if winograd.conv_function(*settings) is None else settings
    assert _conv_settings(inference.create_model(config.model, variant)) == expected, variant
  assert _conv_settings(inference.create_model(config.model, "xla_convs")) is None
  # The other variants keep model.conv_impl ('cpu_fast': the `auto` rules everywhere).
  assert config.model.conv_impl == "cpu_fast"
  for variant in ("default", "per_call_kernels", *common.PATCHES):
    assert _conv_settings(inference.create_model(config.model, variant)) == (
        "auto", "auto", "auto"), variant
  with pytest.raises(ValueError, match="unknown variant 'nope'"):
    inference.create_model(config.model, "nope")


def test_inference_rows_follow_the_variants(monkeypatch):
  def compile_stub(model_name, size, variant, args, images):
    del model_name, size, args
    assert images[0].shape == images[1].shape == (2, 16, 16, 3)
    prepare_s = 0.0 if variant == "per_call_kernels" else 0.5  # no kernels to cache
    return (lambda input_image, target_image: input_image), 1.0, prepare_s, 3e9

  monkeypatch.setattr(inference, "_compile", compile_stub)
  variants = ["default", "per_call_kernels", "no_space_to_depth"]
  args = inference._parse_args([f"--variants={','.join(variants)}", "--batch=2",
                                "--steps=2", "--rounds=2", "--warmup=0"])
  rows = inference.measure("envmap", 16, args)
  assert [row["variant"] for row in rows] == variants
  for row in rows:
    assert (row["model"], row["size"], row["batch"]) == ("envmap", 16, 2)
    assert row["compile_s"] == 1.0 and row["gflops"] == 3.0
    assert row["latency"]["n"] == 4  # steps x rounds, pooled
    assert row["s_per_pair"] == pytest.approx(row["latency"]["median_s"] / 2)
    assert not any(key.startswith("torch") for key in row)
  assert [row["prepare_s"] for row in rows] == [0.5, 0.0, 0.5]
  assert "speedup_vs_first" not in rows[0]
  assert all("speedup_vs_first" in row for row in rows[1:])
