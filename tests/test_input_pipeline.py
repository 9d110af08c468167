"""Triplet composition, pairing rules, evaluation lists, determinism and resume."""

import numpy as np
import pytest

from relight_jax.data import envmap
from relight_jax.data import input_pipeline
from relight_jax.data import lights
from relight_jax.datasets import scene_images


class CodedImages:
  """Stand-in for SceneImages whose pixels encode (scene, light): R = scene, G = light."""

  def __init__(self, num_scenes, size=4):
    self.num_scenes, self.size = num_scenes, size

  def image(self, scene, light):
    image = np.zeros((self.size, self.size, 3), np.uint8)
    image[..., 0], image[..., 1] = scene, light
    return image


def _decode(image):
  return int(image[0, 0, 0]), int(image[0, 0, 1])


def test_triplet_ground_truth_is_input_scene_under_target_light():
  example = input_pipeline.compose_triplet(CodedImages(5), (1, 17, 3, 30))
  assert _decode(example["input_image"]) == (1, 17)
  assert _decode(example["target_image"]) == (3, 30)
  assert _decode(example["ground_truth"]) == (1, 30)
  assert example["ground_truth_temperature"] == example["target_temperature"] == 5500
  assert example["ground_truth_direction"] == example["target_direction"] == 30 % 8
  assert example["input_direction"] == 17 % 8 and example["input_temperature"] == 4500
  np.testing.assert_array_equal(example["target_envmap"], envmap.envmap_rgb(5500, 30 % 8))
  assert example["input_envmap"].shape == (16, 32, 3)
  assert example["input_envmap_hsv"].shape == (2 + 16 * 32,)


@pytest.mark.parametrize("convention", ["v1", "original"])
def test_every_path_of_the_pipeline_generates_the_configs_envmaps(convention):
  # The two conventions put a light at different columns: a path that dropped the
  # argument would hand the model the other one's maps.
  images, pairs = CodedImages(5), np.array([[1, 17, 3, 30], [2, 5, 0, 12]])
  # Light 30 is 5500 K from direction 6, light 12 is 3500 K from direction 4 (lights.py).
  expected = [envmap.envmap_rgb(5500, 6, convention), envmap.envmap_rgb(3500, 4, convention)]
  assert not np.array_equal(envmap.envmap_rgb(5500, 6, "v1"),
                            envmap.envmap_rgb(5500, 6, "original"))
  triplet = input_pipeline.compose_triplet(images, pairs[0], convention)
  np.testing.assert_array_equal(triplet["target_envmap"], expected[0])
  stacked = input_pipeline.stack_examples(images, pairs, convention)
  np.testing.assert_array_equal(stacked["target_envmap"], np.stack(expected))
  batch = next(iter(input_pipeline.eval_batches(images, pairs, 2,
                                                envmap_convention=convention)))
  np.testing.assert_array_equal(batch["target_envmap"], np.stack(expected))
  rules = input_pipeline.parse_rule("different_scene")
  stream = input_pipeline.train_dataset(images, rules, seed=0, global_batch=2,
                                        envmap_convention=convention)
  batch = next(iter(stream))
  for index in range(2):
    np.testing.assert_array_equal(
        batch["target_envmap"][index],
        envmap.envmap_rgb(int(batch["target_temperature"][index]),
                          int(batch["target_direction"][index]), convention))


def test_rules_and_eval_subsets():
  subsets = input_pipeline.eval_subsets("different_scene,different_direction")
  assert subsets["eval"] == ("different_scene", "different_direction")
  assert subsets["eval_same_temperature"] == (
      "different_scene", "different_direction", "same_temperature")
  assert subsets["eval_same_direction"] == ("different_scene", "same_direction")
  with pytest.raises(ValueError, match="unknown pairing rule 'diferent_scene'"):
    input_pipeline.parse_rule("diferent_scene")


@pytest.mark.parametrize("subset", ["eval", "eval_same_temperature", "eval_same_direction"])
def test_eval_pairs_fixed_distinct_and_satisfy_their_subset(subset):
  rules = input_pipeline.eval_subsets("different_scene,different_direction")[subset]
  pairs = input_pipeline.eval_pairs(6, rules, 500, seed=3)
  again = input_pipeline.eval_pairs(6, rules, 500, seed=3)
  np.testing.assert_array_equal(pairs, again)
  assert len(pairs) == 500 and len({tuple(p) for p in pairs}) == 500
  si, li, st, lt = pairs.T
  assert np.all(si != st)
  direction_i, direction_t = li % 8, lt % 8
  temperature_i, temperature_t = li // 8, lt // 8
  if subset == "eval_same_direction":
    assert np.all(direction_i == direction_t)
  else:
    assert np.all(direction_i != direction_t)
  if subset == "eval_same_temperature":
    assert np.all(temperature_i == temperature_t)
  assert not np.array_equal(pairs, input_pipeline.eval_pairs(6, rules, 500, seed=4))


def test_same_location_subset_where_locations_are_known():
  subsets = input_pipeline.eval_subsets("different_scene,different_direction",
                                        with_locations=True)
  assert list(subsets) == ["eval", "eval_same_temperature", "eval_same_direction",
                           "eval_same_location"]
  assert subsets["eval_same_location"] == (
      "different_scene", "different_direction", "same_location")
  assert "eval_same_location" not in input_pipeline.eval_subsets("different_scene")
  locations = np.array([5, 5, 5, 6, 6, 7])
  pairs = input_pipeline.eval_pairs(6, subsets["eval_same_location"], 300, seed=0,
                                    locations=locations)
  assert len(pairs) == 300
  assert np.all(locations[pairs[:, 0]] == locations[pairs[:, 2]])
  assert np.all(pairs[:, 0] != pairs[:, 2]) and np.all(pairs[:, 1] % 8 != pairs[:, 3] % 8)
  with pytest.raises(ValueError, match="needs the scenes' locations"):
    input_pipeline.eval_pairs(6, subsets["eval_same_location"], 10, seed=0)


