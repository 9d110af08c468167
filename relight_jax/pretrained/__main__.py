"""Writes a training workdir's model into a bundle folder (default: this package's).

  python -m relight_jax.pretrained --workdir=runs/reference --output=bundles/reference
  python -m relight_jax.pretrained --workdir=runs/reference --overwrite   # the shipped model

The bundle is what `relight_jax.load_pretrained()` reads (trained_model.save_bundle): the
config, the variables as flax msgpack and a manifest with their sha256. The model card
(MODEL_CARD.md) is written by hand: it states how the run was made and what it measured.

A folder that already holds a bundle, the shipped reference model above all, is replaced
only with --overwrite (trained_model.write_bundle). Every failure (no such workdir, a
read-only install) is one line naming the path and what to do, with status 1.
"""

import json
import sys

from absl import app
from absl import flags

from relight_jax.inference import trained_model

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to bundle.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest intact).")
_OUTPUT = flags.DEFINE_string("output", None, "Bundle folder (default: relight_jax/pretrained, "
                              "the shipped reference model, which needs --overwrite).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace the bundle already in the folder.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  try:
    folder, manifest = trained_model.write_bundle(
        _WORKDIR.value, _OUTPUT.value, step=_STEP.value, overwrite=_OVERWRITE.value)
  except trained_model.BundleError as error:
    sys.exit(f"error: {error}")
  print(f"[pretrained] wrote {folder}: {json.dumps(manifest, sort_keys=True)}")


if __name__ == "__main__":
  app.run(main)
