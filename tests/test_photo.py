"""Tests of relight_jax/common/photo.py, the callable model (relighter.py) and the relight
command's handling of files: bit depth, alpha, ICC and EXIF come back as they came."""

import numpy as np
import pytest
import tifffile
from conftest import checkpointed_workdir
from PIL import Image
from PIL import ImageOps

import relight_jax
from relight_jax import relight
from relight_jax.common import image_io
from relight_jax.common import photo as photo_lib
from relight_jax.inference import guided_upsample as gu

_CAMERA, _DATE = 0x010F, 0x0132  # EXIF tags


def _exif(orientation=1):
  exif = Image.Exif()
  exif[_CAMERA], exif[_DATE], exif[0x0112] = "Test camera", "2024:01:02 03:04:05", orientation
  return exif.tobytes()


def _codes(shape, dtype, seed=0):
  return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype)


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("extension", [".png", ".tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_files_round_trip_exactly(tmp_path, extension, channels):
  samples = _codes((21, 34, channels), np.uint16)
  alpha = samples[..., 3] if channels == 4 else None
  path = tmp_path / f"photo{extension}"
  photo_lib.save_photo(path, photo_lib.Photo(samples[..., :3], alpha, None, _exif()))
  loaded = photo_lib.load_photo(path)
  assert loaded.rgb.dtype == np.uint16
  np.testing.assert_array_equal(loaded.rgb, samples[..., :3])
  if channels == 4:
    np.testing.assert_array_equal(loaded.alpha, alpha)
  else:
    assert loaded.alpha is None
  assert loaded.icc_profile == image_io.srgb_icc_bytes()
  # PIL itself reads the high bytes: the file is a standard one.
  np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")),
                                (samples[..., :3] >> 8).astype(np.uint8))
  with Image.open(path) as image:
    assert image.getexif()[_CAMERA] == "Test camera"


@pytest.mark.parametrize("endian", ["<", ">"])  # cameras write both
def test_sixteen_bit_tiffs_carry_the_camera_and_the_exif_ifd(tmp_path, endian):
  exif = Image.Exif()
  exif.endian = endian
  exif[0x010F], exif[0x0110], exif[_DATE] = "Test make", "Test model", "2024:01:02 03:04:05"
  exif.get_ifd(0x8769).update({0x9003: "2023:12:31 23:59:58", 0x8827: 400})  # date taken, ISO
  samples = _codes((19, 26, 3), np.uint16)
  path = tmp_path / "photo.tif"
  photo_lib.save_photo(path, photo_lib.Photo(samples, None, None, exif.tobytes()))
  with Image.open(path) as image:
    read = image.getexif()
    assert (read[0x010F], read[0x0110], read[_DATE]) == (
        "Test make", "Test model", "2024:01:02 03:04:05")
    assert read.get_ifd(0x8769) == {0x9003: "2023:12:31 23:59:58", 0x8827: 400}
  with tifffile.TiffFile(path) as tiff:  # a second reader of the same tags
    page = tiff.pages[0]
    assert page.tags["Model"].value == "Test model"
    assert page.tags["ExifTag"].value["DateTimeOriginal"] == "2023:12:31 23:59:58"
    np.testing.assert_array_equal(page.asarray(), samples)
  loaded = photo_lib.load_photo(path)  # and relighting it again keeps them
  np.testing.assert_array_equal(loaded.rgb, samples)
  again = Image.Exif()
  again.load(loaded.exif)
  assert again[0x010F] == "Test make" and again.get_ifd(0x8769)[0x8827] == 400


@pytest.mark.parametrize("channels", [3, 4])
def test_eight_bit_pngs_compressed_in_pieces_are_standard_files(tmp_path, monkeypatch,
                                                                  channels):
  # Pieces of 1,000 bytes: many sync-flushed deflate streams in one zlib stream.
  monkeypatch.setattr(photo_lib, "_ZLIB_PIECE_BYTES", 1000)
  samples = _codes((37, 45, channels), np.uint8)
  alpha = samples[..., 3] if channels == 4 else None
  path = tmp_path / "photo.png"
  photo_lib.save_photo(path, photo_lib.Photo(samples[..., :3], alpha, b"any profile", _exif()))
  with Image.open(path) as image:
    image.load()  # PIL checks each chunk's CRC
    assert image.mode == ("RGBA" if channels == 4 else "RGB")
    np.testing.assert_array_equal(np.asarray(image), samples)
    assert image.info["icc_profile"] == b"any profile"
    assert image.getexif()[_CAMERA] == "Test camera"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_and_reset_and_exif_travels(tmp_path, orientation):
  pixels = _codes((12, 20, 3), np.uint8)
  source = tmp_path / "in.png"
  Image.fromarray(pixels).save(source, exif=_exif(orientation))
  loaded = photo_lib.load_photo(source)
  np.testing.assert_array_equal(loaded.rgb, np.asarray(ImageOps.exif_transpose(
      Image.open(source))))
  output = tmp_path / "out.jpg"
  photo_lib.save_photo(output, loaded)
  exif = Image.open(output).getexif()
  assert exif[0x0112] == 1 and exif[_CAMERA] == "Test camera" and exif[_DATE].startswith("2024")


def test_alpha_and_icc_are_carried_and_composited_where_a_format_has_no_alpha(tmp_path):
  rgba = _codes((16, 24, 4), np.uint8)
  icc = image_io.srgb_icc_bytes() + b""  # any profile bytes travel unchanged
  source = tmp_path / "in.png"
  Image.fromarray(rgba, "RGBA").save(source, icc_profile=icc)
  loaded = photo_lib.load_photo(source)
  np.testing.assert_array_equal(loaded.alpha, rgba[..., 3])
  np.testing.assert_array_equal(loaded.rgb, rgba[..., :3])  # straight colour
  photo_lib.save_photo(tmp_path / "out.webp", loaded)
  assert Image.open(tmp_path / "out.webp").mode == "RGBA"
  photo_lib.save_photo(tmp_path / "out.bmp", loaded)
  composited = np.asarray(Image.open(tmp_path / "out.bmp"), np.float64)
  expected = rgba[..., :3] * (rgba[..., 3:] / 255.0)
  assert np.abs(composited - expected).max() <= 1.0
  assert Image.open(tmp_path / "out.webp").info["icc_profile"] == icc


def test_arrays_keep_their_dtype_and_bad_ones_name_themselves():
  for dtype in (np.uint8, np.uint16):
    photo = photo_lib.load_photo(_codes((10, 10, 4), dtype), name="mine")
    assert photo.rgb.dtype == dtype and photo.alpha.shape == (10, 10)
  gray = photo_lib.load_photo(np.full((10, 12), 0.5))
  assert gray.rgb.shape == (10, 12, 3) and gray.rgb.dtype == np.float32
  with pytest.raises(image_io.ImageError, match="mine: float array with values in"):
    photo_lib.load_photo(np.full((10, 10, 3), 2.0), name="mine")
  with pytest.raises(image_io.ImageError, match="array of dtype int32"):
    photo_lib.load_photo(np.zeros((10, 10, 3), np.int32))


# ---------------------------------------------------------------- integer upsampling


def test_reduce_area_is_pils_box_filter():
  codes = _codes((61, 97, 3), np.uint8)
  for height, width in [(16, 16), (61, 30), (7, 97)]:
    np.testing.assert_allclose(gu.reduce_area(codes, height, width),
                               gu.resize(codes / np.float32(255), height, width, "area"),
                               atol=1e-6)


def test_guided_upsample_of_codes_matches_the_float_computation():
  codes = _codes((45, 70, 3), np.uint16)
  floats = codes / np.float32(65535)
  low = gu.reduce_area(codes, 16, 16)
  relit_low = np.clip(low * np.array([1.2, 0.8, 0.5], np.float32), 0, 1)
  expected = gu.guided_upsample(floats, low, relit_low)
  sixteen = gu.guided_upsample(codes, low, relit_low)
  assert sixteen.dtype == np.uint16
  np.testing.assert_allclose(sixteen / 65535.0, expected, atol=1e-5)
  eight = gu.guided_upsample((codes >> 8).astype(np.uint8), low, relit_low)
  assert eight.dtype == np.uint8
  expected = gu.guided_upsample((codes >> 8) / np.float32(255), low, relit_low)
  assert np.abs(eight.astype(int) - np.round(expected * 255)).max() <= 1


# ---------------------------------------------------------------- the callable model


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("workdir")
  checkpointed_workdir(folder, 7)
  return folder


def test_the_model_is_callable_and_returns_what_it_was_given(workdir, tmp_path):
  model = relight_jax.load(workdir)
  photo = _codes((40, 52, 3), np.uint8)
  target = _codes((32, 32, 3), np.uint8, seed=1)
  relit = model(photo, target=target)
  assert relit.dtype == np.uint8 and relit.shape == photo.shape
  expected = relight.relight(model, photo, target)  # the float API, as before
  assert np.abs(relit.astype(int) - np.round(expected * 255)).max() <= 1
  relit = model(photo / 255.0, target=target)
  assert relit.dtype == np.float32 and 0 <= relit.min() and relit.max() <= 1
  rgba = np.concatenate([_codes((40, 52, 3), np.uint16), np.full((40, 52, 1), 7, np.uint16)],
                        axis=-1)
  relit = model(rgba, target=target)
  assert relit.dtype == np.uint16 and relit.shape == (40, 52, 4)
  assert (relit[..., 3] == 7).all()
  Image.fromarray(photo).save(tmp_path / "in.jpg", exif=_exif(6))
  relit = model(tmp_path / "in.jpg", target=target)
  assert isinstance(relit, Image.Image) and relit.size == (40, 52)  # turned upright
  relit = model(Image.open(tmp_path / "in.jpg"), target=target)
  exif = Image.Exif()
  exif.load(relit.info["exif"])
  assert isinstance(relit, Image.Image) and exif[_CAMERA] == "Test camera"
  with pytest.raises(FileNotFoundError, match="no such file or folder"):
    relight_jax.load(tmp_path / "missing")


# ---------------------------------------------------------------- the command


def test_command_keeps_depth_alpha_and_exif_and_says_what_it_wrote(workdir, tmp_path, capsys):
  rgba = _codes((40, 56, 4), np.uint16)
  source = tmp_path / "in.png"
  photo_lib.save_photo(source, photo_lib.Photo(rgba[..., :3], rgba[..., 3], None, _exif()))
  target = tmp_path / "t.png"
  Image.fromarray(_codes((32, 32, 3), np.uint8, seed=2)).save(target)
  output = tmp_path / "out.png"
  status = relight.main([f"--workdir={workdir}", f"--input={source}", f"--target={target}",
                         f"--output={output}"])
  assert status == 0
  assert capsys.readouterr().out.strip() == f"relight: wrote {output}"
  written = photo_lib.load_photo(output)
  assert written.rgb.dtype == np.uint16 and written.rgb.shape == (40, 56, 3)
  np.testing.assert_array_equal(written.alpha, rgba[..., 3])
  assert Image.open(output).getexif()[_CAMERA] == "Test camera"

  status = relight.main([f"--workdir={workdir}", f"--input={source}", f"--target={target}",
                         f"--target={source}", f"--output={tmp_path / 'batch'}",
                         "--preview=20", "--size=64"])
  captured = capsys.readouterr()
  assert status == 0
  assert captured.out.strip() == f"relight: wrote 2 of 2 images to {tmp_path / 'batch'}"
  assert "--size=64: the model was trained at 32 px" in captured.err
  assert Image.open(tmp_path / "batch" / "in__t.png").size == (20, 14)


def test_command_names_itself_relight(capsys):
  with pytest.raises(SystemExit):
    relight.main(["--help"])
  assert capsys.readouterr().out.startswith("usage: relight ")
