"""3x3 convolutions computed by Winograd's minimal filtering on the CPU.

XLA:CPU computes the kernel gradient of a convolution as a convolution whose window is
the whole activation map, at about half the speed of its forward convolutions, the
largest part of a paper-size train step on a CPU (docs/benchmark_history.md). Winograd's
F(m x m, 3 x 3) algorithm (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
Networks") turns a 3x3 convolution, or either of its gradients, into one batched matrix
product with (m + 2)^2 / (9 m^2) of the multiplications (F(4 x 4): 4x fewer), which XLA
runs at full matrix-product speed, plus linear transforms of the operands. Those tile
transforms are C++ (native_tiles.py, XLA FFI) on the CPU where a compiler builds them,
jax.numpy otherwise (TRANSFORMS below).

`conv_function(kernel_grad, forward, transforms)` returns a function with
`lax.conv_general_dilated`'s signature for flax's `nn.Conv` (its `conv_general_dilated`
field). For a float32, stride-1, padding-1, 3x3 NHWC convolution that the settings
select (KERNEL_GRADS and FORWARDS below) the kernel gradient, and the forward pass with
the input gradient, go through Winograd, equal to XLA's up to float32 rounding (~1e-5
relative). The same settings also route two kinds of convolution that XLA:CPU runs
slowly: a stride-1 convolution with a larger kernel (the U-Net's 7x7 stem) becomes a
Winograd 3x3 convolution over a space-to-depth map (space_to_depth.py), where that 3x3
convolution would be selected; a strided convolution takes a patch-product kernel
gradient (patch_gradient.py) where the kernel gradient setting allows it. Every other
convolution is passed to `lax.conv_general_dilated` unchanged.
"""

import contextlib
import contextvars

import jax
import jax.numpy as jnp

from relight_jax.cpu_kernels import matrices
from relight_jax.cpu_kernels import native_tiles
from relight_jax.cpu_kernels import patch_gradient
from relight_jax.cpu_kernels import space_to_depth

TRANSFORM_MATRICES = matrices.TRANSFORM_MATRICES

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


def tile_size(height, width, native=False):
  """The Winograd output tile m for an H x W map: 4 or 2; None if neither fits.

  F(4 x 4) has the fewer multiplications but transforms 6 x 6 tiles. With the jax.numpy
  transforms F(2 x 2) is faster on maps of 16 px and less; with the C++ ones (`native`)
  F(4 x 4) is as fast or faster from 16 px (docs/benchmark_history.md, sections 5 and 8).
  """
  smallest = 16 if native else 32
  if height % 4 == 0 and width % 4 == 0 and min(height, width) >= smallest:
    return 4
  if height % 2 == 0 and width % 2 == 0:
    return 2
  return None


def _tile_transform(matrix, x, m):
  """matrix @ d @ matrix^T for every tile d of x [batch, H', W', channels] whose corners
  lie m px apart (the tiles overlap when matrix has more than m columns):
  [rows ** 2, batch, tiles_h, tiles_w, channels], rows = matrix's rows.

  Strided slices and sums that XLA fuses into one loop. Slices, not a reshape into
  tiles: a reshape that splits the spatial axes of a batch-sharded array needs its output
  sharding spelled out; slices keep it. One pass, not rows then columns: materialising
  the rows is faster alone but slows the whole step (docs/benchmark_history.md,
  section 6).
  """
  taps = matrix.shape[1]
  tiles_h = (x.shape[1] - taps) // m + 1
  tiles_w = (x.shape[2] - taps) // m + 1
  rows = [jax.lax.slice_in_dim(x, i, i + m * (tiles_h - 1) + 1, stride=m, axis=1)
          for i in range(taps)]
  transformed = []
  for row in _combine(matrix, rows):
    columns = [jax.lax.slice_in_dim(row, j, j + m * (tiles_w - 1) + 1, stride=m, axis=2)
               for j in range(taps)]
    transformed.extend(_combine(matrix, columns))
  return jnp.stack(transformed)


def _input_transform(x, m, native):
  """B^T d B of every (m + 2)^2 tile of x padded by 1: [(m + 2)^2, batch, tiles_h, tiles_w,
  channels]."""
  if native:
    return native_tiles.input_transform(x, m)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return _tile_transform(TRANSFORM_MATRICES[m]["BT"], padded, m)


