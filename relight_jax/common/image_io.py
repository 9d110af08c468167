"""Safe loading and saving of user images for inference.

`relight.py`, `export.py` and the notebooks take the user's own photos: paths, PIL images
or arrays of any size, mode and orientation. This module turns each into one canonical
form, float32 [height, width, 3] sRGB in [0, 1], and refuses everything else with an
`ImageError` that names the file and says what was expected. It also writes results
atomically (a temporary file in the same folder, then `os.replace`) and never over an
input.

Conventions:
  * EXIF orientation is honoured (`PIL.ImageOps.exif_transpose`): phone photos come out
    the way they are displayed.
  * Grayscale (1, L, I;16, I, F) is repeated to three channels; palette images are
    expanded; CMYK / YCbCr / LAB / HSV are converted to RGB by PIL.
  * Alpha (RGBA, LA, PA, palette transparency) is composited on black: rgb * alpha. For
    opaque images this is the same as dropping alpha (what the VIDIT loader does with
    its RGBA files); for transparent pixels, whose RGB values are undefined (often
    garbage), it gives "no light" rather than random colours.
  * 16-bit grayscale PNG/TIFF (PIL modes I;16*, and I for 16-bit PNGs) is scaled by
    1/65535, not truncated to 8 bits. PIL itself reads 16-bit *RGB* PNGs as 8-bit RGB.
  * Size limits: at most `MAX_PIXELS` (100 MP) and at least `MIN_SIDE` (8) pixels per
    side. The pixel count is checked from the header before decoding, so a
    decompression bomb is refused without being decompressed. Relighting a photo at the
    limit holds several float copies of it: about 10-15 GB of memory at 100 MP (roughly
    120 bytes per pixel), 1.2-1.8 GB at 12 MP.
  * Only regular files are opened: a FIFO or a device (/dev/zero) would block or never
    end. A PNG whose text chunks decompress beyond PIL's limit is refused naming the file.
  * Outputs: the extensions of `OUTPUT_FORMATS` (formats that store 8-bit RGB); WebP and
    JPEG have a largest side (`MAX_OUTPUT_SIDE`), checked before anything is computed
    where the caller knows the size (`check_output_size`).
  * Colour: an embedded ICC profile that is not sRGB (Adobe RGB and Display P3 from
    cameras and phones) is converted to sRGB with `PIL.ImageCms`, relative colorimetric;
    a profile that cannot be read or applied gives an `ImageWarning` naming the file, and
    the pixels are read as sRGB. Outputs (PNG, JPEG, WebP, TIFF) are tagged sRGB.
  * JPEG outputs are written at quality `JPEG_QUALITY` (95), 4:4:4 from quality 90 up.
  * HEIC / HEIF (and AVIF where Pillow lacks it) load when the optional plug-in
    `pillow_heif` (or `pillow_avif`) is installed; without it such a file is refused with
    a line saying what to install. Neither is a dependency.
"""

import contextlib
import functools
import importlib
import io
import os
import pathlib
import stat
import struct
import warnings

import numpy as np
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps
from PIL import UnidentifiedImageError

from relight_jax.common import atomic

MAX_PIXELS = 100_000_000  # 100 MP: a 12,000 x 8,000 photo still passes
MIN_SIDE = 8              # the smallest side a relighting result means anything at

JPEG_QUALITY = 95         # PIL's default 75 shows blocking on smooth relit shading
# Chroma subsampling halves the colour resolution, and relighting is mostly a change of
# colour: from this quality up, keep full-resolution chroma (4:4:4), where the few extra
# bytes are worth it; below it the user asked for small files.
_FULL_CHROMA_QUALITY = 90

# Output extensions and the PIL format each writes: formats that store 8-bit RGB as is.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                  ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM"}
# The largest side each format can store (libwebp: 16383; PIL's JPEG writer: 65500).
MAX_OUTPUT_SIDE = {"WEBP": 16383, "JPEG": 65500}

_EXPECTED = "an RGB, grayscale, palette or RGBA image (PNG, JPEG, TIFF, WebP, ...)"

