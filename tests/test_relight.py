"""Tests of relight_jax/inference/guided_upsample.py and relight_jax/relight.py (API and CLI)."""

import functools
import io
import os
import pathlib
import subprocess
import sys

import colour
import flax.linen as nn
import jax
import numpy as np
import pytest
from conftest import checkpointed_workdir
from conftest import unoptimised_jit
from PIL import Image

from relight_jax import relight
from relight_jax.common import image_io
from relight_jax.config import defaults
from relight_jax.cpu_kernels import winograd
from relight_jax.inference import guided_upsample as gu
from relight_jax.inference import trained_model
from relight_jax.models import registry
from relight_jax.training import state as state_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _photo(height, width, seed=0):
  """A textured uint8 'photo': smooth shading times fine random texture."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
  shading = 0.3 + 0.6 * np.stack([rows, cols, 1 - rows], axis=-1)
  texture = 0.7 + 0.3 * rng.random((height, width, 3))
  return np.round(shading * texture * 255).astype(np.uint8)


# ---------------------------------------------------------------- guided upsampling


def test_box_filter_matches_brute_force():
  image = np.random.default_rng(0).random((9, 13, 2)).astype(np.float32)
  radius = 2
  expected = np.zeros_like(image)
  for row in range(9):
    for col in range(13):
      window = image[max(row - radius, 0):row + radius + 1,
                     max(col - radius, 0):col + radius + 1]
      expected[row, col] = window.mean(axis=(0, 1))
  np.testing.assert_allclose(gu.box_filter(image, radius), expected, atol=1e-6)


def test_srgb_curves_match_colour_science():
  values = np.linspace(0, 1, 101, dtype=np.float32)
  np.testing.assert_allclose(gu.srgb_to_linear(values), colour.models.eotf_sRGB(values),
                             atol=1e-6)
  np.testing.assert_allclose(gu.linear_to_srgb(values),
                             colour.models.eotf_inverse_sRGB(values), atol=1e-6)


def test_no_change_at_low_resolution_leaves_the_photo_unchanged():
  photo = _photo(60, 90) / np.float32(255)
  low = gu.resize(photo, 16, 16)
  relit = gu.guided_upsample(photo, low, low)
  assert relit.shape == (60, 90, 3)
  np.testing.assert_allclose(relit, photo, atol=1e-5)


def test_a_global_change_is_transferred_with_full_resolution_detail():
  photo = _photo(128, 192) / np.float32(255)
  gain = np.array([0.9, 0.6, 0.3], np.float32)  # dimmer and warmer, in linear light

  def change(image):
    return gu.linear_to_srgb(gu.srgb_to_linear(image) * gain)

  low = gu.resize(photo, 32, 32)
  ideal = change(photo)
  guided = gu.guided_upsample(photo, low, change(low))
  bicubic = gu.bicubic_upsample(change(low), 128, 192)
  guided_error = np.abs(guided - ideal).mean()
  assert guided_error < 0.01, guided_error
  assert np.abs(bicubic - ideal).mean() > 3 * guided_error


# ---------------------------------------------------------------- a tiny trained-looking model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A smoke-size envmap model, its variables, and a workdir holding them as a checkpoint."""
  workdir = tmp_path_factory.mktemp("workdir")
  config, train_state = checkpointed_workdir(workdir, 7)
  model = registry.create_model(config.model)
  variables = jax.device_get(state_lib.variables_of(train_state))
  relighter = trained_model.from_model(model, variables, config.model, config.data.image_size)
  return config, model, variables, relighter, workdir