def _output_gradient_transform(dy, m, native):
  """A dy A^T of every m x m output tile (the transpose of the output transform)."""
  if native:
    return native_tiles.output_gradient_transform(dy, m)
  return _tile_transform(TRANSFORM_MATRICES[m]["AT"].T, dy, m)


def _sandwich(matrix, tiles):
  """matrix @ t @ matrix^T for every tile t: `tiles` indexed [i, j, ...], as sums of the
  non-zero terms (elementwise, fusible), returned [rows * rows, ...]."""
  rows = _combine(matrix, [tiles[i] for i in range(tiles.shape[0])])
  return jnp.stack([entry for row in rows
                    for entry in _combine(matrix, [row[j] for j in range(row.shape[0])])])


def _kernel_transform(kernel, m, native, flip=False):
  """G g G^T of the HWIO kernel (turned by 180 degrees first with `flip`): [(m + 2)^2,
  in, out]."""
  if native:
    return native_tiles.kernel_transform(kernel, m, flip)
  return _sandwich(TRANSFORM_MATRICES[m]["G"], jnp.flip(kernel, (0, 1)) if flip else kernel)


def _kernel_gradient_inverse(du, m, native):
  """G^T du G of the Winograd-domain kernel gradient [(m + 2)^2, in, out]: [3, 3, in, out]."""
  if native:
    return native_tiles.kernel_gradient_inverse(du, m)
  a = m + 2
  gradient = _sandwich(TRANSFORM_MATRICES[m]["G"].T, du.reshape(a, a, *du.shape[1:]))
  return gradient.reshape(3, 3, *du.shape[1:])


class KernelTape:
  """The transformed kernels G g G^T of the forward convolutions, in the order a trace
  computes them (see `recording_kernels` and `replaying_kernels`)."""

  def __init__(self, kernels=None):
    self.kernels = [] if kernels is None else list(kernels)
    self._replaying = kernels is not None
    self._position = 0

  def transformed(self, kernel, m, native):
    """G g G^T of `kernel` for F(m x m): recorded, or the next recorded one replayed."""
    if not self._replaying:
      self.kernels.append(_kernel_transform(kernel, m, native))
      return self.kernels[-1]
    expected = ((m + 2) ** 2, *kernel.shape[2:])
    if self._position >= len(self.kernels):
      raise ValueError(f"replaying Winograd kernels: the trace asked for kernel "
                       f"{self._position + 1} of shape {expected}, but "
                       f"{len(self.kernels)} were recorded")
    transformed = self.kernels[self._position]
    if tuple(transformed.shape) != expected:
      raise ValueError(f"replaying Winograd kernels: kernel {self._position + 1} has "
                       f"shape {tuple(transformed.shape)}, the trace wants {expected} "
                       "(recorded for other shapes or another model?)")
    self._position += 1
    return transformed

  def check_used(self):
    """Raises unless a replay consumed every recorded kernel."""
    if self._replaying and self._position != len(self.kernels):
      raise ValueError(f"replaying Winograd kernels: the trace used {self._position} of "
                       f"the {len(self.kernels)} recorded")


_TAPE = contextvars.ContextVar("relight_jax_winograd_kernel_tape", default=None)


@contextlib.contextmanager
def _tape(tape):
  token = _TAPE.set(tape)
  try:
    yield tape
  finally:
    _TAPE.reset(token)


def recording_kernels():
  """Context (at trace time): every Winograd forward convolution traced inside appends
  its transformed kernel to the yielded `KernelTape`'s `kernels`.

  For inference with fixed weights (inference.make_relight_fn): the kernel transforms of
  every layer, a tenth of a 256 px relighting at batch 1 (docs/benchmark_history.md,
  section 9), are computed once, as the outputs of a function that traces the model
  under this context, and passed to later calls, which trace it under
  `replaying_kernels`. The same model, settings and input shapes trace the same
  convolutions in the same order.
  """
  return _tape(KernelTape())


# Both tapes are for inference: under either, the convolutions are traced without their
# custom VJP (whose inner trace could neither record nor replay an outer trace's arrays),
# and differentiating them fails loudly (the C++ transforms have no derivative).


