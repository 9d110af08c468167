"""Pictures: I / T / G / relit grids with a light-direction glyph, envmap grids, PNGs.

The glyph follows the report's Fig. 1 (an idea it took from [29]): a small disc in the
upper-right corner of each image, the camera at the bottom of the disc, and a dot at the
main light's azimuth (N = top = behind the scene, E = right; `lights.py`) drawn in the
colour of the light's temperature.
"""

import functools
import math
import pathlib

import numpy as np
import PIL.Image
import PIL.ImageDraw

from relight_jax.common import image_io
from relight_jax.data import envmap
from relight_jax.data import lights

COLUMN_TITLES = ("input I", "target T", "ground truth G", "relit G_hat")


def to_uint8(image):
  """float [0, 1] or uint8 array -> uint8 array."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@functools.cache
def _light_colour(temperature_k):
  rgb = np.asarray(envmap.colour_science_rgb(int(temperature_k)), np.float32)
  return tuple(int(c) for c in to_uint8(rgb / max(float(rgb.max()), 1e-6)))


def draw_glyph(image, direction, temperature_k):
  """Returns a copy of `image` (uint8 [H, W, 3]) with the light glyph in its corner."""
  picture = PIL.Image.fromarray(to_uint8(image))
  height = picture.height
  radius = max(3, height // 10)
  centre_x, centre_y = picture.width - radius - 2, radius + 2
  draw = PIL.ImageDraw.Draw(picture)
  draw.ellipse((centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius),
               outline=(255, 255, 255), fill=(40, 40, 40))
  # Camera: a small mark at the bottom of the disc (S side).
  draw.rectangle((centre_x - 1, centre_y + radius - 2, centre_x + 1, centre_y + radius),
                 fill=(255, 255, 255))
  angle = math.radians(float(lights.azimuth_deg(int(direction))))
  dot_x = centre_x + 0.7 * radius * math.sin(angle)
  dot_y = centre_y - 0.7 * radius * math.cos(angle)
  dot = max(1.5, radius / 3)
  draw.ellipse((dot_x - dot, dot_y - dot, dot_x + dot, dot_y + dot),
               fill=_light_colour(int(temperature_k)))
  return np.asarray(picture)


def triplet_grid(batch, relit, count=4):
  """Rows of I | T | G | relit, each with its light glyph (relit gets T's light).

  Args:
    batch: host batch dict (images float [0, 1] or uint8, plus the light labels).
    relit: float [B, H, W, 3] model output.
    count: number of rows.

  Returns:
    uint8 [count * H, 4 * W, 3].
  """
  count = min(count, len(relit))
  rows = []
  for i in range(count):
    cells = []
    for image, role in ((batch["input_image"][i], "input"),
                        (batch["target_image"][i], "target"),
                        (batch["ground_truth"][i], "ground_truth"),
                        (relit[i], "ground_truth")):
      cells.append(draw_glyph(image, batch[f"{role}_direction"][i],
                              batch[f"{role}_temperature"][i]))
    rows.append(np.concatenate(cells, axis=1))
  return np.concatenate(rows, axis=0)


def envmap_grid(predicted, ground_truth, count=4, scale=4):
  """Predicted (top) over ground-truth (bottom) envmaps, side by side for `count` examples.

  Envmaps are linear light; each map is scaled by its own maximum for display, so the
  position and colour of a prediction show even while its scale is still far off (the
  Le loss in TensorBoard tells the scale).
  """
  count = min(count, len(predicted))
  columns = []
  for i in range(count):
    scaled = [envmap / max(float(np.max(envmap)), 1e-6)
              for envmap in (predicted[i], ground_truth[i])]
    pair = np.concatenate(scaled, axis=0)
    pair = np.kron(pair, np.ones((scale, scale, 1)))
    columns.append(np.pad(to_uint8(pair), ((0, 0), (0, 2), (0, 0)), constant_values=255))
  return np.concatenate(columns, axis=1)


def map_grid(predicted, ground_truth, count=4):
  """Rows of predicted | ground-truth one-channel maps in [0, 1] (e.g. shading), grey.

  Args:
    predicted, ground_truth: float [B, H, W].
    count: number of rows.

  Returns:
    uint8 [count * H, 2 * W, 3].
  """
  count = min(count, len(predicted))
  pairs = np.concatenate([np.asarray(predicted[:count], np.float32),
                          np.asarray(ground_truth[:count], np.float32)], axis=2)
  return to_uint8(np.repeat(pairs.reshape(-1, pairs.shape[2])[..., None], 3, axis=-1))


def with_titles(grid, titles, cell_width, band=12):
  """Adds a white title band above a grid whose columns are `cell_width` wide."""
  picture = PIL.Image.new("RGB", (grid.shape[1], grid.shape[0] + band), (255, 255, 255))
  picture.paste(PIL.Image.fromarray(grid), (0, band))
  draw = PIL.ImageDraw.Draw(picture)
  for index, title in enumerate(titles):
    draw.text((index * cell_width + 2, 0), title, fill=(0, 0, 0))
  return np.asarray(picture)


def save_png(path, image):
  """Writes a uint8 image to `path` atomically (temp file + rename); returns the path."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  image_io.save_image(path, to_uint8(image))
  return path
