"""Geometry-aware Envmap relighter: the Envmap model taught the scene's shape (beyond the report).

The report's models fail mostly where the light direction changes: shadows and shading must
move, and nothing tells the network where the surfaces face. Our renderer knows what real
VIDIT's users never had, the camera-space normals and depth of every pixel, so this model
learns them as auxiliary tasks and uses them to shade, while needing only RGB at inference:

  1. the report's U-Net encoder and Envmap head (`models/latent.EnvmapLatent`) encode I and
     T into 16x32 envmaps, exactly as the Envmap model (report §3.4, Fig. 11);
  2. a geometry head (`GeometryHead`) decodes the encoder's latent and skip links of each
     image into its normals and depth, supervised by the renderer's maps (objectives.py);
  3. `envmap_shading` shades the predicted normals of I Lambertian-style under T's envmap
     and under I's own: two colour images that say where T's light falls and where I's
     fell (the intrinsic-image ratio relit ≈ I · shading_T / shading_I);
  4. the relighting decoder (`models/unet.Decoder`) gets, next to every skip link, these
     geometry maps average-pooled to the link's resolution;
  5. optionally (`relit_shading`, v2 datasets), a shading head decodes the latent that
     carries T's light (the decoder's own input) with I's skip links into the shading of
     I's scene under T's light direction: the renderer's direct-light shading of a white
     copy of the scene, cast shadows included, which the Lambertian shading of step 3
     cannot show. Supervised by the dataset's map of (scene of I, direction of T) and fed
     to the decoder with the others, it asks the network to say where the new shadows
     fall before it paints them. The geometry head may then also predict each image's own
     shading ("shading" in `geometry_maps`), i.e. find the shadows already in I.

Shading needs the 3-D direction of each envmap column. A generated envmap puts the light on
its horizon (report §3.4), while the renderer's light stands `light_elevation_deg` above
the look-at point; so a column's brightness (summed over rows) is read as a light at that
azimuth (lights.py's convention) and at that elevation. Normals are camera-space, OpenGL
style (x right, y up, z towards the camera), as `render/mitsuba_scene.render_aovs` stores
them: N (azimuth 0) shines from behind the scene (-z), E from the right (+x).

Outputs of `GeometryRelighter.__call__`: those of `models/relighter.Relighter` with the
Envmap head ("relit", "{role}_light", "{role}_envmap") plus, per encoded role,
"{role}_normals" [b, S, S, 3] (unit vectors), "{role}_depth" and "{role}_shading" [b, S, S]
in [0, 1] (those of `geometry_maps`); "target_lambertian", "input_lambertian" [b, S, S, 3];
and with `relit_shading`, "relit_shading" [b, S, S] in [0, 1].
"""

import functools
from typing import Any
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from relight_jax.models import relighter as relighter_lib
from relight_jax.models import unet

# Geometry maps the head can predict and their channels. Albedo (3 channels, a material
# map of the renderer) would be one more entry here and in training/loss_terms.GEOMETRY_LOSSES.
GEOMETRY_CHANNELS = {"normals": 3, "depth": 1, "shading": 1}
_UNIT_INTERVAL_MAPS = ("depth", "shading")  # in [0, 1]: a sigmoid, returned as [b, S, S]


def column_directions(width: int, elevation_deg: float, north_column: float = 0.0) -> np.ndarray:
  """Camera-space unit vectors [width, 3] towards the light of each envmap column.

  Column c is azimuth (c / width - north_column) * 360 deg (the envmap convention's
  layout, data/envmap.CONVENTIONS), clockwise from the camera's viewing direction seen
  from above (lights.py); the light stands at `elevation_deg` above the horizontal plane.
  """
  azimuth = np.deg2rad((np.arange(width) / width - north_column) * 360.0)
  elevation = np.deg2rad(elevation_deg)
  return np.stack([np.sin(azimuth) * np.cos(elevation),
                   np.full_like(azimuth, np.sin(elevation)),
                   -np.cos(azimuth) * np.cos(elevation)], axis=-1).astype(np.float32)


def envmap_shading(normals, envmap, elevation_deg: float, north_column: float = 0.0):
  """Lambertian shading of camera-space normals under a lat-long envmap's light.

  shading(p) = Σ_c w_c · max(0, n(p) · l_c), with l_c the direction of column c
  (`column_directions`) and w_c [3] the column's brightness summed over rows, normalised
  so that the columns' mean-over-channels weights sum to 1: a single bright spot of
  colour k shades like a unit light of colour k, whatever the envmap's scale.

  Args:
    normals: float [b, S, S, 3] camera-space unit normals.
    envmap: float [b, h, w, 3], non-negative (predicted or generated).
    elevation_deg: elevation of the light above the horizon.
    north_column: the column of azimuth 0 as a fraction of the width (the envmap
      convention's, `column_directions`).

  Returns:
    float32 [b, S, S, 3].
  """
  envmap = envmap.astype(jnp.float32)
  columns = jnp.sum(envmap, axis=1)  # [b, w, 3]
  total = jnp.sum(jnp.mean(columns, axis=-1), axis=-1)  # [b]
  weights = columns / (total[:, None, None] + 1e-6)
  directions = jnp.asarray(
      column_directions(envmap.shape[2], elevation_deg, north_column))  # [w, 3]
  cosine = jnp.maximum(jnp.einsum("bhwk,ck->bhwc", normals.astype(jnp.float32),
                                  directions), 0.0)  # [b, S, S, w]
  return jnp.einsum("bhwc,bck->bhwk", cosine, weights)


