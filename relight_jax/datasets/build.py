r"""Builds a `vidit` dataset config with the TFDS Python API (no apache_beam needed).

The `tfds build` command line imports apache_beam even for `--help`, so this thin CLI
calls `builder.download_and_prepare` instead and reports how long it took:

  python -m relight_jax.datasets.build vidit/synthetic_small --data_dir=data/tfds
  python -m relight_jax.datasets.build vidit/full_256 --data_dir=data/tfds \
      --manual_dir=data/manual/vidit
  python -m relight_jax.datasets.build vidit/synthetic --data_dir=data/tfds \
      --beam_runner=DirectRunner --beam_num_workers=8      # pip install apache-beam
  python -m relight_jax.datasets.build vidit/synthetic_v2_small:2.1.0 --data_dir=data/tfds

A `:<version>` suffix builds an earlier version a synthetic config still builds (its
`supported_versions`: the same renders, fewer features); without one, its current version.

With --beam_runner (or --beam_pipeline_options) synthetic scenes render as an Apache
Beam pipeline, on any Beam runner (docs/beam.md); the records are the same.

Builder configs are listed in `relight_jax/datasets/vidit/README.md`.

One build of a config into one data_dir at a time: a second one, which TFDS would let
render everything and then fail renaming its folder onto the first's, is refused at once
(`BuildBusyError`, naming the holder); rerun it when the first is done, and it reuses that
dataset.
"""

import contextlib
import os
import pathlib
import sys
import time

try:
  import fcntl
except ImportError:  # Windows: no lock, as before
  fcntl = None

import tensorflow_datasets as tfds
from absl import app
from absl import flags
from absl import logging

from relight_jax.datasets import vidit
from relight_jax.datasets.vidit import beam_render
from relight_jax.datasets.vidit import configs

FLAGS = flags.FLAGS


class BuildBusyError(RuntimeError):
  """Another process is building the same config into the same data_dir."""


@contextlib.contextmanager
def _build_lock(config, data_dir):
  """Holds an exclusive lock on `<data_dir>/vidit/.<config>.build.lock` while building."""
  folder = pathlib.Path(data_dir) / "vidit"
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f".{config}.build.lock"
  with open(path, "a+", encoding="utf-8") as handle:
    if fcntl is not None:
      try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise BuildBusyError(
            f"vidit/{config} is being built into {data_dir} by {holder} (lock {path}); wait "
            "for that build to finish, then rerun: it reuses the dataset") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
      yield
    finally:
      handle.seek(0)
      handle.truncate()


def define_flags():
  """Defines this CLI's flags (not at import: preview.py and demos import `build`)."""
  flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir to build into.")
  flags.DEFINE_string("manual_dir", None, "Folder holding real VIDIT files or zips "
                      "(default: <data_dir>/downloads/manual).")
  flags.DEFINE_integer("render_workers", None,
                       "Processes rendering synthetic scenes (default: all cores).")
  flags.DEFINE_bool("overwrite", False, "Rebuild even if the dataset is already built.")
  flags.DEFINE_string("beam_runner", None, "Render synthetic scenes as an Apache Beam "
                      "pipeline on this runner: DirectRunner, DataflowRunner, FlinkRunner, "
                      "SparkRunner, PortableRunner (needs apache-beam).")
  flags.DEFINE_integer("beam_num_workers", None, "DirectRunner: worker processes; other "
                       "runners: --num_workers.")
  flags.DEFINE_string("beam_pipeline_options", "", "More Beam options, comma-separated "
                      "key=value, e.g. project=P,region=R,temp_location=gs://B/tmp.")


