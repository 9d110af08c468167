"""Generated ground-truth environment maps from a light's (temperature, direction) (report §3.4).

VIDIT has no environment maps, so the report generated "ground-truth" 16x32 lat-long
envmaps from the known light: the colour from the colour temperature, the brightness a
Gaussian bump with σ = 10% of the map height centred on the horizon at the light's
azimuth. The envmap models learn to predict these in their latent (`models/latent.py`);
`objectives.py` compares them with Le (eq. 2).

A model learns the maps of one convention (`CONVENTIONS`, `model.envmap_convention`):
  * "original", the original code's maps (utils/envmap.py): colours from its table of
    (hue, saturation) per temperature (`ORIGINAL_HSV`, hue a fraction of a turn as
    EnvmapGeneration.ipynb made it with colorsys; linearly interpolated for label
    temperatures between the five); N centred on pixel (H/2, W/2) = (8, 16) and each
    direction rolled by its azimuth (E at column 24, S at 0, W at 8: W left of the centre,
    as a light from the image's left); brightness truncated to integers like its int().
  * "v1", this project's first maps, which older workdirs and the bundled model learned:
    CCT -> CIE xy on the Planckian locus (`CCT_to_xy`, method "Kang 2002"; the default
    "CIE Illuminant D Series" is defined only from 4000 K and VIDIT goes down to 2500 K)
    -> XYZ with Y = 1 -> sRGB (gamma-encoded, like the images), negatives clipped,
    divided by the largest channel; N at column 0 (E 8, S 16, W 24); the bump centred
    between rows 7 and 8 ((height - 1) / 2); float brightness.
The renderer's lights keep colour-science's linear colours (render/illumination.py): a
renderer needs physical light colours, an envmap is a label.

Shared by both (the direction convention is `lights.py`'s, the one for the whole project):
  * Column: the map's horizontal axis is azimuth, growing with the column, wrapping around.
  * Brightness: PEAK * exp(-r / (2σ²)), σ = 0.1 * height = 1.6 px, r the wrapped pixel
    distance, PEAK = 255: the original code's blob and units (`utils/envmap.py`). The
    report calls it a Gaussian, but with a true Gaussian exp(-r² / 2σ²) on [0, 1] maps
    two lights 45 deg apart barely overlap, and under Le (a log-L2) predicting an all-zero
    map then costs less than a map 45 deg off: the light latent is barely supervised.
    On the original's scale Le ranks maps by azimuth error and costs the zero map most
    (tests/test_losses.py), and its weight against the reconstruction loss is the
    original's.
  * RGB form [16, 32, 3] = colour * brightness; HSV form [2 + 16*32] = (hue, saturation,
    the 512 row-major values = brightness * max channel), hue and saturation in the same
    0..255 units as the values, as the original stored them (255 = one turn of hue, or
    full saturation). The weighted pooling that predicts all 514 starts on that scale;
    with saturation in [0, 1] its MSE would start ~100x the LPIPS reconstruction term.
    `losses.hsv_envmap_losses` takes the hue's cosine over a period of 255 and the
    saturation's MSE in units of 255 (the report's terms; the original's code instead
    took one log-L2 of the HSV map converted to RGB).

Maps are cached per (temperature, direction, convention): the input pipeline asks for
every triplet.
"""

import colorsys
import dataclasses
import functools
import os
from collections.abc import Callable

import numpy as np

from relight_jax.common import image_io
from relight_jax.data import lights

ENVMAP_HEIGHT = 16
ENVMAP_WIDTH = 32
# Report §3.4: σ equal to 10% of the environment map height.
SIGMA_FRACTION_OF_HEIGHT = 0.1
ENVMAP_PEAK = lights.ENVMAP_PEAK  # 0..255, the original's units (see lights.py)
# The renderer's white: its lights are linear sRGB colours (D65 white, about 6504 K),
# so a white object under a 6500 K light renders white; warmer lights render it orange.
NEUTRAL_K = 6500
# The original's light colours (utils/envmap.py, COLORS_HSV): (hue, saturation) in 0..255
# units, hue 255 = one turn (EnvmapGeneration.ipynb made them with colorsys), value 255.
ORIGINAL_HSV = {2500: (14, 231), 3500: (19, 192), 4500: (22, 132), 5500: (24, 65),
                6500: (54, 0)}


