"""Tests of common/image_io.py: every accepted mode, every refused input, atomic saves."""

import importlib.util
import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib

import colour
import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms
from PIL import JpegImagePlugin

from relight_jax.common import image_io


def _pattern(height=12, width=20):
  """A uint8 RGB image whose every pixel differs (orientation mistakes show)."""
  rows, cols = np.mgrid[0:height, 0:width]
  return np.stack([rows * 20 % 256, cols * 12 % 256, (rows * 7 + cols * 3) % 256],
                  axis=-1).astype(np.uint8)


def _png_header_only(path, width, height):
  """A PNG whose header claims width x height but whose data is tiny (a bomb's shape)."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                   + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_rgb_png_round_trip(tmp_path):
  array = _pattern()
  Image.fromarray(array).save(tmp_path / "a.png")
  loaded = image_io.load_image(tmp_path / "a.png")
  assert loaded.dtype == np.float32 and loaded.shape == (12, 20, 3)
  np.testing.assert_array_equal(loaded, array / np.float32(255))


def test_exif_orientation_is_applied(tmp_path):
  array = _pattern()
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
  Image.fromarray(array).save(tmp_path / "phone.png", exif=exif)
  loaded = image_io.load_image(tmp_path / "phone.png")
  assert loaded.shape == (20, 12, 3)
  np.testing.assert_array_equal(loaded, np.rot90(array, k=-1) / np.float32(255))


def test_grayscale_and_bilevel_become_three_equal_channels(tmp_path):
  gray = _pattern()[..., 0]
  Image.fromarray(gray, "L").save(tmp_path / "gray.png")
  loaded = image_io.load_image(tmp_path / "gray.png")
  np.testing.assert_array_equal(loaded, np.repeat(gray[..., None] / np.float32(255), 3, -1))
  Image.fromarray(gray > 100).save(tmp_path / "bilevel.png")
  bilevel = image_io.load_image(tmp_path / "bilevel.png")
  np.testing.assert_array_equal(bilevel[..., 1], (gray > 100).astype(np.float32))


def test_sixteen_bit_png_is_scaled_not_truncated(tmp_path):
  values = np.array([[0, 1000, 1001, 65535]] * 8, np.uint16)
  values = np.tile(values, (1, 2))  # 8 x 8
  Image.fromarray(values).save(tmp_path / "deep.png")
  assert Image.open(tmp_path / "deep.png").mode.startswith("I")  # 16-bit on disk
  loaded = image_io.load_image(tmp_path / "deep.png")
  expected = values.astype(np.float64) / 65535
  np.testing.assert_allclose(loaded[..., 0], expected, atol=1e-7)
  # 1000 and 1001 would collapse to the same 8-bit value: they must stay distinct.
  assert loaded[0, 1, 0] < loaded[0, 2, 0]


def test_rgba_and_la_are_composited_on_black(tmp_path):
  rgb = _pattern()
  alpha = np.linspace(0, 255, 20).astype(np.uint8)[None, :].repeat(12, 0)
  Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "cutout.png")
  loaded = image_io.load_image(tmp_path / "cutout.png")
  expected = rgb / 255.0 * (alpha / 255.0)[..., None]
  np.testing.assert_allclose(loaded, expected, atol=1e-6)
  assert np.all(loaded[:, 0] == 0)  # fully transparent column: black, not its RGB
  Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
  loaded_la = image_io.load_image(tmp_path / "la.png")
  np.testing.assert_allclose(loaded_la[..., 2], expected[..., 0], atol=1e-6)


def test_palette_with_and_without_transparency(tmp_path):
  array = _pattern()
  palette_image = Image.fromarray(array).quantize(colors=16)
  palette_image.save(tmp_path / "palette.png")
  np.testing.assert_allclose(image_io.load_image(tmp_path / "palette.png"),
                             np.asarray(palette_image.convert("RGB")) / 255.0, atol=1e-7)
  index = int(np.asarray(palette_image)[0, 0])
  palette_image.save(tmp_path / "transparent.png", transparency=index)
  loaded = image_io.load_image(tmp_path / "transparent.png")
  assert np.all(loaded[np.asarray(palette_image) == index] == 0)
  assert loaded[np.asarray(palette_image) != index].max() > 0


def test_pil_image_and_arrays(tmp_path):
  array = _pattern()
  from_pil = image_io.load_image(Image.fromarray(array))
  np.testing.assert_array_equal(from_pil, array / np.float32(255))
  np.testing.assert_allclose(image_io.load_image(array.astype(np.uint16) * 257),
                             array / 255.0, atol=1e-7)
  np.testing.assert_array_equal(image_io.load_image(array[..., :1]).shape, (12, 20, 3))
  as_float = array / np.float32(255)
  np.testing.assert_array_equal(image_io.load_image(as_float), as_float)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((12, 20, 2), np.uint8), "expected [height, width]"),
    (np.full((12, 20, 3), 255.0, np.float32), "expected values in [0, 1]"),
    (np.full((12, 20, 3), np.nan, np.float32), "NaN"),
    (np.zeros((12, 20, 3), np.int64), "expected uint8, uint16 or float"),
    (np.zeros((4, 20, 3), np.uint8), "too small"),
    (b"not an image", "expected a path, a PIL image or an array"),
])
def test_bad_arrays_are_refused(bad, message):
  with pytest.raises(image_io.ImageError, match="my_input") as raised:
    image_io.load_image(bad, name="my_input")
  assert message in str(raised.value)


def test_bad_files_are_refused_naming_the_file(tmp_path):
  (tmp_path / "notes.png").write_text("this is text, not a PNG")
  truncated = tmp_path / "truncated.png"
  Image.fromarray(_pattern(64, 64)).save(truncated)
  truncated.write_bytes(truncated.read_bytes()[:200])
  (tmp_path / "folder.png").mkdir()
  Image.fromarray(_pattern(4, 40)).save(tmp_path / "thin.png")
  cases = {
      "notes.png": "not an image file",
      "missing.png": "no such file",
      "truncated.png": "damaged or truncated",
      "folder.png": "is a folder",
      "thin.png": "too small",
  }
  for name, message in cases.items():
    with pytest.raises(image_io.ImageError) as raised:
      image_io.load_image(tmp_path / name)
    assert str(tmp_path / name) in str(raised.value), raised.value
    assert message in str(raised.value), raised.value


def test_decompression_bombs_and_huge_images_are_refused_before_decoding(tmp_path):
  # 30000 x 30000 = 900 MP: beyond twice PIL's MAX_IMAGE_PIXELS, PIL itself raises.
  _png_header_only(tmp_path / "bomb.png", 30_000, 30_000)
  with pytest.raises(image_io.ImageError, match="bomb.png.*decompression bomb"):
    image_io.load_image(tmp_path / "bomb.png")
  # 11000 x 10000 = 110 MP: PIL only warns; our 100 MP limit refuses from the header.
  _png_header_only(tmp_path / "huge.png", 11_000, 10_000)
  with pytest.raises(image_io.ImageError, match=r"huge.png: 11000x10000 .*100 MP limit"):
    image_io.load_image(tmp_path / "huge.png")


def test_save_is_atomic_and_never_overwrites_an_input(tmp_path, monkeypatch):
  array = _pattern()
  output = tmp_path / "out.png"
  image_io.save_image(output, array / 255.0)
  np.testing.assert_array_equal(np.asarray(Image.open(output)), array)
  before = output.read_bytes()

  def failing_save(self, stream, format=None, **kwargs):  # noqa: A002 (PIL's name)
    stream.write(b"\x89PNG partial")
    raise OSError("disk full")

  monkeypatch.setattr(Image.Image, "save", failing_save)
  with pytest.raises(OSError, match="disk full"):
    image_io.save_image(output, np.zeros((12, 20, 3), np.float32))
  monkeypatch.undo()
  assert output.read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temporary left behind

  source = tmp_path / "photo.png"
  Image.fromarray(array).save(source)
  (tmp_path / "alias.png").symlink_to(source)
  for destination in (source, tmp_path / "alias.png"):
    with pytest.raises(image_io.ImageError, match="refusing to overwrite an input"):
      image_io.save_image(destination, array, protected=[source])
  with pytest.raises(image_io.ImageError, match="already exists"):
    image_io.save_image(output, array, overwrite=False)
  with pytest.raises(image_io.ImageError, match="unknown image extension '.xyz'"):
    image_io.save_image(tmp_path / "out.xyz", array)
  with pytest.raises(image_io.ImageError, match="does not exist"):
    image_io.save_image(tmp_path / "nowhere" / "out.png", array)
  assert np.asarray(Image.open(source)).tobytes() == array.tobytes()


# ---------------------------------------------------------------- colour profiles


def _s15(value):
  return struct.pack(">i", round(value * 65536))


def _adobe_rgb_profile():
  """ICC v2 bytes of an Adobe RGB (1998) matrix/TRC display profile, built offline.

  PIL can only create sRGB, LAB and XYZ profiles, so the tags are written here: D50
  (Bradford-adapted) colorants from colour-science and a 563/256 gamma curve.
  """
  space = colour.RGB_COLOURSPACES["Adobe RGB (1998)"]
  d50 = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"])
  adapt = colour.adaptation.matrix_chromatic_adaptation_VonKries(
      colour.xy_to_XYZ(space.whitepoint), d50, transform="Bradford")
  colorants = adapt @ space.matrix_RGB_to_XYZ  # columns: XYZ of R, G, B

  def xyz(values):
    return b"XYZ \0\0\0\0" + b"".join(_s15(value) for value in values)

  text = b"Adobe RGB (1998) test profile\0"
  description = (b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text
                 + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67)
  curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
  tags = [(b"desc", description), (b"cprt", b"text\0\0\0\0none\0\0\0\0"),
          (b"wtpt", xyz(d50)), (b"rXYZ", xyz(colorants[:, 0])),
          (b"gXYZ", xyz(colorants[:, 1])), (b"bXYZ", xyz(colorants[:, 2])),
          (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
  offset = 128 + 4 + 12 * len(tags)
  table, data = b"", b""
  for signature, body in tags:
    body += b"\0" * (-len(body) % 4)
    table += signature + struct.pack(">II", offset + len(data), len(body))
    data += body
  size = offset + len(data)
  header = (struct.pack(">I", size) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
            + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
            + b"".join(_s15(value) for value in (0.9642, 1.0, 0.8249)) + b"\0" * 48)
  assert len(header) == 128
  return header + struct.pack(">I", len(tags)) + table + data


def test_a_non_srgb_profile_is_converted_to_srgb(tmp_path):
  array = _pattern()
  array[0, :3] = [[128, 128, 128], [200, 60, 30], [255, 0, 0]]
  profile = _adobe_rgb_profile()
  for name in ("adobe.png", "adobe.jpg", "adobe.tif"):
    Image.fromarray(array).save(tmp_path / name, icc_profile=profile)
  loaded = image_io.load_image(tmp_path / "adobe.png")
  naive = array / np.float32(255)
  assert np.abs(loaded - naive).max() > 10 / 255  # Adobe RGB is not read as sRGB

  def converted(pixels):
    return np.asarray(ImageCms.profileToProfile(
        Image.fromarray(pixels), ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"), renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
    )) / np.float32(255)

  np.testing.assert_array_equal(loaded, converted(array))
  # Independent of littleCMS: colour-science's Adobe RGB -> sRGB, gamut-clipped.
  reference = np.clip(colour.RGB_to_RGB(
      naive.astype(np.float64), "Adobe RGB (1998)", "sRGB", apply_cctf_decoding=True,
      apply_cctf_encoding=True), 0.0, 1.0)
  np.testing.assert_allclose(loaded, reference, atol=3 / 255)
  # The same profile in JPEG and TIFF, and on a PIL image passed directly.
  with Image.open(tmp_path / "adobe.jpg") as jpeg:
    decoded = np.asarray(jpeg)
  np.testing.assert_array_equal(image_io.load_image(tmp_path / "adobe.jpg"), converted(decoded))
  np.testing.assert_array_equal(image_io.load_image(tmp_path / "adobe.tif"), loaded)
  with Image.open(tmp_path / "adobe.png") as image:
    np.testing.assert_array_equal(image_io.load_image(image), loaded)


def test_srgb_profiles_are_kept_and_a_bad_profile_warns(tmp_path):
  array = _pattern()
  Image.fromarray(array).save(tmp_path / "srgb.png", icc_profile=image_io.srgb_icc_bytes())
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    np.testing.assert_array_equal(image_io.load_image(tmp_path / "srgb.png"),
                                  array / np.float32(255))
  Image.fromarray(array).save(tmp_path / "bad.png", icc_profile=b"not an ICC profile" * 8)
  with pytest.warns(image_io.ImageWarning, match=r"bad.png: unreadable ICC profile.*as sRGB"):
    loaded = image_io.load_image(tmp_path / "bad.png")
  np.testing.assert_array_equal(loaded, array / np.float32(255))


def test_outputs_are_tagged_srgb_and_jpeg_quality_is_95(tmp_path):
  rng = np.random.default_rng(0)
  array = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  srgb = image_io.srgb_icc_bytes()
  for name in ("out.png", "out.jpg", "out.jpeg", "out.webp", "out.tif"):
    image_io.save_image(tmp_path / name, array)
    with Image.open(tmp_path / name) as image:
      assert image.info.get("icc_profile") == srgb, name
  with Image.open(tmp_path / "out.jpg") as default:
    # Quality 95's luminance table (PIL scales the standard one; 100 is all ones).
    assert max(default.quantization[0]) < 16 and default.layers == 3
    default_tables = default.quantization
  image_io.save_image(tmp_path / "q50.jpg", array, jpeg_quality=50)
  with Image.open(tmp_path / "q50.jpg") as low:
    assert max(low.quantization[0]) > max(default_tables[0])
  assert os.path.getsize(tmp_path / "q50.jpg") < os.path.getsize(tmp_path / "out.jpg")
  reference = io.BytesIO()
  Image.fromarray(array).save(reference, format="JPEG", quality=95)
  assert Image.open(reference).quantization == default_tables
  for bad in (0, 101, 9.5, True, "95"):
    with pytest.raises(image_io.ImageError, match=r"q.jpg: jpeg_quality=.*from 1 to 100"):
      image_io.save_image(tmp_path / "q.jpg", array, jpeg_quality=bad)
  assert not (tmp_path / "q.jpg").exists()


def test_jpeg_chroma_is_full_resolution_from_quality_90(tmp_path):
  array = _pattern(64, 64)
  image_io.save_image(tmp_path / "high.jpg", array, jpeg_quality=90)
  image_io.save_image(tmp_path / "low.jpg", array, jpeg_quality=89)
  with Image.open(tmp_path / "high.jpg") as high, Image.open(tmp_path / "low.jpg") as low:
    # PIL's codes: 0 is 4:4:4, 2 is 4:2:0 (its default).
    assert JpegImagePlugin.get_sampling(high) == 0
    assert JpegImagePlugin.get_sampling(low) == 2


# ---------------------------------------------------------------- optional plug-ins

_HAS_HEIF = importlib.util.find_spec("pillow_heif") is not None


def test_heic_without_the_plugin_says_what_to_install(tmp_path):
  """In a process where pillow_heif cannot be imported (as when it is not installed)."""
  (tmp_path / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 64)
  code = textwrap.dedent(f"""\
      import sys
      sys.modules["pillow_heif"] = None  # import pillow_heif now raises ImportError
      from relight_jax.common import image_io
      assert image_io.has_image_extension({str(tmp_path / "phone.HEIC")!r})  # batch folders list it
      try:
        image_io.load_image({str(tmp_path / "phone.heic")!r})
      except image_io.ImageError as error:
        print(error)
      """)
  message = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
  assert message.startswith(f"{tmp_path / 'phone.heic'}: ") and "\n" not in message
  assert "pip install pillow-heif" in message


@pytest.mark.skipif(not _HAS_HEIF, reason="the optional plug-in pillow_heif is not installed")
def test_heic_with_the_plugin_loads(tmp_path):
  array = _pattern(16, 16)
  image_io.check_output_path(tmp_path / "x.png")  # registers the plug-in
  Image.fromarray(array).save(tmp_path / "photo.heic", quality=-1)  # lossless
  loaded = image_io.load_image(tmp_path / "photo.heic")
  assert loaded.shape == (16, 16, 3)
  assert np.abs(loaded - array / np.float32(255)).mean() < 0.05
