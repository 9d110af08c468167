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
  """Reads a light label "DIRECTION,KELVIN" such as "W,3500".

  Args:
    label: direction name (DIRECTIONS, case-insensitive) and colour temperature
      in kelvin, comma-separated.
    any_temperature: accept any temperature in LABEL_TEMPERATURE_RANGE_K (envmap
      models); otherwise only TEMPERATURES_K (the rendered ones).

  Returns:
    (temperature_k int, direction_index int).

  Raises:
    ValueError: a malformed label, naming what is expected.
  """
  expected = "expected DIRECTION,KELVIN such as W,3500"
  parts = [part.strip() for part in str(label).split(",")]
  if len(parts) != 2:
    raise ValueError(f"light {label!r}: {expected} (DIRECTION one of "
                     f"{', '.join(DIRECTIONS)})")
  direction, kelvin = parts
  try:
    direction_index = direction_index_of(direction)
  except ValueError:
    raise ValueError(f"light {label!r}: direction {direction!r} is not one of "
                     f"{', '.join(DIRECTIONS)}; {expected}") from None
  try:
    temperature = int(kelvin.upper().removesuffix("K"))
  except ValueError:
    raise ValueError(f"light {label!r}: temperature {kelvin!r} is not an integer number of "
                     f"kelvin; {expected}") from None
  low, high = LABEL_TEMPERATURE_RANGE_K
  if any_temperature and not low <= temperature <= high:
    raise ValueError(f"light {label!r}: {temperature} K is outside the training data's "
                     f"{low}-{high} K")
  if not any_temperature and temperature not in TEMPERATURES_K:
    raise ValueError(f"light {label!r}: this model relights by reference images, rendered "
                     f"at {', '.join(map(str, TEMPERATURES_K))} K only")
  return temperature, direction_index
