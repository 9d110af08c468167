"""Strided convolutions whose kernel gradient is one matrix product over image patches.

XLA:CPU computes the kernel gradient of a convolution as another convolution whose
window is the whole output-gradient map and whose "features" are the batch: for the
U-Net's stride-2 3x3 convs on large maps (models/unet.py: 256 px 32 -> 64 and 128 px 64
-> 128 channels) that runs at ~10-25 GFLOP/s inside the train step, a sixth of it for
the IlluminationPredicter at 256 px (docs/benchmark_history.md, section 9). Written as
what it is, a product of the im2col patches of the input [pixels, k k c] with the output
gradient [pixels, o], it is one large matrix product (the patches of a stride-2 3x3 conv
hold 9/4 of the input).

`conv(x, kernel, strides, padding, precision)` is XLA's convolution forward and input
gradient, with that kernel gradient (a custom VJP); equal to XLA's up to float32
rounding.
"""

import functools

import jax
import jax.numpy as jnp

_NHWC = ("NHWC", "HWIO", "NHWC")


def patches(x, kernel_size, strides, padding):
  """The im2col patches of a k x k convolution: [batch, out_h, out_w, k * k * c], the
  last axis ordered (kernel row, kernel column, c) as an HWIO kernel flattened.

  Args:
    x: [batch, H, W, c].
    kernel_size: k.
    strides: (stride_h, stride_w).
    padding: ((top, bottom), (left, right)).
  """
  batch, height, width, channels = x.shape
  (top, bottom), (left, right) = padding
  stride_h, stride_w = strides
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  out_h = (height + top + bottom - kernel_size) // stride_h + 1
  out_w = (width + left + right - kernel_size) // stride_w + 1
  taps = [jax.lax.slice(padded, (0, i, j, 0),
                        (batch, i + stride_h * (out_h - 1) + 1,
                         j + stride_w * (out_w - 1) + 1, channels),
                        (1, stride_h, stride_w, 1))
          for i in range(kernel_size) for j in range(kernel_size)]
  return jnp.concatenate(taps, axis=-1)


def kernel_gradient(x, dy, kernel_size, strides, padding, precision=None):
  """d loss / d kernel [k, k, c, o] of the convolution of x, from its output gradient dy.

  One product of the patches [batch, out_h, out_w, k k c] with dy [batch, out_h, out_w,
  o], contracting every pixel of the batch (which may be sharded: the result is
  replicated, as parameters are).
  """
  replicated = jax.sharding.NamedSharding(jax.typeof(x).sharding.mesh,
                                          jax.sharding.PartitionSpec())
  gradient = jnp.einsum("bhwk,bhwo->ko", patches(x, kernel_size, strides, padding), dy,
                        precision=precision, out_sharding=replicated)
  return gradient.reshape(kernel_size, kernel_size, x.shape[-1], dy.shape[-1])


def _xla_conv(x, kernel, strides, padding, precision):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC,
                                      precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv(x, kernel, strides, padding, precision=None):
  """XLA's NHWC/HWIO convolution (no dilation, one group) with the patch-product kernel
  gradient.

  Args:
    x: float32 [batch, H, W, c].
    kernel: float32 [k, k, c, o].
    strides: (stride_h, stride_w), a tuple.
    padding: ((top, bottom), (left, right)), tuples.
    precision: passed to the convolution and the product.

  Returns:
    [batch, out_h, out_w, o].
  """
  return _xla_conv(x, kernel, strides, padding, precision)


def _conv_forward(x, kernel, strides, padding, precision):
  return _xla_conv(x, kernel, strides, padding, precision), (x, kernel)


def _conv_backward(strides, padding, precision, residuals, dy):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x_: _xla_conv(x_, kernel, strides, padding, precision), x)
  (dx,) = input_vjp(dy)
  return dx, kernel_gradient(x, dy, kernel.shape[0], strides, padding, precision)


conv.defvjp(_conv_forward, _conv_backward)
