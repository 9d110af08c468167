"""Latent heads: how each of the report's models splits and re-assembles the latent.

Report §3.3-3.4 and Figs. 10-12. Every head has two methods used by
`models/relighter.Relighter`:

  split(latent, train=...) -> dict with "scene" (None if the model has no scene
      latent), "light", and the head's extra outputs (envmaps, predictions);
  assemble(scene_latent, light_latent, spatial_shape, train=...) -> the decoder's input
      latent [b, s, s, latent channels], from I's scene latent and T's light latent.

Heads (registry in `models/registry.py`):
  * EnvmapLatent ("Envmap", Fig. 11): the whole latent encodes a 16x32 RGB envmap.
  * EnvmapSceneLatent ("Envmap + scene", Fig. 12): scene latent + an HSV envmap.
  * IlluminationPredictorLatent ("IlluminationPredicter", Fig. 10): 3 light channels,
    the rest scene; an MLP 20-10-2 predicts (direction, colour temperature).
"""

from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import dm_pix
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from relight_jax.data import lights
from relight_jax.models import unet

# The illumination predictor's two outputs are raw MLP outputs mapped affinely to
# physical units: d = 180 deg * out0 and c = 4500 K + 2000 K * out1 (the mean of the
# dataset's temperatures and the scale of Lc). The original fed raw outputs straight
# into Lc in kelvin, which asks the last bias to drift to ~4500 at Adam's step size.
DIRECTION_SCALE_DEG = 180.0
TEMPERATURE_OFFSET_K = float(np.mean(lights.TEMPERATURES_K))
TEMPERATURE_SCALE_K = 2000.0


def weighted_pooling(features, weight_channels: int):
  """Confidence-weighted pooling over space (report §3.4; Sun et al. 2019; Hu et al. 2017).

  The last `weight_channels` channels are pooling weights; the other channels form
  `k` blocks of `weight_channels` values, block channel p being weighted by weight
  channel p. Summed (not averaged) over space, as in the original.

  Args:
    features: [batch, h, w, (k + 1) * weight_channels], non-negative.
    weight_channels: number of weight channels.

  Returns:
    float32 [batch, k, weight_channels].
  """
  batch, height, width, channels = features.shape
  if channels % weight_channels or channels == weight_channels:
    raise ValueError(f"weighted_pooling: {channels} channels is not a multiple (>= 2) of "
                     f"{weight_channels} weight channels")
  features = features.astype(jnp.float32)
  values = features[..., :-weight_channels].reshape(batch, height, width, -1, weight_channels)
  weights = features[..., None, -weight_channels:]  # [b, h, w, 1, P]
  return jnp.sum(values * weights, axis=(1, 2))  # [b, k, P]


def tile(vector, spatial_shape):
  """Tiles a per-example vector [b, n] over space -> [b, h, w, n] (the original's Tiling)."""
  batch, size = vector.shape
  return jnp.broadcast_to(vector[:, None, None, :], (batch, *spatial_shape, size))


def hsv_envmap_to_rgb(envmap_hsv, height: int, width: int):
  """RGB view [b, height, width, 3] of HSV envmap vectors [b, 2 + height * width].

  The vector is (hue, saturation, height*width values) in 0..ENVMAP_PEAK units, as built
  by `relight_jax.data.envmap.envmap_hsv`.
  """
  batch = envmap_hsv.shape[0]
  unit = lights.ENVMAP_PEAK
  hue = jnp.broadcast_to(envmap_hsv[:, None, None, 0] / unit, (batch, height, width))
  saturation = jnp.broadcast_to(envmap_hsv[:, None, None, 1] / unit, (batch, height, width))
  values = envmap_hsv[:, 2:].reshape(batch, height, width)
  hsv = jnp.stack([jnp.mod(hue, 1.0), jnp.clip(saturation, 0.0, 1.0), values], axis=-1)
  return dm_pix.hsv_to_rgb(hsv)


class _PoolingConv(nn.Module):
  """3x3 conv + BatchNorm + softplus: the non-negative features fed to weighted pooling."""
  features: int
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.conv(self.features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                param_dtype=jnp.float32, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     dtype=self.dtype, param_dtype=jnp.float32, name="norm")(x)
    return nn.softplus(x.astype(jnp.float32))


class EnvmapLatent(nn.Module):
  """The "Envmap" head (report §3.4, Fig. 11): the latent is a 16x32 RGB envmap.

  split: 3x3 conv latent -> 4 * 512 channels, BN, softplus; weighted pooling with 512
  confidence channels -> envmap [b, 16, 32, 3]. assemble: T's envmap tiled over the
  latent's spatial size, 3x3 conv -> latent channels (BN, PReLU). The envmap is
  16x32 whatever the image size or width: pooling sums over space, and the conv maps to
  4 * height * width channels whatever the latent width.

  Attributes:
    latent_channels: channels of the U-Net latent.
    envmap_height, envmap_width: envmap size (16 x 32).
    dtype: computation dtype.
    conv: the convolution module (see unet.ConvBlock).
  """
  latent_channels: int
  envmap_height: int = 16
  envmap_width: int = 32
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv
  has_scene: ClassVar[bool] = False

  def setup(self):
    pixels = self.envmap_height * self.envmap_width
    self.pooling_conv = _PoolingConv(4 * pixels, dtype=self.dtype,
                                     conv=self.conv)
    self.tiling_conv = unet.ConvBlock(self.latent_channels, dtype=self.dtype,
                                      conv=self.conv)

  def split(self, latent, *, train: bool):
    """Returns {"scene": None, "light": envmap, "envmap": envmap [b, 16, 32, 3]}."""
    pixels = self.envmap_height * self.envmap_width
    pooled = weighted_pooling(self.pooling_conv(latent, train=train), pixels)  # [b, 3, 512]
    envmap = pooled.reshape(-1, 3, self.envmap_height, self.envmap_width)
    envmap = envmap.transpose(0, 2, 3, 1)  # [b, 16, 32, 3]
    return {"scene": None, "light": envmap, "envmap": envmap}

  def assemble(self, scene_latent, light_latent, spatial_shape, *, train: bool):
    """Decoder input from T's envmap alone (this model has no scene latent)."""
    del scene_latent  # None: the scene reaches the decoder through the skip links only.
    envmap = light_latent.reshape(light_latent.shape[0], -1).astype(self.dtype)
    return self.tiling_conv(tile(envmap, spatial_shape), train=train)


