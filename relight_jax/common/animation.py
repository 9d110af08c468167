"""Animations of frames: a looping GIF, an MP4 where a writer is installed, or one strip image.

The format comes from the file extension (`ANIMATION_FORMATS`). GIF and the strip need
Pillow alone. MP4 needs the optional `imageio-ffmpeg` (its wheels carry an ffmpeg
binary; nothing is downloaded when it runs): `check_animation_path` refuses an .mp4 in one
line when it is missing. Every file is written atomically (atomic.py).
"""

import importlib.util
import math
import pathlib
import tempfile

import numpy as np
from PIL import Image

from relight_jax.common import atomic
from relight_jax.common import image_io

STRIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ANIMATION_FORMATS = (".gif", ".mp4") + STRIP_SUFFIXES
# The most frames per row of a strip (fewer make it about square in frames).
STRIP_COLUMNS = 8


def mp4_available():
  """Whether an MP4 can be written (the optional imageio-ffmpeg is installed)."""
  return importlib.util.find_spec("imageio_ffmpeg") is not None


def check_animation_path(path):
  """Raises ValueError unless `path`'s extension is a format this module writes (here)."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix not in ANIMATION_FORMATS:
    raise ValueError(f"{path}: an animation is written as {', '.join(ANIMATION_FORMATS)} "
                     f"(a strip of frames for the image formats), not {suffix or 'no extension'}")
  if suffix == ".mp4" and not mp4_available():
    raise ValueError(f"{path}: writing MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg, "
                     "an ffmpeg binary in a wheel); write a .gif instead")


def frame_strip(frames, columns=STRIP_COLUMNS):
  """The frames in one image, row by row, at most `columns` a row, uint8 [rows * H,
  columns * W, 3]."""
  frames = [np.asarray(frame) for frame in frames]
  columns = min(columns, math.ceil(math.sqrt(len(frames))))
  rows = -(-len(frames) // columns)
  height, width = frames[0].shape[:2]
  strip = np.zeros((rows * height, columns * width, 3), np.uint8)
  for index, frame in enumerate(frames):
    row, column = divmod(index, columns)
    strip[row * height:(row + 1) * height, column * width:(column + 1) * width] = frame
  return strip


def write_animation(path, frames, *, fps=12, exclusive=False):
  """Writes frames as the animation `path`'s extension names.

  Args:
    path: .gif (loops), .mp4 (H.264, imageio-ffmpeg) or an image (a strip of the frames).
    frames: uint8 [H, W, 3] arrays of one size.
    fps: frames per second of a GIF or MP4.
    exclusive: fail, leaving it alone, if a file appears at `path` meanwhile.

  Raises:
    ValueError: an unknown extension, frames of different sizes, MP4 without its writer.
  """
  path = pathlib.Path(path)
  check_animation_path(path)
  frames = [image_io.to_uint8(frame) if np.asarray(frame).dtype != np.uint8
            else np.asarray(frame) for frame in frames]
  if not frames or len({frame.shape for frame in frames}) != 1:
    raise ValueError(f"{path}: expected one or more frames of one size, got "
                     f"{sorted({frame.shape for frame in frames})}")
  suffix = path.suffix.lower()
  if suffix in STRIP_SUFFIXES:
    image_io.save_image(path, frame_strip(frames), exclusive=exclusive)
  elif suffix == ".gif":
    images = [Image.fromarray(frame, "RGB") for frame in frames]
    with atomic.replacing(path, exclusive=exclusive) as stream:
      images[0].save(stream, format="GIF", save_all=True, append_images=images[1:],
                     duration=round(1000 / fps), loop=0)
  else:
    data = _mp4_bytes(frames, fps)
    with atomic.replacing(path, exclusive=exclusive) as stream:
      stream.write(data)


def _mp4_bytes(frames, fps):
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  height, width = frames[0].shape[:2]
  # H.264 in yuv420p (what players take) needs even sides: pad by one pixel if odd.
  padded = [np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            for frame in frames]
  with tempfile.TemporaryDirectory() as folder:
    output = pathlib.Path(folder) / "sweep.mp4"
    writer = imageio_ffmpeg.write_frames(
        str(output), (width + width % 2, height + height % 2), fps=fps, codec="libx264",
        pix_fmt_out="yuv420p", macro_block_size=1, quality=8)
    writer.send(None)
    for frame in padded:
      writer.send(np.ascontiguousarray(frame))
    writer.close()
    return output.read_bytes()
