"""Score a model on a public challenge's fixed pairs, or write its submission: command line.

Any-to-any relighting is compared in the literature on the fixed input / guide /
ground-truth pairs of two challenges on VIDIT, NTIRE 2021 track 2 and AIM 2020 track 3
(`challenge_pairs.BENCHMARKS`). This command runs a trained model on every pair of a
release's split and scores it as the challenges scored submissions (`challenge_pairs.py`;
docs/challenges.md says what is known of their scoring, where ours may differ, and lists
the published leaderboards).

Each pair's input and guide, at the release's resolution, go through
`relight.relight_detailed` as the relight command would take them: reduced to the
model's working resolution, relit (the network's image, `form="direct"`), the change
brought back to the release's resolution by guided upsampling. The result is rounded to
8 bits, the PNG a participant submits, and that is what is scored, next to the identity
mapping (prediction = input), with 95% bootstrap intervals over pairs, in the table of
our other evaluations.

`--write_predictions=DIR` writes the submission layout: one `PairNNN.png` per pair, named
as the ground truth, plus the `readme.txt` of the published submissions (runtime per
image, CPU or GPU, extra data, description); the folder appears under its name only once
complete (`atomic.replacing_folder`). The test splits' ground truth was never released:
there the command writes a submission and scores nothing. `--predictions=DIR` scores a
submission folder instead of a model (ours, or a team's published results): every pair
must have exactly one file named as its ground truth, and any other file is an error.

  python -m relight_jax.challenge --workdir=runs/envmap --benchmark=ntire21_track2 \
      --split=validation --manual_dir=data/manual/vidit [--write_predictions=DIR]
  python -m relight_jax.challenge --predictions=DIR --benchmark=aim20_track3 \
      --split=validation --manual_dir=data/manual/vidit

Results of a workdir go to `<workdir>/challenge_<benchmark>_<split>/` (metrics.json,
table.md); `--output` writes the table elsewhere too. A bad argument or release tree ends
the run with one line naming the file or value, and status 1.
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import jax

from relight_jax import relight
from relight_jax.common import atomic
from relight_jax.common import host_memory
from relight_jax.common import image_io
from relight_jax.evaluation import challenge_pairs
from relight_jax.evaluation import evaluate
from relight_jax.inference import trained_model
from relight_jax.models import registry
from relight_jax.training import checkpointing


def model_predictor(relighter, *, size=None, upsample="guided"):
  """The relight command's prediction: (predict, seconds per call list).

  The seconds measure the relighting of one pair (network and upsampling, not the file
  reads); the first includes compilation.
  """
  seconds = []

  def predict(pair, input_image, guide_image):
    del pair
    start = time.perf_counter()
    # The network's own image: the pairs are renders with the training data's white, and
    # the challenges score what the network predicts (the photo default keeps a photo's).
    relit = relight.relight_detailed(relighter, input_image, guide_image, size=size,
                                     upsample=upsample, form="direct").relit
    seconds.append(time.perf_counter() - start)
    return image_io.to_uint8(relit)

  return predict, seconds


def results_dir(workdir, benchmark, split):
  """Where a workdir's challenge evaluation is written."""
  return pathlib.Path(workdir) / f"challenge_{benchmark.name}_{split}"


def readme_text(seconds, description, *, extra_data):
  """The challenges' readme.txt (the fields of the published submissions)."""
  # The first call compiles; the median of the rest is the steady runtime.
  timed = seconds[1:] or seconds
  runtime = statistics.median(timed) if timed else float("nan")
  cpu = 1 if jax.default_backend() == "cpu" else 0
  return (f"runtime per image [s] : {runtime:.3f}\n"
          f"CPU[1] / GPU[0] : {cpu}\n"
          f"Extra Data [1] / No Extra Data [0] : {int(extra_data)}\n"
          f"Other description : {description}\n")


def uses_extra_data(data_name, benchmark):
  """Whether a model trained on `data_name` used data beyond the track's own train release.

  Only a `vidit` config of the track's release (e.g. `vidit/ntire21_track2_256`) keeps to
  it; the synthetic data and the full release (whose scenes 300-389 hold the challenges'
  validation and test scenes) are extra data.
  """
  return not data_name.rsplit("/", 1)[-1].startswith(f"{benchmark.name}_")


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m relight_jax.challenge",
      description="Score a model (or a submission folder) on a challenge's fixed pairs.")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--workdir", help="training workdir (config.json + checkpoints)")
  source.add_argument("--predictions", help="a submission folder to score instead")
  parser.add_argument("--benchmark", required=True,
                      choices=sorted(challenge_pairs.BENCHMARKS))
  parser.add_argument("--split", required=True, choices=challenge_pairs.SPLITS)
  parser.add_argument("--manual_dir", required=True,
                      help="folder holding the release (as for the vidit builder)")
  parser.add_argument("--write_predictions", default=None,
                      help="write the submission folder (PairNNN.png + readme.txt) here")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing --write_predictions folder")
  parser.add_argument("--output", default=None, help="also write the table here")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step")
  parser.add_argument("--size", type=int, default=None,
                      help="working resolution (default: the training resolution)")
  parser.add_argument("--upsample", choices=relight.UPSAMPLERS, default="guided")
  parser.add_argument("--bootstrap_samples", type=int, default=1000)
  parser.add_argument("--bootstrap_seed", type=int, default=0)
  return parser.parse_args(argv)