def test_relight_any_size_matches_the_model_at_working_resolution(setup):
  config, model, variables, relighter, _ = setup
  size = config.data.image_size  # 32
  photo = _photo(64, 64)
  target = _photo(50, 30, seed=1)
  result = relight.relight_detailed(relighter, photo, target, form="direct")
  assert result.relit.shape == (64, 64, 3) and result.relit.dtype == np.float32
  assert 0.0 <= result.relit.min() and result.relit.max() <= 1.0
  # The network sees the 2x2 block means of the photo (independent reference).
  block_means = (photo / 255.0).reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
  np.testing.assert_allclose(result.input_low, block_means, atol=1e-5)
  direct = jax.jit(lambda input_image, target_image: model.apply(
      variables, input_image, target_image, train=False)["relit"])(
          result.input_low[None], result.target_low[None])[0]
  np.testing.assert_allclose(result.relit_low, direct, atol=1e-5)
  # Deterministic, and paths / PIL images / arrays all give the same result.
  again = relight.relight(relighter, Image.fromarray(photo), Image.fromarray(target),
                          form="direct")
  np.testing.assert_array_equal(again, result.relit)


def test_the_ratio_form_applies_the_networks_change_of_light_to_the_input(setup):
  _, _, _, relighter, _ = setup
  photo = _photo(64, 64)
  target = _photo(50, 30, seed=1)
  direct = relight.relight_detailed(relighter, photo, target, form="direct")
  ratio = relight.relight_detailed(relighter, photo, target)  # the default
  own = np.asarray(relighter.relight_fn(ratio.input_low[None], ratio.input_low[None]))[0]
  # In linear light (IEC 61966-2-1, written out): input * relit / own, e = 0.01.
  linear = lambda srgb: np.where(srgb <= 0.04045, srgb / 12.92,
                                 ((srgb + 0.055) / 1.055) ** 2.4) + 0.01
  expected = np.clip(linear(ratio.input_low) * linear(direct.relit_low) / linear(own) - 0.01,
                     0, 1)
  np.testing.assert_allclose(gu.srgb_to_linear(ratio.relit_low), expected, atol=1e-5)
  # A photo relit to its own light is the photo.
  np.testing.assert_allclose(relight.relight(relighter, photo, photo), photo / 255.0,
                             atol=0.5 / 255)
  with pytest.raises(relight.RelightError, match="form='network': expected one of"):
    relight.relight(relighter, photo, target, form="network")


def test_non_square_input_size_override_and_bicubic(setup):
  _, _, _, relighter, _ = setup
  photo = _photo(40, 72)
  target = _photo(32, 32, seed=2)
  result = relight.relight_detailed(relighter, photo, target, size=48)
  assert result.relit.shape == (40, 72, 3) and result.relit_low.shape == (48, 48, 3)
  bicubic = relight.relight(relighter, photo, target, size=48, upsample="bicubic")
  np.testing.assert_allclose(bicubic, gu.bicubic_upsample(result.relit_low, 40, 72),
                             atol=1e-6)
  with pytest.raises(relight.RelightError, match="size=22: expected a positive multiple of 4"):
    relight.relight(relighter, photo, target, size=22)
  with pytest.raises(relight.RelightError, match="upsample='nearest'"):
    relight.relight(relighter, photo, target, upsample="nearest")
  with pytest.raises(image_io.ImageError, match="target: array of shape"):
    relight.relight(relighter, photo, np.zeros((32, 32, 2), np.uint8))


def test_load_relighter_restores_the_checkpoint(setup):
  _, _, _, relighter, workdir = setup
  loaded = trained_model.load_workdir(workdir)
  assert loaded.image_size == 32 and loaded.size_multiple == 4
  assert "step 7" in loaded.description
  photo, target = _photo(48, 40), _photo(32, 32, seed=4)
  np.testing.assert_allclose(relight.relight(loaded, photo, target),
                             relight.relight(relighter, photo, target), atol=1e-5)