def replaying_kernels(kernels):
  """Context (at trace time): the Winograd forward convolutions traced inside take their
  transformed kernels from `kernels` (recorded by `recording_kernels`), in order, instead
  of transforming their kernels. Call the yielded tape's `check_used()` after the trace.

  Raises:
    ValueError: (at trace time) a kernel of the wrong shape, or too few kernels.
  """
  return _tape(KernelTape(kernels))


def _forward_kernel(kernel, m, native):
  """G g G^T for a forward convolution, through the active kernel tape if any."""
  tape = _TAPE.get()
  if tape is None:
    return _kernel_transform(kernel, m, native)
  return tape.transformed(kernel, m, native)


def _output_transform(product, m, native):
  """A^T M A of every tile of `product` [(m + 2)^2, batch, tiles_h, tiles_w, out],
  assembled into the [batch, tiles_h * m, tiles_w * m, out] output map."""
  if native:
    return native_tiles.output_transform(product, m)
  a = m + 2
  tiles = _sandwich(TRANSFORM_MATRICES[m]["AT"], product.reshape(a, a, *product.shape[1:]))
  batch, tiles_h, tiles_w, channels = product.shape[1:]
  # [m * m (p, q), batch, tiles_h, tiles_w, out] -> [batch, tiles_h, p, tiles_w, q, out].
  tiles = jnp.transpose(tiles.reshape(m, m, batch, tiles_h, tiles_w, channels),
                        (2, 3, 0, 4, 1, 5))
  # Merging (tiles_h, p) and (tiles_w, q) keeps the batch's sharding (explicit meshes
  # want it spelled out).
  return space_to_depth.reshape(tiles, (batch, tiles_h * m, tiles_w * m, channels))


def correlation(x, kernel, m, precision=None, native=False):
  """A stride-1, padding-1 3x3 NHWC/HWIO correlation (XLA's forward conv) by Winograd F(m x m).

  Args:
    x: float32 [batch, H, W, in]; H and W divisible by m.
    kernel: float32 [3, 3, in, out].
    m: output tile size, 2 or 4.
    precision: passed to the matrix product.
    native: the C++ transforms of native_tiles.py (CPU) instead of jax.numpy's.

  Returns:
    float32 [batch, H, W, out].
  """
  with jax.named_scope("winograd"):  # profiles (bench/step_profile.py) group by it
    v = _input_transform(x, m, native)
    u = _forward_kernel(kernel, m, native)
    # One matrix product per tile position over every tile of the batch (batch-sharded
    # tiles stay batch-sharded: no axis holding the batch is merged or split).
    product = jnp.einsum("kbhwc,kcd->kbhwd", v, u, precision=precision)
    return _output_transform(product, m, native)


def input_gradient(dy, kernel, m, precision=None, native=False):
  """d loss / d x of the same correlation: dy correlated with the kernel turned by 180
  degrees, its in and out channels swapped (padding 1 is its own transpose for 3x3).

  The swap is done by the matrix product, which contracts the transformed kernel's out
  channels: swapping the kernel's axes first makes XLA fuse a slow transposing read into
  the kernel transform (docs/benchmark_history.md, section 8).
  """
  with jax.named_scope("winograd"):
    v = _input_transform(dy, m, native)
    u = _kernel_transform(kernel, m, native, flip=True)  # [(m + 2)^2, in, out]
    product = jnp.einsum("kbhwd,kcd->kbhwc", v, u, precision=precision)
    return _output_transform(product, m, native)


def kernel_gradient(x, dy, m, precision=None, native=False):
  """d loss / d kernel of a stride-1, padding-1 3x3 correlation, by Winograd F(m x m).

  Args:
    x: float32 [batch, H, W, in] input of the convolution; H and W divisible by m.
    dy: float32 [batch, H, W, out] gradient of its output.
    m: output tile size, 2 or 4.
    precision: passed to the matrix product.
    native: the C++ transforms of native_tiles.py (CPU) instead of jax.numpy's.

  Returns:
    float32 [3, 3, in, out], the gradient of the HWIO kernel.
  """
  with jax.named_scope("winograd"):
    v = _input_transform(x, m, native)
    dm = _output_gradient_transform(dy, m, native)
    # The Winograd-domain kernel gradient: one matrix product per tile position,
    # contracting over every tile of the batch (which may be sharded: the result is
    # replicated).
    replicated = jax.sharding.NamedSharding(jax.typeof(x).sharding.mesh,
                                            jax.sharding.PartitionSpec())
    du = jnp.einsum("kbhwc,kbhwd->kcd", v, dm, precision=precision, out_sharding=replicated)
    return _kernel_gradient_inverse(du, m, native)


