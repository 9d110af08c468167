"""Triplets (I, T, G) composed by index over a 40-illumination `vidit` split.

Images are stored once, scene-major (record = scene * 40 + light, see `lights.py`); a
triplet is a pair of records (I, T) plus G = image(scene(I), light(T)) (report §3.1).

* Pairing rules are small vectorised predicates on (scene_I, light_I, scene_T, light_T),
  composable by name: the report's rule is "different_scene,different_direction".
* Training samples pairs from the full combinatorial set (no epochs): example k of the
  stream is drawn from a generator seeded by (seed, k), so the stream is a pure function
  of the index. grain's iterator state (the next index) is therefore an exact resume
  point, saved in the checkpoint. Each host reads its own slice of every global batch.
* Evaluation uses fixed seeded lists of pairs: Eval and the subsets Eval[c_I = c_T] and
  Eval[d_I = d_T] (report §3.5), and Eval[same location] where the split's locations are
  known (`eval_subsets`).

Batches are dicts of numpy arrays, float32 [0, 1] NHWC images, with the lights' labels
and ground-truth envmaps of I, T and G (the batch contract of `objectives.py`). A
`datasets/scene_images.SceneImages` opened with `aovs` adds the renderer's per-scene maps
of I and T (`input_depth` [S, S] in [0, 1], `input_normals` [S, S, 3] unit camera-space vectors, and
the same for `target_`; G shares I's) and, for "shading" (v2 datasets), the direct-light
shading of each image's own light direction, G's included (`input_shading`,
`target_shading`, `ground_truth_shading` [S, S] in [0, 1]: G's is I's scene under T's
direction): models with geometry losses read them in training, nothing needs them at
inference. "transport" (v2 from 2.2.0 on) adds I's scene's linear light transport,
`input_transport` [8, S, S, 3] (the white main light from each direction) and
`input_fixed_light` [S, S, 3], float32 in the renderer's units (models/transport.py).
"""

import dataclasses

import grain
import numpy as np

from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.datasets import scene_images

ROLES = ("input", "target", "ground_truth")
# Predicates on arrays of scene positions and light indices of I (si, li) and T (st, lt).
RULES = {
    "different_scene": lambda si, li, st, lt: si != st,
    "same_scene": lambda si, li, st, lt: si == st,
    "different_direction": (
        lambda si, li, st, lt: lights.direction_of(li) != lights.direction_of(lt)),
    "same_direction": lambda si, li, st, lt: lights.direction_of(li) == lights.direction_of(lt),
    "different_temperature": (
        lambda si, li, st, lt: lights.split_light_index(li)[0] != lights.split_light_index(lt)[0]),
    "same_temperature": (
        lambda si, li, st, lt: lights.split_light_index(li)[0] == lights.split_light_index(lt)[0]),
    "different_light": lambda si, li, st, lt: li != lt,
}
# Predicates on the locations of I's and T's scenes (li, lt): they need the split's
# locations (`SceneImages.locations`), which only the synthetic datasets know.
LOCATION_RULES = {
    "same_location": lambda location_i, location_t: location_i == location_t,
    "different_location": lambda location_i, location_t: location_i != location_t,
}


def parse_rule(spec):
  """Returns the rule names of a comma-separated spec, checking each exists."""
  names = tuple(name.strip() for name in spec.split(",") if name.strip())
  for name in names:
    if name not in RULES and name not in LOCATION_RULES:
      raise ValueError(f"unknown pairing rule {name!r} in {spec!r}; valid: "
                       f"{sorted(RULES) + sorted(LOCATION_RULES)}")
  return names


def rule_mask(names, si, li, st, lt, locations=None):
  """Boolean mask of the pairs satisfying every rule in `names` (all arrays).

  Args:
    names: rule names (RULES, LOCATION_RULES).
    si, li, st, lt: scene positions and light indices of I and T.
    locations: [num_scenes] location of every scene position, needed by LOCATION_RULES.

  Raises:
    ValueError: a location rule without `locations`.
  """
  mask = np.ones(np.broadcast(si, li, st, lt).shape, dtype=bool)
  for name in names:
    if name in LOCATION_RULES:
      if locations is None:
        raise ValueError(f"pairing rule {name!r} needs the scenes' locations, which this "
                         "split does not have (real VIDIT has no location labels)")
      locations = np.asarray(locations)
      mask &= LOCATION_RULES[name](locations[si], locations[st])
    else:
      mask &= RULES[name](si, li, st, lt)
  return mask


