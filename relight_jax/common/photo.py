"""A photo as its file holds it, read and written back: bit depth, alpha, ICC and EXIF.

`image_io.load_image` gives the network's view of an image (float sRGB, alpha composited
on black, the ICC profile applied). Relighting a user's photo also has to give the file
back as it came, so `load_photo` keeps what that view drops and `save_photo` writes it:

  * Bit depth: 8-bit files give uint8 codes, 16-bit PNG and TIFF (RGB, RGBA and
    grayscale) uint16 codes, floating-point ones float32; `save_photo` writes 16 bits
    where the format stores them (PNG, TIFF) and 8 elsewhere. PIL decodes 16-bit RGB(A)
    to 8 bits, so those files are decoded twice with the same decoder, once for the high
    and once for the low byte of each sample (`_sixteen_bit_samples`).
  * Alpha is kept as stored; the colour is straight (not multiplied by alpha). Formats
    without alpha (JPEG, BMP, PPM) get the colour composited on black, as `load_image`
    reads such an image.
  * The ICC profile travels with the pixels: they stay in the file's colour space, which
    for cameras' and phones' profiles (Display P3, Adobe RGB) has sRGB's tone curve or
    nearly, what the relighting's linearisation assumes; outputs carry the same profile
    (sRGB when the input had none).
  * EXIF (camera, date, exposure, ...) travels too. The pixels are rotated upright on
    load (as `load_image` does) and the orientation tag of the output is 1.

What each output format keeps:

  format       depth         alpha   ICC   EXIF
  PNG          8 or 16 bits  yes     yes   yes (eXIf chunk)
  TIFF         8 or 16 bits  yes     yes   yes (IFD0 tags, EXIF and GPS IFDs; 16 bits:
                                                `_with_exif`)
  WEBP         8 bits        yes     yes   yes
  JPEG         8 bits        no      yes   yes
  BMP, PPM     8 bits        no      no    no
"""

import concurrent.futures
import dataclasses
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

from relight_jax.common import atomic
from relight_jax.common import image_io

_ORIENTATION = 0x0112  # the EXIF tag
# Modes whose alpha PIL expands to RGBA; "RGBa" and "La" are premultiplied, which the
# conversion undoes.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Formats that store an alpha channel / 16-bit samples.
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
# zlib's fastest level: at the default level, writing a photo-sized PNG takes several
# times as long as relighting it, for files only a little smaller.
PNG_COMPRESS_LEVEL = 1
_EXIF_HEADER = b"Exif\x00\x00"


