"""Light-transport relighter (ours, beyond the report): the renderer's physics as the output.

The renderer composes every image of a scene from 9 linear renders (render/mitsuba_scene.py):

  I(t, d) = sRGB(clip(EXPOSURE * (c_t ⊙ M_d + F)))

M_d the white main light from direction d (8 azimuths, data/lights.py), F the fixed lights
(ambient, window, lamp), c_t the temperature's linear colour (luminance 1,
render/illumination.light_rgb). This model predicts from I alone its scene's transport M̂_d
and F̂, and an estimate of each encoded image's light, and composes Ĝ from them: direction
must act through the transport maps, cast shadows included, and a light is a handful of
numbers (any weights over the 8 azimuths, any colour, several lights, an intensity).

  1. the report's U-Net encoder (`unet.Encoder`) encodes I and T (and G when given) in one
     pass, as `relighter.Relighter`;
  2. a light head on each latent (`LightHead`: mean over positions, an MLP) estimates the
     image's light: 8 direction weights (a softmax over the 8 azimuths) and a linear RGB
     colour scaled to luminance 1, as the renderer's c_t are. Its light vector [b, 11] =
     (8 weights, 3 colour) is the model's light latent: `relight_with_light` takes one
     built from numbers (weights summing to more than 1 are a brighter light);
     `relight_with_coloured_weights` takes the general light, coloured direction weights
     W [b, 8, 3] (each basis direction's weight times its light's linear colour: several
     lights of several colours, summed), of which the vector is the case W_d = w_d c;
  3. a U-Net decoder (`unet.Decoder` with 27 linear output channels) decodes I's latent
     and skip links into log M̂_d (8 x 3 channels) and log F̂ (3 channels);
  4. Ĝ is composed under T's estimated light (ŵ_T, ĉ_T), in one of two forms (FORMS,
     config `model.transport_form`):
       absolute  Ĝ = sRGB(clip(EXPOSURE * L_T)),  L = ĉ ⊙ Σ_d ŵ_d M̂_d + F̂
                 (= Σ_d W_d ⊙ M̂_d + F̂ with coloured weights: F̂ once, whatever the lights)
       ratio     Ĝ = sRGB(clip(lin(I) * (L_T + ε) / (L_I + ε))), L_I composed under I's own
                 estimated light: every pixel of I is kept and only the change of light is
                 applied; when T's light equals I's estimate the ratio is 1 and Ĝ is I.

Output parameterisation and loss space: log transport. The network outputs r and M̂ = exp(r)
(non-negative by construction, any brightness: transport is unbounded above, highlights
are clipped only after the sum); the losses compare log(M̂ + ε) with log(M + ε)
(`transport_code`). Light is perceived by ratios, and a shadow at 2% of the lit floor
beside it matters as much as the floor: in log space a pixel's error weighs by its ratio,
so dark and bright pixels both count, where an L1 on linear values would see the bright
ones only. ε = 1e-3 (about 3 sRGB codes above black) is the floor below which transport
is not worth learning: no 8-bit image resolves it, and the same ε guards the ratio form's
division, so that it does not amplify the quantisation noise of I's darkest pixels.

Which form where. Training and evaluation on renders use the absolute form (the config's
default): on a render it is exact (the data is made this way), it can make a pixel that is
black in I bright in Ĝ (a shadow that moves away), and its reconstruction loss trains the
transport and T's light estimate directly. For photos the ratio form is the one to use:
a photo's exposure, white balance, textures and resolution are not the renders', and the
ratio applies only the change of light, smooth where the transport is, to the photo's own
pixels. relight.py's default `--form=ratio` does this with any model, on top of the
absolute Ĝ (by a target image, this model's ratio form but where a bright pixel clips);
`model.transport_form="ratio"` builds it into the model itself (an exported function,
an evaluation of the ratio form). By a light (relight.py's --light), either form is made
in one composition of coloured weights (`relight_with_coloured_weights`, the spec's
`light_composition`): --form=direct the absolute form, --form=ratio this model's ratio
form, with nothing clipped before the division.

Outputs of `TransportRelighter.__call__` (role = "input", "target", and "ground_truth"
when G is given):
  relit                float32 [b, S, S, 3] in [0, 1]: Ĝ in the model's form.
  {role}_light         [b, 11]: the light estimate, 8 direction weights then RGB colour.
  {role}_prediction    [b, 2] = (direction deg, temperature K) of that estimate
                       (`light_prediction`), what the evaluation's light metrics read.
  input_transport      [b, 8, S, S, 3]: M̂_d, linear, in compose's units.
  input_fixed_light    [b, S, S, 3]: F̂, linear.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from relight_jax.common import srgb
from relight_jax.data import lights
from relight_jax.models import relighter as relighter_lib
from relight_jax.models import unet

FORMS = ("absolute", "ratio")
LIGHT_SIZE = lights.NUM_DIRECTIONS + 3  # the light vector: 8 direction weights, RGB colour
TRANSPORT_CHANNELS = 3 * lights.NUM_DIRECTIONS + 3  # M_d for 8 directions, then F
# The floor of the log transport (module docstring): about 3 sRGB codes above black.
EPSILON = 1e-3
# exp() of the network's output is capped here (e^8 ~ 3000, far above any clipped pixel):
# only a guard against overflow, never reached by a trained model.
_LOG_MAX = 8.0
_LUMINANCE = np.asarray(srgb.LUMINANCE_WEIGHTS, np.float32)
# The temperature of an estimated colour is read on the renderer's curve at this step.
_CURVE_STEP_K = 20


@functools.cache
def _renderer():
  """(EXPOSURE, [5, 3] light colours of lights.TEMPERATURES_K) of the renderer.

  Imported at the first call: colour-science takes seconds to import, and everything
  that imports the model table would pay for it.
  """
  from relight_jax.render import illumination  # pylint: disable=g-import-not-at-top
  from relight_jax.render import mitsuba_scene  # pylint: disable=g-import-not-at-top
  return float(mitsuba_scene.EXPOSURE), illumination.light_rgbs().astype(np.float32)


def exposure():
  """The renderer's exposure (mitsuba_scene.EXPOSURE), applied before the clip."""
  return _renderer()[0]