def _xla_conv3x3(x, kernel, precision):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=_NHWC, precision=precision)


def _conv3x3_impl(x, kernel, precision, forward, kernel_grad, native):
  del kernel_grad  # backward only
  if forward:
    return correlation(x, kernel, tile_size(x.shape[1], x.shape[2], native), precision,
                       native)
  return _xla_conv3x3(x, kernel, precision)


# A 3x3 conv whose forward pass / input gradient (`forward`) and kernel gradient
# (`kernel_grad`) each go through Winograd or XLA's convolutions, the Winograd transforms
# being the C++ ones (`native`) or jax.numpy's.
_conv3x3_with_vjp = jax.custom_vjp(_conv3x3_impl, nondiff_argnums=(2, 3, 4, 5))


def _conv3x3(x, kernel, precision, forward, kernel_grad, native):
  """The 3x3 conv: with its custom VJP, or (under a kernel tape, inference) without."""
  if _TAPE.get() is not None:
    return _conv3x3_impl(x, kernel, precision, forward, kernel_grad, native)
  return _conv3x3_with_vjp(x, kernel, precision, forward, kernel_grad, native)


def _conv3x3_forward(x, kernel, precision, forward, kernel_grad, native):
  # (Keeping the transformed input for the kernel gradient instead of x, when both go
  # through Winograd, saves a transform but measured no faster: 1.007x, Envmap 256 px b8.)
  return _conv3x3_impl(x, kernel, precision, forward, kernel_grad, native), (x, kernel)


def _conv3x3_backward(precision, forward, kernel_grad, native, residuals, dy):
  x, kernel = residuals
  m = tile_size(x.shape[1], x.shape[2], native)
  if forward:
    dx = input_gradient(dy, kernel, m, precision, native)
  else:
    _, input_vjp = jax.vjp(lambda x_: _xla_conv3x3(x_, kernel, precision), x)
    (dx,) = input_vjp(dy)
  if kernel_grad:
    dkernel = kernel_gradient(x, dy, m, precision, native)
  else:
    _, kernel_vjp = jax.vjp(lambda k_: _xla_conv3x3(x, k_, precision), kernel)
    (dkernel,) = kernel_vjp(dy)
  return dx, dkernel


_conv3x3_with_vjp.defvjp(_conv3x3_forward, _conv3x3_backward)


# `conv_function`'s three settings (model.conv_impl='cpu_fast' is auto, auto, auto; the
# others are for tests and bench/train_step.py's variants).
# kernel_grad: which convolutions take the Winograd kernel gradient.
#   winograd  every float32 NHWC 3x3 stride-1 padding-1 convolution whose map tiles
#             (and every larger stride-1 kernel, through space_to_depth.py; and every
#             strided convolution takes patch_gradient.py's kernel gradient);
#   auto      on the CPU only, and of those only layers with at least `min_macs`
#             multiply-adds (batch x H x W x in x out x 9) on maps of at least
#             _AUTO_MIN_SIZE px (for a larger kernel: of its space-to-depth 3x3 conv;
#             strided convolutions: all of them, on the CPU). GPUs keep their vendor
#             library's kernel gradients;
#   xla       never (XLA's own kernel-gradient convolution everywhere).
# forward: which of those convolutions also compute their forward pass and
# input gradient by Winograd (same three settings; auto: on the CPU, layers with at
# least `forward_min_channels` input and output channels on maps of >= _AUTO_MIN_SIZE px).
# transforms: how the tile transforms are computed.
#   auto      the C++ ones (native_tiles.py) on the CPU where they build, else jax.numpy's;
#   native    the C++ ones (an error where they do not build or the backend is not the CPU);
#   xla       jax.numpy's (fused by XLA).
KERNEL_GRADS = ("auto", "winograd", "xla")
FORWARDS = KERNEL_GRADS
TRANSFORMS = ("auto", "native", "xla")
_AUTO_MIN_SIZE = 16
# The `auto` thresholds, by whether the transforms are native: Winograd for the kernel
# gradient of layers of >= min_macs multiply-adds, for the forward pass and input
# gradient of layers of >= forward_min_channels in and out channels and >=
# forward_min_macs.
# With jax.numpy's transforms (docs/benchmark_history.md, sections 5 and 6): Winograd
# kernel gradients for every layer were 1.10x / 1.18x on the Envmap step
# at 256 px batch 4 / 8 but 0.98x at 128 px and 0.85x at 64 px batch 8, where the
# transforms cost more than the product saves; forward passes 1.2-2.0x faster per layer
# for 128-2048 channels on 16-64 px maps, slower for the few-channel 128 and 256 px
# layers. The C++ transforms are 5-9x faster and Winograd then pays on every layer of the
# paper models on >= 16 px maps but the forward pass of the 64 -> 3 output conv (section
# 8); on the CPU preset's small layers (width 1/4, 64 px, <= 0.30 G multiply-adds) it
# made the step 14% slower, hence min_macs between that and the paper model's smallest
# 256 px layer (0.45 G at batch 4).
_AUTO_RULES = {
  False: dict(min_macs=2**32, forward_min_channels=128, forward_min_macs=0),
  True: dict(min_macs=2**28.5, forward_min_channels=32, forward_min_macs=2**28.5),
}


