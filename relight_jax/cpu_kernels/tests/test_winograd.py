"""cpu_kernels/winograd.py: Winograd convolutions and gradients equal XLA's, and apply only where
the settings say."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relight_jax.cpu_kernels import winograd

_NHWC = ("NHWC", "HWIO", "NHWC")


def _xla_kernel_gradient(x, dy):
  kernel = jnp.zeros((3, 3, x.shape[-1], dy.shape[-1]))
  _, vjp = jax.vjp(lambda k: jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC), kernel)
  return vjp(dy)[0]


def _assert_close(actual, expected, rtol=1e-4, err_msg=""):
  """Equal up to float32 rounding: max abs difference <= rtol x max |expected|."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.abs(expected).max()
  assert scale > 0, err_msg
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=err_msg)


# The C++ transforms (native_tiles.py) take 16 channels at a time and the rest one by one:
# 21 and 37 channels exercise both paths.
_TRANSFORM_CASES = [dict(tile=2, native=False, channels=(5, 7)),
                    dict(tile=4, native=False, channels=(5, 7)),
                    dict(tile=2, native=True, channels=(21, 37)),
                    dict(tile=4, native=True, channels=(21, 37))]


@pytest.mark.parametrize("case", _TRANSFORM_CASES)
def test_kernel_gradient_equals_xla(case):
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], (2, 8, 12, case["channels"][0]))
  dy = jax.random.normal(keys[1], (2, 8, 12, case["channels"][1]))
  _assert_close(winograd.kernel_gradient(x, dy, case["tile"], native=case["native"]),
                _xla_kernel_gradient(x, dy))


def _xla_conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=_NHWC)


@pytest.mark.parametrize("case", _TRANSFORM_CASES)
def test_correlation_and_input_gradient_equal_xla(case):
  tile, native = case["tile"], case["native"]
  in_channels, out_channels = case["channels"]
  keys = jax.random.split(jax.random.key(10), 3)
  x = jax.random.normal(keys[0], (2, 8, 12, in_channels))
  kernel = jax.random.normal(keys[1], (3, 3, in_channels, out_channels))
  dy = jax.random.normal(keys[2], (2, 8, 12, out_channels))
  _assert_close(winograd.correlation(x, kernel, tile, native=native), _xla_conv(x, kernel))
  _, vjp = jax.vjp(lambda x_: _xla_conv(x_, kernel), x)
  _assert_close(winograd.input_gradient(dy, kernel, tile, native=native), vjp(dy)[0])


def _conv_and_grads(conv_function, x, features=6, kernel_size=3, strides=1):
  pad = kernel_size // 2
  conv = nn.Conv(features, (kernel_size, kernel_size), strides=(strides, strides),
                 padding=((pad, pad), (pad, pad)), dtype=x.dtype,
                 conv_general_dilated=conv_function)
  variables = conv.init(jax.random.key(1), x)

  def loss(variables, x):
    y = conv.apply(variables, x)
    return jnp.sum(y.astype(jnp.float32) * jnp.cos(jnp.arange(y.size).reshape(y.shape)))

  grad = jax.grad(loss, argnums=(0, 1))
  jaxpr = str(jax.make_jaxpr(loss)(variables, x))  # custom_vjp_call marks Winograd
  return conv.apply(variables, x), grad(variables, x), jaxpr


def test_winograd_conv_has_xla_forward_and_close_gradients():
  x = jax.random.normal(jax.random.key(2), (2, 16, 16, 8))
  y_ref, (dv_ref, dx_ref), jaxpr_ref = _conv_and_grads(None, x)
  y, (dv, dx), jaxpr = _conv_and_grads(winograd.conv_function("winograd"), x)
  assert "custom_vjp" in jaxpr and "custom_vjp" not in jaxpr_ref
  np.testing.assert_array_equal(y, y_ref)  # the forward pass is XLA's convolution
  np.testing.assert_array_equal(dx, dx_ref)  # so is the input gradient
  np.testing.assert_array_equal(dv["params"]["bias"], dv_ref["params"]["bias"])
  _assert_close(dv["params"]["kernel"], dv_ref["params"]["kernel"])


