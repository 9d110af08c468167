"""TensorBoard event files: through clu's writers where TensorFlow is installed, else without.

`create_writer(logdir, active)` is the one constructor. It picks the writer by the
environment variable `RELIGHT_JAX_SUMMARY_WRITER`:

  auto (default)  clu's `metric_writers.create_default_writer` (TensorFlow's `tf.summary`,
                  asynchronous) where TensorFlow is installed, else `SummaryWriter`;
  clu             clu's writer, or a ValueError where TensorFlow is not installed;
  tensorboard     `SummaryWriter`, even where TensorFlow is installed.

Whether TensorFlow is installed is `importlib.util.find_spec("tensorflow")`: nothing is
imported to ask, and clu's writers (which import TensorFlow) only on the clu path.
TensorFlow, a 350 MB wheel missing for some platforms and clashing with Colab's, is not
needed to train, evaluate or look at a run: `pip install 'relight_jax[tensorflow]'` adds it
and clu's writers.

`SummaryWriter` has the methods of clu's `MetricWriter` that this project calls
(`write_scalars`, `write_images`, `write_texts`, `write_hparams`, `flush`, `close`) and
writes the summaries `tf.summary` v2 writes (tensor summaries tagged with the scalars /
images / text / hparams plugins, images converted to PNG as `tf.summary.image` converts
them), so TensorBoard shows the same dashboards and reads back the same values. It builds
on TensorBoard's own event-file writer and protos, which are pure Python. The event-file
writer queues and writes on a thread of its own, so calls return without waiting for the
disk.

On processes other than 0 of a multi-process run `create_writer` returns a writer that
drops everything, so one events file is written per workdir.
"""

import importlib.util
import io
import logging
import os
import time

import numpy as np
from PIL import Image
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.summary.writer import event_file_writer
from tensorboard.util import tensor_util

from relight_jax.common import logs

WRITER_VARIABLE = "RELIGHT_JAX_SUMMARY_WRITER"
_CHOICES = ("auto", "clu", "tensorboard")


def _png(image):
  """PNG bytes of an [H, W, C] image: uint8 as is, floats in [0, 1] as `tf.summary.image`
  converts them (`tf.image.convert_image_dtype(saturate=True)`: x * 255.5, clipped to
  [0, 255], truncated), so both writers store the same pixels."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.clip(image.astype(np.float32) * np.float32(255.5), 0.0, 255.0).astype(np.uint8)
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"an image summary needs [H, W, 1|3|4] pixels, got shape {image.shape}")
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
  return buffer.getvalue()


def image_summary(tag, images):
  """A `Summary` of a batch of images [N, H, W, C] laid out as `tf.summary.image` does:
  a string tensor [width, height, png_0, ..., png_{N-1}] for the images plugin."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"image summary {tag!r}: expected [N, H, W, C], got shape {images.shape}")
  height, width = images.shape[1:3]
  strings = [str(width).encode(), str(height).encode()] + [_png(image) for image in images]
  tensor = tensor_util.make_tensor_proto(np.array(strings, dtype=object))
  metadata = image_metadata.create_summary_metadata(display_name=tag, description="",
                                                    converted_to_tensor=True)
  return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata,
                                                              tensor=tensor)])


class SummaryWriter:
  """Writes TensorBoard summaries into `logdir` (created if missing)."""

  def __init__(self, logdir):
    os.makedirs(logdir, exist_ok=True)
    self._events = event_file_writer.EventFileWriter(os.fspath(logdir))

  def _add(self, summary, step):
    self._events.add_event(
        event_file_writer.event_pb2.Event(summary=summary, step=int(step),
                                          wall_time=time.time()))

  def write_scalars(self, step, scalars):
    for tag, value in scalars.items():
      self._add(scalar_summary.scalar_pb(tag, float(value)), step)

  def write_images(self, step, images):
    """`images`: {tag: [N, H, W, C]} uint8, or floats in [0, 1]."""
    for tag, batch in images.items():
      self._add(image_summary(tag, batch), step)

  def write_texts(self, step, texts):
    """`texts`: {tag: str}; TensorBoard renders them as Markdown."""
    for tag, text in texts.items():
      self._add(text_summary.text_pb(tag, text), step)

  def write_hparams(self, hparams):
    """`hparams`: {name: bool | int | float | str}, for TensorBoard's HParams tab."""
    values = {key: value if isinstance(value, bool | int | float | str) else str(value)
              for key, value in hparams.items()}
    self._add(hparams_summary.hparams_pb(values), 0)

  def flush(self):
    self._events.flush()

  def close(self):
    self._events.close()


class NullWriter:
  """The writer of processes > 0: every summary is dropped."""

  def write_scalars(self, step, scalars):
    del step, scalars

  def write_images(self, step, images):
    del step, images

  def write_texts(self, step, texts):
    del step, texts

  def write_hparams(self, hparams):
    del hparams

  def flush(self):
    pass

  def close(self):
    pass


def tensorflow_installed():
  """Whether TensorFlow can be imported (asked without importing it)."""
  return importlib.util.find_spec("tensorflow") is not None


def writer_kind():
  """"clu" or "tensorboard": the writer `create_writer` makes (see the module docstring).

  Raises:
    ValueError: `RELIGHT_JAX_SUMMARY_WRITER` is not one of auto, clu, tensorboard, or is
      clu where TensorFlow is not installed.
  """
  choice = os.environ.get(WRITER_VARIABLE, "").strip().lower() or "auto"
  if choice not in _CHOICES:
    raise ValueError(f"{WRITER_VARIABLE}={os.environ[WRITER_VARIABLE]!r}: use one of "
                     f"{', '.join(_CHOICES)}")
  if choice == "auto":
    return "clu" if tensorflow_installed() else "tensorboard"
  if choice == "clu" and not tensorflow_installed():
    raise ValueError(f"{WRITER_VARIABLE}=clu needs TensorFlow, which is not installed: "
                     "pip install 'relight_jax[tensorflow]', or unset the variable to write "
                     "TensorBoard events without it")
  return choice


def clu_writer(logdir):
  """clu's default writer of `logdir`: `tf.summary` files (and absl logs), asynchronous."""
  # TensorFlow only writes files here: no GPU of its own (JAX holds them), no C++ logs.
  logs.silence_tensorflow()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TensorFlow was initialised before: its devices are set
    pass
  return metric_writers.create_default_writer(os.fspath(logdir), asynchronous=True)


def create_writer(logdir, active=True):
  """The writer of `logdir`: clu's or a `SummaryWriter` (`writer_kind`), or a `NullWriter`
  when `active` is false."""
  if not active:
    return NullWriter()
  if writer_kind() == "tensorboard":
    return SummaryWriter(logdir)
  try:
    return clu_writer(logdir)
  except ImportError as error:
    if os.environ.get(WRITER_VARIABLE, "").strip().lower() == "clu":
      raise ImportError(f"{WRITER_VARIABLE}=clu: clu's writer does not import ({error}); "
                        "pip install 'relight_jax[tensorflow]'") from error
    logging.warning("TensorFlow is installed but clu's writer does not import (%s): writing "
                    "TensorBoard events without TensorFlow", error)
    return SummaryWriter(logdir)