@dataclasses.dataclass(frozen=True)
class Photo:
  """A photo's pixels upright, with what its file carried besides.

  Attributes:
    rgb: [H, W, 3] colour codes: uint8, uint16 (16-bit files) or float32 in [0, 1];
      straight colour, in the colour space of `icc_profile`.
    alpha: [H, W] of the same dtype, or None for an opaque image.
    icc_profile: the file's ICC profile bytes, or None (sRGB).
    exif: the file's EXIF bytes with orientation 1, or None.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None = None
  icc_profile: bytes | None = None
  exif: bytes | None = None

  @property
  def max_code(self):
    """The code of full intensity: 255, 65535, or 1.0 for floats."""
    return {np.uint8: 255, np.uint16: 65535}.get(self.rgb.dtype.type, 1.0)

  def float_rgb(self):
    """float32 [H, W, 3] in [0, 1]."""
    return self.rgb.astype(np.float32) / np.float32(self.max_code)

  def with_rgb(self, rgb):
    """The same photo with new colour codes (alpha, profile and EXIF kept)."""
    return dataclasses.replace(self, rgb=rgb)


def to_codes(image, dtype):
  """float [..., C] in [0, 1] -> codes of `dtype` (uint8, uint16: rounded; float32)."""
  image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
  scale = {np.uint8: 255, np.uint16: 65535}.get(np.dtype(dtype).type)
  if scale is None:
    return image
  return np.round(image * np.float32(scale)).astype(dtype)


def load_photo(source, *, name=None, max_pixels=image_io.MAX_PIXELS,
               min_side=image_io.MIN_SIDE):
  """Loads a photo keeping its bit depth, alpha, ICC profile and EXIF (module docstring).

  Args:
    source: a path, a PIL image, or an array ([H, W], [H, W, 1], [H, W, 3] or [H, W, 4];
      uint8, uint16 or float in [0, 1]; a fourth channel is alpha).
    name: how to call it in error messages (default: its path or type).
    max_pixels: refuse images with more pixels than this.
    min_side: refuse images with a side shorter than this.

  Returns:
    A `Photo`, upright.

  Raises:
    image_io.ImageError: as `image_io.load_image`.
  """
  label = image_io._describe(source, name)  # pylint: disable=protected-access
  if isinstance(source, (str, os.PathLike)):
    with image_io._opened(source, label, max_pixels) as image:  # pylint: disable=protected-access
      return _from_pil(image, label, max_pixels, min_side, reopen=source)
  if isinstance(source, Image.Image):
    return _from_pil(source, label, max_pixels, min_side,
                     reopen=getattr(source, "filename", "") or None)
  if isinstance(source, (bytes, bytearray, str)) or not hasattr(source, "__array__"):
    raise image_io.ImageError(f"{label}: expected a path, a PIL image or an array")
  return _from_array(np.asarray(source), label, max_pixels, min_side)


def _from_array(array, label, max_pixels, min_side):
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim == 2:
    array = np.repeat(array[..., None], 3, axis=-1)
  if array.ndim != 3 or array.shape[-1] not in (3, 4):
    raise image_io.ImageError(f"{label}: array of shape {array.shape}; expected [height, "
                              "width], [height, width, 1], [height, width, 3] or [height, "
                              "width, 4]")
  image_io._check_size(array.shape[1], array.shape[0], label, max_pixels, min_side)  # pylint: disable=protected-access
  if np.issubdtype(array.dtype, np.floating):
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
      raise image_io.ImageError(f"{label}: array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:  # as image_io.load_image
      raise image_io.ImageError(f"{label}: float array with values in [{low:.3g}, "
                                f"{high:.3g}]; expected values in [0, 1] (divide 8-bit data "
                                "by 255)")
    array = np.clip(array, 0.0, 1.0)
  elif array.dtype not in (np.uint8, np.uint16):
    raise image_io.ImageError(f"{label}: array of dtype {array.dtype}; expected uint8, uint16 "
                              "or float in [0, 1]")
  alpha = array[..., 3] if array.shape[-1] == 4 else None
  return Photo(np.ascontiguousarray(array[..., :3]),
               None if alpha is None else np.ascontiguousarray(alpha))


def _from_pil(image, label, max_pixels, min_side, reopen=None):
  image_io._check_size(image.width, image.height, label, max_pixels, min_side)  # pylint: disable=protected-access
  try:
    sixteen_bit = _sixteen_bit_samples(image, reopen)
    image.load()
    exif = image.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    if _ORIENTATION in exif:
      exif[_ORIENTATION] = 1
    exif_bytes = exif.tobytes() if len(exif) else None
  except (OSError, ValueError, SyntaxError, struct.error) as error:
    raise image_io.ImageError(f"{label}: the image data is damaged or truncated ({error}); "
                              f"expected {image_io._EXPECTED}") from None  # pylint: disable=protected-access
  icc = image.info.get("icc_profile") or None
  if sixteen_bit is not None:
    samples = sixteen_bit
  else:
    samples = _pil_samples(image, label)
  samples = _upright(samples, orientation)
  alpha = samples[..., 3] if samples.shape[-1] == 4 else None
  return Photo(np.ascontiguousarray(samples[..., :3]),
               None if alpha is None else np.ascontiguousarray(alpha), icc, exif_bytes)


def _pil_samples(image, label):
  """[H, W, 3 or 4] codes of an opened PIL image whose samples PIL decodes fully."""
  mode = image.mode
  if mode.startswith("I;16") or mode == "I":
    gray = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    return np.repeat(gray[..., None], 3, axis=-1)
  if mode == "F":
    gray = np.asarray(image, np.float32)
    if not np.all(np.isfinite(gray)):
      raise image_io.ImageError(f"{label}: floating-point image holds NaN or infinite values")
    return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=-1)
  has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info)
  try:
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
  except (ValueError, OSError) as error:
    raise image_io.ImageError(f"{label}: cannot convert PIL mode {mode!r} to RGB ({error}); "
                              f"expected {image_io._EXPECTED}") from None  # pylint: disable=protected-access


# The unpackers of 16-bit samples that PIL keeps the high byte of, and the one of the
# same layout that keeps the low byte instead.
_OTHER_BYTE = {"16B": "16L", "16L": "16B",
               "16N": "16B" if sys.byteorder == "little" else "16L"}


def _rawmode(tile):
  return tile.args if isinstance(tile.args, str) else tile.args[0]


def _sixteen_bit_samples(image, reopen):
  """uint16 [H, W, 3 or 4] of a 16-bit RGB(A) file PIL decodes to 8 bits; else None.

  The file is decoded a second time with each tile's unpacker swapped for the one that
  keeps the other byte of each sample (the decompression and PNG's row filters are the
  same either way).
  """
  if reopen is None or image.mode not in ("RGB", "RGBA") or not image.tile:
    return None
  rawmodes = {_rawmode(tile) for tile in image.tile}
  if len(rawmodes) != 1:
    return None
  base, _, layout = next(iter(rawmodes)).partition(";")
  if base != image.mode or layout not in _OTHER_BYTE:
    return None
  other = f"{base};{_OTHER_BYTE[layout]}"
  with Image.open(reopen) as again:
    if [_rawmode(tile) for tile in again.tile] != [_rawmode(tile) for tile in image.tile]:
      return None
    again.tile = [tile._replace(args=other if isinstance(tile.args, str)
                                else (other, *tile.args[1:])) for tile in again.tile]
    again.load()
    low = np.asarray(again)
  image.load()
  high = np.asarray(image)
  return (high.astype(np.uint16) << 8) | low


def _upright(samples, orientation):
  """`samples` [H, W, C] as displayed under an EXIF orientation (PIL's exif_transpose)."""
  turns = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1],
           4: lambda a: a[::-1], 5: lambda a: a.transpose(1, 0, 2),
           6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
           8: lambda a: np.rot90(a, 1)}
  return turns.get(orientation, turns[1])(samples)


