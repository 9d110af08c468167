"""The synthetic builder on Apache Beam builds the records of the local path.

Apache Beam is an optional dependency (`pip install apache-beam`, see docs/beam.md): the
comparison skips without it. It builds `vidit/synthetic_tiny` with the DirectRunner and
2 worker processes and compares every stored record to the local build of the
`tiny_data_dir` fixture, in file order: each as the `tf.train.Example` it stores (every
feature's bytes: the PNGs, the float16 depth, the labels), and some decoded.
"""

import pathlib

import numpy as np
import pytest

from relight_jax.datasets import build


def _records(data_dir, split):
  """The raw serialized records of a split, in file order."""
  from array_record.python import array_record_data_source

  files = sorted(pathlib.Path(data_dir, "vidit", "synthetic_tiny", "1.0.0").glob(
      f"vidit-{split}.array_record-*"))
  assert files, (data_dir, split)
  source = array_record_data_source.ArrayRecordDataSource([str(path) for path in files])
  return [source[index] for index in range(len(source))]


def test_beam_build_writes_the_records_of_the_local_build(tiny_data_dir, tmp_path):
  pytest.importorskip("apache_beam", reason="apache-beam is not installed (optional extra: "
                      "pip install apache-beam; docs/beam.md)")
  import tensorflow_datasets as tfds

  # TFDS's own copy of the tf.train.Example proto: no TensorFlow needed to parse records.
  from tensorflow_datasets.proto import tf_example_pb2

  from relight_jax.datasets.vidit import beam_render

  options = beam_render.pipeline_options("DirectRunner", num_workers=2)
  result = build.build("synthetic_tiny", str(tmp_path), beam_options=options)
  assert result["images"] == 3 * 80 and not result["reused"]
  for split in ("train", "validation", "test"):
    local, beamed = _records(tiny_data_dir, split), _records(tmp_path, split)
    assert len(local) == len(beamed) == 80, split
    # As messages, not as bytes: a serialized Example lists its feature map in an order
    # protobuf leaves unspecified, and the two builds serialized in different processes.
    differing = [index for index, (a, b) in enumerate(zip(local, beamed, strict=True))
                 if tf_example_pb2.Example.FromString(a) != tf_example_pb2.Example.FromString(b)]
    assert not differing, f"{split}: records {differing} differ from the local build's"
    # Decoded too: same keys (scene-major order) and features.
    local_source = tfds.data_source("vidit/synthetic_tiny", split=split,
                                    data_dir=tiny_data_dir, download=False)
    beam_source = tfds.data_source("vidit/synthetic_tiny", split=split,
                                   data_dir=str(tmp_path), download=False)
    for index in (0, 41, 79):
      expected, found = local_source[index], beam_source[index]
      assert expected.keys() == found.keys()
      for key in expected:
        np.testing.assert_array_equal(np.asarray(found[key]), np.asarray(expected[key]),
                                      err_msg=f"{split} record {index} {key}")


def test_beam_is_only_for_synthetic_configs(tmp_path):
  with pytest.raises(ValueError, match="only synthetic configs render with Beam"):
    build.build("full_256", str(tmp_path), beam_options=object())
