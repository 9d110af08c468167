"""Tests of the generated ground-truth envmaps (envmap.py) against colour-science, skimage
and the original's formula (bench/envmap_loss_scale.py)."""

import hashlib
import os

import colour
import numpy as np
import pytest
from PIL import Image
from skimage import color as skimage_color

from bench import envmap_loss_scale
from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.models import latent


def _reference_rgb(temperature_k):
  # Independent path through colour-science: Kang 2002's own function, not CCT_to_xy.
  xy = colour.temperature.CCT_to_xy_Kang2002(temperature_k)
  rgb = np.clip(colour.XYZ_to_sRGB(colour.xy_to_XYZ(xy)), 0, None)
  return rgb / rgb.max()


@pytest.mark.parametrize("temperature", lights.TEMPERATURES_K)
def test_v1_colour_matches_colour_science(temperature):
  np.testing.assert_allclose(envmap.light_rgb(temperature, "v1"), _reference_rgb(temperature),
                             atol=1e-6)
  for direction in range(lights.NUM_DIRECTIONS):
    rgb = envmap.envmap_rgb(temperature, direction, "v1")
    assert rgb.shape == (16, 32, 3) and rgb.dtype == np.float32
    peak = np.unravel_index(np.argmax(rgb.sum(-1)), rgb.shape[:2])
    # Brightness scales the colour: the peak pixel's chromaticity is the light's.
    np.testing.assert_allclose(rgb[peak] / rgb[peak].max(), _reference_rgb(temperature),
                               atol=1e-5)


def test_v1_colours_match_colour_science_across_kang_2002s_range():
  # Every label temperature (and Kang's range, split at 2222 and 4000 K) without importing
  # colour-science at run time: the written-out formula must stay colour's.
  temperatures = [1667, 2222, 2223, 3999.5, 4000, 4001, 6504.38938305, 25000,
                  *range(lights.LABEL_TEMPERATURE_RANGE_K[0],
                         lights.LABEL_TEMPERATURE_RANGE_K[1] + 1, 37)]
  for temperature in temperatures:
    np.testing.assert_allclose(envmap.colour_science_rgb(temperature),
                               _reference_rgb(temperature), atol=2e-6, err_msg=temperature)


@pytest.mark.parametrize("convention", sorted(envmap.CONVENTIONS))
def test_colours_go_from_warm_to_white(convention):
  warm, white = envmap.light_rgb(2500, convention), envmap.light_rgb(6500, convention)
  assert warm[0] == 1.0 and warm[0] > warm[1] > warm[2] and warm[2] < 0.4
  assert white.min() > 0.95


@pytest.mark.parametrize("direction", range(8))
def test_v1_bump_position_width_and_wrap(direction):
  values = envmap.envmap_hsv(4500, direction, "v1")[2:].reshape(16, 32)
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


@pytest.mark.parametrize("convention", sorted(envmap.CONVENTIONS))
def test_hsv_form_reproduces_rgb_form(convention):
  for temperature in lights.TEMPERATURES_K:
    for direction in (0, 3, 7):
      hsv = envmap.envmap_hsv(temperature, direction, convention)
      assert hsv.shape == (514,) and hsv.dtype == np.float32
      # skimage's hsv2rgb works on values in [0, 1]: compare in units of the peak.
      peak = envmap.ENVMAP_PEAK
      image_hsv = np.stack([np.full((16, 32), hsv[0]), np.full((16, 32), hsv[1]),
                            hsv[2:].reshape(16, 32)], axis=-1) / peak
      rgb = envmap.envmap_rgb(temperature, direction, convention)
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


# The original's blob peaks (utils/envmap.py: centred on pixel (8, 16) for N, rolled by
# int(16 * ROTATIONS[d]) columns): W left of centre, as a light from the image's left.
ORIGINAL_PEAK_COLUMNS = {"N": 16, "NE": 20, "E": 24, "SE": 28, "S": 0, "SW": 4, "W": 8,
                         "NW": 12}
# Its COLORS_HSV, (hue, saturation) in 0..255 units (value 255).
ORIGINAL_HUE_SATURATION = {2500: (14, 231), 3500: (19, 192), 4500: (22, 132),
                           5500: (24, 65), 6500: (54, 0)}


@pytest.mark.parametrize("temperature", lights.TEMPERATURES_K)
def test_original_peaks_and_colours(temperature):
  for direction, name in enumerate(lights.DIRECTIONS):
    hsv = envmap.envmap_hsv(temperature, direction, "original")
    values = hsv[2:].reshape(16, 32)
    assert tuple(hsv[:2]) == ORIGINAL_HUE_SATURATION[temperature]
    assert np.argwhere(values == values.max()).tolist() == [[8, ORIGINAL_PEAK_COLUMNS[name]]]
    assert values.max() == 255.0
    np.testing.assert_array_equal(values, np.floor(values))  # the original's int()
    # The same map as the original's formula, written independently in the bench.
    np.testing.assert_allclose(
        envmap.envmap_rgb(temperature, direction, "original"),
        envmap_loss_scale.original_envmap(temperature, direction).transpose(1, 2, 0),
        atol=1e-3)


def test_original_colours_between_the_table_are_interpolated():
  hsv = envmap.envmap_hsv(3000, 0, "original")
  np.testing.assert_allclose(hsv[:2], [16.5, 211.5])
  with pytest.raises(ValueError, match="table"):
    envmap.envmap_rgb(2400, 0, "original")


def test_unknown_convention_raises():
  with pytest.raises(ValueError, match="original"):
    envmap.envmap_rgb(3500, 0, "v0")


def test_v1_maps_are_byte_identical_to_before_the_conventions():
  # sha256 of every v1 map (RGB then HSV bytes, temperatures then directions), of the v1
  # sheet at scale 2 and of three label temperatures between the rendered ones, computed
  # by the code before the conventions existed: workdirs trained on v1 see their maps.
  digest = hashlib.sha256()
  for temperature in lights.TEMPERATURES_K:
    for direction in range(lights.NUM_DIRECTIONS):
      digest.update(envmap.envmap_rgb(temperature, direction, "v1").tobytes())
      digest.update(envmap.envmap_hsv(temperature, direction, "v1").tobytes())
  assert digest.hexdigest() == (
      "f95924164785ab705823589c4bd65be056f506187d7a73f2e0211520c7564c4d")
  sheet = envmap.envmap_sheet(scale=2, envmap_convention="v1")
  assert hashlib.sha256(sheet.tobytes()).hexdigest() == (
      "2c07c9e8fa3fde2625c0d01cb47ad4aa507717d8f43fa70b5fc3423cd2a72879")
  between = b"".join(envmap.envmap_rgb(t, 3, "v1").tobytes()
                     + envmap.envmap_hsv(t, 3, "v1").tobytes() for t in (3000, 4200, 6100))
  assert hashlib.sha256(between).hexdigest() == (
      "29a87474892b0a3fdc322b0afa2622b5a944dc8d734d995940c1685cc825fd61")


def test_a_model_with_an_unknown_convention_is_refused_when_built():
  from conftest import load_config

  from relight_jax.models import registry
  config = load_config("envmap", "smoke", **{"model.envmap_convention": "v0"})
  with pytest.raises(ValueError, match="envmap convention 'v0'"):
    registry.create_model(config.model)
