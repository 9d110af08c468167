"""Lights the labels do not name, made by mixing a label model's outputs in linear light.

The models relight by one of the data's lights (8 directions x the rendered temperatures,
data/lights.py). Light adds linearly: the renderer composes every image as
I(t, d) = sRGB(clip(exposure * (c_t * M_d + F))), M_d the white main light from direction
d, F the fixed lights (render/mitsuba_scene.compose). So a light between two directions, or
between two temperatures, or several lights at once, is approximated as light stages do
it: the model's outputs for the neighbouring labels, decoded to linear light, weighted and
summed, encoded again.

  * Direction: an azimuth a between directions k and k + 1 weighs them (1 - u, u), u the
    fraction of the 45 deg step (M_a ~ (1 - u) M_k + u M_k+1: a blend, not a light moved;
    a hard shadow becomes two half shadows).
  * Temperature: an envmap model takes any temperature of the data's range itself (a
    generated envmap of that colour); a model reading reference images of the rendered
    temperatures mixes the two around it, weighted so that the mixed light colour
    (the renderer's linear colours c_t) is nearest the temperature's.
  * Intensity s and several lights: each light's weights are multiplied by its s and the
    lights summed. Every output also holds the fixed lights F, so F is counted once only
    when the weights sum to 1; at x2, or with two lights, F is doubled too. The sum is
    clipped to [0, 1] in linear light, as the renderer clips.
  * A field left out (lights.LightTerm) is read from the model's own estimate of the
    input's light (`InferenceModel.estimate_light_fn`).

For the label models this is an approximation of what they were trained to do. A model
that composes light itself (its spec's `light_composition`: the transport model, which
predicts the scene's M̂_d and F̂) makes every light exactly instead, in one composition
(`InferenceModel.relight_coloured_fn`): each light becomes coloured direction weights
W [8, 3] (its direction split between the two basis directions around it as above, times
the renderer's linear colour of its temperature and its intensity), the lights' weights
are summed, and Ĝ_lin = Σ_d W_d ⊙ M̂_d + F̂ counts F once whatever the number of lights
or their intensity, and clips only the sum. A field left out keeps that part of the
model's own estimate of the input's light (`InferenceModel.estimate_coloured_fn`): a
temperature alone keeps its 8 direction weights, a direction alone its colour.
"""

import dataclasses
import functools

import numpy as np

from relight_jax.data import lights
from relight_jax.inference import guided_upsample


class LightMixError(ValueError):
  """A light this model cannot make (the message names the light and the reason)."""


@dataclasses.dataclass(frozen=True)
class Light:
  """A light with every field known: one term of a lighting, the input's estimate read."""

  azimuth_deg: float
  temperature_k: float
  intensity: float = 1.0


def resolve(lighting, estimate=None, *, white=False):
  """The `Light`s of a lighting, its left-out fields read from the input's estimate.

  Args:
    lighting: a `lights.Lighting` or its text.
    estimate: (azimuth deg, kelvin) of the input's light; needed only where a field is
      left out.
    white: the estimate's kelvin is the renderer's white taken for the input's light
      (LightMixer), not a measurement (it names the reason in an error).

  Returns:
    A tuple of `Light`.

  Raises:
    LightMixError: a relative temperature ends outside the data's range, or a field is
      left out and there is no estimate.
  """
  lighting = lights.parse_lighting(lighting)
  resolved = []
  for term in lighting.terms:
    if term.needs_estimate and estimate is None:
      raise LightMixError(f"light {term.text!r} keeps part of the input's own light, and "
                          "this model cannot estimate it; give a direction and a temperature "
                          "such as W,3500")
    azimuth = term.azimuth_deg if term.azimuth_deg is not None else float(estimate[0])
    temperature = term.temperature_k
    if temperature is None:
      temperature = float(estimate[1]) + term.temperature_shift_k
      low, high = lights.LABEL_TEMPERATURE_RANGE_K
      if not low <= temperature <= high and white:
        raise LightMixError(
            f"light {term.text!r}: in the ratio form the input's own light counts as the "
            f"renderer's white, {float(estimate[1]):.0f} K, and {temperature:.0f} K is "
            f"outside the training data's {low}-{high} K: make it warmer (a negative "
            "shift such as -800K), or count from the model's estimate with "
            "form='direct' (--form=direct)")
      if not low <= temperature <= high:
        raise LightMixError(f"light {term.text!r}: the input's light is about "
                            f"{float(estimate[1]):.0f} K (the model's estimate), and "
                            f"{temperature:.0f} K is outside the training data's {low}-{high} K")
    resolved.append(Light(float(azimuth) % 360.0, float(temperature), term.intensity))
  return tuple(resolved)


