"""The fixed pairs of the public challenges: reading, matching by name, scoring.

The NTIRE 2021 track 2 and AIM 2020 track 3 releases (`BENCHMARKS`) hold fixed input /
guide / ground-truth pairs, read here at the release's resolution from folders or zips
(`manual_tree.py`, named as `real_layouts.py` expects). `run_pairs` scores the 8-bit
prediction of every pair, as the challenges scored a submitted PNG, against the ground
truth at that resolution: PSNR, SSIM and LPIPS with `metrics.py`'s pinned conventions and
the challenges' ranking score MPS = (SSIM + 1 - LPIPS) / 2, with the identity mapping
(prediction = input) alongside. `match_predictions` pairs a submission folder's files
with the pairs by name. Summaries resample pairs for their 95% intervals (the releases
name pairs, not scenes) and tables are `results.py`'s. The command line and the model's
predictions are in `challenge.py`; docs/challenges.md says what is known of the
challenges' scoring and where ours may differ.
"""

import collections
import dataclasses
import pathlib

import jax
import numpy as np
import tqdm

from relight_jax.datasets.vidit import images
from relight_jax.datasets.vidit import manual_tree
from relight_jax.datasets.vidit import real_layouts
from relight_jax.evaluation import metrics
from relight_jax.evaluation import results as results_lib


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One challenge track evaluated on a VIDIT release's fixed pairs.

  Attributes:
    name: key in BENCHMARKS, also the release's `real_layouts.LAYOUTS` key and the
      optional sub-folder of manual_dir that holds it.
    title: the challenge track.
    report: the challenge report that published its results.
  """
  name: str
  title: str
  report: str

  @property
  def layout(self):
    return real_layouts.LAYOUTS[self.name]

  @property
  def resolution(self):
    """The side in pixels the track was scored at: its release's images'."""
    return self.layout.nominal_size


BENCHMARKS = {
    "ntire21_track2": Benchmark(
        "ntire21_track2", "NTIRE 2021 depth guided relighting, track 2 (any-to-any)",
        "El Helou et al., NTIRE 2021 Depth Guided Image Relighting Challenge, CVPRW 2021"),
    "aim20_track3": Benchmark(
        "aim20_track3", "AIM 2020 scene relighting, track 3 (any-to-any)",
        "El Helou et al., AIM 2020: Scene Relighting and Illumination Estimation "
        "Challenge, ECCVW 2020"),
}
SPLITS = ("validation", "test")

# The challenges' ranking score first, then our usual image rows (DSSIM is only there
# to read the report's "SSIM" column, which concerns no challenge).
MPS_ROW = ("mps", "MPS = (SSIM + 1 - LPIPS) / 2", "{:.4f}")
ROWS = (MPS_ROW,) + tuple(row for row in results_lib.IMAGE_ROWS
                          if row[0] not in ("dssim", "mps"))
NOTES = ("Scored on the 8-bit predictions at the release's resolution, RGB in [0, 1]: PSNR "
         "with peak 1 (a perfect prediction's 120 dB is the bound of metrics.psnr), SSIM "
         "with an 11x11 Gaussian window (sigma 1.5) averaged over the channels, LPIPS "
         "AlexNet on [-1, 1]; MPS, the challenges' ranking score, per pair then averaged; "
         "Score = l2(G, I) / l2(G, G_hat) (ours; > 1 beats the identity); change-mask Score "
         "and relighting correlation as in our evaluations (metrics.py). "
         "docs/challenges.md: what the challenges did and where this may differ.")
README_NAME = "readme.txt"


class ChallengeError(ValueError):
  """Bad arguments or release trees (the message names the file or value)."""


def mean_perceptual_score(ssim, lpips):
  """MPS = (SSIM + (1 - LPIPS)) / 2, the challenges' ranking score (docs/challenges.md)."""
  return metrics.mean_perceptual_score(ssim, lpips)


def release_root(manual_dir, benchmark):
  """The folder holding a release: manual_dir/<benchmark name>/ if present, as the builder."""
  manual_dir = pathlib.Path(manual_dir)
  if not manual_dir.is_dir():
    raise ChallengeError(f"--manual_dir {manual_dir}: no such folder; expected the folder "
                         f"holding the {benchmark.title} release (folders or zips)")
  sub_folder = manual_dir / benchmark.name
  return sub_folder if sub_folder.is_dir() else manual_dir


