"""The main light of the synthetic dataset: colour from temperature, position from direction.

VIDIT lights every scene with one omnidirectional point light at a fixed elevation, under
5 colour temperatures x 8 azimuths relative to the camera (report §3.1). The numbering and
the azimuth convention belong to `relight_jax.data.lights`; this module only turns them into
renderer inputs:
  * `light_rgb`: the light's linear-sRGB colour for a temperature, normalised to luminance
    Y = 1, so that the temperature changes only the chromaticity, never the brightness.
  * `light_position`: where the light is for a direction index, given the camera.
"""

import colour
import numpy as np

from relight_jax.common import srgb
from relight_jax.data import lights

# Kang et al. (2002) follows the Planckian locus over 1667-25000 K; colour-science's default
# (CIE D series) is only defined from 4000 K and would be extrapolated at 2500/3500 K.
# A black body is also the better model of VIDIT's lamps (Unreal's temperature is Planckian).
CCT_METHOD = "Kang 2002"
_LUMINANCE_WEIGHTS = np.asarray(srgb.LUMINANCE_WEIGHTS)


def light_rgb(temperature_k):
  """Linear-sRGB colour of a light of colour temperature `temperature_k`, luminance 1.

  Args:
    temperature_k: correlated colour temperature in kelvin (1667-25000).

  Returns:
    float64 [3] linear sRGB (D65 white), 0.2126 R + 0.7152 G + 0.0722 B = 1.
  """
  temperature_k = float(temperature_k)
  if not 1667.0 <= temperature_k <= 25000.0:
    raise ValueError(
        f"colour temperature {temperature_k} K is outside 1667-25000 K ({CCT_METHOD})")
  xy = colour.temperature.CCT_to_xy(temperature_k, method=CCT_METHOD)
  xyz = colour.xy_to_XYZ(xy)
  rgb = np.asarray(colour.XYZ_to_sRGB(xyz, apply_cctf_encoding=False), dtype=np.float64)
  return rgb / float(_LUMINANCE_WEIGHTS @ rgb)


def light_rgbs():
  """Colours of the 5 temperatures of `lights.TEMPERATURES_K`: float64 [5, 3]."""
  return np.stack([light_rgb(t) for t in lights.TEMPERATURES_K])


def light_position(origin, target, direction_index, distance, elevation_deg):
  """World position of the main light for a direction index, relative to the camera.

  The light circles the camera's look-at point: azimuth `lights.azimuth_deg(direction)`
  is measured clockwise seen from above (y up) from the camera's horizontal viewing
  direction, so N = 0 is behind the scene facing the camera and E = 90 deg is on the
  image's right-hand side (Mitsuba's look_at puts forward x up = right on the right).

  Args:
    origin: camera position (x, y, z), y up.
    target: the camera's look-at point; the light circles above it.
    direction_index: 0..7 (N, NE, ..., NW).
    distance: distance from `target` to the light.
    elevation_deg: angle of the light above the horizontal plane through `target`.

  Returns:
    float64 [3] light position.
  """
  origin, target = np.asarray(origin, np.float64), np.asarray(target, np.float64)
  forward = target - origin
  forward[1] = 0.0
  norm = np.linalg.norm(forward)
  if norm < 1e-9:
    raise ValueError(f"camera at {origin} looks straight down at {target}: no azimuth")
  forward /= norm
  right = np.cross(forward, np.array([0.0, 1.0, 0.0]))  # forward x up
  azimuth = np.deg2rad(lights.azimuth_deg(direction_index))
  elevation = np.deg2rad(elevation_deg)
  horizontal = np.cos(azimuth) * forward + np.sin(azimuth) * right
  return (target + distance * np.cos(elevation) * horizontal
          + distance * np.sin(elevation) * np.array([0.0, 1.0, 0.0]))
