"""The bundled reference model (relight_jax/pretrained/) and the relight command's default."""

import json

import numpy as np
import pytest
from PIL import Image

import relight_jax
from relight_jax import relight
from relight_jax.inference import trained_model


def test_the_bundled_reference_model_is_small_and_relights_by_label():
  folder = trained_model.bundle_folder()
  assert sum(path.stat().st_size for path in folder.iterdir()) <= 50 * 2**20
  manifest = json.loads((folder / "bundle.json").read_text())
  relighter = relight_jax.load_pretrained()
  assert manifest["model"] in relighter.description
  # Trained on the v1 envmaps (its config.json predates model.envmap_convention): its
  # labels and its side-by-side pictures are v1 maps.
  assert relighter.envmap_convention == "v1"
  size = relighter.image_size
  image = np.random.default_rng(5).uniform(size=(1, size, size, 3)).astype(np.float32)
  west, east = (np.asarray(relighter.relight_light_fn(image, 3500, d)) for d in (6, 2))
  assert west.shape == (1, size, size, 3) and np.all(np.isfinite(west))
  assert not np.allclose(west, east, atol=1e-3)


def test_cli_default_model_and_light_labels(tmp_path, capsys):
  photo = tmp_path / "photo.png"
  rng = np.random.default_rng(6)
  Image.fromarray((rng.uniform(size=(48, 56, 3)) * 255).astype(np.uint8)).save(photo)
  assert relight.main([f"--input={photo}", "--light=W,3500",
                       f"--output={tmp_path / 'out.png'}"]) == 0
  assert Image.open(tmp_path / "out.png").size == (56, 48)
  assert relight.main([f"--input={photo}", "--light=W,3500", "--light=E,6500",
                       "--side_by_side", f"--output={tmp_path / 'many'}"]) == 0
  assert sorted(path.name for path in (tmp_path / "many").iterdir()) == [
      "photo__E_6500.png", "photo__W_3500.png"]
  # A bad label fails in one line, before the model is loaded or anything is written.
  capsys.readouterr()  # the batch run's progress bar
  assert relight.main([f"--input={photo}", "--light=up,3500",
                       f"--output={tmp_path / 'bad.png'}"]) == 1
  error = capsys.readouterr().err.strip()
  assert error.startswith("relight: error: light 'up,3500': direction 'up' is not one of")
  assert not (tmp_path / "bad.png").exists()
  with pytest.raises(SystemExit):  # argparse: --light and --target are exclusive
    relight.main([f"--input={photo}", "--light=W,3500", f"--target={photo}",
                  f"--output={tmp_path / 'x.png'}"])


@pytest.fixture(scope="module")
def coffee():
  """A warm indoor photo with a white cup rim, and the rim's pixels."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  photo = data.coffee()  # [400, 600, 3] uint8
  rim = np.all(photo > 215, axis=-1) & (np.arange(photo.shape[0])[:, None] < 250)
  return photo, rim


def _psnr(image, reference):
  error = np.mean((image.astype(np.float64) - reference) ** 2)
  return np.inf if error == 0 else 10 * np.log10(255.0**2 / error)


def test_a_photo_relit_to_its_own_light_comes_back_unchanged(coffee):
  photo, _ = coffee
  model = relight_jax.load_pretrained()
  assert _psnr(model(photo, photo), photo) >= 35.0  # the ratio form, the default
  # The network's own image re-renders the photo as its training scenes looked.
  assert _psnr(model(photo, photo, form="direct"), photo) < 35.0


def test_a_warm_light_warms_a_white_cup_and_a_cooler_one_less(coffee):
  photo, rim = coffee
  model = relight_jax.load_pretrained()
  warmth = lambda image: float(np.mean(image[rim][:, 0].astype(np.float64)
                                       - image[rim][:, 2]))  # red minus blue
  ratio = [warmth(model(photo, light=f"W,{kelvin}")) for kelvin in (2500, 3500, 5500)]
  assert ratio[0] > ratio[1] > warmth(photo) > ratio[2]
  # The network's image reads the warm photo as lit by ~2500 K: 3500 K cools the rim.
  assert warmth(model(photo, light="W,3500", form="direct")) < 0 < warmth(photo)
