r"""Contact sheet of one `vidit` scene under its 40 illuminations.

  python -m relight_jax.datasets.preview vidit/synthetic_small --data_dir=data/tfds \
      --scene=0 --split=train --output=sheet.png

Columns are the light directions N, NE, ..., NW (azimuth 0..315 deg clockwise from the
camera's view direction, `relight_jax/data/lights.py`), rows the colour temperatures
2500..6500 K; shadows should move along a row and colour change down a column. The
records are located by the dataset's scene-major index arithmetic
(`lights.record_index`), and each record's own scene/light labels are checked against it.
"""

import math
import os

import numpy as np
import PIL.Image
import PIL.ImageDraw
import tensorflow_datasets as tfds
from absl import app
from absl import flags

from relight_jax.common import image_io
from relight_jax.data import lights
from relight_jax.datasets import vidit  # noqa: F401  (registers the builder)
from relight_jax.datasets.vidit import configs

FLAGS = flags.FLAGS

_MIN_TILE = 96  # Small renders are upscaled (nearest) so the sheet stays readable.
_MARGIN = 18
_LABEL_WIDTH = 56


def load_scene(source, scene: int) -> list[dict]:
  """Returns the 40 records of a scene, in light-index order, from a data source.

  Args:
    source: a `tfds.data_source` of a 40-illumination `vidit` config.
    scene: global scene id.

  Returns:
    list of 40 record dicts.

  Raises:
    ValueError: the scene is not in this split, or the records break the scene-major
      layout.
  """
  num_scenes = len(source) // lights.NUM_LIGHTS
  scene_ids = [int(source[int(lights.record_index(position, 0))]["scene"])
               for position in range(num_scenes)]
  if scene not in scene_ids:
    raise ValueError(f"scene {scene} is not in this split; it holds scenes {scene_ids[:20]}"
                     f"{' ...' if len(scene_ids) > 20 else ''}")
  position = scene_ids.index(scene)
  records = [source[int(lights.record_index(position, light))]
             for light in range(lights.NUM_LIGHTS)]
  for light, record in enumerate(records):
    if int(record["scene"]) != scene or int(record["light"]) != light:
      raise ValueError(
          f"record {int(lights.record_index(position, light))} holds scene "
          f"{int(record['scene'])} light {int(record['light'])}, expected scene {scene} light "
          f"{light}: the dataset is not in scene-major order")
  return records


def contact_sheet(records: list[dict], title: str) -> PIL.Image.Image:
  """Lays out 40 records as 5 temperature rows x 8 direction columns, labelled.

  Args:
    records: 40 records in light-index order, each with an "image" [S, S, 3] uint8.
    title: text written above the grid.

  Returns:
    an RGB PIL image.
  """
  size = records[0]["image"].shape[0]
  scale = max(1, math.ceil(_MIN_TILE / size))
  tile = size * scale
  width = _LABEL_WIDTH + lights.NUM_DIRECTIONS * tile
  height = 2 * _MARGIN + lights.NUM_TEMPERATURES * tile
  sheet = PIL.Image.new("RGB", (width, height), "white")
  draw = PIL.ImageDraw.Draw(sheet)
  draw.text((4, 2), title, fill="black")
  for direction, name in enumerate(lights.DIRECTIONS):
    azimuth = int(lights.DIRECTION_AZIMUTHS_DEG[direction])
    draw.text((_LABEL_WIDTH + direction * tile + 4, _MARGIN + 2), f"{name} {azimuth}°",
              fill="black")
  for temperature_index, kelvin in enumerate(lights.TEMPERATURES_K):
    top = 2 * _MARGIN + temperature_index * tile
    draw.text((4, top + tile // 2 - 6), f"{kelvin} K", fill="black")
    for direction in range(lights.NUM_DIRECTIONS):
      image = np.asarray(records[int(lights.light_index(temperature_index, direction))]
                         ["image"])
      tile_image = PIL.Image.fromarray(image).resize((tile, tile), PIL.Image.Resampling.NEAREST)
      sheet.paste(tile_image, (_LABEL_WIDTH + direction * tile, top))
  return sheet


def write_png_atomic(image: PIL.Image.Image, path: str):
  """Writes `image` as PNG to `path` via a temporary file in the same folder + os.replace."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image_io.save_image(path, np.asarray(image.convert("RGB")))


def define_flags():
  """Defines this CLI's flags (not at import, so other CLIs can import this module)."""
  flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir holding the build.")
  flags.DEFINE_string("split", "train", "Split to read.")
  flags.DEFINE_integer("scene", 0, "Global scene id (the records' 'scene' feature; NNN of "
                       "ImageNNN for real VIDIT).")
  flags.DEFINE_string("output", "sheet.png", "PNG file to write.")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m relight_jax.datasets.preview vidit/<config> "
                         "--data_dir=DIR --scene=N [--split=train] --output=sheet.png")
  try:
    config = configs.parse_dataset_name(argv[1])
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  if configs.CONFIGS[config].source == "pairs":
    raise app.UsageError(f"vidit/{config} holds evaluation pairs, not 40-illumination "
                         "scenes; preview a scene config instead")
  source = tfds.data_source(f"vidit/{config}", split=FLAGS.split, data_dir=FLAGS.data_dir)
  records = load_scene(source, FLAGS.scene)
  title = f"vidit/{config} {FLAGS.split} scene {FLAGS.scene}"
  if int(records[0]["location"]) >= 0:
    title += f" (location {int(records[0]['location'])})"
  write_png_atomic(contact_sheet(records, title), FLAGS.output)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