def average_pool_to(image, size: int):
  """[b, S, S, c] -> [b, size, size, c] by averaging S / size blocks (S a multiple)."""
  height, width = image.shape[1:3]
  factor = height // size
  if factor * size != height or width != height:
    raise ValueError(f"cannot pool a {height}x{width} map to {size}x{size}")
  if factor == 1:
    return image
  # A window reduction, not a reshape: it keeps a batch sharded on 'data' as it is.
  return nn.avg_pool(image, (factor, factor), strides=(factor, factor))


class GeometryHead(nn.Module):
  """Decodes an image's latent and skip links into its geometry maps (normals, depth).

  A light U-Net decoder: from the latent, bilinear x2 + conv per resolution, each
  concatenating the encoder's skip link at that resolution (the last of each stage, and
  the stem's), then a 3x3 conv to the maps' channels. Normals are normalised to unit
  length, depth and shading go through a sigmoid (the renderer's are in [0, 1]).

  Attributes:
    maps: names of GEOMETRY_CHANNELS to predict.
    width, depth: the encoder's width multiplier and number of down stages.
    dtype: computation dtype.
    conv: the convolution module (see unet.ConvBlock).
  """
  maps: tuple[str, ...] = ("normals", "depth")
  width: float = 1.0
  depth: int = 3
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, latent, skips, *, train: bool):
    """Returns {map name: [b, S, S, channels] float32} ("depth", "shading" as [b, S, S])."""
    channels = unet.unet_channels(self.width, self.depth)
    block = functools.partial(unet.ConvBlock, dtype=self.dtype, conv=self.conv)
    x = block(channels.stages[-1], name="latent_in")(latent, train=train)
    # Skip 2 + 2 i is stage i's conv output, at 1 / 2^(i + 1) of the image; skip 0 the stem.
    for i in reversed(range(self.depth)):
      x = jnp.concatenate([unet.upsample2x(x), skips[2 + 2 * i].astype(x.dtype)], axis=-1)
      x = block(channels.stages[i] // 2 if i else channels.stem, name=f"stage{i}")(
          x, train=train)
    x = jnp.concatenate([unet.upsample2x(x), skips[0].astype(x.dtype)], axis=-1)
    x = block(channels.stem, name="stem")(x, train=train)
    count = sum(GEOMETRY_CHANNELS[name] for name in self.maps)
    raw = self.conv(count, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                    param_dtype=jnp.float32, name="output")(x).astype(jnp.float32)
    outputs, start = {}, 0
    for name in self.maps:
      value = raw[..., start:start + GEOMETRY_CHANNELS[name]]
      start += GEOMETRY_CHANNELS[name]
      if name == "normals":
        value = value / jnp.sqrt(jnp.sum(value**2, axis=-1, keepdims=True) + 1e-6)
      elif name in _UNIT_INTERVAL_MAPS:
        value = nn.sigmoid(value[..., 0])
      outputs[name] = value
    return outputs


def _geometry_features(geometry, target_lambertian, input_lambertian, relit_shading):
  """The full-resolution maps fed to the relighting decoder: [b, S, S, c]."""
  parts = [target_lambertian, input_lambertian]
  if "normals" in geometry:
    parts.append(geometry["normals"])
  for name in _UNIT_INTERVAL_MAPS:
    if name in geometry:
      parts.append(geometry[name][..., None])
  if relit_shading is not None:
    parts.append(relit_shading[..., None])
  return jnp.concatenate(parts, axis=-1)


