"""Illumination conventions shared by the renderer, the datasets, the envmaps and the losses.

VIDIT renders every scene under 40 illuminations: 5 colour temperatures x 8 light
directions (report §3.1). This module is the single place that fixes how those are
numbered, so that a record index in a dataset, a pixel column of a ground-truth envmap
and an angle fed to the direction loss Ld (report eq. 1) all agree.

Direction convention (documented once for the whole project):
  * The direction is the *azimuth of the main light relative to the camera*, seen from
    above, measured clockwise from the camera's viewing direction.
  * N = 0 deg: the light is straight ahead of the camera, behind the scene (back light).
    E = 90 deg: the light is on the right-hand side of the image.
    S = 180 deg: the light is behind the camera (front light).
    W = 270 deg: the light is on the left-hand side of the image.
  * Direction index k in 0..7 is the azimuth k * 45 deg, in the order
    N, NE, E, SE, S, SW, W, NW (the report lists the same set starting at NW).

Illumination (light) index: ``light = temperature_index * 8 + direction_index``, so
index 0 is (2500 K, N) and index 39 is (6500 K, NW).

Record index in a 40-illumination dataset (records stored in key order, scene-major):
``record = scene_index * 40 + light``.
"""

import dataclasses

import numpy as np

TEMPERATURES_K = (2500, 3500, 4500, 5500, 6500)
DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
DEGREES_PER_DIRECTION = 45.0
DIRECTION_AZIMUTHS_DEG = tuple(DEGREES_PER_DIRECTION * k for k in range(len(DIRECTIONS)))
NUM_TEMPERATURES = len(TEMPERATURES_K)
NUM_DIRECTIONS = len(DIRECTIONS)
NUM_LIGHTS = NUM_TEMPERATURES * NUM_DIRECTIONS  # 40
# Units of the generated envmaps (envmap.py) and of the envmap models' predictions:
# 0..255, the original code's. In the HSV form, 255 is also one turn of hue and full
# saturation. Le (a log-L2, report eq. 2) ranks envmaps by azimuth error on this scale.
ENVMAP_PEAK = 255.0


def light_index(temperature_index, direction_index):
  """Returns the illumination index of (temperature index, direction index)."""
  return np.asarray(temperature_index) * NUM_DIRECTIONS + np.asarray(direction_index)


def split_light_index(light):
  """Returns (temperature_index, direction_index) of an illumination index."""
  light = np.asarray(light)
  return light // NUM_DIRECTIONS, light % NUM_DIRECTIONS


def temperature_of(light):
  """Colour temperature in kelvin of an illumination index (array-friendly)."""
  return np.asarray(TEMPERATURES_K)[split_light_index(light)[0]]


def direction_of(light):
  """Direction index (0..7, N first) of an illumination index (array-friendly)."""
  return split_light_index(light)[1]


def azimuth_deg(direction_index):
  """Azimuth in degrees of a direction index (0 = N, clockwise, 45 deg steps)."""
  return DEGREES_PER_DIRECTION * np.asarray(direction_index, dtype=np.float64)


def temperature_index_of(temperature_k):
  """Index in TEMPERATURES_K of a temperature in kelvin; ValueError if not one of them."""
  try:
    return TEMPERATURES_K.index(int(temperature_k))
  except ValueError:
    raise ValueError(
        f"colour temperature {temperature_k!r} K is not one of {TEMPERATURES_K}") from None


def direction_index_of(name):
  """Index of a direction name such as 'NE'; ValueError naming the valid ones."""
  try:
    return DIRECTIONS.index(name.upper())
  except ValueError:
    raise ValueError(f"light direction {name!r} is not one of {DIRECTIONS}") from None


def record_index(scene_index, light):
  """Record index of (scene, illumination) in a scene-major 40-illumination dataset."""
  return np.asarray(scene_index) * NUM_LIGHTS + np.asarray(light)


def split_record_index(record):
  """Returns (scene_index, light) of a record index."""
  record = np.asarray(record)
  return record // NUM_LIGHTS, record % NUM_LIGHTS


# The temperatures a light label may ask for: the training data's range (a generated
# envmap's colours are interpolated between the five rendered ones, not extrapolated).
LABEL_TEMPERATURE_RANGE_K = (min(TEMPERATURES_K), max(TEMPERATURES_K))