def build(config: str, data_dir: str, manual_dir: str | None = None,
          render_workers: int | None = None, overwrite: bool = False,
          beam_options=None, version: str | None = None) -> dict:
  """Builds `vidit/<config>` into `data_dir`.

  Args:
    config: builder config name.
    data_dir: TFDS data dir.
    manual_dir: real VIDIT folder (real configs only).
    render_workers: synthetic rendering processes (None: all cores).
    overwrite: rebuild even if the dataset is already prepared.
    beam_options: Beam `PipelineOptions` (`beam_render.pipeline_options`): render the
      synthetic scenes as a Beam pipeline; None renders them with local processes.
    version: the config's version to build: None, its current one, or one of its
      `supported_versions` (an earlier version its generator still builds).

  Returns:
    {"seconds": wall time, "images": images stored, "images_per_second": rate,
     "path": the built dataset's folder, "reused": True if it was already built}.
  """
  if beam_options is not None and configs.CONFIGS[config].source != "synthetic":
    raise ValueError(f"vidit/{config} reads real VIDIT files; only synthetic configs "
                     "render with Beam (drop --beam_runner / --beam_pipeline_options)")
  known = configs.CONFIGS.get(config)  # an unknown name: TFDS' error, listing the configs
  if version is not None and known is not None:
    versions = [str(known.version or vidit.Vidit.VERSION), *map(str, known.supported_versions)]
    if version not in versions:
      raise ValueError(f"vidit/{config} builds versions {versions}, not {version!r}")
  builder = vidit.Vidit(config=config, version=version, data_dir=data_dir,
                        render_workers=render_workers, beam=beam_options is not None)
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual_dir, beam_options=beam_options,
      download_mode=(tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
                     else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  with _build_lock(config, data_dir):
    # Known only now: a build that held the lock may have finished meanwhile.
    reused = builder.is_prepared() and not overwrite
    if overwrite and builder.is_prepared():
      # REUSE_CACHE_IF_EXISTS rebuilds into an .incomplete folder and replaces this one.
      logging.info("Rebuilding %s", builder.data_dir)
    start = time.perf_counter()
    try:
      builder.download_and_prepare(download_config=download_config)
    except FileExistsError as error:  # a build outside this command finished first
      raise BuildBusyError(
          f"vidit/{config}: {error.filename or builder.data_dir} was written by another "
          "build meanwhile; rerun to reuse it, or pass --overwrite to rebuild") from None
  seconds = time.perf_counter() - start
  records = sum(split.num_examples for split in builder.info.splits.values())
  # Pair records hold two input images each (input, guide) plus the ground truth.
  images = records * (3 if builder.builder_config.source == "pairs" else 1)
  return {"seconds": seconds, "images": images, "images_per_second": images / seconds,
          "path": os.fspath(builder.data_dir), "reused": reused}


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m relight_jax.datasets.build "
                         "vidit/<config>[:<version>] --data_dir=DIR [--manual_dir=DIR]")
  name, _, version = argv[1].partition(":")
  version = version or None
  try:
    config = configs.parse_dataset_name(name)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  beam_options = None
  if FLAGS.beam_runner or FLAGS.beam_pipeline_options:
    try:
      beam_options = beam_render.pipeline_options(FLAGS.beam_runner, FLAGS.beam_num_workers,
                                                  FLAGS.beam_pipeline_options)
    except ImportError:
      sys.exit("error: --beam_runner / --beam_pipeline_options need Apache Beam, which is "
               "not installed: pip install apache-beam (in an environment of its own, "
               "docs/beam.md), or drop them to render with local processes")
  try:
    result = build(config, FLAGS.data_dir, FLAGS.manual_dir, FLAGS.render_workers,
                   FLAGS.overwrite, beam_options, version)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  except BuildBusyError as err:
    sys.exit(f"error: {err}")
  label = config + (f":{version}" if version else "")
  if result["reused"]:
    print(f"vidit/{label}: already built at {result['path']} ({result['images']} images); "
          "pass --overwrite to rebuild")
  else:
    print(f"vidit/{label}: {result['images']} images in {result['seconds']:.1f} s "
          f"({result['images_per_second']:.1f} images/s) -> {result['path']}")


def run_command():
  """The `relight-jax-build` console script (same as python -m relight_jax.datasets.build)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run_command()