def temperature_rgbs():
  """float32 [5, 3]: the renderer's linear colours of lights.TEMPERATURES_K (luminance 1)."""
  return _renderer()[1]


@functools.cache
def _temperature_curve():
  """(kelvins [n], colours [n, 3]) of the renderer's lights every _CURVE_STEP_K over the
  labels' range, for reading an estimated colour as a temperature."""
  from relight_jax.render import illumination  # pylint: disable=g-import-not-at-top
  low, high = lights.LABEL_TEMPERATURE_RANGE_K
  kelvins = np.arange(low, high + 1, _CURVE_STEP_K, dtype=np.float32)
  return kelvins, np.stack([illumination.light_rgb(k) for k in kelvins]).astype(np.float32)


def light_rgb(temperature_k):
  """float32 [3]: the renderer's linear colour of a temperature (illumination.light_rgb)."""
  from relight_jax.render import illumination  # pylint: disable=g-import-not-at-top
  return illumination.light_rgb(temperature_k).astype(np.float32)


def label_light(temperature_k, direction_index):
  """The light vector [1, 11] of a label: one-hot direction weights and c_t."""
  weights = np.zeros(lights.NUM_DIRECTIONS, np.float32)
  weights[int(direction_index)] = 1.0
  return np.concatenate([weights, light_rgb(temperature_k)])[None]


def transport_code(linear):
  """The space the transport losses compare in: log(x + EPSILON) (module docstring)."""
  return jnp.log(jnp.maximum(linear, 0.0) + EPSILON)


def split_light(light):
  """(direction weights [b, 8], linear colour [b, 3]) of light vectors [b, 11]."""
  return light[:, :lights.NUM_DIRECTIONS], light[:, lights.NUM_DIRECTIONS:]


def coloured_weights(light):
  """Coloured direction weights [b, 8, 3] of light vectors [b, 11]: W_d = w_d c.

  A light vector is one colour shared by every direction; coloured weights also hold
  several lights of different colours (their sum), which is what light adds up to.
  """
  weights, colour = split_light(jnp.asarray(light, jnp.float32))
  return weights[:, :, None] * colour[:, None, :]