def test_winograd_forward_conv_is_close_to_xla():
  x = jax.random.normal(jax.random.key(2), (2, 16, 16, 8))
  y_ref, (dv_ref, dx_ref), _ = _conv_and_grads(None, x)
  for kernel_grad in ("xla", "winograd"):
    y, (dv, dx), jaxpr = _conv_and_grads(winograd.conv_function(kernel_grad, "winograd"), x)
    assert "custom_vjp" in jaxpr
    _assert_close(y, y_ref)
    _assert_close(dx, dx_ref)
    _assert_close(dv["params"]["kernel"], dv_ref["params"]["kernel"])
    np.testing.assert_allclose(dv["params"]["bias"], dv_ref["params"]["bias"], rtol=1e-5)


@pytest.mark.parametrize("case", [
    dict(shape=(2, 7, 9, 8), kernel_size=3, strides=1),  # odd map: no tile fits
    dict(shape=(2, 7, 9, 8), kernel_size=7, strides=1),  # no space-to-depth factor
    dict(shape=(2, 16, 16, 8), kernel_size=3, strides=1, dtype=jnp.bfloat16),
    dict(shape=(2, 16, 16, 8), kernel_size=7, strides=1, dtype=jnp.bfloat16),
    dict(shape=(2, 16, 16, 8), kernel_size=3, strides=2, dtype=jnp.bfloat16),
    # Strided convs take the patch-product kernel gradient unless kernel_grad is 'xla'.
    dict(shape=(2, 16, 16, 8), kernel_size=3, strides=2, kernel_grad="xla"),
])
def test_other_convolutions_are_xla_unchanged(case):
  x = jax.random.normal(jax.random.key(3), case["shape"]).astype(case.get("dtype", jnp.float32))
  kwargs = dict(kernel_size=case["kernel_size"], strides=case["strides"])
  y_ref, grads_ref, _ = _conv_and_grads(None, x, **kwargs)
  conv_function = winograd.conv_function(case.get("kernel_grad", "winograd"), "winograd")
  y, grads, jaxpr = _conv_and_grads(conv_function, x, **kwargs)
  assert "custom_vjp" not in jaxpr
  np.testing.assert_array_equal(y, y_ref)
  for actual, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("case", [
    dict(shape=(2, 16, 16, 3), kernel_size=7, features=29),  # the stem: f = 4
    dict(shape=(2, 8, 12, 5), kernel_size=5, features=6),  # f = 2
])
@pytest.mark.parametrize("settings", [("winograd", "winograd"), ("winograd", "xla"),
                                      ("xla", "winograd")])
def test_large_kernel_goes_through_space_to_depth(case, settings):
  x = jax.random.normal(jax.random.key(8), case["shape"])
  kwargs = dict(kernel_size=case["kernel_size"], features=case["features"])
  y_ref, grads_ref, _ = _conv_and_grads(None, x, **kwargs)
  y, grads, jaxpr = _conv_and_grads(winograd.conv_function(*settings), x, **kwargs)
  assert "custom_vjp" in jaxpr and "transpose" in jaxpr  # the depth-to-space
  _assert_close(y, y_ref)
  for actual, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
    _assert_close(actual, expected)


def test_strided_conv_takes_the_patch_gradient():
  x = jax.random.normal(jax.random.key(9), (2, 16, 16, 8))
  y_ref, grads_ref, _ = _conv_and_grads(None, x, strides=2)
  y, grads, jaxpr = _conv_and_grads(winograd.conv_function("winograd", "xla"), x, strides=2)
  assert "custom_vjp" in jaxpr
  np.testing.assert_array_equal(y, y_ref)  # XLA's forward pass
  (dv, dx), (dv_ref, dx_ref) = grads, grads_ref
  np.testing.assert_array_equal(dx, dx_ref)  # and input gradient
  _assert_close(dv["params"]["kernel"], dv_ref["params"]["kernel"])