def parse_light(label, *, any_temperature=True):
  """Reads a light label: exactly one of the labels' lights, such as "W,3500".

  A label is a `parse_lighting` light with a direction on a 45 deg step, an absolute
  temperature and intensity 1: what a model takes in one call (relight.py mixes labels
  for the other lights).

  Args:
    label: e.g. "W,3500", "ne, 6500", "S,4500K", "90,4000".
    any_temperature: accept any temperature in LABEL_TEMPERATURE_RANGE_K (envmap
      models); otherwise only TEMPERATURES_K (the rendered ones).

  Returns:
    (temperature_k, direction_index int); the temperature an int when it is one.

  Raises:
    ValueError: a malformed label, naming what is expected.
  """
  lighting = parse_lighting(label)
  if lighting.label is None:
    raise ValueError(f"light {label!r}: not a light label; expected DIRECTION,KELVIN such as "
                     f"W,3500 (DIRECTION one of {', '.join(DIRECTIONS)})")
  temperature, direction_index = lighting.label
  if not any_temperature and temperature not in TEMPERATURES_K:
    raise ValueError(f"light {label!r}: this model relights by reference images, rendered "
                     f"at {', '.join(map(str, TEMPERATURES_K))} K only")
  if temperature == int(temperature):
    temperature = int(temperature)
  return temperature, direction_index


# The light syntax of --light, relight.relight(light=...) and the app: the one description,
# shown by `relight --help` and docs/lights.md.
LIGHT_SYNTAX = """\
A light is comma-separated fields, in any order:
  direction    N NE E SE S SW W NW, or an azimuth in degrees from 0 to 360 (clockwise
               seen from above: 0 behind the scene, 90 the image's right, 180 behind the
               camera, 270 the image's left), e.g. 200 or 22.5
  temperature  kelvin from 2500 to 6500: 4200K, or a bare number after the direction
               (W,3500); relative to the photo's own light: +800K (cooler) or -800K
               (warmer)
  intensity    x1.5 (default x1)
A field left out keeps the photo's own light as the model estimates it: W relights
from the west in the photo's colour, 4200K keeps its direction in another colour.
Several lights joined by ';' shine together (quote it in a shell): "90,3500;270,6500".
Examples: W,3500  200,4200  200,4200,x1.5  W  4200K  +800K  "90,3500;270,6500,x0.5"\
"""
LIGHT_EXPECTED = ("expected DIRECTION[,KELVIN][,xINTENSITY] such as W,3500 or 200,4200,x1.5 "
                  "(relight --help)")
MAX_LIGHTS = 8
MAX_INTENSITY = 10.0
# A relative temperature farther than the data's range spans is certainly a typo.
MAX_TEMPERATURE_SHIFT_K = LABEL_TEMPERATURE_RANGE_K[1] - LABEL_TEMPERATURE_RANGE_K[0]


@dataclasses.dataclass(frozen=True)
class LightTerm:
  """One light of a `Lighting`; a field that is None keeps the input image's own.

  Attributes:
    azimuth_deg: in [0, 360) (this module's direction convention), or None.
    temperature_k: absolute colour temperature, or None (the input's, plus the shift).
    temperature_shift_k: added to the input's estimated temperature when
      `temperature_k` is None.
    intensity: the light's brightness relative to the data's main light.
    direction_name: the name the direction was given by ("W"), "" for an azimuth.
  """

  azimuth_deg: float | None = None
  temperature_k: float | None = None
  temperature_shift_k: float = 0.0
  intensity: float = 1.0
  direction_name: str = ""

  @property
  def needs_estimate(self):
    """Whether it keeps a part of the input's own light (which the model must estimate)."""
    return self.azimuth_deg is None or self.temperature_k is None

  @property
  def text(self):
    """Canonical form: 'W,3500', '200,4200,x1.5', '4200K', '+800K'."""
    fields = []
    if self.azimuth_deg is not None:
      fields.append(self.direction_name or f"{self.azimuth_deg:g}")
    if self.temperature_k is not None:
      fields.append(f"{self.temperature_k:g}" + ("" if fields else "K"))
    elif self.temperature_shift_k:
      fields.append(f"{self.temperature_shift_k:+g}K")
    if self.intensity != 1.0 or not fields:
      fields.append(f"x{self.intensity:g}")
    return ",".join(fields)


@dataclasses.dataclass(frozen=True)
class Lighting:
  """A parsed light: one or more `LightTerm`s that shine together."""

  terms: tuple[LightTerm, ...]

  @property
  def text(self):
    return ";".join(term.text for term in self.terms)

  @property
  def stem(self):
    """Its name in batch output file names: 'W_3500', '90_3500+270_6500'."""
    return self.text.replace(",", "_").replace(";", "+")

  @property
  def needs_estimate(self):
    return any(term.needs_estimate for term in self.terms)

  @property
  def label(self):
    """(temperature_k, direction_index) when it is exactly one of the labels' lights
    (a direction on a 45 deg step, an absolute temperature, intensity 1), else None."""
    if len(self.terms) != 1:
      return None
    term = self.terms[0]
    if term.needs_estimate or term.intensity != 1.0:
      return None
    steps = term.azimuth_deg / DEGREES_PER_DIRECTION
    if steps != int(steps):
      return None
    return term.temperature_k, int(steps) % NUM_DIRECTIONS


