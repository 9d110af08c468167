"""Fake real-VIDIT trees for the builder tests: tiny PNGs with the releases' real names.

Every image is a constant colour that encodes its scene (or pair) and light, so a test
can check that a record holds the file its index says it should. Used by
tests/test_real_vidit.py and tests/test_vidit_errors.py.
"""

import io
import os
import pathlib
import zipfile

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from relight_jax.data import lights
from relight_jax.datasets import vidit
from relight_jax.datasets.vidit import configs


def light_name(scene: int, light: int) -> str:
  temperature = int(lights.temperature_of(light))
  direction = lights.DIRECTIONS[int(lights.direction_of(light))]
  return f"Image{scene:03d}_{temperature}_{direction}.png"


def scene_colour(scene: int, light: int) -> tuple[int, int, int]:
  return (scene * 37 % 256, light * 6, 200)


def pair_colour(pair: int, role: int) -> tuple[int, int, int]:
  return (pair * 11 % 256, 60 + 50 * role, 30)


def png_bytes(colour, size=16, mode="RGB") -> bytes:
  """A constant-colour PNG; mode "RGBA" adds alpha, "P" palette-codes it."""
  image = PIL.Image.new("RGB", (size, size), tuple(colour))
  if mode == "RGBA":
    image = image.convert("RGBA")
    image.putalpha(128)  # A non-trivial alpha that must be dropped, not composited.
  elif mode == "P":
    image = image.convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=4)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def depth_map(index: int, size=16) -> np.ndarray:
  """A float32 depth ramp [size, size] distinct per scene/pair."""
  ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
  return (ramp[None, :] * 0.5 + ramp[:, None] * 0.25 + 0.01 * index).astype(np.float32)


def depth_npy_bytes(depth: np.ndarray) -> bytes:
  """NTIRE 2021 depth format: np.save of a pickled dict."""
  buffer = io.BytesIO()
  np.save(buffer, {"normalized_depth": depth, "ref_center_dis": np.float64(2.5)},
          allow_pickle=True)
  return buffer.getvalue()


class _WritesMarker:
  """Unpickling this runs code: it creates `path` (what the tests check does NOT happen)."""

  def __init__(self, path):
    self.path = os.fspath(path)

  def __reduce__(self):
    return (exec, (f"open({self.path!r}, 'w').close()",))


def malicious_npy_bytes(marker_path) -> bytes:
  """An object-dtype .npy whose pickle would create `marker_path` if loaded naively."""
  buffer = io.BytesIO()
  payload = {"normalized_depth": _WritesMarker(marker_path), "ref_center_dis": 1.0}
  np.save(buffer, np.array(payload, dtype=object), allow_pickle=True)
  return buffer.getvalue()


def scene_files(scenes, size=16, skip=(), modes=None) -> dict[str, bytes]:
  """{name: bytes} of flat ImageNNN_TTTT_D.png files for `scenes`.

  Args:
    scenes: scene numbers.
    size: image side.
    skip: (scene, light) pairs to leave out (incomplete scenes).
    modes: {(scene, light): "RGBA" | "P"} special PNG encodings.
  """
  modes = modes or {}
  return {light_name(scene, light): png_bytes(scene_colour(scene, light), size,
                                              modes.get((scene, light), "RGB"))
          for scene in scenes for light in range(lights.NUM_LIGHTS)
          if (scene, light) not in skip}


def pair_files(split_folder, pairs, size=16, ground_truth=True, depth=False):
  """{relative path: bytes} of an evaluation-pair folder (input/, guide/, flat GT)."""
  files = {}
  for pair in pairs:
    files[f"{split_folder}/input/Pair{pair:03d}.png"] = png_bytes(pair_colour(pair, 0), size)
    files[f"{split_folder}/guide/Pair{pair:03d}.png"] = png_bytes(pair_colour(pair, 1), size)
    if ground_truth:
      files[f"{split_folder}/Pair{pair:03d}.png"] = png_bytes(pair_colour(pair, 2), size)
    if depth:
      files[f"{split_folder}/input/Pair{pair:03d}.npy"] = depth_npy_bytes(depth_map(pair))
      files[f"{split_folder}/guide/Pair{pair:03d}.npy"] = depth_npy_bytes(
          depth_map(pair + 100))
  return files


def write_tree(root, files: dict[str, bytes]):
  for relpath, data in files.items():
    path = pathlib.Path(root) / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_zip(path, files: dict[str, bytes]):
  pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(path, "w") as archive:
    for relpath, data in files.items():
      archive.writestr(relpath, data)


def small_config(layout: str, source: str = "lights", size: int = 16):
  """An unregistered test config at `size` px (registered real configs are >= 256 px)."""
  return configs.ViditConfig(name=f"test_{layout}_{source}_{size}", source=source,
                             layout=layout, image_size=size)


def build(config, manual_dir, data_dir):
  """Builds `config` (name or ViditConfig) and returns {split: data source}."""
  builder = vidit.Vidit(config=config, data_dir=os.fspath(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=None if manual_dir is None else os.fspath(manual_dir)))
  return builder.as_data_source()


def finished_datasets(data_dir) -> list[pathlib.Path]:
  """dataset_info.json files (a finished-looking dataset) and leftover incomplete dirs."""
  data_dir = pathlib.Path(data_dir)
  return sorted(list(data_dir.rglob("dataset_info.json")) + list(data_dir.rglob("*incomplete*")))

