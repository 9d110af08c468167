"""Relighting by a light label (--light=W,3500) and the bundled model (load_pretrained)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import checkpointed_workdir
from conftest import load_config
from conftest import unoptimised_jit
from PIL import Image

import relight_jax
from relight_jax import relight
from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.inference import trained_model
from relight_jax.models import registry
from relight_jax.training import state as state_lib

MODELS = ("envmap", "envmap_scene", "illumination_predictor", "geometry_envmap")


@pytest.mark.parametrize("label, expected", [
    ("W,3500", (3500, 6)), ("ne, 6500", (6500, 1)), ("S,4500K", (4500, 4)), ("N,4000", (4000, 0))])
def test_parse_light(label, expected):
  assert lights.parse_light(label) == expected


@pytest.mark.parametrize("label, message", [
    ("W", "not a light label; expected DIRECTION,KELVIN such as W,3500"),
    ("200,4200", "not a light label"),
    ("W,3500,1", "cannot read '1'; expected DIRECTION"),
    ("X,3500", "direction 'X' is not one of N, NE, E, SE, S, SW, W, NW"),
    ("3500,W", "azimuth 3500 is outside 0-360 degrees"),
    ("W,warm", "temperature 'warm' is not a number"),
    ("W,9000", "9000 K is outside the training data's 2500-6500 K"),
])
def test_bad_light_labels_say_what_is_expected(label, message):
  with pytest.raises(ValueError, match=message):
    lights.parse_light(label)


def test_reference_image_models_take_the_rendered_temperatures_only():
  with pytest.raises(ValueError, match="2500, 3500, 4500, 5500, 6500 K only"):
    lights.parse_light("W,4000", any_temperature=False)


def _relight_with_light(model, jit=jax.jit):
  # Jitted: compiled once, instead of op by op (the tests' time is compilation).
  return jit(lambda variables, image, light: model.apply(
      variables, image, light, method="relight_with_light"))


def _variables(model, size=32):
  image = np.zeros((1, size, size, 3), np.float32)
  return unoptimised_jit(lambda x: model.init(jax.random.key(0), x, x, train=False))(image)


@pytest.mark.parametrize("name", MODELS)
def test_relighting_by_a_light_latent_is_relighting_by_a_target_with_that_latent(name):
  # The light path decodes exactly as the target path does: give it T's own latent.
  config = load_config(name, "smoke")
  model = registry.create_model(config.model)
  variables = _variables(model)
  rng = np.random.default_rng(0)
  image, target = (rng.uniform(size=(2, 32, 32, 3)).astype(np.float32) for _ in range(2))
  outputs = unoptimised_jit(lambda v, x, t: model.apply(v, x, t, train=False))(
      variables, image, target)
  by_light = _relight_with_light(model, unoptimised_jit)(variables, image,
                                                         outputs["target_light"])
  np.testing.assert_allclose(by_light, outputs["relit"], atol=2e-5)


@pytest.mark.parametrize("convention", ["original", "v1"])
@pytest.mark.parametrize("name", ["envmap", "envmap_scene", "geometry_envmap"])
def test_envmap_models_relight_by_the_generated_envmap(name, convention):
  # A label becomes the map of the convention the model was trained on.
  config = load_config(name, "smoke", **{"model.envmap_convention": convention})
  model = registry.create_model(config.model)
  variables = _variables(model)
  relighter = trained_model.from_model(model, variables, config.model, 32, config=config)
  assert relighter.light_source == registry.SPECS[name].label_source
  image = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  generated = (envmap.envmap_hsv if name == "envmap_scene" else envmap.envmap_rgb)(
      3500, 6, convention)
  assert relighter.envmap_convention == convention
  expected = _relight_with_light(model)(variables, image, generated[None])
  np.testing.assert_allclose(relighter.relight_light_fn(image, 3500, 6), expected, atol=1e-6)
  # Another light gives another image.
  assert not np.allclose(relighter.relight_light_fn(image, 3500, 2), expected, atol=1e-4)


@pytest.mark.parametrize("name", ["envmap", "envmap_scene", "geometry_envmap"])
def test_the_ratio_forms_own_light_is_the_estimated_direction_in_the_renderers_white(name):
  config = load_config(name, "smoke", **{"model.envmap_convention": "v1"})
  model = registry.create_model(config.model)
  relighter = trained_model.from_model(model, _variables(model), config.model, 32,
                                       config=config)
  image = np.random.default_rng(2).uniform(size=(32, 32, 3)).astype(np.float32)
  azimuth, kelvin = relighter.estimate_light_fn(image[None], white=True)
  assert kelvin[0] == 6500
  assert relighter.estimate_light_fn(image[None])[0][0] == azimuth[0]
  # Relit to that light in the ratio form, the input comes back.
  own = relight.relight(relighter, image, light=f"{azimuth[0]},6500", upsample="bicubic")
  np.testing.assert_allclose(own, image, atol=2e-3)


def test_illumination_predictor_uses_its_training_images_of_that_light(tiny_data_dir, tmp_path):
  config = load_config("illumination_predictor", "smoke", **{"data.data_dir": tiny_data_dir})
  model = registry.create_model(config.model)
  variables = _variables(model)
  relighter = trained_model.from_model(model, variables, config.model, 32, config=config)
  from relight_jax.datasets import scene_images
  images = scene_images.SceneImages(config.data.name, "train", tiny_data_dir, 32)
  light = int(lights.light_index(1, 6))  # 3500 K from the west
  stack = np.stack([images.image(scene, light) for scene in range(images.num_scenes)])
  latents = unoptimised_jit(lambda v, x: model.apply(v, x, train=False, method="encode"))(
      variables, stack.astype(np.float32) / 255)["light"]
  image = stack[:1].astype(np.float32) / 255
  expected = _relight_with_light(model, unoptimised_jit)(
      variables, image, np.mean(latents, axis=0, keepdims=True))
  np.testing.assert_allclose(relighter.relight_light_fn(image, 3500, 6), expected, atol=1e-5)
  with config.unlocked():
    config.data.data_dir = str(tmp_path / "nothing")
  missing = trained_model.from_model(model, variables, config.model, 32, config=config)
  with pytest.raises(ValueError, match="needs reference images of that light"):
    missing.relight_light_fn(image, 3500, 6)


def test_relight_api_takes_a_label_or_a_target_not_both():
  config = load_config("envmap", "smoke")
  model = registry.create_model(config.model)
  relighter = trained_model.from_model(model, _variables(model), config.model, 32, config=config)
  photo = np.random.default_rng(2).uniform(size=(40, 48, 3)).astype(np.float32)
  result = relight.relight_detailed(relighter, photo, light="E,5500")
  assert result.relit.shape == (40, 48, 3) and result.target_low.shape == (16, 32, 3)
  with pytest.raises(relight.RelightError, match="exactly one"):
    relight.relight(relighter, photo, photo, light="E,5500")
  with pytest.raises(relight.RelightError, match="exactly one"):
    relight.relight(relighter, photo)
  with pytest.raises(relight.RelightError, match="direction 'Q'"):
    relight.relight(relighter, photo, light="Q,5500")
  # Any light of the syntax: mixed from the labels, left-out fields from the estimate.
  for light in ("W", "4200K", "200,4200,x1.5", "90,3500;270,6500"):
    assert relight.relight(relighter, photo, light=light).shape == (40, 48, 3)
  # Without the config (an exported function, say) there is no light path.
  bare = trained_model.from_model(model, _variables(model), config.model, 32)
  with pytest.raises(relight.RelightError, match="cannot relight by a light"):
    relight.relight(bare, photo, light="E,5500")


@pytest.mark.parametrize("name", MODELS)
def test_every_label_model_estimates_the_light_of_an_image(name):
  config = load_config(name, "smoke")
  model = registry.create_model(config.model)
  relighter = trained_model.from_model(model, _variables(model), config.model, 32, config=config)
  images = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  azimuths, kelvins = relighter.estimate_light_fn(images)
  assert np.shape(azimuths) == np.shape(kelvins) == (2,)
  assert np.all((0 <= azimuths) & (azimuths < 360))
  assert np.all((2500 <= kelvins) & (kelvins <= 6500))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("workdir")
  config, train_state = checkpointed_workdir(workdir, 5)
  folder = tmp_path_factory.mktemp("bundle")
  manifest = trained_model.save_bundle(workdir, folder)
  return workdir, folder, manifest, config, train_state


def test_bundle_round_trip_relights_as_the_workdir(bundle):
  workdir, folder, manifest, _, train_state = bundle
  assert manifest["step"] == 5 and manifest["model"] == "envmap"
  assert sorted(path.name for path in folder.iterdir()) == [
      "bundle.json", "config.json", "variables.msgpack"]
  # The training machine's data path stays behind.
  assert json.loads((folder / "config.json").read_text())["data"]["data_dir"] == "data/tfds"
  loaded = relight_jax.load_pretrained(folder)
  reference = trained_model.load_workdir(workdir)
  image = np.random.default_rng(3).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  target = np.random.default_rng(4).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(loaded.relight_fn(image, target),
                                reference.relight_fn(image, target))
  np.testing.assert_array_equal(loaded.relight_light_fn(image, 2500, 3),
                                reference.relight_light_fn(image, 2500, 3))
  params = jax.device_get(state_lib.variables_of(train_state))["params"]
  assert loaded.relight_fn.variables["params"].keys() == params.keys()


def test_a_damaged_or_mismatched_bundle_is_refused(bundle, tmp_path):
  _, folder, _, _, _ = bundle
  for name in ("bundle.json", "config.json", "variables.msgpack"):
    (tmp_path / name).write_bytes((folder / name).read_bytes())
  data = bytearray((tmp_path / "variables.msgpack").read_bytes())
  data[-1] ^= 1
  (tmp_path / "variables.msgpack").write_bytes(bytes(data))
  with pytest.raises(ValueError, match="damaged: its sha256 does not match"):
    trained_model.load_pretrained(tmp_path)
  # The right bytes for another model's config.
  (tmp_path / "variables.msgpack").write_bytes((folder / "variables.msgpack").read_bytes())
  config = json.loads((folder / "config.json").read_text())
  config["model"]["width"] = 0.25
  (tmp_path / "config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match="does not hold the variables"):
    trained_model.load_pretrained(tmp_path)
  (tmp_path / "bundle.json").unlink()
  with pytest.raises(FileNotFoundError, match="bundle.json: no such file"):
    trained_model.load_pretrained(tmp_path)


def test_an_intact_bundle_loads_without_tracing_the_model(bundle, tmp_path, monkeypatch):
  _, folder, manifest, _, _ = bundle
  for name in ("bundle.json", "config.json", "variables.msgpack"):
    (tmp_path / name).write_bytes((folder / name).read_bytes())
  traced = []
  init_variables = state_lib.init_variables
  monkeypatch.setattr(state_lib, "init_variables",
                      lambda *args: traced.append(1) or init_variables(*args))
  trained_model.load_pretrained(tmp_path)
  assert not traced
  # A bundle written before the manifest held the config's sha256: checked by a trace.
  manifest = {key: value for key, value in manifest.items() if key != "config_sha256"}
  (tmp_path / "bundle.json").write_text(json.dumps(manifest))
  assert trained_model.load_pretrained(tmp_path).image_size == manifest["image_size"]
  assert traced


def test_figures_command_draws_the_readme_pictures(bundle, tiny_data_dir, tmp_path):
  workdir, folder, _, _, _ = bundle
  result = subprocess.run(
      [sys.executable, "-m", "relight_jax.figures", f"--bundle={folder}",
       f"--workdir={workdir}", f"--data_dir={tiny_data_dir}", f"--output={tmp_path}"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ("reference_test.png", "reference_photo.png", "reference_training.png"):
    with Image.open(tmp_path / name) as picture:
      assert picture.size[0] > 100 and picture.size[1] > 100, name