def _number(field, text, what):
  try:
    value = float(field)
  except ValueError:
    raise ValueError(f"light {text!r}: {what} {field!r} is not a number") from None
  if not np.isfinite(value):
    raise ValueError(f"light {text!r}: {what} {field!r} is not a finite number")
  return value


def _check_kelvin(kelvin, text):
  low, high = LABEL_TEMPERATURE_RANGE_K
  if not low <= kelvin <= high:
    raise ValueError(f"light {text!r}: {kelvin:g} K is outside the training data's "
                     f"{low}-{high} K")
  return kelvin


def _parse_term(term, text):
  """One light's fields (see LIGHT_SYNTAX) -> LightTerm; ValueError naming the field."""
  fields = [field.strip() for field in term.split(",")]
  if not any(fields):
    raise ValueError(f"light {text!r}: an empty light (between ';'); {LIGHT_EXPECTED}")
  if not all(fields):
    raise ValueError(f"light {text!r}: an empty field (between ','); {LIGHT_EXPECTED}")
  values = {}

  def put(kind, value, field):
    if kind in values:
      raise ValueError(f"light {text!r}: two {kind}s ({values[kind][1]!r} and {field!r}) "
                       "in one light; join several lights with ';'")
    values[kind] = (value, field)

  for field in fields:
    upper = field.upper()
    if upper in DIRECTIONS:
      put("direction", (DIRECTION_AZIMUTHS_DEG[DIRECTIONS.index(upper)], upper), field)
    elif upper.startswith(("X", "*")) and (field[1:2].isdigit() or field[1:2] == "."):
      intensity = _number(field[1:], text, "intensity")
      if not 0.0 < intensity <= MAX_INTENSITY:
        raise ValueError(f"light {text!r}: intensity {field!r} is outside (0, "
                         f"{MAX_INTENSITY:g}]")
      put("intensity", intensity, field)
    elif upper.startswith(("+", "-")):
      shift = _number(upper.removesuffix("K"), text, "temperature change")
      if abs(shift) > MAX_TEMPERATURE_SHIFT_K:
        raise ValueError(f"light {text!r}: a change of {field} is more than the training "
                         f"data's range spans ({MAX_TEMPERATURE_SHIFT_K} K)")
      put("temperature", ("shift", shift), field)
    elif upper.endswith("K") or ("direction" in values and "temperature" not in values):
      kelvin = _number(field.removesuffix("K").removesuffix("k"), text, "temperature")
      put("temperature", ("absolute", _check_kelvin(kelvin, text)), field)
    elif "direction" not in values and "temperature" not in values:
      if not field[:1].isdigit() and not field.startswith("."):
        raise ValueError(f"light {text!r}: direction {field!r} is not one of "
                         f"{', '.join(DIRECTIONS)} nor an azimuth in degrees; "
                         f"{LIGHT_EXPECTED}")
      azimuth = _number(field, text, "azimuth")
      if not 0.0 <= azimuth <= 360.0:
        raise ValueError(f"light {text!r}: azimuth {field} is outside 0-360 degrees (a "
                         f"temperature alone takes a K: {field}K)")
      put("direction", (azimuth % 360.0, ""), field)
    else:
      raise ValueError(f"light {text!r}: cannot read {field!r}; {LIGHT_EXPECTED}")
  azimuth, name = values.get("direction", ((None, ""), None))[0]
  kind, kelvin = values.get("temperature", ((None, None), None))[0]
  return LightTerm(azimuth_deg=azimuth,
                   temperature_k=kelvin if kind == "absolute" else None,
                   temperature_shift_k=kelvin if kind == "shift" else 0.0,
                   intensity=values.get("intensity", (1.0, None))[0], direction_name=name)


def parse_lighting(text):
  """Reads a light in the syntax of LIGHT_SYNTAX: "W,3500", "200,4200,x1.5", "+800K",
  "90,3500;270,6500".

  Args:
    text: the light, or a `Lighting` (returned as is).

  Returns:
    A `Lighting`.

  Raises:
    ValueError: a malformed light, naming the field and what is expected.
  """
  if isinstance(text, Lighting):
    return text
  text = str(text)
  parts = text.split(";")
  if not text.strip() or len(parts) > MAX_LIGHTS:
    raise ValueError(f"light {text!r}: expected 1 to {MAX_LIGHTS} lights joined by ';', "
                     f"each {LIGHT_EXPECTED.removeprefix('expected ')}")
  return Lighting(tuple(_parse_term(part, text) for part in parts))