class EnvmapSceneLatent(nn.Module):
  """The "Envmap + scene" head (report §3.4, Fig. 12): scene latent + HSV envmap.

  split: 3x3 conv latent -> scene (2 x latent channels: 1024 at paper size, report
  §3.4's Φ ∈ R^{2052x16x16}) + 2 x 514 light channels, BN, softplus; weighted pooling of
  the light part with its 514 weight channels -> [b, 514] = (hue, saturation, 512
  values). assemble: I's scene latent ++ T's tiled HSV vector, 3x3 conv -> latent
  channels (BN, PReLU). The original code used 512 scene channels (its 30.67 M count).

  Attributes:
    latent_channels: channels of the U-Net latent.
    envmap_height, envmap_width: envmap size (16 x 32).
    dtype: computation dtype.
    conv: the convolution module (see unet.ConvBlock).
  """
  latent_channels: int
  envmap_height: int = 16
  envmap_width: int = 32
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv
  has_scene: ClassVar[bool] = True

  @property
  def scene_channels(self) -> int:
    return 2 * self.latent_channels

  def setup(self):
    hsv_size = 2 + self.envmap_height * self.envmap_width
    self.pooling_conv = _PoolingConv(self.scene_channels + 2 * hsv_size, dtype=self.dtype,
                                     conv=self.conv)
    self.tiling_conv = unet.ConvBlock(self.latent_channels, dtype=self.dtype,
                                      conv=self.conv)

  def split(self, latent, *, train: bool):
    """Returns "scene" [b, s, s, 2 L], "light" = "envmap_hsv" [b, 514], "envmap" (RGB view)."""
    hsv_size = 2 + self.envmap_height * self.envmap_width
    features = self.pooling_conv(latent, train=train)
    scene = features[..., :self.scene_channels].astype(self.dtype)
    envmap_hsv = weighted_pooling(features[..., self.scene_channels:], hsv_size)[:, 0]
    envmap = hsv_envmap_to_rgb(envmap_hsv, self.envmap_height, self.envmap_width)
    return {"scene": scene, "light": envmap_hsv, "envmap_hsv": envmap_hsv, "envmap": envmap}

  def assemble(self, scene_latent, light_latent, spatial_shape, *, train: bool):
    """Decoder input from I's scene latent and T's HSV envmap vector."""
    tiled = tile(light_latent.astype(self.dtype), spatial_shape)
    return self.tiling_conv(jnp.concatenate([scene_latent, tiled], axis=-1), train=train)


class IlluminationPredictorLatent(nn.Module):
  """The "IlluminationPredicter" head (report §3.4, Fig. 10): light/scene channel split + MLP.

  split: the first `light_channels` (3) latent channels are the light latent, the rest
  (509) the scene latent; an MLP with hidden layers (20, 10) and PReLU on the flattened
  light latent predicts [b, 2] = (direction in degrees, colour temperature in kelvin).
  assemble: concatenate T's light latent and I's scene latent (no parameters).

  Attributes:
    latent_channels: channels of the U-Net latent.
    light_channels: channels of the light latent (3).
    hidden: hidden layer sizes of the MLP ((20, 10)).
    dtype: computation dtype.
  """
  latent_channels: int
  light_channels: int = 3
  hidden: Sequence[int] = (20, 10)
  dtype: Any = jnp.float32
  has_scene: ClassVar[bool] = True

  def setup(self):
    if not 0 < self.light_channels < self.latent_channels:
      raise ValueError(f"model.light_channels={self.light_channels} must be in "
                       f"[1, {self.latent_channels - 1}] (latent channels - 1)")
    self.hidden_layers = [nn.Dense(n, param_dtype=jnp.float32) for n in self.hidden]
    self.activations = [nn.PReLU(negative_slope_init=0.25) for _ in self.hidden]
    self.output_layer = nn.Dense(2, param_dtype=jnp.float32)

  def split(self, latent, *, train: bool):
    """Returns "light" [b, s, s, 3], "scene" [b, s, s, 509], "prediction" [b, 2] (deg, K)."""
    del train  # No BatchNorm in this head.
    light = latent[..., :self.light_channels]
    scene = latent[..., self.light_channels:]
    x = light.reshape(light.shape[0], -1).astype(jnp.float32)  # MLP in float32: it is tiny.
    for layer, activation in zip(self.hidden_layers, self.activations, strict=True):
      x = activation(layer(x))
    raw = self.output_layer(x)
    prediction = jnp.stack([DIRECTION_SCALE_DEG * raw[:, 0],
                            TEMPERATURE_OFFSET_K + TEMPERATURE_SCALE_K * raw[:, 1]], axis=-1)
    return {"scene": scene, "light": light, "prediction": prediction}

  def assemble(self, scene_latent, light_latent, spatial_shape, *, train: bool):
    """Decoder input: T's light channels followed by I's scene channels (original order)."""
    del spatial_shape, train
    return jnp.concatenate([light_latent.astype(scene_latent.dtype), scene_latent], axis=-1)
