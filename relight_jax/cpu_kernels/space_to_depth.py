"""Large-kernel stride-1 convolutions as 3x3 convolutions over a space-to-depth map.

The U-Net's stem is a 7x7 convolution from the 3 image channels to 29 (models/unet.py).
XLA:CPU runs it at ~15 GFLOP/s, a tenth of its other convolutions' speed: with 3 input
channels there is nothing to vectorise over. Its kernel gradient is as slow, and both
sit where nothing else can run beside them, at the start of the forward pass and the end
of the backward pass (docs/benchmark_history.md, section 9).

Space-to-depth by a factor f (each f x f block of pixels becomes one pixel of f^2 C
channels, `space_to_depth`) turns a stride-1 k x k convolution with padding k // 2 into
a stride-1 3x3 convolution with padding 1 from f^2 C to f^2 O channels, as long as
f >= k // 2: output block (i, j) reads input blocks i - 1 .. i + 1 and j - 1 .. j + 1.
With X = space_to_depth(x) and Y the blocks of the output,

  Y[i, j, (p, q, o)] = sum_{di, dj = 0..2} sum_{(ph, pw, c)}
                       X[i + di - 1, j + dj - 1, (ph, pw, c)] K[di, dj, (ph, pw, c), (p, q, o)]
  K[di, dj, (ph, pw, c), (p, q, o)] = W[f (di - 1) + ph - p + k // 2,
                                        f (dj - 1) + pw - q + k // 2, c, o]

and zero where a tap falls outside the k x k kernel (`block_kernel`). For the stem
(k = 7, f = 4) that is a 48 -> 464 channel 3x3 convolution on a 64 x 64 map: 2.9x the
multiply-adds, but a shape that Winograd's F(4x4, 3x3) computes well
(cpu_kernels/winograd.py), forward pass and kernel gradient alike. The kernel gradient
reaches W through `block_kernel`'s gather, whose transpose sums the entries that share
a tap.
"""

import jax
import jax.numpy as jnp
import numpy as np

_FACTORS = (2, 4, 8)


def factor(kernel_size, height, width):
  """The space-to-depth factor for a k x k stride-1 convolution on an H x W map: the
  smallest of 2, 4, 8 that is >= k // 2 and divides H and W; None if none does."""
  for f in _FACTORS:
    if f >= kernel_size // 2 and height % f == 0 and width % f == 0:
      return f
  return None


def reshape(x, shape):
  """jnp.reshape that keeps x's batch (first) axis sharding.

  Splitting or merging the spatial axes of a batch-sharded array on an explicit mesh
  needs the output sharding spelled out; the batch axis itself is never split here.
  """
  sharding = jax.typeof(x).sharding
  spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
  out_spec = jax.sharding.PartitionSpec(spec[0], *(None,) * (len(shape) - 1))
  return jax.lax.reshape(x, shape,
                         out_sharding=jax.sharding.NamedSharding(sharding.mesh, out_spec))


def space_to_depth(x, f):
  """[batch, H, W, c] -> [batch, H / f, W / f, f * f * c], channels ordered (row, column, c)
  within each f x f block."""
  batch, height, width, channels = x.shape
  blocks = reshape(x, (batch, height // f, f, width // f, f, channels))
  blocks = jnp.transpose(blocks, (0, 1, 3, 2, 4, 5))
  return reshape(blocks, (batch, height // f, width // f, f * f * channels))


def depth_to_space(y, f):
  """The inverse of space_to_depth: [batch, h, w, f * f * c] -> [batch, f h, f w, c]."""
  batch, height, width, channels = y.shape
  blocks = reshape(y, (batch, height, width, f, f, channels // (f * f)))
  blocks = jnp.transpose(blocks, (0, 1, 3, 2, 4, 5))
  return reshape(blocks, (batch, height * f, width * f, channels // (f * f)))


def _tap_index(kernel_size, f):
  """[3, f, f] taps: index[d, ph, p] = f (d - 1) + ph - p + k // 2, or k (a zero tap)
  where that falls outside the kernel."""
  d, ph, p = np.meshgrid(np.arange(3), np.arange(f), np.arange(f), indexing="ij")
  tap = f * (d - 1) + ph - p + kernel_size // 2
  return np.where((tap >= 0) & (tap < kernel_size), tap, kernel_size)


def block_kernel(kernel, f):
  """The 3x3 kernel K [3, 3, f f c, f f o] of the module docstring for a k x k HWIO kernel."""
  size, _, in_channels, out_channels = kernel.shape
  taps = _tap_index(size, f)  # [3 (d), f (ph), f (p)]
  # A zero row and column for the taps outside the kernel.
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  # [di, dj, ph, pw, p, q] -> the kernel's (row, column), gathered at once.
  rows = taps[:, None, :, None, :, None]
  columns = taps[None, :, None, :, None, :]
  gathered = padded[rows, columns]  # [3, 3, f, f, f, f, c, o] (di, dj, ph, pw, p, q)
  gathered = jnp.transpose(gathered, (0, 1, 2, 3, 6, 4, 5, 7))  # (.., ph, pw, c, p, q, o)
  return gathered.reshape(3, 3, f * f * in_channels, f * f * out_channels)


def conv(x, kernel, f, conv3x3):
  """A stride-1 k x k convolution with padding k // 2 (XLA's correlation, NHWC / HWIO),
  computed as the 3x3 convolution `conv3x3(X, K)` (stride 1, padding 1) over the
  space-to-depth map.

  Args:
    x: [batch, H, W, c]; H and W divisible by f.
    kernel: [k, k, c, o], k odd, k // 2 <= f.
    f: the space-to-depth factor (see `factor`).
    conv3x3: function (input, kernel) -> output of a 3x3 stride-1 padding-1 convolution.

  Returns:
    [batch, H, W, o].
  """
  return depth_to_space(conv3x3(space_to_depth(x, f), block_kernel(kernel, f)), f)
