"""The renderer's generators: each has the whole interface, and their output is pinned.

Every registered generator must have every part of `generators.Generator`, a feature for
each AOV it stores, configs that name it, and deterministic draws. Both tiny synthetic
configs are built (the session's builds, conftest.py) and every decoded record of every
split is hashed, with the stored feature spec and the configs' version, release notes
and description: a change of any rendered pixel, AOV, label, feature or version of an
existing generator fails here.

Mitsuba renders the same scene with last-bit differences on different CPUs (its ray
tracing picks instruction sets at run time), so a build matches the digests only on the
kind of machine that computed them. Elsewhere a build is held to a fingerprint instead:
everything but the images and maps exactly, and each image's and map's quadrant means
within half a code value (`_QUADRANT_TOLERANCE`): far below what moving an object, a
light or a colour changes. Regenerate both only for a change of output that is meant
(and then give the data a new version):

  PYTHONPATH=. python tests/test_render_generators.py [config ...]

(naming configs regenerates only their fingerprints and prints only their digests; the
other configs' fingerprints are kept as they are).
"""

import dataclasses
import hashlib
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from relight_jax.datasets.vidit import configs
from relight_jax.datasets.vidit import vidit_dataset_builder
from relight_jax.render import generators
from relight_jax.render import locations
from relight_jax.render import synthetic

# Per config: per split (records, sha256 of its decoded records), the sha256 of the stored
# features.json and of the configs' metadata. Computed with a clean build; two builds of
# the same code give the same digests (the array_record files themselves differ).
_DIGESTS = {
    "synthetic_tiny": {
        "train": (80, "518b4c2b174d7f38807767504aa72acba4307a6d08b5ca08486076feaedbb3af"),
        "validation": (80, "be66d928dc02773c5e04b088e31f755d816848315b3316c21fe1f5ab83fe27c1"),
        "test": (80, "fcff2f904da168bc783fc1c0e68cb52193e7bd50f91e20d68e7232722efd7e00"),
        "features.json": "96f7d65209af68c1de96eb6f0f3d7fe8c59924ab8bdb91be94a7764bf79d6442",
    },
    "synthetic_v2_tiny": {
        "train": (80, "9788318a5ba16c785803eff3e5139467f6063167d754294b4e1e8d144dabc66d"),
        "validation": (80, "7a32014f2fcbf82fd1f48382239aff9903dcc67350e8f1324e0058aac8b470b9"),
        "test": (80, "fa7b5f939721da3b851b08652105eca87e8071ddd9256abb9e72fd9282593990"),
        "test_heldout": (80,
                         "6f19da4f943210028df33929fdd1b45c3e73eef6d5ca675c2cbdb52a806c98b9"),
        "features.json": "246103388d0f826b5255819a4105b3af9f3cf22f38d1ac8b1d2988f56adbe6bc",
    },
}
# Per synthetic config: an existing one must not change; a new one is added here.
_CONFIGS_SHA256 = {
    "synthetic_tiny": "af4fb4cc1a289edcc41561cc65767ca86decd002adf88bc3a44ef81690165d01",
    "synthetic_small": "0c314a8ee7653413b9ae7ccbc409585505a834c23df254641a6967f1df3d40f5",
    "synthetic": "515180e3444e3523f47a3de1ca6defd05120ef8d53c796d04418ae945efac24e",
    "synthetic_v2_tiny": "ad8361ead61bf6a36ef860f0f1d19ca77d18de4e86f451abe9ebbb20fc67ec50",
    "synthetic_v2_small": "9af81f8879b3bc047ab892883f3ab6bccf0134253b7538188dffd57e13d40de9",
    "synthetic_v2": "66617af3b4dde1ea9a13f940e14b14ba6e01f42ddee87e4e9c7db17f4fd77808",
    "synthetic_v2_eval": "63099fdd22335aedc7e4f8d0cc73c336ff4f0a9757b9362cf9710f98f0e368c1",
}


def record_digests(name, data_dir):
  """{split: (records, sha256 of the decoded records in key order)} of a built config."""
  spec = synthetic.SPECS[name]
  digests = {}
  for split, _ in spec.split_locations:
    source = tfds.data_source(f"vidit/{name}", split=split, data_dir=os.fspath(data_dir))
    digest = hashlib.sha256()
    for index in range(len(source)):
      record = source[index]
      for key in sorted(record):
        value = np.asarray(record[key])
        for part in (key, str(value.dtype), str(value.shape)):
          digest.update(part.encode())
        digest.update(value.tobytes())
    digests[split] = (len(source), digest.hexdigest())
  return digests