def direction_weights(azimuth_deg):
  """[(direction_index, weight)] of the one or two directions around an azimuth."""
  steps = (float(azimuth_deg) % 360.0) / lights.DEGREES_PER_DIRECTION
  below = int(np.floor(steps))
  fraction = steps - below
  pairs = [(below % lights.NUM_DIRECTIONS, 1.0 - fraction),
           ((below + 1) % lights.NUM_DIRECTIONS, fraction)]
  return [(index, weight) for index, weight in pairs if weight > 0.0]


@functools.cache
def _linear_colour(temperature_k):
  # Imported here: colour-science is slow to import, and labels on a rendered temperature
  # never need it.
  from relight_jax.render import illumination  # pylint: disable=g-import-not-at-top
  return illumination.light_rgb(temperature_k)


def temperature_weights(temperature_k):
  """[(rendered kelvin, weight)] of the one or two rendered temperatures around one.

  The weight v of the upper one minimises |(1 - v) c_low + v c_high - c_t| over the
  renderer's linear light colours (luminance 1): the mix whose colour is nearest.
  """
  temperature_k = float(temperature_k)
  rendered = lights.TEMPERATURES_K
  if temperature_k in rendered:
    return [(int(temperature_k), 1.0)]
  low, high = lights.LABEL_TEMPERATURE_RANGE_K
  if not low <= temperature_k <= high:
    raise LightMixError(f"{temperature_k:g} K is outside the training data's {low}-{high} K")
  upper = int(np.searchsorted(rendered, temperature_k))
  t_low, t_high = rendered[upper - 1], rendered[upper]
  c_low, c_high, c_t = (_linear_colour(t) for t in (t_low, t_high, temperature_k))
  step = c_high - c_low
  weight = float(np.clip(np.dot(c_t - c_low, step) / np.dot(step, step), 0.0, 1.0))
  return [(t, w) for t, w in ((t_low, 1.0 - weight), (t_high, weight)) if w > 0.0]


def label_weights(resolved, *, any_temperature):
  """{(kelvin, direction_index): weight}: the labels whose outputs make these lights.

  Args:
    resolved: `Light`s (resolve()).
    any_temperature: the model takes any temperature of the range itself
      (`InferenceModel.any_label_temperature`); otherwise rendered ones are mixed.
  """
  weights = {}
  for light in resolved:
    if any_temperature:
      temperatures = [(light.temperature_k, 1.0)]
    else:
      temperatures = temperature_weights(light.temperature_k)
    for kelvin, temperature_weight in temperatures:
      for direction, direction_weight in direction_weights(light.azimuth_deg):
        key = (float(kelvin), direction)
        weights[key] = (weights.get(key, 0.0)
                        + light.intensity * temperature_weight * direction_weight)
  return weights


def mix(outputs, weights):
  """The weighted sum of label outputs in linear light, sRGB-encoded again.

  Args:
    outputs: {label: sRGB float [..., 3] in [0, 1]}, a key for each of `weights`.
    weights: {label: weight} (label_weights()).

  Returns:
    float32 [..., 3] in [0, 1]; one label of weight 1 is returned as it is (bit for bit).
  """
  if len(weights) == 1 and next(iter(weights.values())) == 1.0:
    return np.asarray(outputs[next(iter(weights))], np.float32)
  linear = sum(weight * guided_upsample.srgb_to_linear(outputs[label])
               for label, weight in weights.items())
  return guided_upsample.linear_to_srgb(linear)  # clipped to [0, 1], as the renderer clips