@pytest.mark.parametrize("forward", ["xla", "winograd"])
@pytest.mark.parametrize("transforms", ["xla", "native"])
@pytest.mark.parametrize("devices", [1, 4])
def test_batch_sharded_input_on_an_explicit_mesh(forward, transforms, devices):
  # The train step runs on a mesh with explicit sharding and a batch-sharded input: the
  # transforms must keep the batch sharded (the C++ ones run on each device's slice),
  # the contraction over the batch must produce a replicated kernel gradient.
  mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices])
  x = jax.device_put(jax.random.normal(jax.random.key(4), (4, 16, 16, 8)),
                     NamedSharding(mesh, P("data")))
  kernel = jax.device_put(jax.random.normal(jax.random.key(5), (3, 3, 8, 4)),
                          NamedSharding(mesh, P()))

  def loss(kernel, x, conv):
    y = conv(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)
    return jnp.sum(y ** 2 * jnp.arange(4.0)[:, None, None, None])  # per-example weights

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  conv = winograd.conv_function("winograd", forward, transforms)
  actual = grad(kernel, x, conv)
  expected = grad(kernel, x, jax.lax.conv_general_dilated)
  for a, e in zip(actual, expected, strict=True):
    _assert_close(a, e)
  assert actual[1].sharding.spec == expected[1].sharding.spec
  assert ("relight_winograd" in grad.lower(kernel, x, conv).as_text()) == (transforms == "native")


def test_auto_takes_winograd_only_for_large_layers_on_cpu():
  assert jax.default_backend() == "cpu"
  # The rules that go with the jax.numpy transforms.
  auto = winograd.conv_function("auto", "auto", "xla")
  parts = lambda lhs, rhs: winograd.winograd_parts(auto, lhs, rhs)  # noqa: E731
  # (forward + input gradient, kernel gradient). The paper model's bottleneck at 256 px,
  # batch 4 x [I; T]: 512 channels, 4.8 G multiply-adds.
  assert parts((8, 16, 16, 512), (3, 3, 512, 512)) == (True, True)
  # Its 128 px decoder conv 256 -> 64: too few channels for the forward, but 9.7 G MACs.
  assert parts((4, 128, 128, 256), (3, 3, 256, 64)) == (False, True)
  # 64 px 512 -> 128 at batch 1: wide enough for the forward, 2.4 G MACs.
  assert parts((1, 64, 64, 512), (3, 3, 512, 128)) == (True, False)
  assert parts((8, 16, 16, 16), (3, 3, 16, 16)) == (False, False)  # narrow
  assert parts((64, 8, 8, 1024), (3, 3, 1024, 1024)) == (False, False)  # tiny map
  # With the C++ transforms (section 8): the 128 px decoder conv 256 -> 64 and the 256 px
  # 128 -> 32 conv take the Winograd forward too; the 64 -> 3 output conv only its kernel
  # gradient.
  native = winograd.conv_function("auto", "auto", "native")
  parts = lambda lhs, rhs: winograd.winograd_parts(native, lhs, rhs)  # noqa: E731
  assert parts((4, 128, 128, 256), (3, 3, 256, 64)) == (True, True)
  assert parts((4, 256, 256, 128), (3, 3, 128, 32)) == (True, True)
  assert parts((4, 256, 256, 64), (3, 3, 64, 3)) == (False, True)
  # The demo preset's largest layers (width 1/4, 64 px, 0.30 G multiply-adds): XLA's.
  assert parts((32, 64, 64, 16), (3, 3, 16, 16)) == (False, False)
  assert parts((64, 8, 8, 1024), (3, 3, 1024, 1024)) == (False, False)  # tiny map
  everywhere = winograd.conv_function("winograd", "winograd")
  assert winograd.winograd_parts(everywhere, (4, 16, 16, 16), (3, 3, 16, 16)) == (True, True)
  assert winograd.winograd_parts(winograd.conv_function("winograd"), (4, 16, 16, 16),
                                 (3, 3, 16, 16)) == (False, True)
  assert winograd.conv_function("xla", "xla") is None


