"""3x3 convolutions whose kernel gradient is computed by Winograd's minimal filtering.

XLA:CPU computes the kernel gradient of a convolution as a convolution whose window is
the whole activation map, at about half the speed of its forward convolutions
(BENCHMARKS.md, "Where the time went"): on the 2-core CPU of BENCHMARKS.md it was 43% of
the Envmap train step. Winograd's F(m x m, 3 x 3) algorithm (Lavin & Gray 2016, "Fast
Algorithms for Convolutional Neural Networks") turns the same gradient into one batched
matrix product with (m + 2)^2 / (9 m^2) of the multiplications (F(4 x 4): 4x fewer),
which XLA runs at full matrix-product speed, plus two linear transforms of the
activations.

`conv_function(setting)` returns a function with `lax.conv_general_dilated`'s signature
for flax's `nn.Conv` (its `conv_general_dilated` field). It computes exactly XLA's
forward convolution and input gradient; only the kernel gradient of a float32, stride-1,
padding-1, 3x3 NHWC convolution that the setting selects (KERNEL_GRADS below) goes
through Winograd, equal to XLA's up to float32 rounding (~1e-5 relative). Every other
convolution is passed to `lax.conv_general_dilated` unchanged.
"""

import jax
import jax.numpy as jnp
import numpy as np

# Winograd transform matrices (Lavin & Gray 2016) for a 3-tap correlation:
# y = A^T [(G g G^T) * (B^T d B)] A over (m + 2) x (m + 2) input tiles d.
_TRANSFORMS = {
  2: dict(
    BT=np.array([[1, 0, -1, 0],
                 [0, 1, 1, 0],
                 [0, -1, 1, 0],
                 [0, 1, 0, -1]], np.float64),
    G=np.array([[1, 0, 0],
                [1 / 2, 1 / 2, 1 / 2],
                [1 / 2, -1 / 2, 1 / 2],
                [0, 0, 1]], np.float64),
    AT=np.array([[1, 1, 1, 0],
                 [0, 1, -1, -1]], np.float64)),
  4: dict(
    BT=np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], np.float64),
    G=np.array([[1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1]], np.float64),
    AT=np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64)),
}

_NHWC = ("NHWC", "HWIO", "NHWC")


def _combine(matrix, parts):
  """[sum_j matrix[i, j] * parts[j] for each row i], skipping zero coefficients.

  Written as sums of the few non-zero terms (not a contraction) so that XLA fuses a
  whole transform into elementwise loops.
  """
  rows = []
  for row in matrix:
    total = None
    for coefficient, part in zip(row, parts, strict=True):
      if coefficient == 0:
        continue
      term = part if coefficient == 1 else -part if coefficient == -1 else coefficient * part
      total = term if total is None else total + term
    rows.append(total)
  return rows


def tile_size(height, width):
  """The Winograd output tile m for an H x W map: 4 from 32 px, else 2; None if neither fits.

  F(4 x 4) has the fewer multiplications but transforms 6 x 6 tiles; on maps of 16 px
  and less F(2 x 2) measured faster (BENCHMARKS.md, section 5 of "Where the time went").
  """
  if height % 4 == 0 and width % 4 == 0 and min(height, width) >= 32:
    return 4
  if height % 2 == 0 and width % 2 == 0:
    return 2
  return None


def _input_transform(x, m):
  """B^T d B of every (m + 2)^2 tile of x padded by 1: [(m + 2)^2, tiles, channels]."""
  transform = _TRANSFORMS[m]["BT"]
  a = m + 2
  batch, height, width, channels = x.shape
  tiles_h, tiles_w = height // m, width // m
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = [jax.lax.slice_in_dim(padded, i, i + m * (tiles_h - 1) + 1, stride=m, axis=1)
          for i in range(a)]
  transformed = []
  for row in _combine(transform, rows):
    columns = [jax.lax.slice_in_dim(row, j, j + m * (tiles_w - 1) + 1, stride=m, axis=2)
               for j in range(a)]
    transformed.extend(_combine(transform, columns))
  return jnp.stack(transformed).reshape(a * a, batch * tiles_h * tiles_w, channels)


def _output_gradient_transform(dy, m):
  """A dy A^T of every m x m output tile (the transpose of the output transform)."""
  transform = _TRANSFORMS[m]["AT"].T
  a = m + 2
  channels = dy.shape[-1]
  # Strided slices, not a reshape into tiles: a reshape that splits the spatial axes of
  # a batch-sharded array needs its output sharding spelled out; slices keep it.
  rows = [jax.lax.slice_in_dim(dy, p, None, stride=m, axis=1) for p in range(m)]
  transformed = []
  for row in _combine(transform, rows):
    columns = [jax.lax.slice_in_dim(row, q, None, stride=m, axis=2) for q in range(m)]
    transformed.extend(_combine(transform, columns))
  return jnp.stack(transformed).reshape(a * a, -1, channels)


def kernel_gradient(x, dy, m):
  """d loss / d kernel of a stride-1, padding-1 3x3 correlation, by Winograd F(m x m).

  Args:
    x: float32 [batch, H, W, in] input of the convolution; H and W divisible by m.
    dy: float32 [batch, H, W, out] gradient of its output.
    m: output tile size, 2 or 4.

  Returns:
    float32 [3, 3, in, out], the gradient of the HWIO kernel.
  """
  a = m + 2
  v = _input_transform(x, m)
  dm = _output_gradient_transform(dy, m)
  # The Winograd-domain kernel gradient: one matrix product per tile position,
  # contracting over every tile of the batch (which may be sharded: the result is
  # replicated).
  replicated = jax.sharding.NamedSharding(jax.typeof(x).sharding.mesh, jax.sharding.PartitionSpec())
  du = jnp.einsum("kpc,kpd->kcd", v, dm, out_sharding=replicated)
  du = du.reshape(a, a, x.shape[-1], dy.shape[-1])
  g = _TRANSFORMS[m]["G"].astype(np.float32)
  return jnp.einsum("ki,klco,lj->ijco", g, du, g)