# Half a code value of an 8-bit image, in [0, 1] units.
_QUADRANT_TOLERANCE = 0.5 / 255
_FINGERPRINTS = pathlib.Path(__file__).parent / "data" / "render_fingerprints.npz"


def fingerprints(name, data_dir):
  """{split: quadrant means}, {split: sha256 of every non-image value} of a built config.

  An image or map ([H, W] or [H, W, C]; uint8 taken as code / 255) gives the means of
  its four quadrants per channel; the means of a split's records are concatenated.
  """
  spec = synthetic.SPECS[name]
  means, digests = {}, {}
  for split, _ in spec.split_locations:
    source = tfds.data_source(f"vidit/{name}", split=split, data_dir=os.fspath(data_dir))
    digest, parts = hashlib.sha256(), []
    for index in range(len(source)):
      record = source[index]
      for key in sorted(record):
        value = np.asarray(record[key])
        if value.ndim >= 2 and value.dtype.kind in "uf":
          value = value.astype(np.float64) / (255.0 if value.dtype == np.uint8 else 1.0)
          value = value.reshape(*value.shape[:2], -1)
          half_h, half_w = value.shape[0] // 2, value.shape[1] // 2
          parts += [value[rows, cols].mean(axis=(0, 1))
                    for rows in (slice(None, half_h), slice(half_h, None))
                    for cols in (slice(None, half_w), slice(half_w, None))]
        else:
          for part in (key, str(value.dtype), str(value.shape)):
            digest.update(part.encode())
          digest.update(value.tobytes())
    means[split] = np.concatenate(parts)
    digests[split] = digest.hexdigest()
  return means, digests


def _assert_fingerprints_match(name, data_dir):
  means, digests = fingerprints(name, data_dir)
  with np.load(_FINGERPRINTS) as stored:
    for split in means:
      assert digests[split] == str(stored[f"{name}/{split}/digest"]), (name, split)
      expected = stored[f"{name}/{split}/means"]
      assert means[split].shape == expected.shape, (name, split)
      worst = float(np.max(np.abs(means[split] - expected)))
      assert worst <= _QUADRANT_TOLERANCE, (
          f"{name} {split}: a quadrant mean moved by {worst * 255:.2f} code values")


def features_digest(name, data_dir):
  """sha256 of the features.json a build stored (feature names, shapes, dtypes, encodings)."""
  builder = tfds.builder(f"vidit/{name}", data_dir=os.fspath(data_dir))
  return hashlib.sha256(pathlib.Path(builder.data_dir, "features.json").read_bytes()).hexdigest()


def configs_digests():
  """{name: sha256 of its version, release notes and description} of the synthetic configs."""
  return {name: hashlib.sha256(json.dumps(
              [str(config.version), config.release_notes, config.description],
              sort_keys=True).encode()).hexdigest()
          for name, config in configs.CONFIGS.items() if config.source == "synthetic"}


@pytest.mark.parametrize("name, data_dir_fixture", [
    ("synthetic_tiny", "tiny_data_dir"), ("synthetic_v2_tiny", "v2_tiny_data_dir")])
def test_tiny_builds_are_unchanged(name, data_dir_fixture, request):
  data_dir = request.getfixturevalue(data_dir_fixture)
  expected = dict(_DIGESTS[name])
  assert features_digest(name, data_dir) == expected.pop("features.json")
  if record_digests(name, data_dir) != expected:  # another kind of CPU (module docstring)
    _assert_fingerprints_match(name, data_dir)


def test_synthetic_configs_are_unchanged():
  assert configs_digests() == _CONFIGS_SHA256


