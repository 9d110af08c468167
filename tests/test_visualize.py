"""Pictures: light glyphs, grids and atomic PNG writes."""

import numpy as np
import PIL.Image

from relight_jax.data import envmap
from relight_jax.evaluation import visualize


def test_glyph_marks_the_light_direction_in_the_corner_only():
  image = np.full((64, 64, 3), 128, np.uint8)
  east = visualize.draw_glyph(image, 2, 6500)
  west = visualize.draw_glyph(image, 6, 6500)
  assert np.array_equal(east[20:, :40], image[20:, :40])  # only the upper-right corner
  corner = slice(0, 20), slice(44, 64)
  assert not np.array_equal(east[corner], west[corner])
  # E puts the dot right of the disc's centre, W left of it.
  difference = np.abs(east[corner].astype(int) - west[corner].astype(int)).sum(axis=(0, 2))
  columns = np.flatnonzero(difference)
  assert columns.min() < 10 < columns.max()


def test_grids_have_the_expected_layout():
  size, count = 32, 3
  batch = {key: np.random.default_rng(0).random((count, size, size, 3), np.float32)
           for key in ("input_image", "target_image", "ground_truth")}
  for role in ("input", "target", "ground_truth"):
    batch[f"{role}_direction"] = np.arange(count)
    batch[f"{role}_temperature"] = np.full(count, 4500.0)
  grid = visualize.triplet_grid(batch, batch["ground_truth"], count)
  assert grid.shape == (count * size, 4 * size, 3) and grid.dtype == np.uint8
  truth = np.stack([envmap.envmap_rgb(2500, d) for d in range(2)])
  envmaps = visualize.envmap_grid(100 * truth, truth, count=2, scale=2)
  assert envmaps.shape == (2 * 16 * 2, 2 * (32 * 2 + 2), 3)
  # Each map is scaled by its own peak: a prediction 100x too bright is not saturated.
  top, bottom = envmaps[:32, :64], envmaps[32:, :64]
  np.testing.assert_allclose(top, bottom, atol=1)
  predicted, truth = np.zeros((count, size, size)), np.ones((count, size, size))
  maps = visualize.map_grid(predicted, truth, count=2)
  assert maps.shape == (2 * size, 2 * size, 3) and maps.dtype == np.uint8
  assert maps[:, :size].max() == 0 and maps[:, size:].min() == 255  # predicted | truth


def test_save_png_is_atomic_and_readable(tmp_path):
  image = np.zeros((8, 8, 3), np.uint8)
  path = visualize.save_png(tmp_path / "sub" / "a.png", image)
  assert np.array_equal(np.asarray(PIL.Image.open(path)), image)
  assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]