def eval_subsets(pairing, with_locations=False):
  """The report's evaluation sets as rule lists, derived from the training rule.

  Eval follows the training pairing rule. Eval[c_I = c_T] adds equal temperatures.
  Eval[d_I = d_T] needs equal directions, so it drops the rule's direction constraints.

  Eval[same location] (with `with_locations`) keeps Eval's rule and takes T from I's own
  location: another view of the same room, materials and most objects, under G's light.
  With v views per location and S scenes, (v - 1) / (S - 1) of Eval's "different scene"
  pairs are such (27% of a 12-scene split of 4 views per location). They are reported as
  their own subset rather than excluded from Eval: Eval stays the report's rule,
  comparable with earlier tables and with the report's (whose VIDIT splits also hold
  several scenes per location), and the subset shows how much easier a guide of known
  content makes relighting (a model can copy where T's shadows fall on shared objects).
  Where the split's locations are unknown (real VIDIT has no location labels) there is
  no such subset; the evaluation's table says so.

  Args:
    pairing: the config's pairing spec, e.g. "different_scene,different_direction".
    with_locations: the split's locations are known: add Eval[same location].

  Returns:
    Dict from subset name to a tuple of rule names, in a fixed order (the subsets' pair
    lists are seeded by their position).
  """
  base = parse_rule(pairing)
  without_direction = tuple(name for name in base if not name.endswith("_direction"))
  subsets = {
      "eval": base,
      "eval_same_temperature": tuple(
          name for name in base if not name.endswith("_temperature")) + ("same_temperature",),
      "eval_same_direction": without_direction + ("same_direction",),
  }
  if with_locations:
    subsets["eval_same_location"] = tuple(
        name for name in base if not name.endswith("_location")) + ("same_location",)
  return subsets


def _labels(prefix, light, envmap_convention):
  temperature_index, direction = lights.split_light_index(light)
  temperature = np.float32(lights.TEMPERATURES_K[int(temperature_index)])
  rgb = envmap.envmap_rgb(int(temperature), int(direction), envmap_convention)
  hsv = envmap.envmap_hsv(int(temperature), int(direction), envmap_convention)
  return {
      f"{prefix}_temperature": temperature,
      f"{prefix}_direction": np.int32(direction),
      f"{prefix}_envmap": rgb,
      f"{prefix}_envmap_hsv": hsv,
  }


def compose_triplet(images, pair, envmap_convention=envmap.DEFAULT_CONVENTION):
  """One example: I = (scene_I, light_I), T = (scene_T, light_T), G = (scene_I, light_T).

  Args:
    images: a `SceneImages`.
    pair: (scene_I, light_I, scene_T, light_T) integers.
    envmap_convention: the generated envmaps' (config.model.envmap_convention).

  Returns:
    Dict of numpy arrays following the batch contract of `objectives.py`.
  """
  scene_input, light_input, scene_target, light_target = (int(value) for value in pair)
  example = {
      "input_image": images.image(scene_input, light_input),
      "target_image": images.image(scene_target, light_target),
      "ground_truth": images.image(scene_input, light_target),
      "input_scene": np.int32(scene_input),
      "target_scene": np.int32(scene_target),
  }
  for role, light in zip(ROLES, (light_input, light_target, light_target), strict=True):
    example.update(_labels(role, light, envmap_convention))
  # Any object with `image(scene, light)` composes triplets; one without `aovs` adds no maps.
  for name in getattr(images, "aovs", ()):
    if name in scene_images.AOV_MAPS:
      # I's scene only: G shares it, and no loss reads T's scene's transport.
      for map_name in scene_images.AOV_MAPS[name]:
        example[f"input_{map_name}"] = images.aov(map_name, scene_input)
    elif name in scene_images.PER_DIRECTION_AOVS:
      example[f"input_{name}"] = images.aov(name, scene_input, light_input)
      example[f"target_{name}"] = images.aov(name, scene_target, light_target)
      example[f"ground_truth_{name}"] = images.aov(name, scene_input, light_target)
    else:
      example[f"input_{name}"] = images.aov(name, scene_input)
      example[f"target_{name}"] = images.aov(name, scene_target)
  return example


def to_float(batch):
  """Converts the uint8 images of a batch to float32 in [0, 1] (other keys unchanged)."""
  converted = dict(batch)
  for key in ("input_image", "target_image", "ground_truth"):
    converted[key] = batch[key].astype(np.float32) / np.float32(255.0)
  return converted


def sample_pair(num_scenes, rule_names, seed, index, extra_rule_names=(), extra_fraction=0.0):
  """Pair number `index` of the training stream: a pure function of (seed, index).

  Rejection-samples uniformly from all (I, T) pairs satisfying `rule_names`, or, with
  probability `extra_fraction`, `extra_rule_names` (a mixture of two pairings).
  """
  rng = np.random.default_rng((seed, index))
  if extra_fraction and rng.random() < extra_fraction:
    rule_names = extra_rule_names
  num_records = num_scenes * lights.NUM_LIGHTS
  for _ in range(1000):
    records = rng.integers(0, num_records, size=(64, 2))
    si, li = lights.split_record_index(records[:, 0])
    st, lt = lights.split_record_index(records[:, 1])
    ok = np.flatnonzero(rule_mask(rule_names, si, li, st, lt))
    if ok.size:
      k = ok[0]
      return si[k], li[k], st[k], lt[k]
  raise ValueError(f"no pair satisfies the rules {rule_names} on {num_scenes} scenes")