def test_relight_function_replays_the_winograd_kernels():
  # A small Envmap + scene model whose 3x3 convs all go through Winograd (the smoke
  # model's are below the `auto` thresholds): its transformed kernels are computed once
  # per input shape and replayed; the result equals the plain model's.
  config = defaults.model_section("envmap_scene")
  config.width, config.depth, config.bottleneck_convs = 0.125, 2, 1
  model = registry.create_model(config, conv=functools.partial(
      nn.Conv, conv_general_dilated=winograd.conv_function("winograd", "winograd")))
  images = [jax.random.uniform(jax.random.key(k), (2, 32, 32, 3)) for k in (1, 2)]
  # Initialised in one program: eagerly, each initialiser compiles per parameter shape.
  variables = unoptimised_jit(lambda x, t: model.init(jax.random.key(0), x, t, train=False))(
      *images)
  relight_fn = trained_model.make_relight_fn(model, variables)
  kernels = relight_fn.kernels(*images)
  # Every stride-1 conv of this U-Net: the encoder's 3 and its space-to-depth stem, the
  # head's 2, the decoder's 7 (with the output conv): 13 kernels, F(2x2) or F(4x4).
  assert len(kernels) == 13
  assert {k.shape[0] for k in kernels} <= {16, 36}
  expected = relight_fn.plain(variables, *images)
  np.testing.assert_allclose(relight_fn(*images), expected, atol=1e-5)
  assert relight_fn.kernels(*images) is kernels  # cached for this shape
  # Another input shape: its own kernels (16 px images: fewer maps of >= 16 px, F(4x4)).
  small = [image[:, :16, :16] for image in images]
  np.testing.assert_allclose(relight_fn(*small), relight_fn.plain(variables, *small),
                             atol=1e-5)
  f4_count = lambda kernels: sum(k.shape[0] == 36 for k in kernels)  # noqa: E731
  assert 0 < f4_count(relight_fn.kernels(*small)) < f4_count(kernels)
  # Inside another trace (jax.export, jax.jit) the plain model is traced.
  np.testing.assert_allclose(jax.jit(relight_fn)(*images), expected, atol=1e-5)


# ---------------------------------------------------------------- command line


def test_cli_single_pair_and_batch(setup, tmp_path, capsys):
  _, _, _, relighter, workdir = setup
  photos = tmp_path / "photos"
  photos.mkdir()
  for index, shape in enumerate([(40, 56), (64, 48)]):
    Image.fromarray(_photo(*shape, seed=index)).save(photos / f"photo{index}.png")
  (photos / "notes.txt").write_text("not an image, and not an image extension: skipped")
  targets = [tmp_path / "t_warm.png", tmp_path / "t_cold.jpg"]
  for index, target in enumerate(targets):
    Image.fromarray(_photo(32, 32, seed=10 + index)).save(target)

  output = tmp_path / "single.png"
  status = relight.main([f"--workdir={workdir}", f"--input={photos / 'photo0.png'}",
                         f"--target={targets[0]}", f"--output={output}"])
  assert status == 0
  written = np.asarray(Image.open(output))
  expected = image_io.to_uint8(relight.relight(relighter, photos / "photo0.png", targets[0]))
  assert written.shape == (40, 56, 3)
  assert np.abs(written.astype(int) - expected).max() <= 1

  status = relight.main([f"--workdir={workdir}", f"--input={photos}",
                         f"--target={targets[0]}", f"--target={targets[1]}",
                         f"--output={tmp_path / 'batch'}", "--size=64"])
  assert status == 0
  names = sorted(os.listdir(tmp_path / "batch"))
  assert names == ["photo0__t_cold.png", "photo0__t_warm.png",
                   "photo1__t_cold.png", "photo1__t_warm.png"]
  assert Image.open(tmp_path / "batch" / "photo1__t_cold.png").size == (48, 64)
  assert "4/4" in capsys.readouterr().err  # the tqdm progress bar


