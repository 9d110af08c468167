"""Combines several workdirs' evaluations into one table, a column per model.

  python -m relight_jax.evaluate --workdir=runs/envmap --workdir=runs/ip --output=table.md

Where every workdir has its per_example.npz, the table adds each model's Score over the
first column's with a paired interval (relight_jax/evaluation/evaluate.py). Workdirs of
one folder name in different parents (runs/seed0/envmap, runs/seed1/envmap) are seeds of
one model: one column, and paired intervals that resample the seeds too. Evaluations of
different sets are refused.
"""

from absl import app
from absl import flags

from relight_jax.common import atomic
from relight_jax.evaluation import evaluate

FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    table = evaluate.combine_workdirs(FLAGS.workdir, FLAGS.split, FLAGS.data)
  except (FileNotFoundError, ValueError) as error:
    raise SystemExit(f"error: {error}") from None
  if FLAGS.output:
    atomic.write_text(FLAGS.output, table)
  print(table)


if __name__ == "__main__":
  # Defined here, not at import: absl's flags are global, and the commands that train
  # (main.py) define their own --workdir.
  flags.DEFINE_multi_string("workdir", None, "Workdirs whose eval/metrics.json to combine.")
  flags.DEFINE_string("output", "", "Where to write the combined Markdown table.")
  flags.DEFINE_string("split", "test", "Which evaluation to combine (eval/ holds test's).")
  flags.DEFINE_string("data", "", "The evaluated dataset, where it is not the training "
                      "data's (the runs' eval.data, e.g. vidit/synthetic_v2_eval).")
  flags.mark_flag_as_required("workdir")
  app.run(main)