def save_photo(path, photo, *, protected=(), overwrite=True,
               jpeg_quality=image_io.JPEG_QUALITY, exclusive=False):
  """Writes a `Photo` atomically, keeping what its format can hold (module docstring).

  Args:
    path: destination; the format comes from the extension (image_io.OUTPUT_FORMATS).
    photo: a `Photo` (or an [H, W, 3] array: an opaque sRGB photo).
    protected, overwrite, jpeg_quality, exclusive: as `image_io.save_image`.

  Raises:
    image_io.ImageError: as `image_io.save_image`.
    FileExistsError: with `exclusive`, `path` appeared meanwhile.
  """
  if not isinstance(photo, Photo):
    photo = Photo(np.asarray(photo))
  image_format = image_io.check_output_path(path, protected=protected, overwrite=overwrite)
  try:
    jpeg_quality = image_io.check_jpeg_quality(jpeg_quality)
  except ValueError as error:
    raise image_io.ImageError(f"{path}: {error}") from None
  rgb, alpha = photo.rgb, photo.alpha
  if rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise image_io.ImageError(f"{path}: image of shape {rgb.shape}; expected [height, width, 3]")
  image_io.check_output_size(path, rgb.shape[1], rgb.shape[0])
  if alpha is not None and image_format not in _ALPHA_FORMATS:
    rgb = to_codes(photo.float_rgb() * (alpha / np.float32(photo.max_code))[..., None],
                   rgb.dtype)
    alpha = None
  depth = np.uint16 if rgb.dtype == np.uint16 and image_format in _SIXTEEN_BIT_FORMATS \
      else np.uint8
  if rgb.dtype != depth:
    rgb = to_codes(rgb.astype(np.float32) / np.float32(photo.max_code), depth)
    if alpha is not None:
      alpha = to_codes(alpha.astype(np.float32) / np.float32(photo.max_code), depth)
  samples = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=-1)
  icc = photo.icc_profile or image_io.srgb_icc_bytes()
  with atomic.replacing(path, exclusive=exclusive) as stream:
    if image_format == "PNG":
      stream.write(_png_bytes(samples, icc, photo.exif))
    elif depth == np.uint16:
      _write_tiff16(stream, samples, icc, photo.exif)
    else:
      options = {"icc_profile": icc}
      if photo.exif:
        options["exif"] = photo.exif
      if image_format == "JPEG":
        options["quality"] = jpeg_quality
        if jpeg_quality >= image_io._FULL_CHROMA_QUALITY:  # pylint: disable=protected-access
          options["subsampling"] = 0  # 4:4:4
      if image_format not in ("JPEG", "WEBP", "TIFF"):
        options = {}
      Image.fromarray(samples, "RGBA" if alpha is not None else "RGB").save(
          stream, format=image_format, **options)