def test_cli_refuses_bad_input_with_one_line_and_status_1(setup, tmp_path, capsys):
  _, _, _, _, workdir = setup
  photo = tmp_path / "photo.png"
  Image.fromarray(_photo(40, 40)).save(photo)
  original = photo.read_bytes()
  fake = tmp_path / "fake.jpg"
  fake.write_text("not a JPEG")
  (tmp_path / "taken.png").write_bytes(original)
  out = f"--output={tmp_path / 'o.png'}"
  cases = [  # (input, target, further arguments, expected message)
      (photo, photo, [f"--output={photo}"], "is one of the inputs; refusing to overwrite it"),
      (photo, photo, [f"--output={tmp_path / 'taken.png'}"], "exists; pass --overwrite"),
      (photo, photo, [out, "--size=22"], "size=22: expected a positive multiple of 4"),
      (photo, fake, [out], "fake.jpg: not an image file"),
      (fake, photo, [out], "fake.jpg: not an image file"),
      (photo, tmp_path / "none.png", [out], "none.png: no such file"),
      (photo, photo, [f"--output={tmp_path / 'o.xyz'}"], "unknown image extension '.xyz'"),
      (photo, photo, [f"--workdir={tmp_path}", out], "no config at"),
  ]
  for input_path, target_path, extra, message in cases:
    source = [] if any(arg.startswith("--workdir") for arg in extra) else [
        f"--workdir={workdir}"]
    status = relight.main(source + [f"--input={input_path}", f"--target={target_path}"]
                          + extra)
    error = capsys.readouterr().err.strip()
    assert status == 1, extra
    assert error.startswith("relight: error:") and message in error, error
    assert len(error.splitlines()) == 1, error
  assert photo.read_bytes() == original and not (tmp_path / "o.png").exists()

  # Batch mode: a bad input is reported and skipped, the others are written, status 1.
  folder = tmp_path / "folder"
  folder.mkdir()
  (folder / "good.png").write_bytes(original)
  (folder / "broken.png").write_text("not a PNG")
  status = relight.main([f"--workdir={workdir}", f"--input={folder}", f"--target={photo}",
                         f"--target={tmp_path / 'taken.png'}", f"--output={tmp_path / 'out'}"])
  error = capsys.readouterr().err
  assert status == 1
  assert "broken.png: not an image file" in error and "2 of 4 outputs failed" in error
  assert sorted(os.listdir(tmp_path / "out")) == ["good__photo.png", "good__taken.png"]