def load_pairs(manual_dir, benchmark, split):
  """The fixed pairs of `split` in the release under `manual_dir`, by pair number.

  Pairs are matched by name (`real_layouts.group_eval_pairs`): a badly named file, an
  input or a ground truth without its guide (or the reverse) is an error naming it.

  Returns:
    (root, [real_layouts.EvalPair]).
  """
  root = release_root(manual_dir, benchmark)
  files = manual_tree.scan_manual_dir(root)
  try:
    groups = real_layouts.group_eval_pairs(files, root)
  except ValueError as error:
    raise ChallengeError(str(error)) from None
  if split not in groups:
    raise ChallengeError(
        f"no {split} pairs of {benchmark.title} under {root} (found: "
        f"{', '.join(sorted(groups)) or 'none'}); expected {real_layouts.PAIR_PATTERN_HELP}")
  return root, groups[split]


def ground_truth_status(pairs):
  """Whether the pairs are scored: True if all have ground truth, False if none has.

  Raises:
    ChallengeError: some pairs have ground truth and others lack it (names them).
  """
  lacking = [pair for pair in pairs if pair.ground_truth is None]
  if not lacking:
    return True
  if len(lacking) == len(pairs):
    return False
  names = ", ".join(submission_name(pair) for pair in lacking[:5])
  more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
  raise ChallengeError(
      f"{len(lacking)} of {len(pairs)} pairs have no ground truth: {names}{more} (expected "
      f"next to input/ and guide/, e.g. beside {lacking[0].input_image.origin})")


def submission_name(pair):
  """The file name of a pair's prediction: its ground truth's (PairNNN.png)."""
  return (pair.ground_truth or pair.input_image).name