# colour-science's sRGB (IEC 61966-2-1) XYZ -> linear RGB matrix, D65 white: the light's
# white point is the colourspace's, so `colour.XYZ_to_sRGB` adapts nothing.
_XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986],
                         [-0.9689, 1.8758, 0.0415],
                         [0.0557, -0.2040, 1.0570]])


def _kang_2002_xy(temperature_k: float) -> tuple[float, float]:
  """CIE xy of a colour temperature on the Planckian locus (Kang et al. 2002, the cubic
  splines of `colour.temperature.CCT_to_xy_Kang2002`).

  Written out instead of calling colour-science: its import (scipy, matplotlib) would be
  most of a light label's relighting; tests/test_envmap.py checks it against colour.
  """
  t = float(temperature_k)
  if t <= 4000:
    x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
  else:
    x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.24039
  if t <= 2222:
    y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
  elif t <= 4000:
    y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
  else:
    y = 3.0817580 * x**3 - 5.8733867 * x**2 + 3.75112997 * x - 0.37001483
  return x, y


@functools.cache
def _light_rgb(temperature_k: float) -> tuple[float, float, float]:
  x, y = _kang_2002_xy(temperature_k)
  linear = _XYZ_TO_SRGB @ np.array([x / y, 1.0, (1.0 - x - y) / y])  # XYZ with Y = 1
  # The sRGB curve on the scaled values, as colour.XYZ_to_sRGB encodes (negatives clip).
  rgb = np.where(linear <= 0.0031308, 12.92 * linear,
                 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055)
  rgb = np.clip(rgb, 0.0, None)
  return tuple(float(c) for c in rgb / rgb.max())


def colour_science_rgb(temperature_k: float) -> np.ndarray:
  """sRGB colour of a light of a colour temperature, largest channel 1 (colour-science).

  Args:
    temperature_k: colour temperature in kelvin, in [1667, 25000] (Kang 2002's range).

  Returns:
    np.float32 [3].
  """
  if not 1667 <= float(temperature_k) <= 25000:
    raise ValueError(f"colour temperature {temperature_k!r} K is outside [1667, 25000] K")
  return np.asarray(_light_rgb(float(temperature_k)), np.float32)


def _colour_science_hs(temperature_k: float) -> tuple[float, float]:
  return colorsys.rgb_to_hsv(*colour_science_rgb(temperature_k).astype(np.float64))[:2]


def _original_hs(temperature_k: float) -> tuple[float, float]:
  """The original's table, linearly interpolated between its five temperatures (labels)."""
  known = sorted(ORIGINAL_HSV)
  if not known[0] <= float(temperature_k) <= known[-1]:
    raise ValueError(f"colour temperature {temperature_k!r} K is outside the original's "
                     f"table, [{known[0]}, {known[-1]}] K")
  return tuple(float(np.interp(float(temperature_k), known,
                               [ORIGINAL_HSV[t][k] for t in known])) / ENVMAP_PEAK
               for k in range(2))


def _rgb_of_hs(hs: tuple[float, float]) -> np.ndarray:
  return np.asarray(colorsys.hsv_to_rgb(hs[0], hs[1], 1.0), np.float32)


