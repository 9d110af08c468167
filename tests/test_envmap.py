"""Tests of the generated ground-truth envmaps (envmap.py) against colour-science and skimage."""

import os

import colour
import numpy as np
import pytest
from PIL import Image
from skimage import color as skimage_color

from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.models import latent


def _reference_rgb(temperature_k):
  # Independent path through colour-science: Kang 2002's own function, not CCT_to_xy.
  xy = colour.temperature.CCT_to_xy_Kang2002(temperature_k)
  rgb = np.clip(colour.XYZ_to_sRGB(colour.xy_to_XYZ(xy)), 0, None)
  return rgb / rgb.max()


@pytest.mark.parametrize("temperature", lights.TEMPERATURES_K)
def test_colour_matches_colour_science(temperature):
  np.testing.assert_allclose(envmap.light_rgb(temperature), _reference_rgb(temperature),
                             atol=1e-6)
  for direction in range(lights.NUM_DIRECTIONS):
    rgb = envmap.envmap_rgb(temperature, direction)
    assert rgb.shape == (16, 32, 3) and rgb.dtype == np.float32
    peak = np.unravel_index(np.argmax(rgb.sum(-1)), rgb.shape[:2])
    # Brightness scales the colour: the peak pixel's chromaticity is the light's.
    np.testing.assert_allclose(rgb[peak] / rgb[peak].max(), _reference_rgb(temperature),
                               atol=1e-5)


def test_colours_go_from_warm_to_white():
  warm, white = envmap.light_rgb(2500), envmap.light_rgb(6500)
  assert warm[0] == 1.0 and warm[0] > warm[1] > warm[2] and warm[2] < 0.4
  assert white.min() > 0.95


@pytest.mark.parametrize("direction", range(8))
def test_bump_position_width_and_wrap(direction):
  values = envmap.envmap_hsv(4500, direction)[2:].reshape(16, 32)
  column = 4 * direction  # azimuth / 360 * 32
  # Peak on the horizon (rows 7 and 8 symmetric) at the light's azimuth column.
  assert set(np.flatnonzero(values.max(axis=0) == values.max())) == {column}
  np.testing.assert_allclose(values[7], values[8])
  assert values[:7].max() < values[7].max() and values[9:].max() < values[8].max()
  # The original's blob 255 exp(-r / (2 σ²)), σ = 1.6 px (10% of 16), r the distance to
  # (row 7.5, column), wrapping: one column away on either side (across the map's edge
  # for N) is exp(-(sqrt(1.25) - 0.5) / (2 σ²)) of the peak, itself 255 exp(-0.5 / (2 σ²)).
  two_sigma2 = 2 * 1.6**2
  np.testing.assert_allclose(values[7, column], 255 * np.exp(-0.5 / two_sigma2), rtol=1e-5)
  ratio = np.exp(-(np.sqrt(1.25) - 0.5) / two_sigma2)
  np.testing.assert_allclose(values[7, (column + 1) % 32] / values[7, column], ratio, rtol=1e-5)
  np.testing.assert_allclose(values[7, (column - 1) % 32] / values[7, column], ratio, rtol=1e-5)


def test_hsv_form_reproduces_rgb_form():
  for temperature in lights.TEMPERATURES_K:
    for direction in (0, 3, 7):
      hsv = envmap.envmap_hsv(temperature, direction)
      assert hsv.shape == (514,) and hsv.dtype == np.float32
      # skimage's hsv2rgb works on values in [0, 1]: compare in units of the peak.
      peak = envmap.ENVMAP_PEAK
      image_hsv = np.stack([np.full((16, 32), hsv[0]), np.full((16, 32), hsv[1]),
                            hsv[2:].reshape(16, 32)], axis=-1) / peak
      rgb = envmap.envmap_rgb(temperature, direction)
      np.testing.assert_allclose(skimage_color.hsv2rgb(image_hsv), rgb / peak, atol=1e-5)
      # The model's RGB view of an HSV envmap (dm_pix) agrees too.
      np.testing.assert_allclose(latent.hsv_envmap_to_rgb(hsv[None], 16, 32)[0] / peak,
                                 rgb / peak, atol=1e-5)


def test_cached_and_batched():
  assert envmap.envmap_rgb(3500, 2) is envmap.envmap_rgb(3500.0, 2)
  with pytest.raises(ValueError):
    envmap.envmap_rgb(3500, 2)[0, 0, 0] = 1.0  # read-only: shared by every caller
  rgb, hsv = envmap.batch_envmaps(np.array([2500, 6500, 2500]), np.array([0, 5, 7]))
  assert rgb.shape == (3, 16, 32, 3) and hsv.shape == (3, 514)
  np.testing.assert_array_equal(rgb[1], envmap.envmap_rgb(6500, 5))
  np.testing.assert_array_equal(hsv[2], envmap.envmap_hsv(2500, 7))
  assert rgb.flags.writeable  # stacked copies may be modified by the pipeline
  rgb[0] = 0.0


@pytest.mark.parametrize("temperature, direction", [(4500, 8), (4500, -1), (1000, 0)])
def test_bad_light_raises(temperature, direction):
  with pytest.raises(ValueError):
    envmap.envmap_rgb(temperature, direction)


def test_write_envmap_sheet(tmp_path):
  path = envmap.write_envmap_sheet(str(tmp_path / "sheets" / "envmaps.png"), scale=2)
  assert os.listdir(tmp_path / "sheets") == ["envmaps.png"]  # no temp file left over
  sheet = np.asarray(Image.open(path))
  assert sheet.shape == (5 * 34 + 2, 8 * 66 + 2, 3)
  # Cell (temperature 2500 K, direction E) holds that envmap, upscaled x2.
  top, left = 2, 2 + 2 * 66
  cell = sheet[top:top + 32:2, left:left + 64:2] / 255.0
  np.testing.assert_allclose(cell, envmap.envmap_rgb(2500, 2) / envmap.ENVMAP_PEAK,
                             atol=1 / 255)