def test_cli_subprocess_exit_status(tmp_path):
  (tmp_path / "fake.png").write_text("text")
  completed = subprocess.run(
      [sys.executable, "-m", "relight_jax.relight", f"--workdir={tmp_path}",
       f"--input={tmp_path / 'fake.png'}", f"--target={tmp_path / 'fake.png'}",
       f"--output={tmp_path / 'out.png'}"],
      capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
  assert completed.returncode == 1
  assert completed.stderr.strip().splitlines()[-1] == (
      f"relight: error: {tmp_path / 'fake.png'}: not an image file PIL can read; expected "
      "an RGB, grayscale, palette or RGBA image (PNG, JPEG, TIFF, WebP, ...)")


def _tree(root):
  """Every path under `root`, to check that a refused run wrote nothing."""
  return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_cli_refuses_paths_of_the_wrong_kind_before_loading_the_model(
    setup, tmp_path, capsys, monkeypatch):
  _, _, _, _, workdir = setup

  def never(*args, **kwargs):
    raise AssertionError("the model was loaded before the arguments were checked")

  monkeypatch.setattr(trained_model, "load_workdir", never)
  monkeypatch.setattr(trained_model, "load_exported", never)
  photo = tmp_path / "photo.png"
  Image.fromarray(_photo(40, 40)).save(photo)
  (tmp_path / "model.bin").write_bytes(b"an exported model, say")
  photos = tmp_path / "photos"
  photos.mkdir()
  Image.fromarray(_photo(40, 40, seed=1)).save(photos / "a.png")
  (tmp_path / "existing_folder").mkdir()
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "a__photo.png").mkdir()  # A folder where an output image would go.
  (tmp_path / "taken.xyz").write_text("not replaceable by an image")
  (tmp_path / "locked").mkdir()
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: (
      pathlib.Path(path) != tmp_path / "locked" and real_access(path, mode, **kwargs)))
  one_pair = [f"--input={photo}", f"--target={photo}"]
  batch = [f"--input={photos}", f"--target={photo}"]
  source = f"--workdir={workdir}"
  cases = [  # (arguments, what the one line must say)
      ([f"--workdir={tmp_path / 'model.bin'}", *one_pair, f"--output={tmp_path / 'o.png'}"],
       f"--workdir {tmp_path / 'model.bin'} is a file; expected a training workdir folder"),
      ([f"--workdir={tmp_path / 'nowhere'}", *one_pair, f"--output={tmp_path / 'o.png'}"],
       f"--workdir {tmp_path / 'nowhere'}: no such folder"),
      ([f"--exported={workdir}", *one_pair, f"--output={tmp_path / 'o.png'}"],
       f"--exported {workdir} is a folder; expected the file written by python -m "
       f"relight_jax.export; if it is a training workdir, pass --workdir={workdir}"),
      ([f"--exported={tmp_path / 'none.bin'}", *one_pair, f"--output={tmp_path / 'o.png'}"],
       f"--exported {tmp_path / 'none.bin'}: no such file"),
      ([source, *one_pair, f"--output={tmp_path / 'existing_folder'}"],
       f"names a folder, but one input and one target make one image: name the file, e.g. "
       f"--output={tmp_path / 'existing_folder' / 'photo__photo.png'}"),
      ([source, *one_pair, f"--output={tmp_path / 'existing_folder'}", "--overwrite"],
       "names a folder, but one input and one target make one image"),
      ([source, *one_pair, f"--output={tmp_path / 'new_folder'}/"],
       "names a folder, but one input and one target make one image"),
      ([source, *one_pair, f"--output={tmp_path / 'nowhere' / 'o.png'}"],
       f"folder {tmp_path / 'nowhere'} does not exist"),
      ([source, *batch, f"--output={tmp_path / 'out'}"],
       f"output {tmp_path / 'out' / 'a__photo.png'} is a folder; an image cannot replace it, "
       "even with --overwrite"),
      ([source, *batch, f"--output={tmp_path / 'out'}", "--overwrite"],
       "is a folder; an image cannot replace it"),
      ([source, *one_pair, f"--output={tmp_path / 'taken.xyz'}"],
       "unknown image extension '.xyz'"),
      ([source, *batch, f"--output={photo / 'relit'}"],
       f"cannot create the folder, {photo} is a file"),
      ([source, *one_pair, f"--output={tmp_path / 'locked' / 'o.png'}"],
       f"folder {tmp_path / 'locked'} is not writable, even with --overwrite"),
      ([source, *batch, f"--output={tmp_path / 'locked' / 'relit'}"],
       f"folder {tmp_path / 'locked'} is not writable"),
  ]
  before = _tree(tmp_path)
  for argv, message in cases:
    status = relight.main(argv)
    error = capsys.readouterr().err.strip()
    assert status == 1, argv
    assert error.startswith("relight: error:") and message in error, (argv, error)
    assert len(error.splitlines()) == 1, error
    assert "pass --overwrite" not in error, error  # It would not help in any of these.
    assert _tree(tmp_path) == before, argv


def test_cli_batch_folder_is_created_only_once_everything_is_checked(setup, tmp_path, capsys):
  _, _, _, _, workdir = setup
  photos = tmp_path / "photos"
  photos.mkdir()
  Image.fromarray(_photo(40, 40)).save(photos / "a.png")
  (tmp_path / "fake.jpg").write_text("not a JPEG")
  status = relight.main([f"--workdir={workdir}", f"--input={photos}",
                         f"--target={tmp_path / 'fake.jpg'}",
                         f"--output={tmp_path / 'relit' / 'deeper'}"])
  assert status == 1 and "fake.jpg: not an image file" in capsys.readouterr().err
  assert not (tmp_path / "relit").exists()