@dataclasses.dataclass(frozen=True)
class Convention:
  """How a light becomes its generated envmap: colours and the blob's layout.

  Attributes:
    description: in words (docs, logs).
    rgb: temperature (K) -> np.float32 [3] colour, largest channel 1.
    hue_saturation: temperature (K) -> (hue in turns, saturation), both in [0, 1].
    north_column: column of azimuth 0 (N) as a fraction of the width; azimuth increases
      with the column (clockwise seen from above, lights.py), wrapping around.
    centre_row: height -> the row of the blob's centre (the horizon).
    truncate: brightness rounded down to integers of 0..255, as the original's `int()`.
  """

  description: str
  rgb: Callable[[float], np.ndarray]
  hue_saturation: Callable[[float], tuple[float, float]]
  north_column: float
  centre_row: Callable[[int], float]
  truncate: bool


# model.envmap_convention -> its definition. 'original' is the original code's maps
# (utils/envmap.py): its colour table, the blob on pixel (H/2, W/2) for N and rolled by
# its ROTATIONS (E right of centre, W left of it, as the light is seen in the image),
# brightness int(255 * fraction). 'v1' is our first maps (colour-science colours, N at
# column 0, the blob between rows 7 and 8, float brightness), which older workdirs and
# the bundled model were trained on.
CONVENTIONS: dict[str, Convention] = {
    "original": Convention(
        description="the original code's table colours and blob layout (N at W/2, row H/2)",
        rgb=lambda temperature_k: _rgb_of_hs(_original_hs(temperature_k)),
        hue_saturation=_original_hs, north_column=0.5,
        centre_row=lambda height: height / 2.0, truncate=True),
    "v1": Convention(
        description="colour-science colours, N at column 0, row (H - 1) / 2, float values",
        rgb=colour_science_rgb, hue_saturation=_colour_science_hs, north_column=0.0,
        centre_row=lambda height: (height - 1) / 2.0, truncate=False),
}
DEFAULT_CONVENTION = "original"


def convention(name: str) -> Convention:
  """The definition of a convention name; ValueError naming the valid ones otherwise."""
  if name not in CONVENTIONS:
    raise ValueError(f"envmap convention {name!r} is not one of {sorted(CONVENTIONS)}")
  return CONVENTIONS[name]


def light_rgb(temperature_k: float, envmap_convention: str = DEFAULT_CONVENTION) -> np.ndarray:
  """The colour of a light in an envmap convention, np.float32 [3], largest channel 1.

  Args:
    temperature_k: colour temperature in kelvin.
    envmap_convention: a key of CONVENTIONS.
  """
  return np.asarray(convention(envmap_convention).rgb(float(temperature_k)), np.float32)


def palette(envmap_convention: str = DEFAULT_CONVENTION) -> tuple[np.ndarray, np.ndarray]:
  """The dataset's light colours in a convention: (RGB [5, 3], kelvin [5]), float32.

  An envmap's colour is read as the temperature of the nearest
  (`metrics.envmap_temperature_k`).
  """
  return (np.stack([light_rgb(t, envmap_convention) for t in lights.TEMPERATURES_K]),
          np.asarray(lights.TEMPERATURES_K, np.float32))


def brightness(direction_index: int, height: int = ENVMAP_HEIGHT, width: int = ENVMAP_WIDTH,
               envmap_convention: str = DEFAULT_CONVENTION) -> np.ndarray:
  """Brightness of a light direction (report §3.4), float64 [height, width], peak ENVMAP_PEAK.

  PEAK * exp(-r / (2σ²)) with r the distance in pixels to the light's position on the
  horizon, wrapped horizontally (see the module docstring for why not r²); where the
  convention truncates, rounded down to integers.

  Args:
    direction_index: 0..7 (N, NE, ..., NW; `lights.DIRECTIONS`).
    height, width: map size.
    envmap_convention: a key of CONVENTIONS.
  """
  if not 0 <= int(direction_index) < lights.NUM_DIRECTIONS:
    raise ValueError(f"direction index {direction_index!r} is not in "
                     f"0..{lights.NUM_DIRECTIONS - 1} ({lights.DIRECTIONS})")
  definition = convention(envmap_convention)
  sigma = SIGMA_FRACTION_OF_HEIGHT * height
  column = (definition.north_column
            + float(lights.azimuth_deg(direction_index)) / 360.0) * width % width
  row = definition.centre_row(height)
  dx = np.abs(np.arange(width) - column)
  dx = np.minimum(dx, width - dx)  # The map wraps around horizontally (azimuth).
  dy = np.arange(height) - row
  distance = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
  bump = ENVMAP_PEAK * np.exp(-distance / (2.0 * sigma**2))
  # The original stored int(fraction * 255) (utils/envmap.py): its ground truth exactly.
  return np.floor(bump) if definition.truncate else bump