def coloured_weights(lighting, estimate=None, own_light=None):
  """The coloured direction weights [8, 3] of a lighting, for a model composing light.

  Each light's direction weights (`direction_weights` of its azimuth: one basis direction,
  or the linear split between the two around it) times its linear colour (the renderer's,
  `illumination.light_rgb` of its temperature) times its intensity; the lights summed.

  Args:
    lighting: a `lights.Lighting` or its text.
    estimate: (azimuth deg, kelvin) of the input's light, as `resolve` takes it: a
      relative temperature counts from its kelvin.
    own_light: (direction weights [8], linear colour [3]) of the input's light as the
      model estimates it: a light without a direction keeps these weights (not only their
      mean azimuth), one without a temperature keeps this colour.

  Returns:
    float32 [8, 3].

  Raises:
    LightMixError: as `resolve`, or a field left out and no `own_light`.
  """
  lighting = lights.parse_lighting(lighting)
  resolved = resolve(lighting, estimate)
  if lighting.needs_estimate and own_light is None:
    raise LightMixError(f"light {lighting.text!r} keeps part of the input's own light, and "
                        "this model cannot estimate it; give a direction and a temperature "
                        "such as W,3500")
  total = np.zeros((lights.NUM_DIRECTIONS, 3))
  for term, light in zip(lighting.terms, resolved, strict=True):
    if term.azimuth_deg is None:
      directions = np.asarray(own_light[0], np.float64)
    else:
      directions = np.zeros(lights.NUM_DIRECTIONS)
      for index, weight in direction_weights(light.azimuth_deg):
        directions[index] += weight
    if term.temperature_k is None and not term.temperature_shift_k:
      colour = np.asarray(own_light[1], np.float64)
    else:
      colour = np.asarray(_linear_colour(light.temperature_k), np.float64)
    total += light.intensity * directions[:, None] * colour[None, :]
  return total.astype(np.float32)


def coloured_picture(coloured):
  """A picture of coloured direction weights [8, 3], [16, 32, 3] in [0, 1].

  Each direction's light is drawn where a generated envmap draws that direction (in the
  original's layout, as `envmap_picture`), in its colour (largest channel 1, sRGB) at
  its luminance: a label's light looks like its envmap.
  """
  # Imported here: relighting by a target image never draws a light.
  from relight_jax.data import envmap  # pylint: disable=g-import-not-at-top
  picture = np.zeros((envmap.ENVMAP_HEIGHT, envmap.ENVMAP_WIDTH, 3))
  for direction, weight in enumerate(np.asarray(coloured, np.float64)):
    peak = weight.max()
    if peak <= 0.0:
      continue
    colour = guided_upsample.linear_to_srgb(weight / peak)
    bump = envmap.brightness(direction, envmap_convention="original")
    # Y of the linear weights (the renderer's light colours have Y = 1).
    picture += guided_upsample.luminance(weight) * bump[..., None] * colour
  return np.clip(picture / envmap.ENVMAP_PEAK, 0.0, 1.0).astype(np.float32)


def envmap_picture(weights, envmap_convention):
  """A picture of the mixed light: the labels' generated envmaps with the same weights,
  [16, 32, 3] in [0, 1] (what the side-by-side image shows as the target)."""
  # Imported here: relighting by a target image never draws a light.
  from relight_jax.data import envmap  # pylint: disable=g-import-not-at-top
  picture = sum(weight * envmap.envmap_rgb(kelvin, direction, envmap_convention)
                for (kelvin, direction), weight in weights.items())
  return np.clip(picture / envmap.ENVMAP_PEAK, 0.0, 1.0).astype(np.float32)


