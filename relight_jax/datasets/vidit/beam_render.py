"""Synthetic splits rendered as an Apache Beam pipeline (TFDS' Beam support).

`python -m relight_jax.datasets.build vidit/synthetic --beam_runner=...` builds through
this module instead of the local process pool: every scene is one element of a Beam
PCollection, rendered (Mitsuba 3, all 40 illuminations and the AOVs) and encoded by
whichever worker the runner gives it, and TFDS' Beam writer stores the records. The
records are those of the local path, key for key: `records_of_scene` is the builder's
own record function, and the renders are deterministic from the spec's seed, so a
scene's images do not depend on the worker that renders it. Keys are integers and the
builder disables shuffling, so the Beam writer sorts by key (scene-major order).

Apache Beam is optional (`pip install apache-beam`); it is imported only when a pipeline
is built. Runner options: docs/beam.md.
"""

import functools

import tensorflow_datasets as tfds

from relight_jax.datasets.vidit import images
from relight_jax.render import synthetic


def _render_records(item, spec, image_size, records_of_scene):
  """Renders one (position, SceneRef) and returns its 40 (key, record) pairs."""
  position, ref = item
  rendered = synthetic.render_scene(spec, ref)
  pngs = [images.encode_png(image, image_size) for image in rendered.images]
  return list(records_of_scene(spec, ref, position, rendered, pngs))


def split_transform(spec, split, image_size, records_of_scene):
  """The Beam PTransform that renders a split into (key, record) pairs.

  Args:
    spec: the `synthetic.SyntheticSpec`.
    split: split name.
    image_size: the stored images' side (the builder config's).
    records_of_scene: (spec, ref, position, rendered, pngs) -> iterable of (key, record);
      must be picklable (a module-level function, or a partial of one).

  Returns:
    A PTransform from the pipeline's root to a PCollection of (key, record).
  """
  beam = tfds.core.lazy_imports.apache_beam
  scenes = list(enumerate(synthetic.split_scenes(spec, split)))
  render = functools.partial(_render_records, spec=spec, image_size=image_size,
                             records_of_scene=records_of_scene)
  # Reshuffle: Create emits its elements as one bundle, which one worker would render.
  return (f"{split}: scenes" >> beam.Create(scenes)
          | f"{split}: spread" >> beam.Reshuffle()
          | f"{split}: render" >> beam.FlatMap(render))


def pipeline_options(runner=None, num_workers=None, extra=""):
  """Beam `PipelineOptions` from the build command's flags.

  Args:
    runner: a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner,
      PortableRunner); None: Beam's default, the DirectRunner.
    num_workers: DirectRunner: worker processes (multi_processing mode); other runners:
      passed as --num_workers (Dataflow's initial worker count).
    extra: more options, comma-separated "key=value" (as TFDS' own
      --beam_pipeline_options), e.g. "project=my-project,region=europe-west1".

  Returns:
    `apache_beam.options.pipeline_options.PipelineOptions`.
  """
  beam = tfds.core.lazy_imports.apache_beam
  arguments = [f"--{option.strip()}" for option in extra.split(",") if option.strip()]
  if runner:
    arguments.append(f"--runner={runner}")
  if num_workers:
    if runner in (None, "DirectRunner"):
      arguments += [f"--direct_num_workers={num_workers}",
                    "--direct_running_mode=multi_processing"]
    else:
      arguments.append(f"--num_workers={num_workers}")
  return beam.options.pipeline_options.PipelineOptions(arguments)