# Formats whose PIL writers embed an `icc_profile`.
_ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
# Modes littleCMS converts through PIL (a palette image is expanded first).
_ICC_MODES = ("RGB", "RGBA", "L", "CMYK")
# Extensions of optional plug-ins: the pip package that brings each.
_PLUGIN_PACKAGES = {".heic": "pillow-heif", ".heif": "pillow-heif", ".avif": "pillow-heif"}


class ImageError(ValueError):
  """A user image that cannot be loaded or saved; the message names the file."""


class ImageWarning(UserWarning):
  """An image that loads, but not quite as stored (e.g. its colour profile is ignored)."""


@functools.cache
def _register_plugins():
  """Registers the optional HEIF / AVIF openers that are installed (once per process)."""
  try:
    pillow_heif = importlib.import_module("pillow_heif")
  except ImportError:
    pillow_heif = None
  if pillow_heif is not None:
    pillow_heif.register_heif_opener()
  has_avif = ".avif" in Image.registered_extensions()
  if not has_avif and hasattr(pillow_heif, "register_avif_opener"):
    pillow_heif.register_avif_opener()
    has_avif = True
  if not has_avif:
    try:
      importlib.import_module("pillow_avif")  # registers itself on import
    except ImportError:
      pass


@functools.cache
def _srgb_profile():
  return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_icc_bytes():
  """The ICC profile embedded in outputs: PIL's built-in sRGB."""
  return _srgb_profile().tobytes()


def _icc_warning(label, reason):
  warnings.warn(f"{label}: {reason}; reading the pixels as sRGB", ImageWarning, stacklevel=5)


def _to_srgb(image, icc, label):
  """Converts a PIL image carrying ICC profile bytes `icc` to sRGB (PIL image out)."""
  if not icc or icc == srgb_icc_bytes():
    return image
  try:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    description = ImageCms.getProfileDescription(profile)
  except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
    _icc_warning(label, f"unreadable ICC profile ({error})")
    return image
  # Cameras write 'sRGB IEC61966-2.1'; converting it to PIL's sRGB would only add
  # rounding, so every profile that calls itself sRGB is taken as sRGB.
  if "srgb" in description.lower():
    return image
  if image.mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  if image.mode not in _ICC_MODES:
    _icc_warning(label, f"ICC profile {description.strip()!r} cannot be applied to PIL mode "
                 f"{image.mode!r}")
    return image
  try:
    # Relative colorimetric keeps every colour inside the sRGB gamut exactly as measured
    # (the network should see the scene's true colours) and clips the rest; perceptual
    # would shift in-gamut colours too, and matrix profiles (Adobe RGB, Display P3) have
    # no perceptual table anyway, so littleCMS would fall back to colorimetric.
    return ImageCms.profileToProfile(
        image, profile, _srgb_profile(),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGBA" if image.mode == "RGBA" else "RGB")
  except (ImageCms.PyCMSError, OSError, ValueError) as error:
    _icc_warning(label, f"ICC profile {description.strip()!r} cannot be applied ({error})")
    return image


def _describe(source, name):
  """Name used in error messages: the path, the caller's name, or the type."""
  if name is not None:
    return str(name)
  if isinstance(source, (str, os.PathLike)):
    return os.fspath(source)
  filename = getattr(source, "filename", "") if isinstance(source, Image.Image) else ""
  return filename or f"<{type(source).__name__}>"


def _check_size(width, height, label, max_pixels, min_side):
  if width * height > max_pixels:
    raise ImageError(
        f"{label}: {width}x{height} pixels ({width * height / 1e6:.1f} MP) is more than the "
        f"{max_pixels / 1e6:.0f} MP limit; expected a photo of at most {max_pixels:,} pixels")
  if min(width, height) < min_side:
    raise ImageError(
        f"{label}: {width}x{height} pixels is too small; expected at least {min_side} pixels "
        "per side")


def _pil_to_array(image, label):
  """Decodes an opened PIL image into float32 [height, width, 3] in [0, 1]."""
  mode = image.mode
  if mode.startswith("I;16") or mode == "I":
    # 16-bit grayscale (PNG and TIFF decode to I;16* or I): scale, do not truncate.
    gray = np.asarray(image, dtype=np.float64)
    rgb = np.repeat(np.clip(gray / 65535.0, 0.0, 1.0)[..., None], 3, axis=-1)
    return rgb.astype(np.float32)
  if mode == "F":
    gray = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(gray)):
      raise ImageError(f"{label}: floating-point image holds NaN or infinite values")
    return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=-1)
  has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
      mode == "P" and "transparency" in image.info)
  try:
    converted = image.convert("RGBA" if has_alpha else "RGB")
  except (ValueError, OSError) as error:
    raise ImageError(f"{label}: cannot convert PIL mode {mode!r} to RGB ({error}); "
                     f"expected {_EXPECTED}") from None
  array = np.asarray(converted, dtype=np.float32) / 255.0  # [height, width, 3 or 4]
  if has_alpha:
    # Composite on black (module docstring): rgb * alpha.
    array = array[..., :3] * array[..., 3:4]
  return np.ascontiguousarray(array[..., :3])