def test_every_generator_has_the_whole_interface():
  assert set(generators.GENERATORS) >= {"v1", "v2"}
  parts = {field.name for field in dataclasses.fields(generators.Generator)}
  assert parts == {"name", "contents", "sample_location", "sample_view", "render",
                   "stored_aovs", "version", "release_notes", "description",
                   "earlier_versions"}
  for name, generator in generators.GENERATORS.items():
    assert isinstance(generator, generators.Generator) and generator.name == name
    for part in ("sample_location", "sample_view", "render"):
      assert callable(getattr(generator, part)), (name, part)
    assert generator.contents and all(isinstance(c, str) for c in generator.contents), name
    for aov in generator.stored_aovs:
      assert aov in vidit_dataset_builder.AOV_FEATURES, (name, aov)
    if generator.version is not None:
      tfds.core.Version(generator.version)  # raises unless "x.y.z"
      assert generator.version in generator.release_notes, name
    for version, aovs in generator.earlier_versions.items():
      assert tfds.core.Version(version) < tfds.core.Version(generator.version), (name, version)
      assert set(aovs) <= set(generator.stored_aovs), (name, version)
    description = generator.description.format(size=32, scenes=2, splits="train: 1 locations")
    assert "{" not in description and "32 px" in description, name
    # Draws of every content set are deterministic and give a View.
    for content in generator.contents:
      location = generator.sample_location(0, 3, content)
      view = generator.sample_view(0, 3, 1, location)
      again = generator.sample_view(0, 3, 1, generator.sample_location(0, 3, content))
      assert isinstance(view, locations.View), (name, content)
      assert (view.origin, view.fov_deg) == (again.origin, again.fov_deg), (name, content)
  # Every spec names a registered generator, and its configs carry that generator's version.
  for spec in synthetic.SPECS.values():
    generator = synthetic.generator_of(spec)
    config = configs.CONFIGS[spec.name]
    assert config.release_notes == generator.release_notes, spec.name
    assert config.supported_versions == list(generator.earlier_versions), spec.name
    for split, _ in spec.split_locations:
      assert spec.content_of(split) in generator.contents, (spec.name, split)


def test_a_generator_lacking_a_part_is_refused():
  whole = dataclasses.asdict(generators.V1)
  for part in ("sample_location", "sample_view", "render"):
    with pytest.raises(ValueError, match=part):
      generators.Generator(**{**whole, part: None})
  with pytest.raises(TypeError, match="render"):
    generators.Generator(**{key: value for key, value in whole.items() if key != "render"})
  with pytest.raises(ValueError, match="stored AOV 'specular'"):
    generators.Generator(**{**whole, "stored_aovs": ("specular",)})
  with pytest.raises(ValueError, match="release notes"):
    generators.Generator(**{**whole, "version": "9.0.0"})
  # An earlier version it still builds: below its version, with notes and fewer AOVs.
  v2 = dataclasses.asdict(generators.V2)
  for earlier in ({"2.3.0": ()}, {"1.9.0": ()}):
    with pytest.raises(ValueError, match="must be below its version '2.2.0'"):
      generators.Generator(**{**v2, "earlier_versions": earlier})
  with pytest.raises(ValueError, match="not a subset"):
    generators.Generator(**{**v2, "earlier_versions": {"2.1.0": ("depth",)}})
  with pytest.raises(ValueError, match=r"generator 'v9' is not one of \['v1', 'v2'"):
    synthetic.render_scene(dataclasses.replace(synthetic.SPECS["synthetic_tiny"],
                                               generator="v9"), synthetic.SceneRef(0, 0, 0))
  with pytest.raises(ValueError, match="content 'heldout'.*expected one of"):
    dataclasses.replace(synthetic.SPECS["synthetic_tiny"],
                        split_content=(("test", "heldout"),)).content_of("test")


if __name__ == "__main__":
  import sys
  import tempfile

  from relight_jax.datasets import vidit  # noqa: F401  registers the builder

  chosen = sys.argv[1:] or list(_DIGESTS)
  unknown = sorted(set(chosen) - set(_DIGESTS))
  if unknown:
    sys.exit(f"unknown configs {unknown}; expected some of {sorted(_DIGESTS)}")
  with tempfile.TemporaryDirectory() as tmp:
    with np.load(_FINGERPRINTS) as kept:  # the configs not regenerated stay as they are
      arrays = {key: kept[key] for key in kept.files if key.split("/")[0] not in chosen}
    for config_name in chosen:
      tfds.builder(f"vidit/{config_name}", data_dir=tmp).download_and_prepare()
      print(config_name, features_digest(config_name, tmp),
            json.dumps(record_digests(config_name, tmp), indent=1))
      split_means, split_digests = fingerprints(config_name, tmp)
      for split_name, split_mean in split_means.items():
        arrays[f"{config_name}/{split_name}/means"] = split_mean
        arrays[f"{config_name}/{split_name}/digest"] = np.array(split_digests[split_name])
  np.savez_compressed(_FINGERPRINTS, **arrays)
  print("configs", configs_digests(), "fingerprints", _FINGERPRINTS)