def compose_coloured(transport, fixed_light, coloured):
  """Linear light of a scene under coloured direction weights: Σ_d W_d ⊙ M_d + F.

  The main light is linear in the weights, so any number of lights, any colours and
  intensities are one sum of coloured weights; the fixed lights F are the scene's and are
  counted once, however many main lights shine.

  Args:
    transport: [b, 8, S, S, 3] main-light transport M_d.
    fixed_light: [b, S, S, 3] fixed lights F.
    coloured: [b, 8, 3] coloured direction weights W_d (linear RGB; `coloured_weights`).

  Returns:
    float32 [b, S, S, 3], before exposure.
  """
  main = jnp.einsum("bdc,bdhwc->bhwc", jnp.asarray(coloured, jnp.float32),
                    transport.astype(jnp.float32))
  return main + fixed_light.astype(jnp.float32)


def compose_linear(transport, fixed_light, light):
  """Linear light of a scene under a light vector: ĉ ⊙ Σ_d ŵ_d M_d + F (before exposure).

  Args:
    transport: [b, 8, S, S, 3] main-light transport M_d.
    fixed_light: [b, S, S, 3] fixed lights F.
    light: [b, 11] light vectors (8 direction weights, RGB colour).

  Returns:
    float32 [b, S, S, 3].
  """
  return compose_coloured(transport, fixed_light, coloured_weights(light))


def compose_image(transport, fixed_light, light):
  """The absolute form: sRGB(clip(EXPOSURE * (ĉ ⊙ Σ_d ŵ_d M_d + F))), [b, S, S, 3]."""
  return srgb.to_srgb(exposure() * compose_linear(transport, fixed_light, light))


def compose_coloured_image(transport, fixed_light, coloured):
  """The absolute form under coloured weights: sRGB(clip(EXPOSURE * (Σ_d W_d ⊙ M_d + F)))."""
  return srgb.to_srgb(exposure() * compose_coloured(transport, fixed_light, coloured))


def compose_all_lights(transport, fixed_light, rgbs):
  """The images of every label light, as `mitsuba_scene.compose` composes the dataset's.

  Args:
    transport: [b, 8, S, S, 3] M_d.
    fixed_light: [b, S, S, 3] F.
    rgbs: [n, 3] linear light colours (`temperature_rgbs()`: the 5 of the labels).

  Returns:
    float32 [b, n * 8, S, S, 3] sRGB in [0, 1]; index temperature * 8 + direction, the
    light index of data/lights.py for the 5 label colours.
  """
  rgbs = jnp.asarray(rgbs, jnp.float32)
  linear = (rgbs[None, :, None, None, None, :] * transport.astype(jnp.float32)[:, None]
            + fixed_light.astype(jnp.float32)[:, None, None])  # [b, n, 8, S, S, 3]
  images = srgb.to_srgb(exposure() * linear)
  return images.reshape((images.shape[0], -1) + images.shape[3:])


def ratio_relight(input_image, transport, fixed_light, target_light, input_light):
  """The ratio form: sRGB(clip(lin(I) * (L_T + ε) / (L_I + ε))), [b, S, S, 3].

  Exposure cancels in the ratio; ε (EPSILON) keeps a pixel dark under I's estimated
  light from amplifying I's quantisation noise. Equal lights give a ratio of exactly 1.
  """
  return ratio_relight_coloured(input_image, transport, fixed_light,
                                coloured_weights(target_light), coloured_weights(input_light))


def ratio_relight_coloured(input_image, transport, fixed_light, target_coloured,
                           input_coloured):
  """`ratio_relight` under coloured weights [b, 8, 3] (the target's, I's own estimate)."""
  target = compose_coloured(transport, fixed_light, target_coloured)
  own = compose_coloured(transport, fixed_light, input_coloured)
  return srgb.to_srgb(srgb.to_linear(input_image) * (target + EPSILON) / (own + EPSILON))


def light_prediction(light):
  """(direction deg, temperature K) [b, 2] of light vectors [b, 11].

  The direction is the circular mean of the weights over the 8 azimuths (in [0, 360));
  the temperature that of the renderer's light colour nearest the vector's colour, both
  scaled to luminance 1, on the labels' range every _CURVE_STEP_K.
  """
  light = light.astype(jnp.float32)
  weights, colour = light[:, :lights.NUM_DIRECTIONS], light[:, lights.NUM_DIRECTIONS:]
  azimuths = np.deg2rad(np.asarray(lights.DIRECTION_AZIMUTHS_DEG, np.float32))
  direction = jnp.rad2deg(jnp.arctan2(weights @ np.sin(azimuths), weights @ np.cos(azimuths)))
  direction = jnp.mod(direction, 360.0)
  kelvins, curve = _temperature_curve()
  colour = colour / jnp.maximum(colour @ _LUMINANCE, 1e-6)[:, None]
  distance = jnp.sum((colour[:, None, :] - curve[None]) ** 2, axis=-1)  # [b, n]
  # A one-hot product, not a gather: gathering from a constant with a batch sharded on
  # 'data' fails to trace (training/loss_terms.py says the same of the labels).
  nearest = jax.nn.one_hot(jnp.argmin(distance, axis=-1), len(kelvins), dtype=jnp.float32)
  return jnp.stack([direction, nearest @ kelvins], axis=-1)


