"""The light-transport model (models/transport.py) and its data path (scene_images AOV
"transport"): shapes, the two forms of Ĝ, the renderer's composition, the label light.

Its loss terms and their gradients are checked with every model's in tests/test_models.py
(test_gradient_reaches_every_parameter_and_losses_are_finite[transport]).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from conftest import unoptimised_jit

from relight_jax.data import input_pipeline
from relight_jax.data import lights
from relight_jax.datasets import scene_images
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
    return same, other["relit"], by_light

  same, other, by_light = unoptimised_jit(run)(image)
  np.testing.assert_allclose(same, image, atol=1e-6)  # sRGB -> linear -> sRGB rounding only
  assert not np.allclose(other, image, atol=1e-3)
  np.testing.assert_allclose(by_light, other, atol=1e-6)


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


def test_the_transport_model_trains_and_evaluates(v2_tiny_data_dir, tmp_path):
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
