"""Decoding and resizing of real VIDIT files for the `vidit` builder.

VIDIT ships 1024x1024 PNGs (512 for AIM 2020), some RGBA and some palette-coded; the
report trained at 256x256 (report §3.1). `decode_rgb` turns any 8-bit PNG into RGB
uint8 (alpha dropped: VIDIT's alpha carries no content) with an error naming the file
for corrupt or truncated data or a size no VIDIT image has (`MAX_SIDE`, checked before
decoding), `SizeCheck` makes sure every image of a build has the
same square size, and `resize_rgb` / `resize_depth` bring images and depth maps to the
config's resolution (LANCZOS for images, area averaging for depth so no ringing crosses
depth edges).
"""

import io

import numpy as np
import PIL.Image
from absl import logging

# 8-bit modes that convert to RGB without losing information that VIDIT uses.
# Larger than any VIDIT image (1024 px): checked from the header, before decoding, so an
# all-zero 150 MP PNG of a few hundred KB is refused instead of taking gigabytes.
MAX_SIDE = 4096
_CONVERTIBLE_MODES = ("RGB", "RGBA", "P", "PA", "L", "LA")


def decode_rgb(data: bytes, origin: str) -> np.ndarray:
  """Decodes a PNG into uint8 RGB.

  Args:
    data: file contents.
    origin: file name for errors.

  Returns:
    uint8 [height, width, 3].

  Raises:
    ValueError: not a PNG, corrupt/truncated, or not an 8-bit colour/grey image.
  """
  try:
    with PIL.Image.open(io.BytesIO(data)) as image:
      if image.format != "PNG":
        raise ValueError(f"{origin}: is a {image.format} file, expected a PNG")
      width, height = image.size
      if max(width, height) > MAX_SIDE:
        raise ValueError(f"{origin}: a {width}x{height} PNG, larger than any VIDIT image "
                         f"(at most {MAX_SIDE} pixels per side); remove it from the manual "
                         "dir or replace it with the released file")
      image.load()  # Decodes fully: truncated files fail here, not later.
      if image.mode not in _CONVERTIBLE_MODES:
        raise ValueError(f"{origin}: PNG mode {image.mode!r}, expected 8-bit RGB/RGBA/"
                         "palette/grey")
      if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
      rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
  except ValueError as err:
    if str(err).startswith(origin):
      raise
    # PIL's own limits (a text chunk too large, a decompression bomb) name no file.
    raise ValueError(f"{origin}: refused PNG ({err}); re-download this file") from err
  except (OSError, SyntaxError, PIL.UnidentifiedImageError) as err:
    raise ValueError(f"{origin}: corrupt or truncated PNG ({err}); re-download this "
                     "file") from err
  return rgb


class SizeCheck:
  """Checks that every image of one build is square and of one size.

  The first image seen sets the size; a size other than the release's nominal one
  only warns (subsets and re-encodings exist), a mismatch inside a build is an error.

  Args:
    nominal_size: the release's documented side in pixels.
  """

  def __init__(self, nominal_size: int):
    self._nominal_size = nominal_size
    self._expected = None
    self._first_origin = None

  def __call__(self, shape: tuple[int, ...], origin: str):
    """Raises ValueError naming `origin` if an image of `shape` [h, w, ...] does not fit."""
    height, width = shape[:2]
    if height != width:
      raise ValueError(f"{origin}: image is {width}x{height}, expected a square image "
                       f"(VIDIT images are {self._nominal_size}x{self._nominal_size})")
    if self._expected is None:
      self._expected, self._first_origin = height, origin
      if height != self._nominal_size:
        logging.warning("%s is %dx%d; this release's images are %dx%d.", origin, width,
                        height, self._nominal_size, self._nominal_size)
    elif height != self._expected:
      raise ValueError(
          f"{origin}: image is {width}x{height}, expected {self._expected}x{self._expected} "
          f"like {self._first_origin} (all images of one build must share one size)")


def encode_png(image: np.ndarray, size: int) -> bytes:
  """PNG-encodes uint8 [size, size, 3] with PIL.

  The builder hands TFDS encoded bytes: TFDS would otherwise encode with
  `tf.image.encode_png`, importing TensorFlow (tens of seconds on a loaded 2-core
  machine) and running in one thread; PIL encodes in the loader threads.

  Args:
    image: uint8 [size, size, 3].
    size: the expected side.

  Returns:
    PNG bytes.
  """
  if image.shape != (size, size, 3) or image.dtype != np.uint8:
    raise ValueError(f"image is {image.dtype} {image.shape}, expected uint8 "
                     f"{(size, size, 3)}")
  buffer = io.BytesIO()
  PIL.Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 RGB [h, w, 3] to [size, size, 3] with PIL LANCZOS (anti-aliased)."""
  if image.shape[:2] == (size, size):
    return image
  resized = PIL.Image.fromarray(image).resize((size, size), PIL.Image.Resampling.LANCZOS)
  return np.asarray(resized, dtype=np.uint8)


def resize_depth(depth: np.ndarray, size: int) -> np.ndarray:
  """Resizes float depth [h, w] to float32 [size, size] by area averaging."""
  depth = depth.astype(np.float32)
  if depth.shape == (size, size):
    return depth
  # float32 arrays become PIL mode "F".
  resized = PIL.Image.fromarray(depth).resize((size, size), PIL.Image.Resampling.BOX)
  return np.asarray(resized, dtype=np.float32)