def test_auto_rewrites_the_stem_and_strided_convs_on_cpu():
  # The paper model's stem at 256 px (batch 8 = [I; T] at batch 4) becomes a 48 -> 464
  # channel 3x3 conv on 64 px maps, which `auto` gives to Winograd; the demo preset's
  # (64 px, width 1/4: 16 px blocks, 48 -> 80 channels, 0.28 G multiply-adds) stays XLA's.
  def rewritten(settings, lhs_shape, rhs_shape, strides=(1, 1)):
    conv = winograd.conv_function(*settings, "native") or jax.lax.conv_general_dilated
    pad = rhs_shape[0] // 2
    jaxpr = jax.make_jaxpr(lambda x, k: conv(x, k, strides, ((pad, pad), (pad, pad)),
                                             dimension_numbers=_NHWC))(
        jax.ShapeDtypeStruct(lhs_shape, jnp.float32),
        jax.ShapeDtypeStruct(rhs_shape, jnp.float32))
    return "custom_vjp" in str(jaxpr)

  auto = ("auto", "auto")
  assert rewritten(auto, (8, 256, 256, 3), (7, 7, 3, 29))
  assert not rewritten(auto, (32, 64, 64, 3), (7, 7, 3, 5))
  assert not rewritten(("xla", "xla"), (8, 256, 256, 3), (7, 7, 3, 29))
  # Every strided conv on the CPU, unless kernel_grad is 'xla'.
  assert rewritten(auto, (8, 256, 256, 32), (3, 3, 32, 64), strides=(2, 2))
  assert rewritten(auto, (32, 64, 64, 8), (3, 3, 8, 16), strides=(2, 2))
  assert not rewritten(("xla", "auto"), (8, 256, 256, 32), (3, 3, 32, 64), strides=(2, 2))


def test_kernel_tape_records_replays_and_checks():
  x = jax.random.normal(jax.random.key(11), (4, 16, 16, 8))
  kernels = [jax.random.normal(jax.random.key(12 + i), (3, 3, 8, 8)) for i in range(2)]
  conv = winograd.conv_function("winograd", "winograd")

  def net(x, kernels):
    for kernel in kernels:
      x = conv(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)
    return x

  def record(x, kernels):
    with winograd.recording_kernels() as tape:
      net(x, kernels)
    return tape.kernels

  recorded = jax.jit(record)(x, kernels)
  assert [k.shape for k in recorded] == [(36, 8, 8)] * 2  # 16 px: F(4x4)
  # Replayed kernels are used as they are: zeros in place of the second layer's give 0.
  with winograd.replaying_kernels([recorded[0], jnp.zeros_like(recorded[1])]) as tape:
    zero = net(x, kernels)
  tape.check_used()
  np.testing.assert_array_equal(zero, 0.0)
  with winograd.replaying_kernels(recorded) as tape:
    replayed = net(x, kernels)
  _assert_close(replayed, net(x, kernels))
  with pytest.raises(ValueError, match="kernel 2 of shape .36, 8, 8.* but 1 were recorded"):
    with winograd.replaying_kernels(recorded[:1]):
      net(x, kernels)
  with pytest.raises(ValueError, match="kernel 1 has shape .16, 8, 8.*wants .36, 8, 8"):
    with winograd.replaying_kernels([jnp.zeros((16, 8, 8))] * 2):
      net(x, kernels)
  with winograd.replaying_kernels(recorded) as tape:
    net(x, kernels[:1])
  with pytest.raises(ValueError, match="used 1 of the 2 recorded"):
    tape.check_used()


def test_bad_setting_is_named():
  with pytest.raises(ValueError, match="'fast'.*auto.*winograd.*xla"):
    winograd.conv_function("fast")
  with pytest.raises(ValueError, match="conv_forward 'slow'.*auto.*winograd.*xla"):
    winograd.conv_function("auto", "slow")
  with pytest.raises(ValueError, match="winograd_transforms 'fast'.*auto.*native.*xla"):
    winograd.conv_function("auto", "auto", "fast")
