"""Tests of the geometry Envmap model (models/geometry.py), its losses and its data.

Shapes and parameter counts use jax.eval_shape; gradients run at 16 px with depth 1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from conftest import unoptimised_jit

from relight_jax.config import defaults
from relight_jax.data import envmap
from relight_jax.data import input_pipeline
from relight_jax.data import lights
from relight_jax.datasets import scene_images
from relight_jax.models import geometry
from relight_jax.models import registry
from relight_jax.training import objectives
from relight_jax.training import step


def _config(**overrides):
  config = defaults.model_section("geometry_envmap")
  config.width = 0.125
  for key, value in overrides.items():
    config[key] = value
  return config


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _images(batch=2, size=32, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.uniform(size=(batch, size, size, 3)).astype(np.float32) for _ in range(2)]


def test_output_shapes_and_geometry_ranges():
  model = registry.create_model(_config())
  image = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)

  def run(x):
    variables = model.init(jax.random.key(0), x, x, train=False)
    return model.apply(variables, x, x, train=False), model.apply(
        variables, x, train=False, method=model.encode)

  outputs, encoded = jax.eval_shape(run, image)
  expected = {"relit": (2, 32, 32, 3), "target_lambertian": (2, 32, 32, 3),
              "input_lambertian": (2, 32, 32, 3)}
  for role in ("input", "target"):
    expected.update({f"{role}_envmap": (2, 16, 32, 3), f"{role}_light": (2, 16, 32, 3),
                     f"{role}_normals": (2, 32, 32, 3), f"{role}_depth": (2, 32, 32)})
  assert {key: value.shape for key, value in outputs.items()} == expected
  assert encoded["normals"].shape == (2, 32, 32, 3) and encoded["scene"] is None
  # Real values: unit normals, depth in [0, 1] (a one-stage model: the heads' output
  # layers are the same at any depth, and compiling it takes a third of the time).
  model = registry.create_model(_config(depth=1, bottleneck_convs=1))
  first, second = _images()
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, x, train=False))(first)
  result = jax.jit(lambda v, a, b: model.apply(v, a, b, train=False))(variables, first, second)
  # Unit length up to the 1e-6 under the square root (it keeps the gradient finite at 0).
  np.testing.assert_allclose(np.linalg.norm(result["input_normals"], axis=-1), 1.0, atol=1e-2)
  assert 0.0 <= float(result["input_depth"].min()) <= float(result["input_depth"].max()) <= 1.0


def test_parameters_are_the_envmap_models_plus_the_geometry_head():
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  params = {}
  for name in ("envmap", "geometry_envmap"):
    config = defaults.model_section(name)
    config.width = 0.25
    model = registry.create_model(config)
    params[name] = jax.eval_shape(
        lambda x, m=model: m.init(jax.random.key(0), x, x, train=False), image)["params"]
  ours, theirs = params["geometry_envmap"], params["envmap"]
  assert _count(ours["encoder"]) == _count(theirs["encoder"])
  assert _count(ours["latent_head"]) == _count(theirs["latent_head"])
  # Every decoder conv that reads a skip link reads the 10 geometry channels too
  # (2 shadings + normals + depth), and nothing else changes.
  extra = 0
  for path, kernel in jax.tree_util.tree_leaves_with_path(ours["decoder"]):
    reference = theirs["decoder"]
    for key in path:
      reference = reference[key.key]
    if kernel.shape != reference.shape:
      assert kernel.shape[2] - reference.shape[2] == 10, path
      extra += _count(kernel) - _count(reference)
  assert extra == 10 * 9 * sum(
      ours["decoder"][name]["conv"]["kernel"].shape[3] for name in
      ("bottleneck0", "bottleneck1", "bottleneck2", "stage2_conv", "stage2_up", "stage1_conv",
       "stage1_up", "stage0_conv", "stage0_up")) + 10 * 9 * 3
  # The geometry head at width 1/4 (conv + bias, BN scale and bias, PReLU slope per
  # block): latent_in 128 -> 64, stage2 64 + 64 -> 32, stage1 32 + 32 -> 16, stage0
  # 16 + 16 -> 8, stem 8 + 8 -> 8, then a 3x3 conv 8 -> 4: 2.1 % of the model.
  block = lambda cin, cout: 9 * cin * cout + cout + 2 * cout + 1
  assert _count(ours["geometry_head"]) == (block(128, 64) + block(128, 32) + block(64, 16)
                                           + block(32, 8) + block(16, 8) + 9 * 8 * 4 + 4)
  assert _count(ours) == _count(theirs) + _count(ours["geometry_head"]) + extra == 5_779_606


def test_inference_needs_only_rgb(unoptimised_compiles):
  config = load_config("geometry_envmap", "smoke")
  model = registry.create_model(config.model)
  first, second = _images(size=32)
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, x, train=False))(first)
  state_of = lambda variables: type("State", (), {
      "apply_fn": model.apply, "params": variables["params"],
      "batch_stats": variables["batch_stats"]})()
  # A batch with images alone, no depth or normals: predict and relight by a light work.
  outputs = jax.jit(lambda variables, batch: step.predict(state_of(variables), batch))(
      variables, {"input_image": first, "target_image": second, "ground_truth": second})
  assert outputs["relit"].shape == (2, 32, 32, 3)
  light = np.stack([envmap.envmap_rgb(3500, 6)] * 2)
  relight_with_light = jax.jit(lambda image, envmap_rgb: model.apply(
      variables, image, envmap_rgb, method=model.relight_with_light))
  relit = relight_with_light(first, light)
  assert relit.shape == (2, 32, 32, 3) and np.all(np.isfinite(relit))
  # The target image enters only through its envmap: relighting by T's predicted envmap
  # is relighting by T.
  target_envmap = outputs["target_envmap"]
  by_envmap = relight_with_light(first, target_envmap)
  np.testing.assert_allclose(by_envmap, outputs["relit"], atol=2e-5)


def _loss_batch(size=16, with_aovs=True):
  rng = np.random.default_rng(1)
  batch = {key: rng.uniform(size=(2, size, size, 3)).astype(np.float32)
           for key in ("input_image", "target_image", "ground_truth")}
  for role in ("input", "target"):
    rgb, _ = envmap.batch_envmaps([2500, 6500], [2, 6])
    batch[f"{role}_envmap"] = rgb
    if with_aovs:
      normals = rng.normal(size=(2, size, size, 3)).astype(np.float32)
      batch[f"{role}_normals"] = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
      batch[f"{role}_depth"] = rng.uniform(size=(2, size, size)).astype(np.float32)
  return batch


def _loss_and_grads(loss_config, batch, wanted=("normals", "depth", "reconstruction"),
                    **model_overrides):
  model = registry.create_model(_config(depth=1, bottleneck_convs=1, **model_overrides))

  def run(batch):
    variables = model.init(jax.random.key(0), batch["input_image"], batch["target_image"],
                           train=False)

    def loss_fn(params, term):
      outputs, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                               batch["input_image"], batch["target_image"], train=True,
                               mutable=["batch_stats"])
      _, terms = objectives.compute_losses("geometry_envmap", outputs, batch, loss_config)
      return terms[term], terms

    return {term: jax.grad(loss_fn, has_aux=True)(variables["params"], term)
            for term in wanted}

  return unoptimised_jit(run)(batch)


def test_auxiliary_losses_are_wired_and_train_the_geometry_head_and_encoder():
  loss_config = load_config("geometry_envmap", "smoke").loss
  results = _loss_and_grads(loss_config, _loss_batch())
  norm = lambda tree: float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(tree))))
  for term in ("normals", "depth"):
    grads, terms = results[term]
    assert np.isfinite(float(terms[term])) and float(terms[term]) > 0
    assert norm(grads["geometry_head"]) > 0 and norm(grads["encoder"]) > 0
    # The auxiliary terms do not reach the relighting decoder: it does not predict geometry.
    assert norm(grads["decoder"]) == 0
  # The reconstruction trains the geometry head too, through the shading it is fed.
  grads, terms = results["reconstruction"]
  assert norm(grads["geometry_head"]) > 0
  expected = float(terms["reconstruction"] + terms["envmap"] + terms["normals"] + terms["depth"])
  assert float(terms["total"]) == pytest.approx(expected, rel=1e-5)


def test_geometry_losses_need_the_maps_and_say_so():
  loss_config = load_config("geometry_envmap", "smoke").loss
  with pytest.raises(ValueError, match="data.aovs"):
    _loss_and_grads(loss_config, _loss_batch(with_aovs=False))
  with loss_config.unlocked():
    loss_config.normals_weight = loss_config.depth_weight = 0.0
  _, terms = _loss_and_grads(loss_config, _loss_batch(with_aovs=False),
                             wanted=("reconstruction",))["reconstruction"]
  assert set(terms) == {"reconstruction", "envmap", "total"}


_SHADOWS = {"geometry_maps": ("normals", "depth", "shading"), "relit_shading": True}


def test_shadow_model_predicts_shadings_and_learns_them():
  model = registry.create_model(_config(**_SHADOWS))
  image = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  outputs = jax.eval_shape(lambda x: model.apply(
      model.init(jax.random.key(0), x, x, x, train=False), x, x, x, train=False), image)
  for key in ("input_shading", "target_shading", "ground_truth_shading", "relit_shading"):
    assert outputs[key].shape == (2, 32, 32), key
  loss_config = load_config("shadow_envmap", "smoke").loss
  batch = _loss_batch()
  rng = np.random.default_rng(2)
  for role in ("input", "target", "ground_truth"):
    batch[f"{role}_shading"] = rng.uniform(size=(2, 16, 16)).astype(np.float32)
  results = _loss_and_grads(loss_config, batch, ("shading", "relit_shading", "reconstruction"),
                            **_SHADOWS)
  norm = lambda tree: float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(tree))))
  grads, terms = results["relit_shading"]
  # The relit shading is learned by its head and the encoder, not by the image decoder...
  assert float(terms["relit_shading"]) > 0 and norm(grads["shading_head"]) > 0
  assert norm(grads["encoder"]) > 0 and norm(grads["decoder"]) == 0
  grads, terms = results["shading"]
  assert float(terms["shading"]) > 0 and norm(grads["geometry_head"]) > 0
  # ... which reads it: the reconstruction trains the shading head through it.
  grads, terms = results["reconstruction"]
  assert norm(grads["shading_head"]) > 0
  expected = sum(float(terms[key]) for key in ("reconstruction", "envmap", "normals", "depth",
                                               "shading", "relit_shading"))
  assert float(terms["total"]) == pytest.approx(expected, rel=1e-5)
  del batch["ground_truth_shading"]
  with pytest.raises(ValueError, match="shading"):
    _loss_and_grads(loss_config, batch, ("reconstruction",), **_SHADOWS)


def test_pipeline_adds_the_shadings_of_each_image_and_of_g(v2_tiny_data_dir, tiny_data_dir):
  images = scene_images.SceneImages("vidit/synthetic_v2_tiny", "train", v2_tiny_data_dir,
                                      32, aovs=("shading",))
  # Lights 3 (2500 K, SE) and 14 (3500 K, SW): G is scene 0 under SW.
  example = input_pipeline.compose_triplet(images, (0, 3, 1, 14))
  source = images._source  # noqa: SLF001  (the records the maps come from)
  stored = lambda scene, light: np.asarray(
      source[int(lights.record_index(scene, light))]["shading"])[..., 0] / 255
  np.testing.assert_allclose(example["input_shading"], stored(0, 3), atol=1e-6)
  np.testing.assert_allclose(example["target_shading"], stored(1, 14), atol=1e-6)
  np.testing.assert_allclose(example["ground_truth_shading"], stored(0, 14), atol=1e-6)
  # Another temperature of the same direction: the same map.
  np.testing.assert_array_equal(images.aov("shading", 0, 14), images.aov("shading", 0, 6))
  assert not np.array_equal(images.aov("shading", 0, 14), images.aov("shading", 0, 10))
  with pytest.raises(ValueError, match=r"no shading maps.*synthetic_v2"):  # v1 has none
    scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir, 32,
                               aovs=("shading",))


def test_normals_loss_values():
  up = np.zeros((1, 4, 4, 3), np.float32)
  up[..., 1] = 1.0
  assert float(objectives.losses.normals_loss(up, up)) == pytest.approx(0.0, abs=1e-7)
  assert float(objectives.losses.normals_loss(up, -up)) == pytest.approx(2.0)


def _reference_shading(normal, envmap_rgb, elevation_deg, north_column):
  """Independent loop: Σ over envmap pixels of colour * max(0, n . l(column)), normalised."""
  height, width, _ = envmap_rgb.shape
  total, weight = np.zeros(3), 0.0
  for column in range(width):
    # N sits at column north_column * width, azimuth growing with the column.
    azimuth = np.deg2rad(360.0 * (column - north_column * width) / width)
    elevation = np.deg2rad(elevation_deg)
    # Right of the image = +x, up = +y, towards the camera = +z; azimuth 0 = behind.
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                          -np.cos(azimuth) * np.cos(elevation)])
    for row in range(height):
      total += envmap_rgb[row, column] * max(0.0, float(normal @ direction))
      weight += float(envmap_rgb[row, column].mean())
  return total / weight


@pytest.mark.parametrize("convention", sorted(envmap.CONVENTIONS))
@pytest.mark.parametrize("direction", ["N", "E", "S", "W"])
def test_envmap_shading_matches_a_loop_and_the_direction_convention(direction, convention):
  index = lights.direction_index_of(direction)
  envmap_rgb = envmap.envmap_rgb(3500, index, convention).astype(np.float64)
  north = envmap.convention(convention).north_column
  normals = np.eye(3)[[0, 0, 1, 1, 2, 2]] * np.array([1, -1, 1, -1, 1, -1])[:, None]
  shading = np.asarray(geometry.envmap_shading(
      jnp.asarray(normals, jnp.float32).reshape(1, 2, 3, 3),
      jnp.asarray(envmap_rgb, jnp.float32)[None], 35.0, north)).reshape(6, 3)
  for normal, value in zip(normals, shading, strict=True):
    np.testing.assert_allclose(value, _reference_shading(normal, envmap_rgb, 35.0, north),
                               rtol=1e-4, atol=1e-6)
  # +x right, +z towards the camera: E lights the right-facing side, S the front.
  brightest = {"N": 5, "E": 0, "S": 4, "W": 1}[direction]  # rows of `normals`
  horizontal = [0, 1, 4, 5]
  assert int(np.argmax(shading[horizontal].sum(-1))) == horizontal.index(brightest)
  assert shading[3].sum() == pytest.approx(0.0, abs=1e-6)  # facing down: never lit


@pytest.mark.parametrize("convention, north", [("original", 0.5), ("v1", 0.0)])
def test_model_reads_columns_in_its_envmap_convention(convention, north):
  config = load_config("geometry_envmap", "smoke", **{"model.envmap_convention": convention})
  model = registry.spec_of("geometry_envmap").build(config.model, registry.conv_module("xla"),
                                                    jnp.float32)
  assert model.north_column == north


def test_average_pool_to_averages_blocks():
  image = np.arange(2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
  pooled = np.asarray(geometry.average_pool_to(jnp.asarray(image), 2))
  np.testing.assert_allclose(pooled, image.reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4)))
  with pytest.raises(ValueError, match="cannot pool"):
    geometry.average_pool_to(jnp.asarray(image), 3)


def test_bad_geometry_maps_raise():
  image = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  for maps in (("depth",), ("normals", "albedo")):
    model = registry.create_model(_config(geometry_maps=maps))
    with pytest.raises(ValueError, match="geometry_maps"):
      jax.eval_shape(lambda x, m=model: m.init(jax.random.key(0), x, x, train=False), image)
  with pytest.raises(ValueError, match="target_skips"):
    registry.create_model(_config(target_skips=(0,)))


def test_pipeline_adds_the_scene_maps_of_input_and_target(tiny_data_dir):
  images = scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir, 32,
                                      aovs=("depth", "normals"))
  plain = scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir, 32)
  pair = (0, 3, 1, 12)
  example = input_pipeline.compose_triplet(images, pair)
  assert not any(key.endswith(("_depth", "_normals"))
                 for key in input_pipeline.compose_triplet(plain, pair))
  assert example["input_normals"].shape == (32, 32, 3)
  assert example["input_depth"].shape == (32, 32)
  np.testing.assert_allclose(np.linalg.norm(example["input_normals"], axis=-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(example["target_normals"], images.aov("normals", 1))
  assert not np.array_equal(example["input_depth"], example["target_depth"])
  # The maps of a scene are its geometry: the same under another light.
  other = input_pipeline.compose_triplet(images, (0, 30, 1, 5))
  np.testing.assert_array_equal(other["input_depth"], example["input_depth"])
  # At half the resolution the maps are block averages of the stored ones.
  half = scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir, 16,
                                    aovs=("depth",))
  np.testing.assert_allclose(half.aov("depth", 0),
                             images.aov("depth", 0).reshape(16, 2, 16, 2).mean(axis=(1, 3)),
                             atol=1e-6)
  with pytest.raises(ValueError, match="albedo"):
    scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir, 32,
                               aovs=("albedo",))
