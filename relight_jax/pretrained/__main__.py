"""Writes a training workdir's model into a bundle folder (default: this package's).

  python -m relight_jax.pretrained --workdir=runs/reference [--step=N] [--output=DIR]

The bundle is what `relight_jax.load_pretrained()` reads (trained_model.save_bundle): the
config, the variables as flax msgpack and a manifest with their sha256. The model card
(MODEL_CARD.md) is written by hand: it states how the run was made and what it measured.
"""

import json

from absl import app
from absl import flags

from relight_jax.inference import trained_model

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to bundle.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest intact).")
_OUTPUT = flags.DEFINE_string("output", None, "Bundle folder (default: relight_jax/pretrained).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  folder = _OUTPUT.value or str(trained_model.bundle_folder())
  manifest = trained_model.save_bundle(_WORKDIR.value, folder, step=_STEP.value)
  print(f"[pretrained] wrote {folder}: {json.dumps(manifest, sort_keys=True)}")


if __name__ == "__main__":
  app.run(main)