class LightMixer:
  """Relights one working-resolution input by lights, each label's output computed once.

  A sweep over azimuths at one temperature needs only the 8 directions' outputs. A model
  that composes light itself (`composes`) is relit once per light, exactly (module
  docstring).
  """

  def __init__(self, relighter, input_low, *, white=False, ratio=False):
    """
    Args:
      relighter: a `trained_model.InferenceModel` that relights by light labels.
      input_low: [S, S, 3] float32 in [0, 1], the input at the working resolution.
      white: the input's own light is taken as white (the ratio form, relight.py): a
        light that keeps the input's colour is the renderer's white, and a relative
        temperature counts from it. A model composing light keeps its own estimate.
      ratio: relight.py's ratio form is asked: a model composing light relights in its
        own ratio form (the input times the change between the two composed lights);
        for a label model the caller divides by the input's own light (`own_lighting`).
    """
    if relighter.relight_light_fn is None:
      raise LightMixError(f"{relighter.description} cannot relight by a light (an exported "
                          "function takes two images); pass a target image, or use a "
                          "workdir or the bundled model")
    self.relighter = relighter
    self.input_low = np.asarray(input_low, np.float32)
    self._outputs = {}
    self._estimate = None
    self._white = white
    self._form = "ratio" if ratio else "absolute"
    self._own_light = None

  @property
  def composes(self):
    """Whether the model composes every light itself (relight() is then in the form
    asked, ratio included)."""
    return self.relighter.relight_coloured_fn is not None

  def estimate(self):
    """(azimuth deg, kelvin) of the input's light as the model estimates it, or None."""
    if self._estimate is None and self.relighter.estimate_light_fn is not None:
      # A model composing light reads its own estimate in both forms: its ratio form
      # divides by the light it composes from that estimate.
      azimuths, kelvins = self.relighter.estimate_light_fn(
          self.input_low[None], white=self._white and not self.composes)
      self._estimate = (float(np.asarray(azimuths)[0]), float(np.asarray(kelvins)[0]))
    return self._estimate

  def own_light(self):
    """(direction weights [8], linear colour [3]) of the input's light as a model
    composing light estimates it."""
    if self._own_light is None:
      weights, colour = self.relighter.estimate_coloured_fn(self.input_low[None])
      self._own_light = (np.asarray(weights)[0], np.asarray(colour)[0])
    return self._own_light

  def own_lighting(self):
    """The input's own light as the model estimates it, as a `lights.Lighting`."""
    if self.composes:
      return lights.parse_lighting("x1")  # every field kept: the estimate itself, exactly
    azimuth, kelvin = self.estimate()
    return lights.parse_lighting(f"{azimuth % 360.0:.6g},{kelvin:.6g}K")

  def coloured_weights(self, lighting):
    """The coloured direction weights [8, 3] of a lighting for a model composing light."""
    lighting = lights.parse_lighting(lighting)
    if not lighting.needs_estimate:
      return coloured_weights(lighting)
    return coloured_weights(lighting, self.estimate(), self.own_light())

  def weights(self, lighting):
    """{(kelvin, direction_index): weight} of a lighting for this input and model."""
    lighting = lights.parse_lighting(lighting)
    estimate = self.estimate() if lighting.needs_estimate else None
    return label_weights(resolve(lighting, estimate, white=self._white),
                         any_temperature=self.relighter.any_label_temperature)

  def output(self, kelvin, direction_index):
    """The model's output [S, S, 3] for one label (cached)."""
    key = (float(kelvin), int(direction_index))
    if key not in self._outputs:
      temperature = int(kelvin) if float(kelvin) == int(kelvin) else float(kelvin)
      relit = self.relighter.relight_light_fn(self.input_low[None], temperature,
                                              int(direction_index))
      self._outputs[key] = np.asarray(relit, np.float32)[0]
    return self._outputs[key]

  def relight(self, lighting):
    """(relit [S, S, 3], picture of the light [16, 32, 3]) under a lighting.

    For a model composing light, one composition of the lighting's coloured weights in
    the form asked (`ratio`); for a label model, the mix of its labels' outputs.

    Raises:
      LightMixError: a light this model cannot make.
      ValueError: a malformed light (lights.parse_lighting).
    """
    if self.composes:
      coloured = self.coloured_weights(lighting)
      relit = self.relighter.relight_coloured_fn(self.input_low[None], coloured[None],
                                                 self._form)
      return np.asarray(relit, np.float32)[0], coloured_picture(coloured)
    weights = self.weights(lighting)
    outputs = {label: self.output(*label) for label in weights}
    # The picture is for people: drawn in the original's layout (N in the middle, a light
    # from the image's left on the left), whichever layout the model learned.
    return mix(outputs, weights), envmap_picture(weights, "original")