@functools.cache
def _envmaps(temperature_k: float, direction_index: int,
             envmap_convention: str) -> tuple[np.ndarray, np.ndarray]:
  definition = convention(envmap_convention)
  rgb_colour = np.asarray(definition.rgb(temperature_k)).astype(np.float64)
  bump = brightness(direction_index, envmap_convention=envmap_convention)
  rgb = (bump[..., None] * rgb_colour).astype(np.float32)  # [16, 32, 3]
  hue, saturation = definition.hue_saturation(temperature_k)
  value = float(rgb_colour.max())
  hsv = np.concatenate([[ENVMAP_PEAK * hue, ENVMAP_PEAK * saturation],
                        (bump * value).reshape(-1)]).astype(np.float32)
  rgb.flags.writeable = False  # Cached: callers must not modify the shared arrays.
  hsv.flags.writeable = False
  return rgb, hsv


def envmap_rgb(temperature_k: float, direction_index: int,
               envmap_convention: str = DEFAULT_CONVENTION) -> np.ndarray:
  """Ground-truth RGB envmap of a light, np.float32 [16, 32, 3] (read-only, cached).

  Args:
    temperature_k: colour temperature in kelvin (e.g. one of lights.TEMPERATURES_K).
    direction_index: 0..7 in lights.DIRECTIONS order.
    envmap_convention: a key of CONVENTIONS (the model's `model.envmap_convention`).
  """
  return _envmaps(float(temperature_k), int(direction_index), envmap_convention)[0]


def envmap_hsv(temperature_k: float, direction_index: int,
               envmap_convention: str = DEFAULT_CONVENTION) -> np.ndarray:
  """Ground-truth HSV envmap vector of a light, np.float32 [514] (read-only, cached).

  (hue, saturation, 16 * 32 row-major values), all in 0..ENVMAP_PEAK units, as the
  "Envmap + scene" model predicts it (report §3.4), in a convention of CONVENTIONS.
  """
  return _envmaps(float(temperature_k), int(direction_index), envmap_convention)[1]


def batch_envmaps(temperatures, directions,
                  envmap_convention: str = DEFAULT_CONVENTION) -> tuple[np.ndarray, np.ndarray]:
  """Envmaps of a batch of lights.

  Args:
    temperatures: [B] colour temperatures in kelvin.
    directions: [B] direction indices 0..7.
    envmap_convention: a key of CONVENTIONS.

  Returns:
    (rgb np.float32 [B, 16, 32, 3], hsv np.float32 [B, 514]).
  """
  temperatures = np.asarray(temperatures).reshape(-1)
  directions = np.asarray(directions).reshape(-1)
  if temperatures.shape != directions.shape:
    raise ValueError(f"batch_envmaps: {temperatures.shape[0]} temperatures but "
                     f"{directions.shape[0]} directions")
  pairs = [_envmaps(float(t), int(d), envmap_convention)
           for t, d in zip(temperatures, directions, strict=True)]
  if not pairs:
    convention(envmap_convention)
    return (np.zeros((0, ENVMAP_HEIGHT, ENVMAP_WIDTH, 3), np.float32),
            np.zeros((0, 2 + ENVMAP_HEIGHT * ENVMAP_WIDTH), np.float32))
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# The temperatures an envmap's colour is read as (estimate_light): the data's range in
# steps finer than a label temperature's visible difference.
_ESTIMATE_STEP_K = 50