def test_side_by_side_joins_input_target_and_result(setup):
  _, _, _, relighter, _ = setup
  photo = _photo(40, 56) / np.float32(255)
  target = _photo(40, 24, seed=1)  # the input's height: kept as it is
  relit = relight.relight(relighter, photo, target)
  joined = relight.side_by_side(photo, target, relit)
  assert joined.shape == (40, 56 + 24 + 56, 3) and joined.dtype == np.float32
  np.testing.assert_array_equal(joined[:, :56], photo)
  np.testing.assert_array_equal(joined[:, 56:80], target / np.float32(255))
  np.testing.assert_array_equal(joined[:, 80:], relit)
  # A taller target is reduced to the input's height, keeping its aspect ratio.
  tall = _photo(80, 30, seed=2)
  joined = relight.side_by_side(photo, tall, relit)
  assert joined.shape == (40, 56 + 15 + 56, 3)
  block_means = (tall / 255.0).reshape(40, 2, 15, 2, 3).mean(axis=(1, 3))
  np.testing.assert_allclose(joined[:, 56:71], block_means, atol=1e-5)
  np.testing.assert_array_equal(joined[:, 71:], relit)
  with pytest.raises(relight.RelightError, match="expected the input's shape"):
    relight.side_by_side(photo, target, relit[:20])


def test_cli_side_by_side_single_pair_and_batch(setup, tmp_path):
  _, _, _, relighter, workdir = setup
  photos = tmp_path / "photos"
  photos.mkdir()
  for index, shape in enumerate([(40, 56), (64, 48)]):
    Image.fromarray(_photo(*shape, seed=index)).save(photos / f"photo{index}.png")
  target = tmp_path / "target.png"
  Image.fromarray(_photo(32, 48, seed=10)).save(target)

  output = tmp_path / "compare.png"
  status = relight.main([f"--workdir={workdir}", f"--input={photos / 'photo0.png'}",
                         f"--target={target}", f"--output={output}", "--side_by_side"])
  assert status == 0
  written = np.asarray(Image.open(output)).astype(int)
  assert written.shape == (40, 56 + 60 + 56, 3)  # the target at height 40 is 60 wide
  np.testing.assert_array_equal(written[:, :56], _photo(40, 56, seed=0))
  expected = relight.side_by_side(photos / "photo0.png", target,
                                  relight.relight(relighter, photos / "photo0.png", target))
  assert np.abs(written - image_io.to_uint8(expected)).max() <= 1
  assert Image.open(output).info.get("icc_profile") == image_io.srgb_icc_bytes()

  status = relight.main([f"--workdir={workdir}", f"--input={photos}", f"--target={target}",
                         f"--target={photos / 'photo0.png'}", f"--output={tmp_path / 'batch'}",
                         "--side_by_side"])
  assert status == 0
  with Image.open(tmp_path / "batch" / "photo1__target.png") as image:
    assert image.size == (48 + 96 + 48, 64)
  with Image.open(tmp_path / "batch" / "photo1__photo0.png") as image:
    assert image.size == (48 + round(56 * 64 / 40) + 48, 64)


def test_cli_jpeg_quality(setup, tmp_path, capsys):
  _, _, _, _, workdir = setup
  photo = tmp_path / "photo.png"
  Image.fromarray(_photo(64, 64)).save(photo)
  base = [f"--workdir={workdir}", f"--input={photo}", f"--target={photo}"]
  assert relight.main(base + [f"--output={tmp_path / 'default.jpg'}"]) == 0
  assert relight.main(base + [f"--output={tmp_path / 'q30.jpg'}", "--jpeg_quality=30"]) == 0
  with Image.open(tmp_path / "default.jpg") as default, Image.open(tmp_path / "q30.jpg") as low:
    reference = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference, format="JPEG", quality=95)
    assert default.quantization == Image.open(reference).quantization  # quality 95
    assert max(low.quantization[0]) > max(default.quantization[0])
    assert default.info.get("icc_profile") == image_io.srgb_icc_bytes()
  for bad in ("0", "101", "high", "9.5"):
    status = relight.main(base + [f"--output={tmp_path / 'bad.jpg'}", f"--jpeg_quality={bad}"])
    error = capsys.readouterr().err.strip()
    assert status == 1 and len(error.splitlines()) == 1, error
    assert error == f"relight: error: --jpeg_quality={bad}: expected an integer from 1 to 100"
  assert not (tmp_path / "bad.jpg").exists()
