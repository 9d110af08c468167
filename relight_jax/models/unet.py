"""The U-Net encoder and decoder shared by all of the report's models (report §3.2, Fig. 3).

The architecture is Sun et al. 2019 ("Single Image Portrait Relighting") as implemented
in the report's original PyTorch code (`models/swapModels.py`): BatchNorm + PReLU after
every convolution, decoder upsampling by bilinear x2 followed by a convolution instead of
a transposed convolution (report §3.2: transposed convolutions gave checkerboard
artefacts). At paper sizes (width 1.0, depth 3, 3 bottleneck convs) a 256 px image gives
a [batch, 16, 16, 512] latent and 10 skip links:

  skip 0      [b, 256, 256, 32]  7x7 conv to 29 ch, concatenated with the 3 input channels
  skip 1, 2   [b, 128, 128, 64]  input and output of stage 0's 3x3 conv
  skip 3, 4   [b, 64, 64, 128]   stage 1
  skip 5, 6   [b, 32, 32, 256]   stage 2
  skip 7-9    [b, 16, 16, 512]   the inputs of the 3 bottleneck convs

Skip indices count from the shallowest (0) as in the original's command-line options.
`models/relighter.py` composes these with a latent head from `models/latent.py`.
"""

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# A flax module class or partial, called like nn.Conv (flax examples/imagenet's alias).
ModuleDef = Any

# PyTorch's BatchNorm2d defaults (momentum 0.1 of the new value, eps 1e-5), as the
# original code used them; flax's momentum is the weight of the old value.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# nn.PReLU() in PyTorch: one shared slope initialised to 0.25.
_PRELU_INIT = 0.25


@dataclasses.dataclass(frozen=True)
class UNetChannels:
  """Channel counts of the U-Net for a width multiplier and depth.

  Attributes:
    stem: channels of skip 0 (7x7 conv output + the 3 image channels); 32 at width 1.
    stages: channels of each down stage's input; (64, 128, 256) at width 1, depth 3.
    latent: channels of the latent (and of the bottleneck convs); 512 at width 1.
  """
  stem: int
  stages: tuple[int, ...]
  latent: int