@dataclasses.dataclass(frozen=True)
class HostSlice:
  """Which part of every global batch this process reads (multi-host data parallelism)."""

  process_index: int = 0
  process_count: int = 1

  def local_batch(self, global_batch):
    if global_batch % self.process_count:
      raise ValueError(f"global batch {global_batch} is not divisible by the "
                       f"{self.process_count} processes")
    return global_batch // self.process_count


def train_dataset(images, rule_names, *, seed, global_batch, host=HostSlice(),
                  extra_rule_names=(), extra_fraction=0.0, read_threads=2, prefetch=4,
                  envmap_convention=envmap.DEFAULT_CONVENTION):
  """The infinite, seeded, resumable training stream of uint8 batches for this host.

  Args:
    images: `SceneImages` of the training split.
    rule_names: pairing rules (see `parse_rule`).
    extra_rule_names: rules of a second pairing drawn with probability `extra_fraction`.
    extra_fraction: probability of drawing a pair from `extra_rule_names`.
    seed: stream seed.
    global_batch: examples per step over all hosts.
    host: this process's slice.
    read_threads: grain threads composing examples.
    prefetch: grain prefetch buffer.
    envmap_convention: the generated envmaps' (config.model.envmap_convention).

  Returns:
    A `grain.IterDataset` of batches; `iter(...)` has `get_state`/`set_state`.
  """
  local = host.local_batch(global_batch)
  num_scenes = images.num_scenes

  def global_index(i):
    # Host p takes examples [p * local, (p + 1) * local) of every global batch.
    return (i // local) * global_batch + host.process_index * local + i % local

  dataset = (
      grain.MapDataset.range(2**62)
      .map(global_index)
      .map(lambda k: compose_triplet(images, sample_pair(
          num_scenes, rule_names, seed, k, extra_rule_names, extra_fraction),
          envmap_convention))
      .batch(local, drop_remainder=True))
  return dataset.to_iter_dataset(
      grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))


def eval_pairs(num_scenes, rule_names, num_pairs, seed, locations=None):
  """Fixed, seeded list of evaluation pairs satisfying `rule_names`.

  All valid pairs when there are at most `num_pairs`, else `num_pairs` distinct ones
  drawn without replacement, in a seeded random order. `locations` ([num_scenes]) is
  needed by the location rules only.

  Returns:
    int64 array [num, 4] of (scene_I, light_I, scene_T, light_T).
  """
  rng = np.random.default_rng(seed)
  num_records = num_scenes * lights.NUM_LIGHTS
  total = num_records * num_records
  if total <= 20_000_000:
    flat = np.arange(total, dtype=np.int64)
    valid = flat[rule_mask(rule_names, *lights.split_record_index(flat // num_records),
                           *lights.split_record_index(flat % num_records), locations)]
    if valid.size > num_pairs:
      valid = rng.choice(valid, size=num_pairs, replace=False)
    else:
      valid = rng.permutation(valid)
  else:
    chosen = []
    seen = set()
    while len(chosen) < num_pairs:
      flat = rng.integers(0, total, size=4 * num_pairs)
      keep = rule_mask(rule_names, *lights.split_record_index(flat // num_records),
                       *lights.split_record_index(flat % num_records), locations)
      for value in flat[keep]:
        if value not in seen:
          seen.add(value)
          chosen.append(value)
    valid = np.asarray(chosen[:num_pairs], dtype=np.int64)
  if valid.size == 0:
    raise ValueError(f"no evaluation pair satisfies {rule_names} on {num_scenes} scenes")
  si, li = lights.split_record_index(valid // num_records)
  st, lt = lights.split_record_index(valid % num_records)
  return np.stack([si, li, st, lt], axis=1)


def eval_batches(images, pairs, global_batch, host=HostSlice(),
                 envmap_convention=envmap.DEFAULT_CONVENTION):
  """Yields this host's part of fixed-size eval batches over `pairs`, padded at the end.

  Every batch has `global_batch / process_count` examples and a float32 "mask" (1 for
  real examples, 0 for padding), so jitted shapes never change. The envmaps are
  generated in `envmap_convention` (config.model.envmap_convention).
  """
  local = host.local_batch(global_batch)
  num_batches = -(-len(pairs) // global_batch)
  for batch_index in range(num_batches):
    start = batch_index * global_batch + host.process_index * local
    indices = np.arange(start, start + local)
    mask = (indices < len(pairs)).astype(np.float32)
    batch = stack_examples(images, pairs[np.minimum(indices, len(pairs) - 1)],
                           envmap_convention)
    batch["mask"] = mask
    yield batch


def stack_examples(images, pairs, envmap_convention=envmap.DEFAULT_CONVENTION):
  """A host batch (dict of stacked numpy arrays) of the triplets of `pairs` [N, 4].

  The envmaps are generated in `envmap_convention` (config.model.envmap_convention).
  """
  examples = [compose_triplet(images, pair, envmap_convention) for pair in pairs]
  return {key: np.stack([example[key] for example in examples]) for key in examples[0]}