def match_predictions(folder, pairs):
  """{pair number: file} of a submission folder: exactly one file per pair, by name.

  Raises:
    ChallengeError: no such folder, a pair without its file, or a file (or sub-folder)
      that belongs to no pair; the message names them.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise ChallengeError(f"--predictions {folder}: no such folder; expected a submission "
                         "folder of PairNNN.png files")
  expected = {submission_name(pair): pair.pair for pair in pairs}
  found = {path.name: path for path in folder.iterdir()
           if not path.name.startswith(".") and path.name.lower() != README_NAME}
  missing = sorted(set(expected) - set(found))
  extra = sorted(set(found) - set(expected))
  problems = []
  if missing:
    problems.append(f"no prediction for {len(missing)} pair(s): {_names(missing)}")
  if extra:
    problems.append(f"{len(extra)} file(s) that match no pair: {_names(extra)}")
  if problems:
    raise ChallengeError(f"{folder}: {'; '.join(problems)} (expected exactly one file per "
                         f"pair, named as its ground truth, e.g. {next(iter(expected))})")
  return {number: found[name] for name, number in expected.items()}


def _names(names, limit=5):
  return ", ".join(names[:limit]) + (f" and {len(names) - limit} more"
                                     if len(names) > limit else "")


def read_image(tree, source, size_check):
  """float32 [H, W, 3] in [0, 1] of a release file (RGB; alpha dropped, as the builder)."""
  rgb = images.decode_rgb(tree.read(source), source.origin)
  size_check(rgb.shape, source.origin)
  return rgb.astype(np.float32) / 255.0


@jax.jit
def pair_metrics(input_image, ground_truth, prediction):
  """Per-example metrics of a prediction and of the identity, [batch] each.

  Args:
    input_image: I, float [batch, H, W, 3] in [0, 1].
    ground_truth: G.
    prediction: G_hat (the 8-bit submission, as floats).

  Returns:
    {"mse", "psnr", "ssim", "lpips", "mps", "change_mse", "relighting_correlation"} and
    the same under "identity/" (`metrics.candidate_metrics`).
  """
  values = {}
  mask = metrics.change_mask(input_image, ground_truth)
  for prefix, relit in (("", prediction), ("identity/", input_image)):
    found = metrics.candidate_metrics(input_image, ground_truth, relit, mask, with_lpips=True)
    for key in ("mse", "psnr", "ssim", "lpips", "mps", "change_mse", "relighting_correlation"):
      values[prefix + key] = found[key]
  return values


def run_pairs(pairs, predict, *, nominal_size, score=True, on_prediction=None,
              progress=False):
  """Predicts every pair and scores the 8-bit predictions against the ground truth.

  Args:
    pairs: `real_layouts.EvalPair`s.
    predict: (pair, input_image, guide_image) -> uint8 [H, W, 3], the images float32
      [H, W, 3] at the release's resolution.
    nominal_size: the release's image side (another size warns, see images.SizeCheck).
    score: compare with the ground truth (every pair must have one).
    on_prediction: called as on_prediction(pair, prediction) for each (e.g. to save it).
    progress: show a progress bar.

  Returns:
    ({metric: [N] values} (empty if not `score`), the image side scored).

  Raises:
    ChallengeError: a prediction whose shape is not the ground truth's.
  """
  size_check = images.SizeCheck(nominal_size)
  per_example = collections.defaultdict(list)
  side = None
  with manual_tree.ManualTree() as tree:
    for pair in tqdm.tqdm(pairs, desc="pairs", leave=False, disable=not progress):
      input_image = read_image(tree, pair.input_image, size_check)
      guide_image = read_image(tree, pair.target_image, size_check)
      side = input_image.shape[0]
      prediction = np.asarray(predict(pair, input_image, guide_image))
      if prediction.shape != input_image.shape or prediction.dtype != np.uint8:
        raise ChallengeError(
            f"prediction for {submission_name(pair)} is {prediction.dtype} "
            f"{prediction.shape}; expected uint8 {input_image.shape}, the input's size")
      if on_prediction is not None:
        on_prediction(pair, prediction)
      if score:
        ground_truth = read_image(tree, pair.ground_truth, size_check)
        values = pair_metrics(input_image[None], ground_truth[None],
                              prediction[None].astype(np.float32) / 255.0)
        for key, value in jax.device_get(values).items():
          per_example[key].append(float(value[0]))
  return {key: np.asarray(value) for key, value in per_example.items()}, side


def folder_predictor(folder, pairs):
  """Predictions read from a submission folder (see `match_predictions`)."""
  paths = match_predictions(folder, pairs)

  def predict(pair, input_image, guide_image):
    del input_image, guide_image
    path = paths[pair.pair]
    try:
      return images.decode_rgb(path.read_bytes(), str(path))
    except ValueError as error:
      raise ChallengeError(str(error)) from None

  return predict


def summary(per_example, *, samples, seed):
  """The record's summary of one split: means, 95% CIs over pairs."""
  count = len(per_example["mse"])
  weights = results_lib.pair_weights(count, samples, seed) if samples else None
  return {"num_pairs": count, "num_scenes": None,
          "metrics": results_lib.summarize_weighted(per_example, weights)}


def challenge_meta(benchmark, split, num_pairs, side, *, samples, seed, model_meta):
  """The record's meta: the model's (`evaluate.evaluation_meta`) and what was scored."""
  meta = dict(model_meta)
  meta.update({
      "benchmark": benchmark.name, "data": f"{benchmark.name} release", "split": split,
      "image_size": int(side), "eval_pairing": "the release's fixed pairs",
      "eval_num_pairs": int(num_pairs), "eval_seed": None, "bootstrap_samples": samples,
      "bootstrap_seed": seed, "bootstrap_unit": "pairs",
  })
  return meta


def protocol(meta, benchmark):
  """The table's opening lines."""
  return [f"{benchmark.title}: the release's `{meta['split']}` pairs (input, guide, ground "
          f"truth), scored at {meta['image_size']} px, the release's resolution, as in "
          f"{benchmark.report}. Each model at its working resolution, the change brought to "
          f"{meta['image_size']} px by guided upsampling (the relight command), rounded to "
          f"8 bits. 95% CIs: {meta['bootstrap_samples']} bootstrap replicates over pairs "
          f"(seed {meta['bootstrap_seed']}; the release names no scenes)."]


def format_table(records, benchmark):
  """Markdown table of {label: [record]} on one benchmark split (`results.format_table`)."""
  first = next(iter(records.values()))[0]
  return results_lib.format_table(
      records, titles={benchmark.name: f"{benchmark.title}, {first['meta']['split']}"},
      rows=ROWS, protocol=protocol(first["meta"], benchmark), notes=NOTES)