def unet_channels(width: float, depth: int) -> UNetChannels:
  """Returns the channel counts of the U-Net (paper sizes at width 1.0, depth 3).

  Args:
    width: channel multiplier (1.0 = paper sizes).
    depth: number of double-conv down stages (3 in the paper).

  Returns:
    The UNetChannels.
  """
  if width <= 0:
    raise ValueError(f"model.width must be > 0, got {width!r}")
  if depth < 1:
    raise ValueError(f"model.depth must be >= 1, got {depth!r}")
  base = max(1, round(64 * width))
  # The stem conv outputs stem - 3 channels (the image is concatenated): keep >= 1.
  stem = max(4, base // 2)
  stages = tuple(base * 2**i for i in range(depth))
  return UNetChannels(stem=stem, stages=stages, latent=base * 2**depth)


def num_skips(depth: int, bottleneck_convs: int) -> int:
  """Number of skip links: stem + 2 per down stage + 1 per bottleneck conv (10 in the paper)."""
  return 1 + 2 * depth + bottleneck_convs


def latent_size(image_size: int, depth: int) -> int:
  """Spatial size of the latent for a square image (16 for 256 px at depth 3)."""
  return image_size // 2 ** (depth + 1)


class ConvBlock(nn.Module):
  """Convolution + BatchNorm + PReLU (the unit of every encoder/decoder layer).

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    strides: square stride.
    dtype: computation dtype (parameters stay float32).
    conv: the convolution module (flax's nn.Conv, or one computing the same function
      faster on a CPU: models/registry.py builds it from model.conv_impl).
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, *, train: bool):
    # Symmetric padding k // 2 as PyTorch's `padding=k//2`; flax's 'SAME' would pad a
    # stride-2 conv asymmetrically and shift the sampling grid by half a pixel.
    pad = self.kernel_size // 2
    x = self.conv(self.features, (self.kernel_size, self.kernel_size),
                strides=(self.strides, self.strides), padding=((pad, pad), (pad, pad)),
                dtype=self.dtype, param_dtype=jnp.float32, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                     epsilon=_BN_EPSILON, dtype=self.dtype, param_dtype=jnp.float32,
                     name="norm")(x)
    return nn.PReLU(negative_slope_init=_PRELU_INIT, name="prelu")(x)


def _upsample2x_axis(x, axis):
  """Bilinear x2 along one axis: half-pixel centres, edges clamped (as jax.image.resize)."""
  size = x.shape[axis]
  previous = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis),
                              jax.lax.slice_in_dim(x, 0, size - 1, axis=axis)], axis=axis)
  following = jnp.concatenate([jax.lax.slice_in_dim(x, 1, size, axis=axis),
                               jax.lax.slice_in_dim(x, size - 1, size, axis=axis)], axis=axis)
  even = 0.75 * x + 0.25 * previous
  odd = 0.75 * x + 0.25 * following
  shape = list(x.shape)
  shape[axis] *= 2
  return jnp.stack([even, odd], axis=axis + 1).reshape(shape)


def upsample2x(x):
  """Bilinear x2 upsampling of an NHWC tensor (report §3.2, against checkerboard artefacts).

  Equal to `jax.image.resize(x, ..., method="bilinear")` (to float rounding) but with the
  two taps per axis written out: resize contracts dense [out, in] interpolation matrices,
  O(in) multiply-adds per output (bench/train_step.py --variants=default,resize_upsample).
  """
  return _upsample2x_axis(_upsample2x_axis(x, 1), 2)


class Encoder(nn.Module):
  """U-Net encoder: image [b, S, S, 3] -> (latent [b, S/2^(depth+1), ..., latent], skips).

  Attributes:
    width: channel multiplier (1.0 = paper sizes).
    depth: number of double-conv down stages (3 in the paper).
    bottleneck_convs: number of convs at the latent resolution (3 in the paper).
    dtype: computation dtype.
    conv: the convolution module (see ConvBlock).
  """
  width: float = 1.0
  depth: int = 3
  bottleneck_convs: int = 3
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, image, *, train: bool):
    """Encodes an image.

    Args:
      image: float [batch, S, S, 3]; S divisible by 2^(depth + 1).
      train: BatchNorm uses batch statistics (and updates them) when True.

    Returns:
      (latent [batch, S / 2^(depth+1), S / 2^(depth+1), latent channels], list of the
      num_skips(depth, bottleneck_convs) skip tensors, shallowest first).
    """
    channels = unet_channels(self.width, self.depth)
    block = functools.partial(ConvBlock, dtype=self.dtype,
                              conv=self.conv)
    image = image.astype(self.dtype)
    features = block(channels.stem - 3, kernel_size=7, name="stem")(image, train=train)
    # The image itself is appended to the stem features (Sun et al. 2019).
    x = jnp.concatenate([features, image], axis=-1)  # [b, S, S, 32]
    skips = [x]
    x = block(channels.stages[0], strides=2, name="stem_down")(
        x, train=train)  # [b, S/2, S/2, 64]
    for i, stage_channels in enumerate(channels.stages):
      skips.append(x)
      x = block(stage_channels, name=f"stage{i}_conv")(x, train=train)
      skips.append(x)
      x = block(2 * stage_channels, strides=2, name=f"stage{i}_down")(x, train=train)
    for j in range(self.bottleneck_convs):
      skips.append(x)
      # One module per conv: the original built these as `[block] * (depth - 1)`, which
      # repeats ONE module and so shared its weights across the bottleneck (a bug that
      # cost 2 x 2.36 M parameters at paper size); ours are independent.
      x = block(channels.latent, name=f"bottleneck{j}")(x, train=train)
    return x, skips  # latent: [b, 16, 16, 512] at 256 px


def _concat_skip(x, skip):
  """Appends a skip link to x along channels; a disabled skip (None) is left out."""
  return x if skip is None else jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)


class Decoder(nn.Module):
  """U-Net decoder mirroring the Encoder: latent + skips -> relit image in [0, 1].

  Each layer concatenates one skip link (deepest first), convolves, and where the
  resolution doubles upsamples bilinearly before the conv, as in the original code.

  Attributes:
    width: channel multiplier (1.0 = paper sizes).
    depth: number of double-conv stages (3 in the paper).
    bottleneck_convs: number of bottleneck convs (3 in the paper).
    disabled_skips: skip indices (0 = shallowest) that are not used; the convs that
      would have read them have correspondingly fewer input channels.
    residual: decode a change of `base_image`'s logits (Relighter's attribute).
    out_channels: channels of the output conv (3: an image).
    linear_output: return the output conv's values as they are (float32, any range)
      instead of an image in [0, 1]: for models whose output is not an image
      (models/transport.py decodes log light transport).
    dtype: computation dtype.
    conv: the convolution module (see ConvBlock).
  """
  width: float = 1.0
  depth: int = 3
  bottleneck_convs: int = 3
  disabled_skips: Sequence[int] = ()
  residual: bool = False
  out_channels: int = 3
  linear_output: bool = False
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, latent, skips, *, train: bool, base_image=None):
    """Decodes a latent.

    Args:
      latent: [batch, s, s, latent channels] (the assembled I-scene + T-light latent).
      skips: the encoder's skip list, shallowest first; entries at disabled indices are
        ignored (they may be None).
      train: BatchNorm mode.
      base_image: with `residual`, the image whose logits the output is added to.

    Returns:
      float32 [batch, 2^(depth+1) s, 2^(depth+1) s, out_channels] in [0, 1] (any range
      with `linear_output`).
    """
    if self.residual and (self.linear_output or self.out_channels != 3):
      raise ValueError("Decoder(residual=True) changes an image's logits: it needs "
                       f"out_channels=3 and no linear_output, got out_channels="
                       f"{self.out_channels}, linear_output={self.linear_output}")
    expected = num_skips(self.depth, self.bottleneck_convs)
    if len(skips) != expected:
      raise ValueError(f"Decoder expected {expected} skip links, got {len(skips)}")
    skips = [None if k in self.disabled_skips else s for k, s in enumerate(skips)]
    channels = unet_channels(self.width, self.depth)
    block = functools.partial(ConvBlock, dtype=self.dtype,
                              conv=self.conv)
    x = latent.astype(self.dtype)
    # The original's DecBottleneckConv first halves the channels ("encode" conv).
    x = block(channels.latent // 2, name="bottleneck_in")(x, train=train)
    for j in range(self.bottleneck_convs):
      x = _concat_skip(x, skips.pop())
      if j < self.bottleneck_convs - 1:
        x = block(channels.latent, name=f"bottleneck{j}")(x, train=train)
      else:
        x = block(channels.latent // 2, name=f"bottleneck{j}")(
            upsample2x(x), train=train)  # [b, 32, 32, 256] at 256 px
    for i in reversed(range(self.depth)):
      stage_channels = channels.stages[i]
      out_channels = stage_channels // 2 if i > 0 else channels.stem
      x = _concat_skip(x, skips.pop())
      x = block(stage_channels, name=f"stage{i}_conv")(x, train=train)
      x = _concat_skip(x, skips.pop())
      x = block(out_channels, name=f"stage{i}_up")(
          upsample2x(x), train=train)
    x = _concat_skip(x, skips.pop())  # skip 0: [b, S, S, 32 + 32]
    # Residual output (our addition, not in the report): relit = sigmoid(logit(I) + delta)
    # with delta's conv zero-initialised, so training starts from the identity mapping and
    # only learns the change of light. The paper's direct output is the default.
    x = self.conv(self.out_channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                param_dtype=jnp.float32, name="output",
                kernel_init=nn.initializers.zeros if self.residual else
                nn.linear.default_kernel_init)(x)
    x = x.astype(jnp.float32)
    if self.linear_output:
      return x  # [b, S, S, out_channels]
    if self.residual:
      if base_image is None:
        raise ValueError("Decoder(residual=True) needs base_image")
      base = jnp.clip(base_image.astype(jnp.float32), 1e-3, 1.0 - 1e-3)
      x = x + jnp.log(base) - jnp.log1p(-base)
    return nn.sigmoid(x)  # [b, S, S, 3]
