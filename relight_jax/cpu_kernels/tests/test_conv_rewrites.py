"""cpu_kernels/space_to_depth.py and cpu_kernels/patch_gradient.py: the rewritten convolutions equal
XLA's, on one device and on a batch-sharded mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relight_jax.cpu_kernels import patch_gradient
from relight_jax.cpu_kernels import space_to_depth
from relight_jax.cpu_kernels import winograd

_NHWC = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, kernel, strides=(1, 1), padding=None):
  size = kernel.shape[0]
  padding = padding or ((size // 2, size // 2),) * 2
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _assert_close(actual, expected, rtol=1e-4):
  expected = np.asarray(expected)
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=0,
                             atol=rtol * np.abs(expected).max())


def test_space_to_depth_round_trip_and_layout():
  x = jnp.arange(2 * 8 * 12 * 3, dtype=jnp.float32).reshape(2, 8, 12, 3)
  blocks = space_to_depth.space_to_depth(x, 4)
  assert blocks.shape == (2, 2, 3, 48)
  # Block (1, 2) of image 1, pixel (row 3, column 1) of the block, channel 2.
  assert blocks[1, 1, 2, (3 * 4 + 1) * 3 + 2] == x[1, 4 + 3, 8 + 1, 2]
  np.testing.assert_array_equal(space_to_depth.depth_to_space(blocks, 4), x)


def test_factor():
  assert space_to_depth.factor(7, 256, 256) == 4
  assert space_to_depth.factor(5, 8, 12) == 2
  assert space_to_depth.factor(9, 32, 32) == 4
  assert space_to_depth.factor(7, 18, 18) is None  # not divisible by 4 or 8
  assert space_to_depth.factor(19, 64, 64) is None  # k // 2 > 8


@pytest.mark.parametrize("kernel_size,shape", [(7, (2, 16, 12, 3)), (5, (1, 6, 10, 4)),
                                               (9, (1, 8, 16, 2))])
def test_block_kernel_conv_equals_the_large_kernel_conv(kernel_size, shape):
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], shape)
  kernel = jax.random.normal(keys[1], (kernel_size, kernel_size, shape[3], 5))
  f = space_to_depth.factor(kernel_size, shape[1], shape[2])
  # Every tap of the k x k kernel appears in the 3x3 block kernel, the rest are zeros.
  block = space_to_depth.block_kernel(kernel, f)
  assert block.shape == (3, 3, f * f * shape[3], f * f * 5)
  assert np.count_nonzero(block) == kernel_size ** 2 * shape[3] * 5 * f * f
  actual = space_to_depth.conv(x, kernel, f, _xla_conv)
  _assert_close(actual, _xla_conv(x, kernel))


@pytest.mark.parametrize("case", [
    dict(shape=(2, 16, 16, 8), kernel=3, strides=(2, 2), padding=((1, 1), (1, 1))),
    dict(shape=(2, 15, 17, 4), kernel=3, strides=(2, 2), padding=((1, 1), (1, 1))),
    dict(shape=(2, 16, 16, 3), kernel=4, strides=(2, 2), padding=((1, 1), (1, 1))),  # PatchGAN
    dict(shape=(1, 9, 9, 2), kernel=3, strides=(1, 2), padding=((0, 1), (2, 0))),
])
def test_patch_kernel_gradient_equals_xla(case):
  keys = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(keys[0], case["shape"])
  kernel = jax.random.normal(keys[1], (case["kernel"], case["kernel"], case["shape"][3], 6))
  conv = lambda x_, k_: _xla_conv(x_, k_, case["strides"], case["padding"])  # noqa: E731
  y, vjp = jax.vjp(conv, x, kernel)
  dy = jax.random.normal(keys[2], y.shape)
  dx_ref, dkernel_ref = vjp(dy)
  y_patch, vjp_patch = jax.vjp(
      lambda x_, k_: patch_gradient.conv(x_, k_, case["strides"], case["padding"]), x, kernel)
  np.testing.assert_array_equal(y_patch, y)
  dx, dkernel = vjp_patch(dy)
  np.testing.assert_array_equal(dx, dx_ref)
  _assert_close(dkernel, dkernel_ref)


@pytest.mark.parametrize("devices", [1, 4])
@pytest.mark.parametrize("layer", ["stem", "strided"])
def test_rewrites_on_a_batch_sharded_mesh(devices, layer):
  # As in the train step: explicit mesh, batch-sharded input, replicated kernel; the
  # gradients must equal XLA's and the kernel gradient come out replicated.
  mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices])
  kernel_shape, strides = ((7, 7, 3, 5), (1, 1)) if layer == "stem" else ((3, 3, 4, 6), (2, 2))
  x = jax.device_put(jax.random.normal(jax.random.key(2), (4, 16, 16, kernel_shape[2])),
                     NamedSharding(mesh, P("data")))
  kernel = jax.device_put(jax.random.normal(jax.random.key(3), kernel_shape),
                          NamedSharding(mesh, P()))
  pad = kernel_shape[0] // 2

  def loss(kernel, x, conv):
    y = conv(x, kernel, strides, ((pad, pad), (pad, pad)), dimension_numbers=_NHWC)
    return jnp.sum(y ** 2 * jnp.arange(4.0)[:, None, None, None])

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  conv = winograd.conv_function("winograd", "winograd", "native")
  assert "custom_vjp" in str(jax.make_jaxpr(loss, static_argnums=2)(kernel, x, conv))
  actual = grad(kernel, x, conv)
  expected = grad(kernel, x, jax.lax.conv_general_dilated)
  for a, e in zip(actual, expected, strict=True):
    _assert_close(a, e)
  assert actual[0].sharding.spec == expected[0].sharding.spec
  assert actual[1].sharding.spec == expected[1].sharding.spec