def _native(transforms):
  """Whether the `transforms` setting means the C++ transforms here (at trace time)."""
  if transforms == "xla":
    return False
  on_cpu = jax.default_backend() == "cpu"
  if transforms == "native":
    if not on_cpu:
      raise ValueError(f"Winograd transforms='native' need the CPU backend, not "
                       f"{jax.default_backend()!r}; use 'auto' or 'xla'")
    native_tiles.load()  # raises native_tiles.BuildError with the compiler's message
    return True
  return on_cpu and native_tiles.available()


def _winograd_parts(kernel_grad, forward, native, lhs_shape, rhs_shape):
  """(forward, kernel_grad): whether a float32 NHWC/HWIO stride-1 padding-1 conv of
  these shapes computes its forward pass and input gradient / its kernel gradient by
  Winograd under the two settings, the transforms being native or not."""
  if not all(isinstance(size, int) for size in (*lhs_shape, *rhs_shape)):
    return False, False  # symbolic sizes (jax.export's polymorphic batch): XLA's convolution
  batch, height, width, channels = lhs_shape
  if tuple(rhs_shape[:2]) != (3, 3) or tile_size(height, width, native) is None:
    return False, False
  rules = _AUTO_RULES[native]
  large_map = jax.default_backend() == "cpu" and min(height, width) >= _AUTO_MIN_SIZE
  macs = batch * height * width * channels * rhs_shape[3] * 9
  wide = min(channels, rhs_shape[3]) >= rules["forward_min_channels"]
  return (forward == "winograd" or (forward == "auto" and large_map and wide
                                     and macs >= rules["forward_min_macs"]),
          kernel_grad == "winograd" or (kernel_grad == "auto" and large_map
                                        and macs >= rules["min_macs"]))


def _resolved_parts(kernel_grad, forward, transforms, lhs_shape, rhs_shape):
  """(forward, kernel_grad, native): _winograd_parts under the transforms `transforms`
  resolves to here. The C++ library is built (or found missing) only for a layer that
  Winograd could take under either transforms' rules, so a model with none (the demo's)
  neither waits for the compiler nor warns about it."""
  if not any(any(_winograd_parts(kernel_grad, forward, native, lhs_shape, rhs_shape))
             for native in (False, True)):
    return False, False, False
  native = _native(transforms)
  return (*_winograd_parts(kernel_grad, forward, native, lhs_shape, rhs_shape), native)


def _is_plain_conv(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, batch_group_count, preferred_element_type):
  """True for a float32 NHWC/HWIO, undilated, ungrouped conv with a square kernel and
  explicit padding."""
  if (dimension_numbers is None or lhs.ndim != 4 or rhs.ndim != 4
      or preferred_element_type is not None or isinstance(padding, str)):
    return False
  wanted = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  if jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != wanted:
    return False
  return (lhs.dtype == jnp.float32 and rhs.dtype == jnp.float32
          and rhs.shape[0] == rhs.shape[1]
          and tuple(lhs_dilation or (1, 1)) == (1, 1)
          and tuple(rhs_dilation or (1, 1)) == (1, 1)
          and feature_group_count == 1 and batch_group_count == 1)