def test_eval_pairs_takes_all_when_few():
  # 2 scenes, same scene forbidden, same direction: 2 * 40 * 5 valid pairs.
  pairs = input_pipeline.eval_pairs(2, ("different_scene", "same_direction"), 10**6, seed=0)
  assert len(pairs) == 2 * 40 * 5


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_training_stream_deterministic_rules_and_exact_resume():
  images = CodedImages(7)
  rules = input_pipeline.parse_rule("different_scene,different_direction")
  make = lambda: iter(input_pipeline.train_dataset(images, rules, seed=5, global_batch=8))
  first = make()
  head = _take(first, 3)
  state = first.get_state()
  tail = _take(first, 2)
  resumed = make()
  resumed.set_state(state)
  for expected, actual in zip(tail, _take(resumed, 2), strict=True):
    for key in expected:
      np.testing.assert_array_equal(expected[key], actual[key])
  again = _take(make(), 3)
  for expected, actual in zip(head, again, strict=True):
    np.testing.assert_array_equal(expected["input_image"], actual["input_image"])
  for batch in head + tail:
    assert batch["input_image"].shape == (8, 4, 4, 3)
    scene_i, light_i = batch["input_image"][:, 0, 0, 0], batch["input_image"][:, 0, 0, 1]
    scene_t, light_t = batch["target_image"][:, 0, 0, 0], batch["target_image"][:, 0, 0, 1]
    assert np.all(scene_i != scene_t) and np.all(light_i % 8 != light_t % 8)
    np.testing.assert_array_equal(batch["ground_truth"][:, 0, 0, 0], scene_i)
    np.testing.assert_array_equal(batch["ground_truth"][:, 0, 0, 1], light_t)


def test_hosts_read_disjoint_slices_of_the_same_global_batch():
  images = CodedImages(7)
  rules = ("different_scene",)
  whole = next(iter(input_pipeline.train_dataset(images, rules, seed=1, global_batch=8)))
  parts = [next(iter(input_pipeline.train_dataset(
      images, rules, seed=1, global_batch=8, host=input_pipeline.HostSlice(p, 2))))
           for p in range(2)]
  np.testing.assert_array_equal(
      np.concatenate([part["input_image"] for part in parts]), whole["input_image"])
  with pytest.raises(ValueError, match="not divisible"):
    input_pipeline.HostSlice(0, 3).local_batch(8)


def test_eval_batches_pad_with_mask():
  pairs = input_pipeline.eval_pairs(3, ("different_scene",), 10, seed=0)
  batches = list(input_pipeline.eval_batches(CodedImages(3), pairs, 4))
  assert [b["input_image"].shape[0] for b in batches] == [4, 4, 4]
  np.testing.assert_array_equal(np.concatenate([b["mask"] for b in batches]),
                                [1] * 10 + [0] * 2)


def test_tiny_dataset_records_match_pixels_and_metadata(tiny_data_dir):
  import tensorflow_datasets as tfds

  images = scene_images.SceneImages("vidit/synthetic_tiny", "train", tiny_data_dir,
                                      image_size=32, cache_mib=64)
  source = tfds.data_source("vidit/synthetic_tiny", split="train", data_dir=tiny_data_dir)
  assert images.num_scenes * 40 == len(source)
  scenes = {int(source[lights.record_index(s, 0)]["scene"]) for s in range(images.num_scenes)}
  assert len(scenes) == images.num_scenes
  for scene, light in ((0, 0), (0, 39), (images.num_scenes - 1, 21)):
    record = source[int(lights.record_index(scene, light))]
    assert int(record["light"]) == light
    assert int(record["color_temperature"]) == lights.temperature_of(light)
    assert int(record["direction"]) == lights.direction_of(light)
    stored = np.asarray(record["image"])
    if stored.shape[0] == 32:
      np.testing.assert_array_equal(images.image(scene, light), stored)
  # Through pixels: G of a triplet equals the record of (scene(I), light(T)).
  example = input_pipeline.compose_triplet(images, (0, 3, images.num_scenes - 1, 12))
  np.testing.assert_array_equal(example["ground_truth"], images.image(0, 12))
  assert not np.array_equal(example["ground_truth"], example["input_image"])
  assert not np.array_equal(example["ground_truth"], example["target_image"])


def test_pairing_mixture_draws_both_rules_in_proportion():
  base = input_pipeline.parse_rule("different_scene,different_direction")
  extra = input_pipeline.parse_rule("different_scene,same_direction")
  pairs = np.array([input_pipeline.sample_pair(6, base, 0, k, extra, 0.5) for k in range(600)])
  si, li, st, lt = pairs.T
  same = li % 8 == lt % 8
  assert np.all(si != st)
  assert 0.4 < same.mean() < 0.6
  only_base = np.array([input_pipeline.sample_pair(6, base, 0, k) for k in range(200)])
  assert np.all(only_base[:, 1] % 8 != only_base[:, 3] % 8)
