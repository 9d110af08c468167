"""TensorBoard events of both writers read back, the writer's choice, and clu's averages."""

import io

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from relight_jax.training import step as step_lib
from relight_jax.training import summaries

_RNG = np.random.default_rng(0)
_PICTURE = _RNG.integers(0, 256, (1, 6, 10, 3), dtype=np.uint8)
# Floats, outside [0, 1] too: both writers clip and convert them alike.
_FLOAT_PICTURES = _RNG.uniform(-0.2, 1.2, (2, 5, 7, 3)).astype(np.float32)


def _write(writer):
  writer.write_scalars(1, {"train/loss": 0.25, "eval/score": 1.5})
  writer.write_scalars(2, {"train/loss": np.float32(0.125)})
  writer.write_images(3, {"relighting": _PICTURE, "envmap/input": _FLOAT_PICTURES})
  writer.write_texts(3, {"final_test/table": "| Metric | Model |"})
  writer.write_hparams({"seed": 0, "model.name": "envmap", "train.gan": False})
  writer.close()


def _read(logdir):
  """{tag: [(step, value)]}: scalars as floats, images as (width, height, [pixels]), text."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
  accumulator.Reload()
  read = {}
  for tag in accumulator.Tags()["tensors"]:
    if tag.startswith("_hparams_/"):  # metadata-only summaries
      continue
    for event in accumulator.Tensors(tag):
      value = tensor_util.make_ndarray(event.tensor_proto)
      if value.dtype == object and value.ndim == 1:  # an image: [width, height, png...]
        value = (int(value[0]), int(value[1]),
                 [np.asarray(Image.open(io.BytesIO(png))) for png in value[2:]])
      elif value.dtype == object:
        value = value.item().decode()
      else:
        value = float(value)
      read.setdefault(tag, []).append((event.step, value))
  return read


def _expected_float_pixels(images):
  # tf.summary.image's conversion: x * 255.5, clipped to [0, 255], truncated.
  return np.clip(images * np.float32(255.5), 0, 255).astype(np.uint8)


def _check(read):
  assert read["train/loss"] == [(1, 0.25), (2, 0.125)]
  assert read["eval/score"] == [(1, 1.5)]
  ((step, (width, height, pixels)),) = read["relighting"]
  assert (step, width, height) == (3, 10, 6)
  np.testing.assert_array_equal(pixels, _PICTURE)
  ((_, (width, height, pixels)),) = read["envmap/input"]
  assert (width, height, len(pixels)) == (7, 5, 2)
  np.testing.assert_array_equal(pixels, _expected_float_pixels(_FLOAT_PICTURES))
  assert read["final_test/table"] == [(3, "| Metric | Model |")]


def test_the_tensorflow_free_writer_reads_back(tmp_path, monkeypatch):
  monkeypatch.setenv(summaries.WRITER_VARIABLE, "tensorboard")
  writer = summaries.create_writer(tmp_path)
  assert isinstance(writer, summaries.SummaryWriter)
  _write(writer)
  _check(_read(tmp_path))


@pytest.mark.skipif(not summaries.tensorflow_installed(),
                    reason="TensorFlow is not installed: clu's writers need it "
                           "(pip install -c constraints.txt '.[tensorflow]')")
def test_clus_writer_writes_what_the_tensorflow_free_one_writes(tmp_path, monkeypatch):
  monkeypatch.delenv(summaries.WRITER_VARIABLE, raising=False)
  writer = summaries.create_writer(tmp_path / "clu")
  assert not isinstance(writer, summaries.SummaryWriter)  # auto picks clu's
  _write(writer)
  _write(summaries.SummaryWriter(tmp_path / "tensorboard"))
  from_clu = _read(tmp_path / "clu")
  _check(from_clu)
  from_ours = _read(tmp_path / "tensorboard")
  assert set(from_clu) == set(from_ours)
  for tag, events in from_clu.items():
    for (step, value), (our_step, ours) in zip(events, from_ours[tag], strict=True):
      assert step == our_step
      if isinstance(value, tuple):
        assert value[:2] == ours[:2]
        np.testing.assert_array_equal(value[2], ours[2])
      else:
        assert value == ours, tag


def test_the_writer_choice(tmp_path, monkeypatch):
  monkeypatch.setattr(summaries, "tensorflow_installed", lambda: False)
  monkeypatch.delenv(summaries.WRITER_VARIABLE, raising=False)
  assert summaries.writer_kind() == "tensorboard"
  assert isinstance(summaries.create_writer(tmp_path), summaries.SummaryWriter)
  assert isinstance(summaries.create_writer(tmp_path, active=False), summaries.NullWriter)
  monkeypatch.setenv(summaries.WRITER_VARIABLE, "clu")
  with pytest.raises(ValueError, match=r"RELIGHT_JAX_SUMMARY_WRITER=clu needs TensorFlow"):
    summaries.create_writer(tmp_path)
  monkeypatch.setenv(summaries.WRITER_VARIABLE, "tf")
  with pytest.raises(ValueError, match=r"'tf': use one of auto, clu, tensorboard"):
    summaries.create_writer(tmp_path)
  monkeypatch.setattr(summaries, "tensorflow_installed", lambda: True)
  monkeypatch.setenv(summaries.WRITER_VARIABLE, "tensorboard")
  assert summaries.writer_kind() == "tensorboard"
  monkeypatch.setenv(summaries.WRITER_VARIABLE, " ")
  assert summaries.writer_kind() == "clu"


def test_clu_averages_are_the_plain_means():
  # Per-example metrics, names with '/', the padding rows masked out.
  batches = [_RNG.uniform(size=(4,)).astype(np.float32) for _ in range(3)]
  masks = [np.ones(4, np.float32), np.ones(4, np.float32), np.array([1, 1, 0, 0], np.float32)]
  accumulated = None
  for values, mask in zip(batches, masks, strict=True):
    averages = step_lib.average_metrics({"identity/mse": jnp.asarray(values),
                                         "mse": jnp.asarray(2 * values)}, jnp.asarray(mask))
    accumulated = averages if accumulated is None else step_lib.merge_averages(accumulated,
                                                                               averages)
  kept = np.concatenate([values[mask > 0] for values, mask in zip(batches, masks, strict=True)])
  means = step_lib.computed_averages(accumulated)
  np.testing.assert_allclose(float(means["identity/mse"]), np.mean(kept), rtol=1e-6)
  np.testing.assert_allclose(float(means["mse"]), np.mean(2 * kept), rtol=1e-6)
  # Scalars of several steps (the train step's metrics): their mean over the steps.
  losses = [0.5, 0.25, 2.0]
  accumulated = step_lib.average_metrics({"loss": jnp.float32(losses[0])})
  for loss in losses[1:]:
    accumulated = step_lib.merge_averages(accumulated,
                                          step_lib.average_metrics({"loss": jnp.float32(loss)}))
  # What averaging the fetched float32 metrics on the host gave.
  assert float(step_lib.computed_averages(accumulated)["loss"]) == float(
      np.mean([np.float32(loss) for loss in losses]))