def _patch_gradient(kernel_grad, lhs_shape):
  """Whether a strided conv with input `lhs_shape` takes patch_gradient.py's kernel
  gradient under the kernel_grad setting: 'winograd' always, 'auto' on the CPU
  (docs/benchmark_history.md, section 9)."""
  if not all(isinstance(size, int) for size in lhs_shape):
    return False  # symbolic sizes (jax.export's polymorphic batch)
  return kernel_grad == "winograd" or (kernel_grad == "auto"
                                       and jax.default_backend() == "cpu")


def _conv_general_dilated(kernel_grad, forward, transforms):
  """A `lax.conv_general_dilated` whose convolutions follow the three settings: the 3x3
  stride-1 ones by Winograd, the larger stride-1 ones by Winograd over a space-to-depth
  map (space_to_depth.py), the strided ones with a patch-product kernel gradient
  (patch_gradient.py), each where the settings select it; XLA's convolution otherwise."""

  def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                           rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                           batch_group_count=1, precision=None, preferred_element_type=None):
    if _is_plain_conv(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                      feature_group_count, batch_group_count, preferred_element_type):
      size = rhs.shape[0]
      strides = tuple(window_strides)
      padding = tuple(tuple(p) for p in padding)
      same = ((size // 2, size // 2),) * 2
      if strides == (1, 1) and padding == same and size == 3:
        *parts, native = _resolved_parts(kernel_grad, forward, transforms, lhs.shape,
                                         rhs.shape)
        if any(parts):
          return _conv3x3(lhs, rhs, precision, *parts, native)
      elif strides == (1, 1) and padding == same and size % 2 == 1:
        batch, height, width, channels = lhs.shape
        f = space_to_depth.factor(size, height, width)
        if f is not None:
          block_lhs = (batch, height // f, width // f, f * f * channels)
          block_rhs = (3, 3, f * f * channels, f * f * rhs.shape[3])
          *parts, native = _resolved_parts(kernel_grad, forward, transforms, block_lhs,
                                           block_rhs)
          if any(parts):
            return space_to_depth.conv(
                lhs, rhs, f, lambda x, kernel: _conv3x3(x, kernel, precision, *parts, native))
      elif strides != (1, 1) and _patch_gradient(kernel_grad, lhs.shape):
        return patch_gradient.conv(lhs, rhs, strides, padding, precision)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)

  conv_general_dilated.settings = (kernel_grad, forward, transforms)
  return conv_general_dilated


_FUNCTIONS = {(kernel_grad, forward, transforms):
              _conv_general_dilated(kernel_grad, forward, transforms)
              for kernel_grad in KERNEL_GRADS for forward in FORWARDS
              for transforms in TRANSFORMS if (kernel_grad, forward) != ("xla", "xla")}


def conv_function(kernel_grad, forward="xla", transforms="auto"):
  """The `conv_general_dilated` for flax's `nn.Conv` under the three settings above
  (model.conv_impl='cpu_fast' is ("auto", "auto", "auto")).

  Args:
    kernel_grad: one of KERNEL_GRADS.
    forward: one of FORWARDS.
    transforms: one of TRANSFORMS.

  Returns:
    A function with `lax.conv_general_dilated`'s signature, or None for "xla" twice
    (nn.Conv then calls `lax.conv_general_dilated` itself).
  """
  if kernel_grad not in KERNEL_GRADS:
    raise ValueError(f"conv_kernel_grad {kernel_grad!r} is not one of {KERNEL_GRADS}")
  if forward not in FORWARDS:
    raise ValueError(f"conv_forward {forward!r} is not one of {FORWARDS}")
  if transforms not in TRANSFORMS:
    raise ValueError(f"winograd_transforms {transforms!r} is not one of {TRANSFORMS}")
  return _FUNCTIONS.get((kernel_grad, forward, transforms))


def winograd_parts(function, lhs_shape, rhs_shape):
  """(forward, kernel_grad): whether `function` (from conv_function) computes a float32
  stride-1 padding-1 NHWC conv of input `lhs_shape` and HWIO kernel `rhs_shape` by
  Winograd in its forward pass and input gradient / its kernel gradient (under the
  transforms it would use here)."""
  if function is None:
    return False, False
  forward, kernel_grad, _ = _resolved_parts(*function.settings, lhs_shape, rhs_shape)
  return forward, kernel_grad
