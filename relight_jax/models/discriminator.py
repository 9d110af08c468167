"""PatchGAN discriminator (report §3.5 "Make the relit image realistic with GAN").

The pix2pix "NLayerDiscriminator" (Isola et al. 2017) that the original code took from
the pix2pix repository: with 3 layers each output logit sees a 70x70 patch. The trainer
uses it conditionally, as pix2pix does: it sees the input I next to G or Ĝ (6 channels;
`step.py`). The original's `train.py` fed it the image alone; the report (§5.1) asks for
a conditional GAN. No final sigmoid: the losses are LSGAN's
(`losses.lsgan_discriminator_loss`, `losses.lsgan_generator_loss`). Built by
`models/registry.create_discriminator`.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from relight_jax.models import unet

# pix2pix's channel multiplier stops growing at 8 x the base width.
_MAX_MULTIPLIER = 8


def _conv(conv, features, strides, use_bias, dtype, name):
  # 4x4 kernels with padding 1, as pix2pix (kw = 4, padw = 1).
  return conv(features, (4, 4), strides=(strides, strides), padding=((1, 1), (1, 1)),
                 use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name)


class PatchDiscriminator(nn.Module):
  """pix2pix PatchGAN: image [b, S, S, C] -> patch logits [b, S/8 - 2, S/8 - 2, 1] (3 layers).

  The trainer passes the input image next to the candidate (C = 6, conditional); C = 3
  would be the original's unconditional use.

  Attributes:
    features: base width (64).
    num_layers: number of stride-2 layers (3 gives the 70x70 receptive field).
    dtype: computation dtype (parameters float32, logits float32).
    conv: the convolution module (see unet.ConvBlock).
  """
  features: int = 64
  num_layers: int = 3
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, image, *, train: bool):
    """Returns float32 patch logits (real > 0.5 under LSGAN targets 1 / 0).

    Args:
      image: float [batch, S, S, C] in [0, 1] (C = 3, or 6 for (input, candidate) pairs).
      train: BatchNorm mode.
    """
    if image.ndim != 4 or image.shape[-1] not in (3, 6):
      raise ValueError("PatchDiscriminator: image must be [batch, S, S, 3] or [batch, S, S, 6] "
                       f"(input ++ candidate), got {image.shape}")
    x = _conv(self.conv, self.features, 2, True, self.dtype, "conv0")(image.astype(self.dtype))
    x = nn.leaky_relu(x, 0.2)
    multiplier = 1
    for n in range(1, self.num_layers + 1):
      multiplier = min(2**n, _MAX_MULTIPLIER)
      # The last of these keeps the resolution (stride 1), as in pix2pix.
      strides = 2 if n < self.num_layers else 1
      # No conv bias before BatchNorm (pix2pix: use_bias only with InstanceNorm).
      x = _conv(self.conv, self.features * multiplier, strides, False, self.dtype, f"conv{n}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       dtype=self.dtype, param_dtype=jnp.float32, name=f"norm{n}")(x)
      x = nn.leaky_relu(x, 0.2)
    x = _conv(self.conv, 1, 1, True, self.dtype, "logits")(x)
    return x.astype(jnp.float32)