def _png_chunk(kind, data):
  return (struct.pack(">I", len(data)) + kind + data
          + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_bytes(samples, icc, exif):
  """An 8- or 16-bit RGB or RGBA PNG with its profile and EXIF.

  Written here rather than by PIL, which writes no 16-bit colour PNGs and compresses on
  one core.
  """
  height, width, channels = samples.shape
  depth = 16 if samples.dtype == np.uint16 else 8
  rows = samples.astype(">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(
      height, width * channels * depth // 8)
  # PNG's "Up" filter (type 2): each byte minus the byte above, which compresses a photo
  # far better than no filter at the same zlib speed.
  filtered = rows.copy()
  filtered[1:] -= rows[:-1]
  data = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
  header = struct.pack(">IIBBBBB", width, height, depth, 6 if channels == 4 else 2, 0, 0, 0)
  chunks = [_png_chunk(b"IHDR", header),
            _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))]
  if exif:
    chunks.append(_png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER)))
  chunks.append(_png_chunk(b"IDAT", _zlib_stream(data.reshape(-1))))
  chunks.append(_png_chunk(b"IEND", b""))
  return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


# Bytes per piece of a zlib stream compressed in parallel: large enough that the pieces'
# restarted match history costs nothing measurable.
_ZLIB_PIECE_BYTES = 4 << 20


def _zlib_stream(data):
  """One zlib stream (RFC 1950) of `data` (uint8 [N]), compressed on every core.

  The pieces are raw deflate streams each ended by a sync flush (byte-aligned, so they
  concatenate, as pigz does), in a zlib header and the Adler-32 of the whole; zlib
  releases the GIL, so threads compress pieces at once.
  """
  starts = range(0, max(len(data), 1), _ZLIB_PIECE_BYTES)

  def piece(start):
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    last = start + _ZLIB_PIECE_BYTES >= len(data)
    return (compressor.compress(data[start:start + _ZLIB_PIECE_BYTES])
            + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))

  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    pieces = list(pool.map(piece, starts))
  # CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (fastest level, header check).
  return b"\x78\x01" + b"".join(pieces) + struct.pack(">I", zlib.adler32(data))