def _check_destination(args):
  """Refuses a bad --workdir or --write_predictions before anything is read or written."""
  error = challenge_pairs.ChallengeError
  if args.predictions is not None and args.write_predictions is not None:
    raise error("--write_predictions needs --workdir: --predictions is already a "
                "submission folder")
  if args.workdir is not None and not pathlib.Path(args.workdir).is_dir():
    raise error(f"--workdir {args.workdir}: no such folder; expected a training workdir "
                "(the --workdir of python -m relight_jax.main)")
  if args.write_predictions is not None:
    path = pathlib.Path(args.write_predictions)
    if path.exists() and not path.is_dir():
      raise error(f"--write_predictions {path} exists and is not a folder")
    if path.exists() and not args.overwrite:
      raise error(f"--write_predictions {path} exists; pass --overwrite to replace it")


def _load_model(workdir, step):
  """(InferenceModel, config, step) of a workdir."""
  config, variables, step = checkpointing.load_inference_variables(workdir, step)
  model = registry.create_model(config.model)
  relighter = trained_model.from_model(model, variables, config.model, config.data.image_size,
                                   f"{workdir} step {step} ({config.model.name})")
  return relighter, config, step


def _run_model(args, benchmark, pairs, label, run_pairs_args):
  """Predicts (and scores) the pairs with the workdir's model, writing the submission
  folder if asked; returns (per_example, image side, the record's model meta)."""
  relighter, config, step = _load_model(args.workdir, args.step)
  predict, seconds = model_predictor(relighter, size=args.size, upsample=args.upsample)
  working_size = args.size or relighter.image_size
  model_meta = evaluate.evaluation_meta(config, step, label)
  model_meta.update({"train_data": config.data.name, "working_size": working_size,
                     "upsample": args.upsample})
  if args.write_predictions is None:
    return (*challenge_pairs.run_pairs(pairs, predict, **run_pairs_args), model_meta)
  with atomic.replacing_folder(args.write_predictions, overwrite=args.overwrite) as staging:
    per_example, side = challenge_pairs.run_pairs(
        pairs, predict, on_prediction=lambda pair, image: image_io.save_image(
            staging / challenge_pairs.submission_name(pair), image), **run_pairs_args)
    description = (f"relight_jax {config.model.name} ({label}, step {step}), run at "
                   f"{working_size} px, {args.upsample} upsampling to {side} px; trained on "
                   f"{config.data.name}")
    atomic.write_text(staging / challenge_pairs.README_NAME, readme_text(
        seconds, description, extra_data=uses_extra_data(config.data.name, benchmark)))
  return per_example, side, model_meta


def run(args):
  """Runs the command for parsed `args`; returns the table (or a line saying what was
  written when there is nothing to score)."""
  benchmark = challenge_pairs.BENCHMARKS[args.benchmark]
  _check_destination(args)
  _, pairs = challenge_pairs.load_pairs(args.manual_dir, benchmark, args.split)
  score = challenge_pairs.ground_truth_status(pairs)
  if not score and args.write_predictions is None:
    advice = ("" if args.predictions is not None else
              "; pass --write_predictions=DIR to write a submission")
    raise challenge_pairs.ChallengeError(
        f"the {args.split} pairs of {benchmark.title} have no ground truth (the challenge "
        f"kept it private): nothing to score{advice}")
  run_pairs_args = {"nominal_size": benchmark.resolution, "score": score, "progress": True}
  if args.predictions is not None:
    label = pathlib.Path(args.predictions).name
    predict = challenge_pairs.folder_predictor(args.predictions, pairs)
    per_example, side = challenge_pairs.run_pairs(pairs, predict, **run_pairs_args)
    model_meta = {"label": label, "model": f"predictions read from `{args.predictions}`"}
  else:
    label = pathlib.Path(args.workdir).name
    per_example, side, model_meta = _run_model(args, benchmark, pairs, label, run_pairs_args)
  if not score:
    return (f"wrote {len(pairs)} predictions of the {args.split} pairs to "
            f"{args.write_predictions} (no ground truth: nothing scored)\n")
  bootstrap = {"samples": args.bootstrap_samples, "seed": args.bootstrap_seed}
  record = {"meta": challenge_pairs.challenge_meta(benchmark, args.split, len(pairs), side,
                                                   model_meta=model_meta, **bootstrap),
            "subsets": {benchmark.name: challenge_pairs.summary(per_example, **bootstrap)}}
  table = challenge_pairs.format_table({label: [record]}, benchmark)
  if args.workdir is not None:
    folder = results_dir(args.workdir, benchmark, args.split)
    atomic.write_text(folder / "metrics.json", json.dumps(record, indent=2, sort_keys=True))
    atomic.write_text(folder / "table.md", table)
  if args.output:
    atomic.write_text(args.output, table)
  return table


def main(argv=None):
  """Command-line entry point; returns the exit status (1 with a one-line message)."""
  args = _parse_args(argv)
  try:
    print(run(args), end="")
  except (ValueError, OSError) as error:  # ChallengeError, ImageError, a bad checkpoint...
    print(f"challenge: error: {error}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  host_memory.tune()  # process-wide: only for the command line
  sys.exit(main())