class LightHead(nn.Module):
  """An image's light from its encoder latent: [b, s, s, L] -> light vector [b, 11].

  The latent is averaged over positions (the light is one for the whole image), then an
  MLP (PReLU) outputs 8 direction logits, whose softmax are the weights (a single light
  of the renderer's intensity), and 3 log colour channels, whose exponential is scaled to
  luminance 1 (the renderer's c_t are: a colour, not a brightness).

  Attributes:
    hidden: hidden layer sizes of the MLP.
    dtype: computation dtype (parameters float32).
  """
  hidden: Sequence[int] = (64,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, latent):
    x = jnp.mean(latent.astype(jnp.float32), axis=(1, 2))
    for index, size in enumerate(self.hidden):
      x = nn.Dense(size, dtype=self.dtype, param_dtype=jnp.float32, name=f"hidden{index}")(x)
      x = nn.PReLU(negative_slope_init=0.25, name=f"prelu{index}")(x)
    raw = nn.Dense(LIGHT_SIZE, dtype=self.dtype, param_dtype=jnp.float32,
                   name="output")(x).astype(jnp.float32)
    weights = nn.softmax(raw[:, :lights.NUM_DIRECTIONS], axis=-1)
    colour = jnp.exp(jnp.clip(raw[:, lights.NUM_DIRECTIONS:], -10.0, 10.0))
    colour = colour / (colour @ _LUMINANCE)[:, None]
    return jnp.concatenate([weights, colour], axis=-1)


