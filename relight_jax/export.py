"""Serialise a trained relighter with `jax.export`, and load it without the model code.

  python -m relight_jax.export --workdir=runs/envmap --output=relighter.bin

writes the inference function relit = f(input_image, target_image), each
[batch, S, S, 3] float32 in [0, 1], with the trained variables closed over as constants,
as a serialised `jax.export.Exported` (StableHLO). The batch dimension is symbolic, so one
file serves any batch size; the resolution S is the training resolution (fixed: the
working-resolution override of relight.py needs the workdir). It is lowered for CPU and
CUDA by default, so a file made on a laptop runs on a Colab GPU and the other way round.

`trained_model.load_exported(path)` loads it back: the file holds the whole computation, so
a notebook or a server runs the model as exported even where its code has changed since.
Its first line carries the sha256 of the rest, so a damaged copy is refused by name.
"""

import argparse
import pathlib
import sys

import jax
import numpy as np

from relight_jax.common import atomic
from relight_jax.inference import trained_model

PLATFORMS = ("cpu", "cuda")


def export_relight_fn(relight_fn, image_size, *, platforms=PLATFORMS):
  """Exports relight_fn(input_image, target_image) with a symbolic batch dimension.

  Args:
    relight_fn: a JAX-traceable function of two [B, S, S, 3] float32 arrays returning
      [B, S, S, 3] (trained_model.make_relight_fn: the variables are closed over, so they
      become constants of the exported module).
    image_size: S.
    platforms: lowering platforms.

  Returns:
    A `jax.export.Exported`.
  """
  (batch,) = jax.export.symbolic_shape("batch")
  spec = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), np.float32)
  return jax.export.export(jax.jit(relight_fn), platforms=platforms)(spec, spec)


def save_exported(exported, path):
  """Writes `exported.serialize()` to `path` in one step (atomic.replacing).

  The bytes follow a one-line header with their sha256 (`trained_model.exported_header`), so
  `trained_model.load_exported` refuses a damaged copy.
  """
  serialized = exported.serialize()
  with atomic.replacing(path) as stream:
    stream.write(trained_model.exported_header(serialized))
    stream.write(serialized)


def export_workdir(workdir, output, *, step=None, platforms=PLATFORMS):
  """Exports the model trained in `workdir` to the file `output`.

  Args:
    workdir: a training workdir.
    output: destination file.
    step: checkpoint step; default the latest.
    platforms: lowering platforms.

  Returns:
    The `jax.export.Exported` written.
  """
  loaded = trained_model.load_workdir(workdir, step=step, on_host=True)
  exported = export_relight_fn(loaded.relight_fn, loaded.image_size, platforms=platforms)
  save_exported(exported, output)
  return exported


def main(argv=None):
  """Command-line entry point; returns the exit status."""
  parser = argparse.ArgumentParser(
      prog="python -m relight_jax.export",
      description="Serialise a trained relighter with jax.export.")
  parser.add_argument("--workdir", required=True, help="training workdir")
  parser.add_argument("--output", required=True, help="file to write, e.g. relighter.bin")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step")
  parser.add_argument("--platforms", default=",".join(PLATFORMS),
                      help="comma-separated lowering platforms")
  args = parser.parse_args(argv)
  output = pathlib.Path(args.output)
  if not output.parent.is_dir():
    print(f"export: error: folder {output.parent} does not exist", file=sys.stderr)
    return 1
  try:
    exported = export_workdir(args.workdir, output, step=args.step,
                              platforms=tuple(args.platforms.split(",")))
  except (FileNotFoundError, ValueError) as error:
    print(f"export: error: {error}", file=sys.stderr)
    return 1
  print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, platforms "
        f"{exported.platforms}, input {exported.in_avals[0].str_short()})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