def _xla_conv3x3(x, kernel, precision):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=_NHWC, precision=precision)


# XLA's convolution forward; the backward pass below.
_conv3x3 = jax.custom_vjp(_xla_conv3x3, nondiff_argnums=(2,))


def _conv3x3_forward(x, kernel, precision):
  return _xla_conv3x3(x, kernel, precision), (x, kernel)


def _conv3x3_backward(precision, residuals, dy):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x_: _xla_conv3x3(x_, kernel, precision), x)
  (dx,) = input_vjp(dy)
  dkernel = kernel_gradient(x, dy, tile_size(x.shape[1], x.shape[2]))
  return dx, dkernel


_conv3x3.defvjp(_conv3x3_forward, _conv3x3_backward)


# model.conv_kernel_grad: which convolutions take the Winograd kernel gradient.
#   winograd  every float32 NHWC 3x3 stride-1 padding-1 convolution whose map tiles;
#   auto      on the CPU only, and of those only layers with at least _AUTO_MIN_MACS
#             multiply-adds (batch x H x W x in x out x 9) on maps of at least
#             _AUTO_MIN_SIZE px. Measured (BENCHMARKS.md): Winograd for every layer
#             made the Envmap step 1.10x faster at 256 px batch 4 and 1.18x at batch 8,
#             but 0.98x at 128 px batch 8 and 0.85x at 64 px batch 8, where the layers
#             are small and the transforms cost more than the product saves. GPUs keep
#             their vendor library's kernel gradients;
#   xla       never (XLA's own kernel-gradient convolution everywhere).
KERNEL_GRADS = ("auto", "winograd", "xla")
_AUTO_MIN_MACS = 2**32
_AUTO_MIN_SIZE = 16


def _takes_winograd(policy, lhs_shape, rhs_shape):
  """Whether a float32 NHWC/HWIO stride-1 padding-1 conv of these shapes uses Winograd."""
  if not all(isinstance(size, int) for size in (*lhs_shape, *rhs_shape)):
    return False  # symbolic sizes (jax.export's polymorphic batch): XLA's convolution
  batch, height, width, channels = lhs_shape
  if tuple(rhs_shape[:2]) != (3, 3) or tile_size(height, width) is None:
    return False
  if policy == "winograd":
    return True
  macs = batch * height * width * channels * rhs_shape[3] * 9
  return (jax.default_backend() == "cpu" and min(height, width) >= _AUTO_MIN_SIZE
          and macs >= _AUTO_MIN_MACS)


def _is_standard_conv(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                      dimension_numbers, feature_group_count, batch_group_count,
                      preferred_element_type):
  """True for a float32 NHWC/HWIO, stride 1, padding 1, undilated, ungrouped conv."""
  if (dimension_numbers is None or lhs.ndim != 4 or rhs.ndim != 4
      or preferred_element_type is not None or isinstance(padding, str)):
    return False
  wanted = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  if jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != wanted:
    return False
  return (lhs.dtype == jnp.float32 and rhs.dtype == jnp.float32
          and tuple(window_strides) == (1, 1)
          and tuple(tuple(p) for p in padding) == ((1, 1), (1, 1))
          and tuple(lhs_dilation or (1, 1)) == (1, 1)
          and tuple(rhs_dilation or (1, 1)) == (1, 1)
          and feature_group_count == 1 and batch_group_count == 1)


def _conv_general_dilated(policy):
  """A `lax.conv_general_dilated` whose kernel gradient follows `policy`."""

  def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                           rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                           batch_group_count=1, precision=None, preferred_element_type=None):
    if _is_standard_conv(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                         dimension_numbers, feature_group_count, batch_group_count,
                         preferred_element_type) and _takes_winograd(policy, lhs.shape,
                                                                     rhs.shape):
      return _conv3x3(lhs, rhs, precision)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)

  conv_general_dilated.policy = policy
  return conv_general_dilated


_FUNCTIONS = {policy: _conv_general_dilated(policy) for policy in ("auto", "winograd")}


def conv_function(kernel_grad):
  """The `conv_general_dilated` for flax's `nn.Conv` under a model.conv_kernel_grad value.

  Args:
    kernel_grad: one of KERNEL_GRADS.

  Returns:
    A function with `lax.conv_general_dilated`'s signature, or None for "xla" (nn.Conv
    then calls `lax.conv_general_dilated` itself).
  """
  if kernel_grad not in KERNEL_GRADS:
    raise ValueError(f"conv_kernel_grad {kernel_grad!r} is not one of {KERNEL_GRADS}")
  return _FUNCTIONS.get(kernel_grad)


def uses_winograd(function, lhs_shape, rhs_shape):
  """Whether `function` (from conv_function) takes the Winograd kernel gradient for a
  float32 stride-1 padding-1 NHWC conv of input `lhs_shape` and HWIO kernel `rhs_shape`."""
  return function is not None and _takes_winograd(function.policy, lhs_shape, rhs_shape)