def _load_pil(image, label, max_pixels, min_side):
  _check_size(image.width, image.height, label, max_pixels, min_side)
  try:
    image.load()
    icc = image.info.get("icc_profile")
    # EXIF orientation 5-8 swaps width and height, so check the size only before (the
    # pixel count is the same) and orient after decoding.
    image = ImageOps.exif_transpose(image)
  except (OSError, ValueError, SyntaxError) as error:
    raise ImageError(f"{label}: the image data is damaged or truncated ({error}); "
                     f"expected {_EXPECTED}") from None
  return _pil_to_array(_to_srgb(image, icc, label), label)


def _array_to_float(array, label):
  """Validates a user array and returns float32 [height, width, 3] in [0, 1]."""
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim == 2:
    array = np.repeat(array[..., None], 3, axis=-1)
  if array.ndim != 3 or array.shape[-1] not in (3, 4):
    raise ImageError(f"{label}: array of shape {array.shape}; expected [height, width], "
                     "[height, width, 1], [height, width, 3] or [height, width, 4]")
  if array.dtype == np.uint8:
    array = array.astype(np.float32) / 255.0
  elif array.dtype == np.uint16:
    array = array.astype(np.float32) / 65535.0
  elif np.issubdtype(array.dtype, np.floating):
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
      raise ImageError(f"{label}: array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    # A small tolerance for rounding in the caller's own processing.
    if low < -1e-3 or high > 1.0 + 1e-3:
      raise ImageError(f"{label}: float array with values in [{low:.3g}, {high:.3g}]; "
                       "expected values in [0, 1] (divide 8-bit data by 255)")
    array = np.clip(array, 0.0, 1.0)
  else:
    raise ImageError(f"{label}: array of dtype {array.dtype}; expected uint8, uint16 or "
                     "float in [0, 1]")
  if array.shape[-1] == 4:
    array = array[..., :3] * array[..., 3:4]  # composite on black, as for files
  return np.ascontiguousarray(array)


def load_image(source, *, name=None, max_pixels=MAX_PIXELS, min_side=MIN_SIDE):
  """Loads a user image as float32 sRGB in [0, 1].

  Args:
    source: a path (str or os.PathLike), a PIL image, or an array ([H, W], [H, W, 1],
      [H, W, 3] or [H, W, 4]; uint8, uint16 or float in [0, 1]).
    name: how to call the image in error messages (default: its path or type).
    max_pixels: refuse images with more pixels than this.
    min_side: refuse images with a side shorter than this.

  Returns:
    float32 array [height, width, 3] in [0, 1] sRGB (an embedded ICC profile applied),
    EXIF orientation applied, alpha composited on black.

  Raises:
    ImageError: unreadable path, not an image, damaged data, decompression bomb, size
      outside the limits, or an array of the wrong shape, dtype or range.
  """
  label = _describe(source, name)
  if isinstance(source, (str, os.PathLike)):
    with _opened(source, label, max_pixels) as image:
      return _load_pil(image, label, max_pixels, min_side)
  if isinstance(source, Image.Image):
    return _load_pil(source, label, max_pixels, min_side)
  if isinstance(source, (bytes, bytearray, str)) or not hasattr(source, "__array__"):
    raise ImageError(f"{label}: expected a path, a PIL image or an array")
  array = _array_to_float(source, label)
  _check_size(array.shape[1], array.shape[0], label, max_pixels, min_side)
  return array


def _check_regular_file(path, label):
  """Refuses a folder, FIFO, socket or device before it is opened (it would block)."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise ImageError(f"{label}: no such file; expected a path to an image") from None
  except OSError as error:
    raise ImageError(f"{label}: cannot read ({error.strerror}); expected {_EXPECTED}"
                     ) from None
  if stat.S_ISDIR(mode):
    raise ImageError(f"{label}: is a folder; expected an image file")
  if not stat.S_ISREG(mode):
    raise ImageError(f"{label}: is not a regular file (a FIFO, socket or device); expected "
                     "an image file")


@contextlib.contextmanager
def _opened(source, label, max_pixels):
  """The PIL image of the file `source`, every failure an `ImageError` naming it."""
  _register_plugins()
  path = pathlib.Path(source)
  _check_regular_file(path, label)
  try:
    with warnings.catch_warnings():
      # PIL warns above its own 89 MP default; we enforce MAX_PIXELS ourselves below.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(path) as image:
        yield image
  except ImageError:
    raise
  except Image.DecompressionBombError as error:
    raise ImageError(f"{label}: refused as a decompression bomb ({error}); expected a "
                     f"photo of at most {max_pixels:,} pixels") from None
  except UnidentifiedImageError:
    extension = path.suffix.lower()
    if extension in _PLUGIN_PACKAGES and extension not in Image.registered_extensions():
      package = _PLUGIN_PACKAGES[extension]
      raise ImageError(f"{label}: reading {extension} images needs the optional plug-in "
                       f"{package}, which is not installed: pip install {package}"
                       ) from None
    raise ImageError(f"{label}: not an image file PIL can read; expected {_EXPECTED}"
                     ) from None
  except FileNotFoundError:
    raise ImageError(f"{label}: no such file; expected a path to an image") from None
  except PermissionError:
    raise ImageError(f"{label}: permission denied; expected a readable image file"
                     ) from None
  except OSError as error:
    raise ImageError(f"{label}: cannot read ({error}); expected {_EXPECTED}") from None
  except (ValueError, SyntaxError, struct.error) as error:
    # PIL's own limits and parsers: e.g. "Decompressed Data Too Large" for a PNG text
    # chunk, which says neither the file nor what to do.
    raise ImageError(f"{label}: refused or damaged ({error}); expected {_EXPECTED} without "
                     "oversized metadata") from None


def image_size(source, *, name=None, max_pixels=MAX_PIXELS):
  """(width, height) of an image file as displayed (EXIF orientation), from its header.

  Nothing is decoded: use it to check what a run would write before running it.

  Raises:
    ImageError: as `load_image`, for a file that cannot be opened.
  """
  label = _describe(source, name)
  with _opened(source, label, max_pixels) as image:
    width, height = image.size
    try:
      orientation = image.getexif().get(0x0112)  # ExifTags.Base.Orientation
    except Exception:  # pylint: disable=broad-except  # damaged EXIF: load_image says so
      orientation = None
  return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def to_uint8(image):
  """Rounds float [..., 3] in [0, 1] to uint8 (values outside [0, 1] are clipped)."""
  return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def has_image_extension(path):
  """Whether `path` has an image extension (e.g. .png, .jpg, .tif, .heic).

  HEIC / HEIF / AVIF count even without their plug-in, so that a folder of phone photos
  is not silently skipped: loading each then says which package to install.
  """
  _register_plugins()
  extension = pathlib.Path(path).suffix.lower()
  return extension in Image.registered_extensions() or extension in _PLUGIN_PACKAGES


def same_file(path, other):
  """Whether two paths name the same file (symlinks and hard links resolved)."""
  try:
    return os.path.samefile(path, other)
  except OSError:
    return os.path.realpath(path) == os.path.realpath(other)


def check_output_path(path, *, protected=(), overwrite=True):
  """Checks that `path` can receive an image; returns its PIL format name.

  Args:
    path: destination, e.g. 'out/relit.png'.
    protected: paths that must never be written (the inputs of the run).
    overwrite: if False, refuse an existing file.

  Returns:
    The PIL format of the extension, e.g. 'PNG'.

  Raises:
    ImageError: `path` is one of `protected`, exists while `overwrite` is False, has no
      known image extension, or its folder does not exist.
  """
  _register_plugins()
  path = pathlib.Path(path)
  for other in protected:
    if same_file(path, other):
      raise ImageError(f"{path}: refusing to overwrite an input image")
  if path.exists() and not overwrite:
    raise ImageError(f"{path}: already exists; pass overwrite to replace it")
  extension = path.suffix.lower()
  image_format = OUTPUT_FORMATS.get(extension)
  if image_format is None:
    known = Image.registered_extensions().get(extension)
    reason = (f"PIL's {known} cannot store an 8-bit RGB result" if known
              else f"unknown image extension {extension!r}")
    raise ImageError(f"{path}: {reason}; expected one of {', '.join(OUTPUT_FORMATS)}")
  if not path.parent.is_dir():
    raise ImageError(f"{path}: folder {path.parent} does not exist")
  return image_format


def check_output_size(path, width, height):
  """Refuses a `width` x `height` image its extension's format cannot store.

  Call it before computing the image: WebP stores at most 16,383 pixels per side and
  JPEG 65,500 (`MAX_OUTPUT_SIDE`), and would otherwise fail only once encoding starts.

  Raises:
    ImageError: naming the path, the size, the limit and the formats without one.
  """
  path = pathlib.Path(path)
  image_format = OUTPUT_FORMATS.get(path.suffix.lower())
  limit = MAX_OUTPUT_SIDE.get(image_format)
  if limit is not None and max(width, height) > limit:
    raise ImageError(f"{path}: a {width}x{height} result is larger than {image_format} "
                     f"allows ({limit:,} pixels per side); use .png or .tif, or a smaller "
                     "input")


def check_jpeg_quality(quality):
  """Returns `quality` if it is a JPEG quality (an int from 1 to 100), else ValueError."""
  if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not (
      1 <= quality <= 100):
    raise ValueError(f"jpeg_quality={quality!r}: expected an integer from 1 to 100")
  return int(quality)


def save_image(path, image, *, protected=(), overwrite=True, jpeg_quality=JPEG_QUALITY,
               exclusive=False):
  """Writes an image atomically; the format comes from the file extension.

  The image is encoded into a temporary file in the destination folder, which then
  replaces `path` in one `os.replace`: a failure (disk full, bad extension, interrupt)
  leaves no partial file and any previous file intact. PNG, JPEG, WebP and TIFF files are
  tagged with the sRGB ICC profile.

  Args:
    path: destination, e.g. 'out/relit.png'. Its folder must exist.
    image: float [height, width, 3] in [0, 1] or uint8 [height, width, 3].
    protected: paths that must never be written (the inputs of the run).
    overwrite: if False, refuse to replace an existing file.
    jpeg_quality: 1-100, for .jpg / .jpeg (4:4:4 chroma from 90 up).
    exclusive: fail, leaving it alone, if a file appears at `path` while this one is
      written (another run writing the same output) instead of replacing it.

  Raises:
    ImageError: as `check_output_path` and `check_output_size`, an image of the wrong
      shape, or a bad `jpeg_quality`.
    FileExistsError: with `exclusive`, `path` appeared meanwhile.
  """
  path = pathlib.Path(path)
  try:
    jpeg_quality = check_jpeg_quality(jpeg_quality)
  except ValueError as error:
    raise ImageError(f"{path}: {error}") from None
  image_format = check_output_path(path, protected=protected, overwrite=overwrite)
  array = np.asarray(image)
  if array.dtype != np.uint8:
    array = to_uint8(array)
  if array.ndim != 3 or array.shape[-1] != 3:
    raise ImageError(f"{path}: image of shape {array.shape}; expected [height, width, 3]")
  check_output_size(path, array.shape[1], array.shape[0])
  options = {}
  if image_format in _ICC_FORMATS:
    options["icc_profile"] = srgb_icc_bytes()
  if image_format == "JPEG":
    options["quality"] = jpeg_quality
    if jpeg_quality >= _FULL_CHROMA_QUALITY:
      options["subsampling"] = 0  # 4:4:4
  with atomic.replacing(path, exclusive=exclusive) as stream:
    Image.fromarray(array, "RGB").save(stream, format=image_format, **options)