class GeometryRelighter(nn.Module):
  """Envmap relighter with predicted geometry and envmap shading (module docstring).

  Attributes:
    latent_head: a `latent.EnvmapLatent` (unbound).
    geometry_maps: names of GEOMETRY_CHANNELS the geometry head predicts ("normals"
      is required: the shading needs it).
    light_elevation_deg: elevation of the dataset's light above the horizon, at which an
      envmap column's light is placed for shading (the renderer's).
    relit_shading: predict the shading of I's scene under T's light (module docstring,
      step 5) and feed it to the decoder.
    north_column: the envmaps' column of azimuth 0 as a fraction of the width (their
      convention's, model.envmap_convention): where a column's light comes from.
    width, depth, bottleneck_convs, residual, dtype, conv: as `relighter.Relighter`.
  """
  latent_head: nn.Module
  geometry_maps: tuple[str, ...] = ("normals", "depth")
  light_elevation_deg: float = 35.0
  relit_shading: bool = False
  north_column: float = 0.0
  width: float = 1.0
  depth: int = 3
  bottleneck_convs: int = 3
  residual: bool = False
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv
  has_geometry: ClassVar[bool] = True

  def setup(self):
    unknown = sorted(set(self.geometry_maps) - set(GEOMETRY_CHANNELS))
    if unknown or "normals" not in self.geometry_maps:
      raise ValueError(f"model.geometry_maps={tuple(self.geometry_maps)}: expected names of "
                       f"{sorted(GEOMETRY_CHANNELS)} including 'normals' (shading needs them)")
    self.encoder = unet.Encoder(self.width, self.depth, self.bottleneck_convs,
                                dtype=self.dtype, conv=self.conv)
    self.geometry_head = GeometryHead(tuple(self.geometry_maps), self.width, self.depth,
                                      dtype=self.dtype, conv=self.conv)
    if self.relit_shading:
      self.shading_head = GeometryHead(("shading",), self.width, self.depth,
                                       dtype=self.dtype, conv=self.conv)
    self.decoder = unet.Decoder(self.width, self.depth, self.bottleneck_convs,
                                residual=self.residual, dtype=self.dtype, conv=self.conv)

  def _encode(self, image, *, train):
    latent, skips = self.encoder(image, train=train)
    encoded = dict(self.latent_head.split(latent, train=train))
    encoded.update(self.geometry_head(latent, skips, train=train))
    return latent, skips, encoded

  def encode(self, image, *, train: bool):
    """Encodes one image: {"scene": None, "light", "envmap", "normals", "depth"}."""
    relighter_lib.check_image("image", image, self.depth)
    return self._encode(image, train=train)[2]

  def _decode(self, input_image, latent_shape, skips, geometry, input_envmap, target_light,
              *, train):
    """Ĝ from I's skips and geometry and a target light (envmap [b, 16, 32, 3]).

    Returns:
      relit, and {"target_lambertian", "input_lambertian"[, "relit_shading"]}.
    """
    maps = {"target_lambertian": envmap_shading(geometry["normals"], target_light,
                                                self.light_elevation_deg, self.north_column),
            "input_lambertian": envmap_shading(geometry["normals"], input_envmap,
                                               self.light_elevation_deg, self.north_column)}
    swapped = self.latent_head.assemble(None, target_light, latent_shape, train=train)
    if self.relit_shading:
      maps["relit_shading"] = self.shading_head(swapped, skips, train=train)["shading"]
    features = _geometry_features(geometry, maps["target_lambertian"],
                                  maps["input_lambertian"], maps.get("relit_shading"))
    decoder_skips = [jnp.concatenate(
        [skip, average_pool_to(features, skip.shape[1]).astype(skip.dtype)], axis=-1)
        for skip in skips]
    relit = self.decoder(swapped, decoder_skips, train=train, base_image=input_image)
    return relit, maps

  def __call__(self, input_image, target_image, ground_truth=None, *, train: bool):
    """Relights input_image under target_image's light (see the module docstring).

    Args:
      input_image: float [batch, S, S, 3] in [0, 1] (I).
      target_image: float [batch, S, S, 3] in [0, 1] (T).
      ground_truth: optional G, encoded too when given (for losses on its latent).
      train: BatchNorm mode.

    Returns:
      dict of outputs, see the module docstring.
    """
    images = relighter_lib.role_images(input_image, target_image, ground_truth, self.depth)
    batch = input_image.shape[0]
    # One encoder (and geometry head) call over [I; T; (G)], as relighter.Relighter.
    latent, skips, encoded = self._encode(
        jnp.concatenate(list(images.values()), axis=0), train=train)
    part = lambda value, index: value[index * batch:(index + 1) * batch]
    outputs = {f"{role}_{key}": part(value, index)
               for index, role in enumerate(images)
               for key, value in encoded.items() if value is not None}
    geometry = {name: outputs[f"input_{name}"] for name in self.geometry_maps}
    relit, maps = self._decode(
        input_image, latent.shape[1:3], [part(skip, 0) for skip in skips], geometry,
        outputs["input_envmap"], outputs["target_light"], train=train)
    outputs.update(maps, relit=relit)
    return outputs

  def relight_with_light(self, input_image, target_light, *, train: bool = False):
    """Relights input_image under a given light latent (an envmap [b, 16, 32, 3]).

    The light may be generated from a label (envmap.envmap_rgb): no target image needed.
    """
    relighter_lib.check_image("input_image", input_image, self.depth)
    latent, skips, encoded = self._encode(input_image, train=train)
    geometry = {name: encoded[name] for name in self.geometry_maps}
    relit, _ = self._decode(input_image, latent.shape[1:3], skips, geometry,
                               encoded["envmap"], jnp.asarray(target_light, jnp.float32),
                               train=train)
    return relit

