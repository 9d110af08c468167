"""TensorBoard event files without TensorFlow.

`SummaryWriter` has the methods of clu's `MetricWriter` that this project calls
(`write_scalars`, `write_images`, `write_texts`, `write_hparams`, `flush`, `close`) and
writes the summaries TensorFlow's `tf.summary` v2 writes (tensor summaries tagged with the
scalars / images / text / hparams plugins), so TensorBoard shows the same dashboards. It
builds on TensorBoard's own event-file writer and protos, which are pure Python: TensorFlow
(a 350 MB wheel, missing for some platforms and clashing with Colab's) is not needed to
train, evaluate or look at a run. The event-file writer queues and writes on a thread of
its own, so calls return without waiting for the disk.

`create_writer(logdir, active)` is the one constructor: on processes other than 0 of a
multi-process run it returns a writer that drops everything, so one events file is written
per workdir.
"""

import io
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


def _png(image):
  """PNG bytes of an [H, W, C] image: uint8 as is, floats in [0, 1] (as tf.summary.image)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = (np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
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


def create_writer(logdir, active=True):
  """A `SummaryWriter` of `logdir`, or a `NullWriter` when `active` is false."""
  return SummaryWriter(logdir) if active else NullWriter()

