"""The light-transport model (models/transport.py) and its data path (scene_images AOV
"transport"): shapes, the two forms of Ĝ, the renderer's composition, the label light,
and lights composed exactly from coloured direction weights (inference/light_mix.py).

Its loss terms and their gradients are checked with every model's in tests/test_models.py
(test_gradient_reaches_every_parameter_and_losses_are_finite[transport]).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from conftest import unoptimised_jit

from relight_jax.common import srgb
from relight_jax.data import input_pipeline
from relight_jax.data import lights
from relight_jax.datasets import scene_images
from relight_jax.inference import guided_upsample
from relight_jax.inference import light_mix
from relight_jax.inference import trained_model
from relight_jax.models import registry
from relight_jax.models import transport
from relight_jax.render import illumination
from relight_jax.render import mitsuba_scene
from relight_jax.training import loss_terms

_V2_TINY = "vidit/synthetic_v2_tiny"


def _model(form="absolute"):
  # The smoke config: 32 px, depth 1, one bottleneck conv, width 0.125.
  config = load_config("transport", "smoke", **{"model.transport_form": form})
  return registry.create_model(config.model)


def test_outputs_and_the_light_vector_of_a_label():
  model = _model()
  image = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)

  def run(x):
    variables = model.init(jax.random.key(0), x, x, train=False)
    return (model.apply(variables, x, x, x, train=False),
            model.apply(variables, x, jnp.ones((2, 11)), method="relight_with_light"))

  outputs, by_light = jax.eval_shape(run, image)
  assert outputs["relit"].shape == by_light.shape == (2, 32, 32, 3)
  assert outputs["input_transport"].shape == (2, 8, 32, 32, 3)
  assert outputs["input_fixed_light"].shape == (2, 32, 32, 3)
  for role in ("input", "target", "ground_truth"):
    assert outputs[f"{role}_light"].shape == (2, 11)
    assert outputs[f"{role}_prediction"].shape == (2, 2)
  # A label: one-hot weights and the renderer's colour (luminance 1), read back as itself.
  spec = registry.spec_of("transport")
  light = np.asarray(spec.label_light(3500, 6, "original"))
  assert light.shape == (1, 11)
  np.testing.assert_array_equal(light[0, :8], np.eye(8)[6])
  np.testing.assert_allclose(light[0, 8:], illumination.light_rgb(3500), rtol=1e-6)
  labels = np.concatenate([light, spec.label_light(6500, 1, "original"),
                           spec.label_light(4200, 3, "original")])
  np.testing.assert_allclose(transport.light_prediction(jnp.asarray(labels)),
                             [[270.0, 3500.0], [45.0, 6500.0], [135.0, 4200.0]], atol=1e-3)
  with pytest.raises(ValueError, match="transport_form='both' is not one of"):
    jax.eval_shape(lambda x: _model("both").init(jax.random.key(0), x, x, train=False), image)


def test_ratio_form_returns_the_input_when_the_target_light_is_its_estimate():
  model = _model("ratio")
  image = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)

  def run(x):
    variables = model.init(jax.random.key(0), x, x, train=False)
    # T = I: T's estimated light is I's, the ratio is 1, and every pixel of I comes back.
    same = model.apply(variables, x, x, train=False)["relit"]
    other = model.apply(variables, x, jnp.flip(x, axis=0), train=False)
    # Relighting by a light vector is relighting by a target of that estimated light.
    by_light = model.apply(variables, x, other["target_light"], method="relight_with_light")
    # A label's light (one direction, 2500 K) is far from any estimate of the random light
    # head (near-uniform weights, whatever the image): the ratio changes I.
    label = jnp.repeat(registry.spec_of("transport").label_light(2500, 2, "original"), 2, axis=0)
    by_label = model.apply(variables, x, label, method="relight_with_light")
    return same, other["relit"], by_light, by_label

  same, other, by_light, by_label = unoptimised_jit(run)(image)
  np.testing.assert_allclose(same, image, atol=1e-6)  # sRGB -> linear -> sRGB rounding only
  np.testing.assert_allclose(by_light, other, atol=1e-6)
  assert not np.allclose(by_label, image, atol=1e-2)


def test_the_stored_transport_recomposes_the_dataset_and_reaches_the_batch(v2_tiny_data_dir):
  images = scene_images.SceneImages(_V2_TINY, "train", v2_tiny_data_dir, 32,
                                    aovs=("transport",))
  scene = 1
  main, fixed = images.aov("transport", scene), images.aov("fixed_light", scene)
  assert main.shape == (8, 32, 32, 3) and fixed.shape == (32, 32, 3)
  assert main.dtype == fixed.dtype == np.float32
  # The absolute form under the true transport and the true lights is the dataset's image.
  rgbs = transport.temperature_rgbs()
  np.testing.assert_allclose(rgbs, illumination.light_rgbs(), rtol=1e-6)
  assert transport.exposure() == mitsuba_scene.EXPOSURE
  composed = np.asarray(transport.compose_all_lights(main[None], fixed[None], rgbs))[0]
  stored = np.stack([images.image(scene, light) for light in range(lights.NUM_LIGHTS)])
  assert np.max(np.abs(np.round(composed * 255) - stored)) <= 2
  light = int(lights.light_index(1, 5))
  single = transport.compose_image(main[None], fixed[None],
                                   jnp.asarray(transport.label_light(3500, 5)))
  np.testing.assert_allclose(single[0], composed[light], atol=1e-6)
  # In a batch: I's transport only (G shares I's scene; T's is never read).
  batch = input_pipeline.stack_examples(images, np.array([[1, 3, 0, 12], [0, 7, 1, 30]]))
  np.testing.assert_array_equal(batch["input_transport"][0], main)
  assert batch["input_transport"].shape == (2, 8, 32, 32, 3)
  assert batch["input_fixed_light"].shape == (2, 32, 32, 3)
  assert not [key for key in batch if key.endswith(("_transport", "_fixed_light"))
              and not key.startswith("input_")]
  # A smaller image size averages the linear light (the records are 32 px).
  half = scene_images.SceneImages(_V2_TINY, "train", v2_tiny_data_dir, 16,
                                  aovs=("transport",))
  np.testing.assert_allclose(half.aov("transport", scene),
                             main.reshape(8, 16, 2, 16, 2, 3).mean(axis=(2, 4)), rtol=2e-3)


def test_without_stored_transport_the_data_and_the_loss_say_what_to_build(v2_tiny_data_dir,
                                                                          monkeypatch):
  # v1 records and v2 records before 2.2.0 are those of 2.2.0 without the two features.
  import tensorflow_datasets as tfds

  opened = tfds.data_source

  class WithoutTransport:
    def __init__(self, source):
      self.source = source

    def __len__(self):
      return len(self.source)

    def __getitem__(self, index):
      record = dict(self.source[index])
      del record["transport"], record["fixed_light"]
      return record

  monkeypatch.setattr(tfds, "data_source",
                      lambda *args, **kwargs: WithoutTransport(opened(*args, **kwargs)))
  with pytest.raises(ValueError, match=r"has no transport: .* from version 2\.2\.0 on; build "
                                       "one: python -m relight_jax.datasets.build"):
    scene_images.SceneImages(_V2_TINY, "train", v2_tiny_data_dir, 32, aovs=("transport",))
  loss_config = load_config("transport", "smoke").loss
  outputs = {f"{role}_light": jnp.full((1, 11), 0.5) for role in ("input", "target")}
  batch = {f"{role}_{key}": jnp.zeros((1,), dtype) for role in ("input", "target")
           for key, dtype in (("direction", jnp.int32), ("temperature", jnp.float32))}
  with pytest.raises(ValueError, match="set data.aovs to include 'transport'"):
    registry.spec_of("transport").loss_terms(outputs, batch, loss_config)
  with loss_config.unlocked():
    for key in ("transport_weight", "fixed_light_weight", "all_lights_weight"):
      loss_config[key] = 0.0
  assert set(loss_terms.transport_terms(
      outputs, batch, loss_config, code=transport.transport_code,
      compose_all=transport.compose_all_lights, light_rgbs=transport.temperature_rgbs())) == {
          "light_direction", "light_colour"}


def test_the_transport_model_trains_and_evaluates(v2_tiny_data_dir, tmp_path,
                                                   unoptimised_compiles):
  # The one run of the training loop for this model (integration tier): its batches carry
  # the transport, its light estimate feeds the evaluation's light metrics.
  from relight_jax.training import train

  config = load_config("transport", "smoke", **{
      "data.data_dir": v2_tiny_data_dir, "train.num_steps": 2, "train.eval_every": 2,
      "train.checkpoint_every": 2, "train.log_every": 2, "train.image_every": 100})
  final_state = train.train(config, tmp_path / "run")
  assert int(final_state.step) == 2
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(
      jax.device_get(final_state.params)))


def _dimmed(variables):
  # The output bias lowered by 3: at random parameters exp(raw) is about 1, and every
  # composed pixel clips to white; at about e^-3 two lights, or one at x2, stay below the
  # clip, and linear light reads back exactly through sRGB.
  def shift(path, leaf):
    keys = tuple(getattr(key, "key", None) for key in path)
    return leaf - 3.0 if keys[-3:] == ("decoder", "output", "bias") else leaf
  dimmed = jax.tree_util.tree_map_with_path(shift, variables)
  assert not np.allclose(dimmed["params"]["decoder"]["output"]["bias"],
                         variables["params"]["decoder"]["output"]["bias"])
  return dimmed


@pytest.fixture(scope="module")
def composing():
  """(InferenceModel of the smoke model at random parameters, its variables, its outputs
  on (I, I), I)."""
  config = load_config("transport", "smoke")
  model = registry.create_model(config.model)
  image = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  variables = _dimmed(unoptimised_jit(
      lambda x: model.init(jax.random.key(0), x, x, train=False))(image))
  outputs = unoptimised_jit(lambda v, x: model.apply(v, x, x, train=False))(variables, image)
  relighter = trained_model.from_model(model, variables, config.model, 32, config=config)
  return relighter, variables, jax.device_get(outputs), image


def _linear(image):
  return guided_upsample.srgb_to_linear(image) / transport.exposure()


def test_two_lights_compose_with_the_fixed_lights_once(composing):
  relighter, _, outputs, image = composing
  transport_maps, fixed = outputs["input_transport"], outputs["input_fixed_light"]
  mixer = light_mix.LightMixer(relighter, image[0])
  assert mixer.composes
  coloured = np.zeros((8, 3), np.float32)
  coloured[2], coloured[6] = transport.light_rgb(3500), transport.light_rgb(6500)
  np.testing.assert_allclose(mixer.coloured_weights("90,3500;270,6500"), coloured, rtol=1e-6)
  relit, picture = mixer.relight("90,3500;270,6500")
  assert picture.shape == (16, 32, 3) and picture.max() > 0.5
  expected = transport.compose_coloured_image(transport_maps, fixed, coloured[None])[0]
  np.testing.assert_allclose(relit, expected, atol=1e-5)
  assert _linear(relit).max() < 0.9  # nothing clipped: the comparisons see linear light
  # The label models' mix sums two outputs that each hold F̂: F̂ twice.
  labels = {(3500, 2): 1.0, (6500, 6): 1.0}
  mixed = light_mix.mix({label: np.asarray(relighter.relight_light_fn(image, *label))[0]
                         for label in labels}, labels)
  np.testing.assert_allclose(_linear(mixed) - _linear(relit), fixed[0], atol=1e-4)
  assert fixed.mean() > 1e-2
  # The ratio form: I's pixels times the change from I's estimated light, in one composition.
  ratio = light_mix.LightMixer(relighter, image[0], ratio=True)
  own = transport.compose_linear(transport_maps, fixed, outputs["input_light"])
  new = transport.compose_coloured(transport_maps, fixed, coloured[None])
  change = (new + transport.EPSILON) / (own + transport.EPSILON)
  np.testing.assert_allclose(ratio.relight("90,3500;270,6500")[0],
                             srgb.to_srgb(srgb.to_linear(image) * change)[0],
                             atol=1e-5)
  np.testing.assert_allclose(ratio.relight(ratio.own_lighting())[0], image[0], atol=1e-5)


def test_intensity_multiplies_the_main_light_only(composing):
  relighter, _, outputs, image = composing
  mixer = light_mix.LightMixer(relighter, image[0])
  np.testing.assert_allclose(mixer.coloured_weights("200,4200,x2"),
                             2 * mixer.coloured_weights("200,4200"), rtol=1e-6)
  fixed = outputs["input_fixed_light"][0]
  once, twice = (_linear(mixer.relight(light)[0]) for light in ("200,4200", "200,4200,x2"))
  assert twice.max() < 0.9
  np.testing.assert_allclose(twice - fixed, 2 * (once - fixed), atol=1e-4)
  assert not np.allclose(twice, 2 * once, atol=1e-3)  # F̂ is not doubled


def test_a_light_without_a_direction_or_a_colour_keeps_the_estimated_one(composing):
  relighter, _, outputs, image = composing
  mixer = light_mix.LightMixer(relighter, image[0])
  weights, colour = (np.asarray(part)[0] for part in transport.split_light(
      outputs["input_light"]))
  # A temperature alone keeps I's 8 estimated weights, not only their mean azimuth.
  kept = mixer.coloured_weights("4200K")
  np.testing.assert_allclose(kept, weights[:, None] * transport.light_rgb(4200), atol=1e-6)
  azimuth = float(np.asarray(outputs["input_prediction"])[0, 0])
  assert not np.allclose(kept, mixer.coloured_weights(f"{azimuth:.6g},4200"), atol=1e-3)
  np.testing.assert_allclose(
      mixer.relight("4200K")[0], transport.compose_coloured_image(
          outputs["input_transport"], outputs["input_fixed_light"], kept[None])[0], atol=1e-5)
  # A direction alone keeps I's estimated colour.
  np.testing.assert_allclose(mixer.coloured_weights("W,x0.5"),
                             0.5 * np.eye(8)[6][:, None] * colour, atol=1e-6)


def test_the_light_vector_is_the_coloured_weights_of_one_light(composing):
  relighter, variables, outputs, image = composing
  # 76.5 deg at 4200 K, x1.5: 0.3 of NE and 0.7 of E, times 1.5.
  light = np.zeros((1, 11), np.float32)
  light[0, 1], light[0, 2] = 0.45, 1.05
  light[0, 8:] = transport.light_rgb(4200)
  coloured = light_mix.LightMixer(relighter, image[0]).coloured_weights("76.5,4200,x1.5")
  np.testing.assert_allclose(coloured, np.asarray(transport.coloured_weights(light))[0],
                             rtol=1e-6)
  by_vector = unoptimised_jit(lambda v, x: [
      model.apply(v, x, light, method="relight_with_light")
      for model in (_model(), _model("ratio"))])(variables, image)
  for form, relit in zip(("absolute", "ratio"), by_vector, strict=True):
    np.testing.assert_allclose(relighter.relight_coloured_fn(image, coloured[None], form),
                               relit, atol=1e-5)
  # The vector's own formula: ĉ ⊙ Σ_d ŵ_d M̂_d + F̂.
  main = np.einsum("d,bdhwc->bhwc", light[0, :8], outputs["input_transport"])
  expected = srgb.to_srgb(
      transport.exposure() * (light[0, 8:] * main + outputs["input_fixed_light"]))
  np.testing.assert_allclose(by_vector[0], expected, atol=1e-5)
