"""The renderer's generators: their output is pinned, record for record.

Both tiny synthetic configs are built (the session's builds, conftest.py) and every decoded
record of every split is hashed, with the stored feature spec and the configs' version,
release notes and description: a change of any rendered pixel, AOV, label, feature or
version of an existing generator fails here. Regenerate the digests only for a change of
output that is meant (and then give the data a new version):

  PYTHONPATH=. python tests/test_render_generators.py
"""

import hashlib
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from relight_jax.datasets.vidit import configs
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
        "train": (80, "c34ad6405f88f906dc8a7a3b396a3743b02f7e2e57ac494865d1a08533d5b0ad"),
        "validation": (80, "70177ce8a74e0ff54ed008e7fd16c3d7c63b36e8ad8a8c796c6bf74d016245a9"),
        "test": (80, "a0989115c4cc56dc6cb7c629af4ffadc053a33b05620a3bf9ccc72fd7dec6fd2"),
        "test_heldout": (80,
                         "ae0d9d213cd93557a3469e01d6ba699d6e79b2e0b30a616258e1aaf9e33f45b5"),
        "features.json": "86da3052e62fe4f715f6b7989ba1ee7d6b052e37c3e6d29c6d3fdb77befed501",
    },
}
_CONFIGS_SHA256 = "f6e083c511c15d0d848123ce3242e0a4e53f34925ea40727b9245357dd19bb52"


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


def features_digest(name, data_dir):
  """sha256 of the features.json a build stored (feature names, shapes, dtypes, encodings)."""
  builder = tfds.builder(f"vidit/{name}", data_dir=os.fspath(data_dir))
  return hashlib.sha256(pathlib.Path(builder.data_dir, "features.json").read_bytes()).hexdigest()


def configs_digest():
  """sha256 of every synthetic config's name, version, release notes and description."""
  metadata = {name: [str(config.version), config.release_notes, config.description]
              for name, config in configs.CONFIGS.items() if config.source == "synthetic"}
  return hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("name, data_dir_fixture", [
    ("synthetic_tiny", "tiny_data_dir"), ("synthetic_v2_tiny", "v2_tiny_data_dir")])
def test_tiny_builds_are_unchanged(name, data_dir_fixture, request):
  data_dir = request.getfixturevalue(data_dir_fixture)
  expected = dict(_DIGESTS[name])
  assert features_digest(name, data_dir) == expected.pop("features.json")
  assert record_digests(name, data_dir) == expected


def test_synthetic_configs_are_unchanged():
  assert configs_digest() == _CONFIGS_SHA256


if __name__ == "__main__":
  import tempfile

  from relight_jax.datasets import vidit  # noqa: F401  registers the builder

  with tempfile.TemporaryDirectory() as tmp:
    for config_name in _DIGESTS:
      tfds.builder(f"vidit/{config_name}", data_dir=tmp).download_and_prepare()
      print(config_name, features_digest(config_name, tmp),
            json.dumps(record_digests(config_name, tmp), indent=1))
  print("configs", configs_digest())
