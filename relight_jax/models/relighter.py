"""The siamese relighter: encode I and T with one encoder, swap latents, decode (report §3.2-3.3).

Ĝ(I, T) = decode(assemble(scene latent of I, light latent of T), skip links of I).
One U-Net encoder (`models/unet.py`) encodes the input image I, the target image T and,
only when a loss needs its latent, the ground truth G; a latent head
(`models/latent.py`) splits each latent into scene and light parts and builds the
decoder's input. Build one with `models/registry.create_model(config.model)`.

Outputs of `Relighter.__call__` (role = "input", "target", and "ground_truth" when G is
given; b = batch, s = latent size, L = latent channels):
  relit                  float32 [b, S, S, 3] in [0, 1]: Ĝ(I, T).
  {role}_light           the light latent: envmap: [b, 16, 32, 3] (= {role}_envmap);
                         envmap_scene: [b, 514] HSV vector; illumination_predictor:
                         [b, s, s, 3].
  {role}_scene           the scene latent (absent for envmap): envmap_scene:
                         [b, s, s, 2 L]; illumination_predictor: [b, s, s, L - 3].
  {role}_envmap          envmap and envmap_scene: predicted envmap, RGB [b, 16, 32, 3]
                         (for envmap_scene an RGB view of the HSV prediction).
  {role}_envmap_hsv      envmap_scene: predicted HSV envmap vector [b, 514].
  {role}_prediction      illumination_predictor: [b, 2] = (direction deg, temperature K).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from relight_jax.models import unet


def check_image(name, image, depth):
  """Raises ValueError unless `image` is [batch, S, S, 3] with S a multiple of 2^(depth+1)."""
  if image.ndim != 4 or image.shape[-1] != 3:
    raise ValueError(f"Relighter: {name} must be [batch, height, width, 3], got {image.shape}")
  factor = 2 ** (depth + 1)
  if image.shape[1] % factor or image.shape[2] % factor:
    raise ValueError(f"Relighter: {name} is {image.shape[1]}x{image.shape[2]} px; with "
                     f"model.depth={depth} height and width must be multiples of {factor}")


def role_images(input_image, target_image, ground_truth, depth):
  """{role: image} of I, T (and G when given), each checked (`check_image`), same shapes."""
  images = {"input": input_image, "target": target_image}
  if ground_truth is not None:
    images["ground_truth"] = ground_truth
  for role, image in images.items():
    check_image(role, image, depth)
    if image.shape != input_image.shape:
      raise ValueError(f"Relighter: {role} has shape {image.shape}, input_image has "
                       f"{input_image.shape}")
  return images


class Relighter(nn.Module):
  """Siamese encoder + latent swap + decoder (report §3.2-3.3, Figs. 10-12).

  Attributes:
    latent_head: one of the heads of `models/latent.py` (unbound module).
    width: channel multiplier (1.0 = paper sizes).
    depth: number of double-conv down stages (3).
    bottleneck_convs: number of bottleneck convs (3).
    disabled_skips: skip link indices (0 = shallowest) not used by the decoder.
    target_skips: skip link indices taken from the target image instead of the input.
    residual: decode a change of the input's logits instead of the image (our addition).
    dtype: computation dtype (parameters are float32).
    conv: the convolution module of every layer (see unet.ConvBlock).
  """
  latent_head: nn.Module
  width: float = 1.0
  depth: int = 3
  bottleneck_convs: int = 3
  disabled_skips: Sequence[int] = ()
  target_skips: Sequence[int] = ()
  residual: bool = False
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv

  def setup(self):
    count = unet.num_skips(self.depth, self.bottleneck_convs)
    for name, indices in (("disabled_skips", self.disabled_skips),
                          ("target_skips", self.target_skips)):
      bad = [k for k in indices if not 0 <= k < count]
      if bad:
        raise ValueError(f"model.{name} has indices {bad} outside [0, {count - 1}] "
                         f"(this U-Net has {count} skip links)")
    both = sorted(set(self.disabled_skips) & set(self.target_skips))
    if both:
      raise ValueError(f"skip links {both} are both in model.disabled_skips and "
                       "model.target_skips; a skip link is either disabled or taken from T")
    self.encoder = unet.Encoder(self.width, self.depth, self.bottleneck_convs,
                                dtype=self.dtype, conv=self.conv)
    self.decoder = unet.Decoder(self.width, self.depth, self.bottleneck_convs,
                                disabled_skips=tuple(self.disabled_skips),
                                residual=self.residual, dtype=self.dtype,
                                conv=self.conv)

  def encode(self, image, *, train: bool):
    """Encodes one image into its latents (report §3.5's latent distances use these).

    Args:
      image: float [batch, S, S, 3] in [0, 1].
      train: BatchNorm mode.

    Returns:
      dict with "scene" (None for the envmap model), "light", and the head's extra
      outputs ("envmap", "envmap_hsv" or "prediction"), without a role prefix.
    """
    check_image("image", image, self.depth)
    latent, _ = self.encoder(image, train=train)
    return self.latent_head.split(latent, train=train)

  def __call__(self, input_image, target_image, ground_truth=None, *, train: bool):
    """Relights input_image under target_image's illumination.

    Args:
      input_image: float [batch, S, S, 3] in [0, 1] (I).
      target_image: float [batch, S, S, 3] in [0, 1] (T).
      ground_truth: optional float [batch, S, S, 3] (G); encoded only when given, for
        losses on its latent (its registry.ModelSpec.needs_ground_truth_latent).
      train: BatchNorm mode.

    Returns:
      dict of outputs, see the module docstring.
    """
    images = role_images(input_image, target_image, ground_truth, self.depth)
    batch = input_image.shape[0]
    # One encoder call over [I; T; (G)]: one set of weights (siamese, report §3.2) and
    # one large convolution instead of three. BatchNorm then normalises with statistics
    # over I, T (and G) jointly; the original ran the encoder once per image.
    latent, skips = self.encoder(jnp.concatenate(list(images.values()), axis=0), train=train)
    encoded = self.latent_head.split(latent, train=train)

    def part(value, index):
      return value[index * batch:(index + 1) * batch]

    outputs = {}
    for index, role in enumerate(images):
      for key, value in encoded.items():
        if value is not None:
          outputs[f"{role}_{key}"] = part(value, index)
    # The swap: I's scene latent with T's light latent (report §3.3).
    swapped = self.latent_head.assemble(
        outputs.get("input_scene"), outputs["target_light"], latent.shape[1:3], train=train)
    decoder_skips = [part(skip, 1 if k in self.target_skips else 0)
                     for k, skip in enumerate(skips)]
    outputs["relit"] = self.decoder(swapped, decoder_skips, train=train,
                                    base_image=input_image)  # [b, S, S, 3]
    return outputs

  def relight_with_light(self, input_image, target_light, *, train: bool = False):
    """Relights input_image under a given light latent instead of a target image's.

    The light latent has the shape of `{role}_light` (module docstring); the envmap
    models' may be generated from a label (envmap.envmap_rgb / envmap_hsv), the
    IlluminationPredicter's encoded from reference images of that light.

    Args:
      input_image: float [batch, S, S, 3] in [0, 1].
      target_light: the light latent, batch-first.
      train: BatchNorm mode.

    Returns:
      relit float32 [batch, S, S, 3].
    """
    if self.target_skips:
      raise ValueError(f"model.target_skips={tuple(self.target_skips)} takes skip links "
                       "from a target image: this model cannot relight by a light alone")
    check_image("input_image", input_image, self.depth)
    latent, skips = self.encoder(input_image, train=train)
    encoded = self.latent_head.split(latent, train=train)
    swapped = self.latent_head.assemble(encoded["scene"], jnp.asarray(target_light),
                                        latent.shape[1:3], train=train)
    return self.decoder(swapped, skips, train=train, base_image=input_image)