@functools.cache
def _temperature_colours(envmap_convention: str) -> tuple[np.ndarray, np.ndarray]:
  low, high = lights.LABEL_TEMPERATURE_RANGE_K
  kelvins = np.arange(low, high + 1, _ESTIMATE_STEP_K, dtype=np.float64)
  return kelvins, np.stack([light_rgb(k, envmap_convention) for k in kelvins])


def estimate_light(envmap_rgb_map, envmap_convention: str = DEFAULT_CONVENTION
                   ) -> tuple[float, float]:
  """The light an envmap shows, continuous: (azimuth deg in [0, 360), kelvin).

  The inverse of `envmap_rgb` for a model's predicted map: the azimuth is the circular
  centroid of the columns' brightness above the darkest column (a sharper reading than
  the brightest column, and one a blob between two columns moves smoothly), the
  temperature the one of the data's range whose light colour in the convention is
  nearest the map's mean colour.

  Args:
    envmap_rgb_map: [16, 32, 3] non-negative, any scale.
    envmap_convention: the model's (a key of CONVENTIONS).
  """
  envmap_map = np.maximum(np.asarray(envmap_rgb_map, np.float64), 0.0)
  width = envmap_map.shape[1]
  columns = envmap_map.sum(axis=(0, 2))
  columns = columns - columns.min()
  angles = 2 * np.pi * (np.arange(width) / width - convention(envmap_convention).north_column)
  centroid = np.sum(columns * np.exp(1j * angles))
  azimuth = float(np.degrees(np.angle(centroid)) % 360.0) if abs(centroid) > 0 else 0.0
  colour = envmap_map.sum(axis=(0, 1))
  colour = colour / max(float(colour.max()), 1e-12)
  kelvins, colours = _temperature_colours(envmap_convention)
  temperature = float(kelvins[np.argmin(np.sum(np.square(colours - colour), axis=-1))])
  return azimuth, temperature


def envmap_sheet(scale: int = 4, gap: int = 2,
                 envmap_convention: str = DEFAULT_CONVENTION) -> np.ndarray:
  """The 40 envmaps in one uint8 image: rows = temperatures, columns = directions (N first).

  Args:
    scale: nearest-neighbour upscaling of each 16x32 map.
    gap: grey pixels between maps.
    envmap_convention: a key of CONVENTIONS.

  Returns:
    np.uint8 [5 * (16 * scale + gap) + gap, 8 * (32 * scale + gap) + gap, 3].
  """
  cell_h, cell_w = ENVMAP_HEIGHT * scale, ENVMAP_WIDTH * scale
  sheet = np.full((lights.NUM_TEMPERATURES * (cell_h + gap) + gap,
                   lights.NUM_DIRECTIONS * (cell_w + gap) + gap, 3), 128, np.uint8)
  for t, temperature in enumerate(lights.TEMPERATURES_K):
    for d in range(lights.NUM_DIRECTIONS):
      cell = np.kron(envmap_rgb(temperature, d, envmap_convention), np.ones((scale, scale, 1)))
      top, left = gap + t * (cell_h + gap), gap + d * (cell_w + gap)
      sheet[top:top + cell_h, left:left + cell_w] = np.round(
          255 * np.clip(cell / ENVMAP_PEAK, 0, 1))
  return sheet


def write_envmap_sheet(path: str, scale: int = 4,
                       envmap_convention: str = DEFAULT_CONVENTION) -> str:
  """Writes envmap_sheet() as a PNG, atomically (temp file in the same folder + rename).

  Args:
    path: output .png path; its folder is created if missing.
    scale: upscaling of each map.
    envmap_convention: a key of CONVENTIONS.

  Returns:
    The path written.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image_io.save_image(path, envmap_sheet(scale, envmap_convention=envmap_convention))
  return path