class TransportRelighter(nn.Module):
  """Predicts I's light transport and composes Ĝ under T's estimated light (module doc).

  Attributes:
    form: one of FORMS, the form of "relit" (module docstring).
    light_hidden: hidden sizes of the light head's MLP (model.predictor_hidden).
    width, depth, bottleneck_convs, dtype, conv: as `relighter.Relighter`.
  """
  form: str = "absolute"
  light_hidden: Sequence[int] = (64,)
  width: float = 1.0
  depth: int = 3
  bottleneck_convs: int = 3
  dtype: Any = jnp.float32
  conv: unet.ModuleDef = nn.Conv

  def setup(self):
    if self.form not in FORMS:
      raise ValueError(f"model.transport_form={self.form!r} is not one of {FORMS}")
    self.encoder = unet.Encoder(self.width, self.depth, self.bottleneck_convs,
                                dtype=self.dtype, conv=self.conv)
    self.decoder = unet.Decoder(self.width, self.depth, self.bottleneck_convs,
                                out_channels=TRANSPORT_CHANNELS, linear_output=True,
                                dtype=self.dtype, conv=self.conv)
    self.light_head = LightHead(tuple(self.light_hidden), dtype=self.dtype)

  def _transport(self, latent, skips, *, train):
    """(M̂ [b, 8, S, S, 3], F̂ [b, S, S, 3]), linear, from one image's latent and skips."""
    raw = self.decoder(latent, skips, train=train)  # [b, S, S, 27] log transport
    linear = jnp.exp(jnp.minimum(raw, _LOG_MAX))
    batch, height, width, _ = linear.shape
    main = linear[..., :3 * lights.NUM_DIRECTIONS].reshape(
        batch, height, width, lights.NUM_DIRECTIONS, 3)
    return jnp.moveaxis(main, 3, 1), linear[..., 3 * lights.NUM_DIRECTIONS:]

  def _light(self, latent):
    light = self.light_head(latent)
    return {"light": light, "prediction": light_prediction(light)}

  def _compose(self, input_image, transport, fixed_light, target_coloured, input_coloured,
               form):
    if form == "ratio":
      return ratio_relight_coloured(input_image, transport, fixed_light, target_coloured,
                                    input_coloured)
    return compose_coloured_image(transport, fixed_light, target_coloured)

  def encode(self, image, *, train: bool):
    """Encodes one image: {"scene": None, "light" [b, 11], "prediction" [b, 2]}."""
    relighter_lib.check_image("image", image, self.depth)
    latent, _ = self.encoder(image, train=train)
    return {"scene": None, **self._light(latent)}

  def __call__(self, input_image, target_image, ground_truth=None, *, train: bool):
    """Relights input_image under target_image's estimated light (module docstring).

    Args:
      input_image: float [batch, S, S, 3] in [0, 1] (I).
      target_image: float [batch, S, S, 3] in [0, 1] (T).
      ground_truth: optional G, encoded too when given (its light estimate).
      train: BatchNorm mode.

    Returns:
      dict of outputs, see the module docstring.
    """
    images = relighter_lib.role_images(input_image, target_image, ground_truth, self.depth)
    batch = input_image.shape[0]
    # One encoder call over [I; T; (G)], as relighter.Relighter; only I's is decoded.
    latent, skips = self.encoder(jnp.concatenate(list(images.values()), axis=0), train=train)
    encoded = self._light(latent)
    part = lambda value, index: value[index * batch:(index + 1) * batch]
    outputs = {f"{role}_{key}": part(value, index)
               for index, role in enumerate(images) for key, value in encoded.items()}
    transport, fixed_light = self._transport(part(latent, 0), [part(skip, 0) for skip in skips],
                                             train=train)
    outputs.update(
        input_transport=transport, input_fixed_light=fixed_light,
        relit=self._compose(input_image, transport, fixed_light,
                            coloured_weights(outputs["target_light"]),
                            coloured_weights(outputs["input_light"]), self.form))
    return outputs

  def relight_with_light(self, input_image, target_light, *, train: bool = False):
    """Relights input_image under a light vector [batch, 11] (8 weights, RGB colour).

    The weights need not sum to 1 (their sum is the main light's intensity) nor be
    one-hot (a light between the 8 azimuths); the colour is linear RGB (`light_rgb` of a
    temperature has luminance 1). The case W_d = w_d c of `relight_with_coloured_weights`,
    in the model's form.
    """
    target_light = jnp.asarray(target_light, jnp.float32)
    if target_light.ndim != 2 or target_light.shape[-1] != LIGHT_SIZE:
      raise ValueError(f"TransportRelighter: target_light must be [batch, {LIGHT_SIZE}] "
                       f"(8 direction weights, RGB colour), got {target_light.shape}")
    return self.relight_with_coloured_weights(input_image, coloured_weights(target_light),
                                              train=train)

  def relight_with_coloured_weights(self, input_image, coloured, *, form=None,
                                    train: bool = False):
    """Relights input_image under coloured direction weights, composed once.

    W_d [3] is basis direction d's weight times its light's linear colour and intensity:
    several lights are the sum of their weights, a light between two azimuths splits its
    weight between them, and Ĝ_lin = Σ_d W_d ⊙ M̂_d + F̂ counts the
    fixed lights once however many main lights shine (module docstring).

    Args:
      input_image: float [batch, S, S, 3] in [0, 1].
      coloured: [batch, 8, 3] coloured weights, linear RGB (`coloured_weights` of a light
        vector; a temperature's `light_rgb` has luminance 1).
      form: one of FORMS; default the model's (`model.transport_form`). The ratio form
        composes L_I under I's own estimated light (the light head's).
      train: BatchNorm mode.

    Returns:
      float32 [batch, S, S, 3] in [0, 1].
    """
    form = self.form if form is None else form
    if form not in FORMS:
      raise ValueError(f"TransportRelighter: form={form!r} is not one of {FORMS}")
    relighter_lib.check_image("input_image", input_image, self.depth)
    coloured = jnp.asarray(coloured, jnp.float32)
    expected = (input_image.shape[0], lights.NUM_DIRECTIONS, 3)
    if coloured.shape != expected:
      raise ValueError(f"TransportRelighter: coloured weights must be {list(expected)} "
                       "(batch, 8 directions, linear RGB), got "
                       f"{list(coloured.shape)}")
    latent, skips = self.encoder(input_image, train=train)
    transport, fixed_light = self._transport(latent, skips, train=train)
    own = coloured_weights(self.light_head(latent)) if form == "ratio" else None
    return self._compose(input_image, transport, fixed_light, coloured, own, form)