def _write_tiff16(stream, samples, icc, exif):
  """A 16-bit TIFF (PIL writes no 16-bit colour TIFFs) with its ICC profile and EXIF."""
  import tifffile  # pylint: disable=g-import-not-at-top
  exif_tiff = exif.removeprefix(_EXIF_HEADER) if exif else b""
  # PIL serialises the EXIF in the byte order it was read in, so the file takes that order.
  order = ">" if exif_tiff[:2] == b"MM" else "<"
  encoded = io.BytesIO()  # tifffile wants a named file or a BytesIO, not a descriptor
  # No JSON shape in ImageDescription: that tag is the photo's caption.
  tifffile.imwrite(encoded, samples, photometric="rgb", iccprofile=icc, metadata=None,
                   byteorder=order,
                   extrasamples=["unassalpha"] if samples.shape[-1] == 4 else None)
  tiff = encoded.getbuffer()  # no copy of a file as large as the photo
  tail = _exif_ifds(tiff, order, exif) if exif_tiff else b""
  if tail:
    # The header's offset of the first IFD: the new one, at the end.
    stream.write(tiff[:4])
    stream.write(struct.pack(order + "I", len(tiff) + len(tail[0])))
    stream.write(tiff[8:])
    stream.write(b"".join(tail))
  else:
    stream.write(tiff)


# Tags of a TIFF's first IFD that say how its pixels are stored. PIL reads all of a TIFF
# input's first IFD as its EXIF, these included; the output's own (from tifffile) are the
# ones that hold, and the ICC profile comes from `Photo.icc_profile`.
_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 322, 323, 324,
    325, 330, 338, 339, 513, 514, 529, 530, 531, 532, 34675})


def _exif_ifds(tiff, order, exif):
  """What to append to `tiff` (one classic TIFF image from tifffile) to carry `exif`.

  tifffile writes no EXIF or GPS IFD, so PIL serialises the EXIF (its first IFD with the
  EXIF and GPS IFDs it points to) for the end of the file, and a new first IFD after it
  merges tifffile's entries with that IFD's: the camera's description tags (Make, Model,
  DateTime, Artist, ...) become TIFF tags, and 34665 points to a real EXIF IFD. Values
  stored outside the entries keep their offsets; the old first IFD is left unused.

  Args:
    tiff: the file's bytes (or a buffer of them).
    order: its byte order, "<" or ">"; `exif`'s is the same.
    exif: EXIF bytes as `Photo.exif`.

  Returns:
    (the serialised EXIF, the new first IFD), to append in that order; () when there is
    nothing to add, or when the file is a BigTIFF (past 4 GB, larger than any photo
    `load_photo` accepts), whose offsets are 64-bit.
  """
  if struct.unpack_from(order + "H", tiff, 2)[0] != 42:
    return ()
  pil_exif = Image.Exif()
  pil_exif.load(exif)
  for tag in _LAYOUT_TAGS.intersection(pil_exif):
    del pil_exif[tag]
  if not len(pil_exif):
    return ()

  def entries(data, at):
    count, = struct.unpack_from(order + "H", data, at)
    return {struct.unpack_from(order + "H", data, at + 2 + 12 * i)[0]:
            bytes(data[at + 2 + 12 * i:at + 14 + 12 * i]) for i in range(count)}

  padding = b"\0" * (len(tiff) % 2)  # IFDs and values start on a word boundary
  # The EXIF as an IFD at the end of the file: entries, then the values and sub-IFDs (all
  # words, so what follows is word-aligned too).
  block = padding + pil_exif.tobytes(len(tiff) + len(padding))[len(_EXIF_HEADER) + 8:]
  first, = struct.unpack_from(order + "I", tiff, 4)
  image_entries = entries(tiff, first)
  merged = image_entries | entries(block, len(padding))
  next_ifd = bytes(tiff[first + 2 + 12 * len(image_entries):][:4])
  return block, (struct.pack(order + "H", len(merged))
                 + b"".join(merged[tag] for tag in sorted(merged)) + next_ifd)
