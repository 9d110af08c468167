"""Evaluation over the report's Eval sets: metrics with CIs, Table 1, pictures.

For every subset (Eval, Eval[c_I = c_T], Eval[d_I = d_T], report §3.5, and
Eval[same location] where the split's locations are known) a fixed seeded list of pairs
of the `eval.split` split (`test` by default: locations never used for a choice) is
relit; per-example MSE, PSNR, SSIM, DSSIM, LPIPS, MPS, the change-mask Score's terms, the
relighting correlation (`metrics.py`), latent distances and the light estimates of I, T
and G (report §4.1) are computed, then averaged with 95% bootstrap intervals over
locations (scenes where the locations are unknown; `results.py`). The image metrics are
also computed for the identity mapping G_hat = I and for the baselines and oracles of
`baselines.py` (a colour transfer from T; a global gain and a smooth gain field that see
G), the columns before the model's. Results go to
`<workdir>/eval/metrics.json`, `table.md`, `sheet_<subset>.png` (best / median / worst
examples) and, for the envmap models, `envmaps_<subset>.png` (predicted over generated
envmaps, the report's Figs. 15-16); an evaluation of another split goes to
`<workdir>/eval_<split>/`, so that it never replaces the test tables. The table, the
pictures and each subset's metric means also go to the workdir's TensorBoard events, at
the checkpoint's step, under `final_<split>/` (e.g. `final_test/eval/score`, next to
training's periodic `eval/score`).

Several workdirs' metrics.json combine into one table with a column per model; it
refuses evaluations of different sets. Where every workdir has its per_example.npz, the
table adds each model's Score over the first column's with a paired interval
(`results.score_ratio_seeds`): the test of "does B beat A", which two overlapping
intervals cannot answer. Workdirs of one folder name in different parents are training
seeds of one model (one column, mean +- sd); the paired interval then resamples their
seeds as well as the locations (`combine_workdirs`; the command is
relight_jax/evaluate.py, `python -m relight_jax.evaluate`).

Where clu's metrics fit: the periodic evaluation during training wants plain means, which
`evaluate_means` accumulates on device as `clu.metrics.Average`s (masked, so the padding
rows of the last batch do not count), merged batch by batch; no per-example array leaves
the devices. Where they do not: the full evaluation (`evaluate_pairs`, `run`) keeps every
example's value, because its 95% intervals are a bootstrap over locations (resampling
examples by the locations of their pairs' scenes, `results.summarize`), its sheets rank the examples
(best / median / worst), `per_example.npz` stores them and the paired Score ratios resample
two models' values pair by pair. An `Average` holds a sum and a count, which none of those
can be computed from, and clu's `CollectingMetric` would only gather the same arrays on
the host, which `evaluate_pairs` does directly.
"""

import functools
import json
import logging
import pathlib

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from relight_jax.common import atomic
from relight_jax.config import config_utils
from relight_jax.data import envmap
from relight_jax.data import input_pipeline
from relight_jax.datasets import scene_images
from relight_jax.evaluation import results as results_lib
from relight_jax.evaluation import visualize
from relight_jax.models import registry
from relight_jax.training import checkpointing
from relight_jax.training import parallel
from relight_jax.training import step as step_lib
from relight_jax.training import summaries
from relight_jax.training import workdir as workdir_lib

SUBSET_TITLES = results_lib.SUBSET_TITLES


def _fetch(tree):
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def evaluate_pairs(train_state, images, pairs, *, config, step_fn, put_batch,
                   max_batches=None, progress=False):
  """Relights `pairs` in fixed-size batches; returns the per-example metrics.

  Args:
    train_state: the trained `state.TrainState` (replicated).
    images: `scene_images.SceneImages` of the evaluation split.
    pairs: int array [N, 4] from `input_pipeline.eval_pairs`.
    config: experiment config.
    step_fn: from `make_eval_step`.
    put_batch: host batch -> global device batch.
    max_batches: stop after this many batches (periodic evaluation during training).
    progress: show a progress bar.

  Returns:
    ({metric: [n] values}, the n pairs evaluated): n < len(pairs) under max_batches.
  """
  host = input_pipeline.HostSlice(jax.process_index(), jax.process_count())
  collected, masks = [], []
  batches = input_pipeline.eval_batches(images, pairs, config.eval.batch_size, host,
                                        config.model.envmap_convention)
  total = -(-len(pairs) // config.eval.batch_size)
  if max_batches is not None:
    total = min(total, max_batches)
  for index, batch in enumerate(tqdm.tqdm(batches, total=total, desc="eval", leave=False,
                                          disable=not progress)):
    if max_batches is not None and index >= max_batches:
      break
    mask = batch.pop("mask")
    collected.append(step_fn(train_state, put_batch(batch)))
    masks.append(mask)
  per_example = {key: np.concatenate([np.asarray(_fetch(item[key])) for item in collected])
                 for key in collected[0]}
  mask = np.concatenate([np.asarray(_fetch(put_batch({"m": m})["m"])) for m in masks]) > 0
  per_example = {key: value[mask] for key, value in per_example.items()}
  return per_example, pairs[:int(mask.sum())]


def evaluate_means(train_state, images, pairs, *, config, step_fn, put_batch, replicated):
  """Relights `pairs` in fixed-size batches; returns the mean of every metric and the Score.

  The means are `clu.metrics.Average`s of the eval step's per-example metrics, merged on
  device (the periodic evaluation during training: no intervals, no per-example values).

  Args:
    train_state: the trained `state.TrainState` (replicated).
    images: `scene_images.SceneImages` of the evaluation split.
    pairs: int array [N, 4] from `input_pipeline.eval_pairs`.
    config: experiment config.
    step_fn: from `make_eval_step`.
    put_batch: host batch -> global device batch.
    replicated: the sharding of the state (and of the averages).

  Returns:
    {metric: mean, "score": identity/mse over mse}, Python floats.
  """
  host = input_pipeline.HostSlice(jax.process_index(), jax.process_count())
  accumulate_fn, means_fn = _averages_fns(replicated)
  accumulated = None
  for batch in input_pipeline.eval_batches(images, pairs, config.eval.batch_size, host,
                                           config.model.envmap_convention):
    mask = put_batch({"mask": batch.pop("mask")})["mask"]
    accumulated = accumulate_fn(accumulated, step_fn(train_state, put_batch(batch)), mask)
  means = jax.device_get(means_fn(accumulated))
  return results_lib.with_score({key: float(value) for key, value in means.items()})


def _accumulate(accumulated, outputs, mask):
  averages = step_lib.average_metrics(outputs, mask)
  return averages if accumulated is None else step_lib.merge_averages(accumulated, averages)


@functools.cache
def _averages_fns(replicated):
  """(accumulate, means), jitted once per placement."""
  return (jax.jit(_accumulate, out_shardings=replicated),
          jax.jit(step_lib.computed_averages, out_shardings=replicated))


def make_eval_step(config, with_lpips, replicated, batch_sharding, with_baselines=True):
  """(state, batch) -> per-example metrics: `step.eval_step` jitted over the mesh (state
  replicated, batch sharded on 'data'), and with `with_baselines` `step.baselines_step`'s
  metrics merged in (its own program: the model's is the periodic evaluation's)."""
  model_fn = jax.jit(
      functools.partial(step_lib.eval_step, model_name=config.model.name,
                        with_lpips=with_lpips,
                        envmap_convention=config.model.envmap_convention),
      in_shardings=(replicated, batch_sharding), out_shardings=batch_sharding)
  if not with_baselines:
    return model_fn
  baselines_fn = jax.jit(functools.partial(step_lib.baselines_step, with_lpips=with_lpips),
                         in_shardings=(batch_sharding,), out_shardings=batch_sharding)
  return lambda train_state, batch: {**model_fn(train_state, batch), **baselines_fn(batch)}


def sheet_indices(per_example, count):
  """Indices of the `count` best, median and worst examples by improvement over identity."""
  improvement = per_example["identity/mse"] / np.maximum(per_example["mse"], 1e-12)
  order = np.argsort(-improvement)
  middle = max(len(order) // 2 - count // 2, 0)
  picked = [order[:count], order[middle:middle + count], order[-count:]]
  return [np.asarray(group) for group in picked], improvement


def write_sheet(path, train_state, images, pairs, per_example, *, count,
                envmap_convention=envmap.DEFAULT_CONVENTION):
  """Writes a contact sheet of the best, median and worst examples (rows I | T | G | relit).

  Returns:
    The sheet, uint8 [H, W, 3].
  """
  groups, improvement = sheet_indices(per_example, count)
  indices = np.concatenate(groups)
  batch = input_pipeline.stack_examples(images, pairs[indices], envmap_convention)
  relit = jax.device_get(jax.jit(step_lib.predict)(train_state, batch)["relit"])
  grid = visualize.triplet_grid(batch, relit, count=len(indices))
  size = batch["input_image"].shape[1]
  labels = [f"{name} x{improvement[i]:.2f}" for name, group in
            zip(("best", "median", "worst"), groups, strict=True) for i in group]
  grid = np.concatenate([grid, _label_column(labels, size)], axis=1)
  grid = visualize.to_uint8(
      visualize.with_titles(grid, visualize.COLUMN_TITLES + ("l2(G,I)/l2(G,G_hat)",), size))
  visualize.save_png(path, grid)
  return grid


def _label_column(labels, size):
  import PIL.Image  # pylint: disable=g-import-not-at-top
  import PIL.ImageDraw  # pylint: disable=g-import-not-at-top
  column = PIL.Image.new("RGB", (max(size, 96), size * len(labels)), (255, 255, 255))
  draw = PIL.ImageDraw.Draw(column)
  for index, label in enumerate(labels):
    draw.text((4, index * size + size // 2 - 5), label, fill=(0, 0, 0))
  return np.asarray(column)


def write_envmap_sheet(path, train_state, images, pairs, *, count=4,
                       envmap_convention=envmap.DEFAULT_CONVENTION):
  """Writes predicted over generated envmaps of I and T for `count` pairs (Figs. 15-16).

  The generated ones are in `envmap_convention` (config.model.envmap_convention).

  Returns:
    The sheet, uint8 [H, W, 3].
  """
  batch = input_pipeline.stack_examples(images, pairs[:count], envmap_convention)
  outputs = jax.device_get(jax.jit(step_lib.predict)(train_state, batch))
  rows = []
  for role in ("input", "target"):
    grid = visualize.envmap_grid(np.asarray(outputs[f"{role}_envmap"], np.float32),
                                 batch[f"{role}_envmap"], count)
    cell_width = grid.shape[1] // count
    rows.append(visualize.with_titles(
        grid, [f"{role} {i}: predicted / generated" for i in range(count)], cell_width))
  sheet = visualize.to_uint8(np.concatenate(rows, axis=0))
  visualize.save_png(path, sheet)
  return sheet


def summary_prefix(split="test", data=""):
  """The TensorBoard tag prefix of an evaluation, named as its folder (`results_dir`):
  final_<split>, or final_<config>_<split> for another dataset's (`eval.data`)."""
  return f"final_{data.rpartition('/')[2]}_{split}" if data else f"final_{split}"


def results_dir(workdir, split="test", data=""):
  """Where an evaluation is written: `eval/` for the training data's test split,
  `eval_<split>/` for its other splits, `eval_<config>_<split>/` for another dataset's
  (`eval.data`, e.g. eval_synthetic_v2_eval_test/), so no evaluation replaces another."""
  if data:
    return pathlib.Path(workdir) / f"eval_{data.rpartition('/')[2]}_{split}"
  return pathlib.Path(workdir) / ("eval" if split == "test" else f"eval_{split}")


def evaluation_meta(config, steps, label):
  """What an evaluation measured and how (the `meta` of its record)."""
  return {
      "label": label, "model": config.model.name, "recipe": config.recipe,
      "width": config.model.width, "seed": config.seed, "steps": int(steps),
      "train_pairing": config.data.pairing,
      "train_extra": (f"{config.data.extra_fraction:g} of {config.data.extra_pairing}"
                      if config.data.extra_fraction else ""),
      "data": config.eval.data or config.data.name,
      "split": config.eval.split, "image_size": config.data.image_size,
      "eval_pairing": config.eval.pairing, "eval_num_pairs": config.eval.num_pairs,
      "eval_seed": config.eval.seed, "bootstrap_samples": config.eval.bootstrap_samples,
      "bootstrap_seed": config.eval.bootstrap_seed,
  }


def location_meta(locations):
  """What the record's meta says of the split's locations (the bootstrap's unit).

  Args:
    locations: [num_scenes] location of every scene, or None where unknown.
  """
  return {"bootstrap_unit": results_lib.bootstrap_unit(locations),
          "locations_known": locations is not None,
          "scene_locations": None if locations is None else [int(x) for x in locations]}


PER_EXAMPLE_FILE = "per_example.npz"


def write_per_example(eval_dir, evaluated):
  """per_example.npz: `<subset>/pairs` [N, 4] and `<subset>/<metric>` [N] of every subset.

  Args:
    eval_dir: the evaluation's folder.
    evaluated: {subset: (pairs, {metric: [N] values})}.
  """
  arrays = {}
  for subset, (pairs, per_example) in evaluated.items():
    arrays[f"{subset}/pairs"] = np.asarray(pairs, np.int32)
    arrays.update({f"{subset}/{key}": np.asarray(value, np.float32)
                   for key, value in per_example.items()})
  with atomic.replacing(pathlib.Path(eval_dir) / PER_EXAMPLE_FILE) as stream:
    np.savez_compressed(stream, **arrays)


def load_per_example(workdir, split="test", data=""):
  """{subset: (pairs, {metric: values})} of a workdir's evaluation, or None without a file.

  Raises:
    ValueError: the file is not a per-example record (the message names it).
  """
  path = results_dir(workdir, split, data) / PER_EXAMPLE_FILE
  if not path.exists():
    return None
  try:
    with np.load(path) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError, EOFError) as error:
    raise ValueError(f"{path}: not a readable per-example record ({error}); re-run "
                     "--mode=evaluate") from None
  metrics = {}
  for key, value in arrays.items():
    subset, _, metric = key.partition("/")
    metrics.setdefault(subset, {})[metric] = value
  if any({"pairs", "mse"} - set(values) for values in metrics.values()):
    raise ValueError(f"{path}: every subset needs its pairs and mse; re-run --mode=evaluate")
  return {subset: (values.pop("pairs"), values) for subset, values in metrics.items()}


def paired_ratios(records, per_examples, labels, sources=None):
  """{subset: {label: `results.score_ratio_seeds`}} of every model after the first against it.

  A model of several training seeds has several per-example results; the ratios then
  resample its seeds as well as the locations (`results.score_ratio_seeds`).

  Args:
    records: one evaluation record per model (bootstrap settings, scene counts).
    per_examples: per model, its `load_per_example` result, or a list of one per seed;
      in the same order.
    labels: the models' column titles.
    sources: per model, what each of its per-example results came from (its workdirs),
      named in the messages; default the label with the seed's position.

  Raises:
    ValueError: some seed of some model relit other pairs than the first model's first
      seed (the message names both).
  """
  meta = records[0]["meta"]
  per_examples = [list(item) if isinstance(item, list | tuple) else [item]
                  for item in per_examples]
  if sources is None:
    sources = [[label] if len(seeds) == 1 else [f"{label} (seed {k + 1} of {len(seeds)})"
                                                for k in range(len(seeds))]
               for label, seeds in zip(labels, per_examples, strict=True)]
  sources = [list(names) for names in sources]
  reference, reference_sources = per_examples[0], sources[0]
  paired = {}
  for record, seeds, label, names in zip(records[1:], per_examples[1:], labels[1:],
                                         sources[1:], strict=True):
    for subset, (pairs, _) in reference[0].items():
      if not all(subset in per_example for per_example in reference + seeds):
        continue
      title = SUBSET_TITLES.get(subset, subset)
      for per_example, name in zip(reference[1:] + seeds, reference_sources[1:] + names,
                                   strict=True):
        if not np.array_equal(per_example[subset][0], pairs):
          raise ValueError(f"cannot pair {name} with {reference_sources[0]}: their {title} "
                           "evaluations relit different pairs; re-run --mode=evaluate for "
                           "both with this version")
      paired.setdefault(subset, {})[label] = results_lib.score_ratio_seeds(
          np.stack([per_example[subset][1]["mse"] for per_example in reference]),
          np.stack([per_example[subset][1]["mse"] for per_example in seeds]), pairs,
          record["subsets"][subset]["num_scenes"], samples=meta["bootstrap_samples"],
          seed=meta["bootstrap_seed"], locations=meta.get("scene_locations"))
  return paired


def write_results(eval_dir, record):
  """Writes metrics.json (the record) and table.md for one model; returns the table."""
  eval_dir = pathlib.Path(eval_dir)
  atomic.write_text(eval_dir / "metrics.json", json.dumps(record, indent=2, sort_keys=True))
  table = results_lib.format_table({record["meta"]["label"]: [record]})
  atomic.write_text(eval_dir / "table.md", table)
  return table


def run(config, workdir, train_state, placement, *, label=None):
  """Full evaluation of trained `variables` on `config.eval.split`: every subset.

  Args:
    config: experiment config.
    workdir: training workdir; results go to `<workdir>/eval/`.
    train_state: the trained `state.TrainState`, replicated over `placement`.
    placement: `parallel.Placement`.
    label: the model's column title (default: the workdir's name).

  Returns:
    (record {"meta", "subsets"}, Markdown table).
  """
  eval_dir = results_dir(workdir, config.eval.split, config.eval.data)
  label = label or pathlib.Path(workdir).name
  images = scene_images.SceneImages(
      config.eval.data or config.data.name, config.eval.split, config.data.data_dir,
      config.data.image_size, config.data.cache_mib)
  step_fn = make_eval_step(config, config.eval.lpips, placement.replicated, placement.batch)
  steps = int(jax.device_get(train_state.step))
  locations = getattr(images, "locations", None)
  record = {"meta": dict(evaluation_meta(config, steps, label),
                         **location_meta(locations)), "subsets": {}}
  if locations is None:
    logging.info("%s/%s has no location labels: no Eval[same location], and the intervals "
                 "resample scenes", config.eval.data or config.data.name, config.eval.split)
  evaluated = {}
  for offset, (subset, rules) in enumerate(input_pipeline.eval_subsets(
      config.eval.pairing, with_locations=locations is not None).items()):
    pairs = input_pipeline.eval_pairs(images.num_scenes, rules, config.eval.num_pairs,
                                      config.eval.seed + offset, locations)
    logging.info("Evaluating %s on %s: %d pairs", SUBSET_TITLES[subset], config.eval.split,
                 len(pairs))
    per_example, pairs = evaluate_pairs(
        train_state, images, pairs, config=config, step_fn=step_fn,
        put_batch=placement.put_batch, progress=True)
    record["subsets"][subset] = results_lib.summarize(
        per_example, pairs, images.num_scenes, samples=config.eval.bootstrap_samples,
        seed=config.eval.bootstrap_seed, locations=locations)
    evaluated[subset] = pairs, per_example
  pictures = {}
  prefix = summary_prefix(config.eval.split, config.eval.data)
  if jax.process_index() == 0:
    # After every subset, on a host copy of the state: the sheets relight a few pairs on
    # this process alone, while the others, which draw none, go on (a computation on the
    # replicated state would wait for them; a collective would wait for this one).
    local_state = jax.device_get(train_state)
    for subset, (pairs, per_example) in evaluated.items():
      pictures[f"{prefix}/sheet_{subset}"] = write_sheet(
          eval_dir / f"sheet_{subset}.png", local_state, images, pairs, per_example,
          count=config.eval.sheet_examples, envmap_convention=config.model.envmap_convention)
      if registry.spec_of(config.model.name).light_output != "prediction":
        pictures[f"{prefix}/envmaps_{subset}"] = write_envmap_sheet(
            eval_dir / f"envmaps_{subset}.png", local_state, images, pairs,
            envmap_convention=config.model.envmap_convention)
  table = results_lib.format_table({label: [record]})
  if jax.process_index() == 0:
    write_results(eval_dir, record)
    write_per_example(eval_dir, evaluated)
  write_summaries(workdir, steps, record, table, pictures, prefix)
  return record, table


def write_summaries(workdir, step, record, table, pictures, prefix=None):
  """Adds an evaluation to the workdir's TensorBoard events, where training's curves are.

  Everything goes under `prefix` (`summary_prefix`: `final_<split>/` by default), apart
  from the periodic evaluation's `eval/...` curves and from another split's or
  dataset's final evaluation.

  Args:
    workdir: training workdir (the events' logdir).
    step: the evaluated checkpoint's step.
    record: the evaluation record (`{"meta", "subsets"}`).
    table: its Markdown table.
    pictures: {tag: uint8 [H, W, 3]}, the contact sheets (empty on processes > 0).
    prefix: the tags' prefix; default final_<the record's split>.
  """
  prefix = prefix or summary_prefix(record["meta"]["split"])
  # Other processes only log: one events file per workdir, as in training.
  writer = summaries.create_writer(workdir, active=jax.process_index() == 0)
  try:
    for subset, summary in record["subsets"].items():
      writer.write_scalars(step, {f"{prefix}/{subset}/{key}": value["mean"]
                                  for key, value in summary["metrics"].items()})
    if jax.process_index() == 0:
      writer.write_texts(step, {f"{prefix}/table": table})
      if pictures:
        writer.write_images(step, {name: image[None] for name, image in pictures.items()})
    writer.flush()
  finally:
    writer.close()


def config_for_workdir(config, workdir):
  """The config to evaluate `workdir` with: `config`, or the workdir's config.json if None.

  A given `config` may change the evaluation settings (e.g. eval.split) and how the
  model is computed (model.conv_impl, model.dtype), not the model: the checkpoint holds
  the workdir's.

  Raises:
    FileNotFoundError: `config` is None and the workdir has no config.json.
    ValueError: config.json is unreadable, of another version or fails
      `config_utils.validate`, or `config`'s model section is not the workdir's (the
      message names the differing keys).
  """
  path = pathlib.Path(workdir) / checkpointing.CONFIG_FILE
  if config is None:
    config = checkpointing.load_config(path)
    try:
      config_utils.validate(config)
    except ValueError as error:
      raise ValueError(f"{path}: {error}") from None
    return config
  if not path.exists():
    return config  # restoring the checkpoint still checks its shapes against the config
  trained = checkpointing.load_config(path).model.to_dict()
  given = config.model.to_dict()
  differences = [f"model.{key}={given.get(key)!r} (the workdir's: {trained.get(key)!r})"
                 for key in sorted(set(trained) | set(given), key=str)
                 if key not in _COMPUTE_ONLY
                 and given.get(key, _MISSING) != trained.get(key, _MISSING)]
  if differences:
    raise ValueError(
        f"--config's model differs from the one {workdir} was trained with ({path}): "
        f"{', '.join(differences)}; drop --config to use the workdir's, or fix those keys")
  return config


_MISSING = object()
# Model keys that change how the model is computed, not its weights: evaluating with
# other values is fine (the same function up to float rounding).
_COMPUTE_ONLY = ("conv_impl", "dtype")


def run_workdir(config, workdir, step=None):
  """Evaluates the latest (or `step`) checkpoint of `workdir`; see `run`.

  Holds the workdir's lock: it writes eval/, which a run training there also writes.
  """
  placement = parallel.create_placement()
  with workdir_lib.lock(workdir, primary=jax.process_index() == 0):
    train_state, _, _ = checkpointing.restore_workdir(workdir, config, placement.replicated,
                                                      step)
    if train_state is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}: train first (--mode=train)")
    return run(config, workdir, train_state, placement)


def load_record(workdir, split="test", data=""):
  """The evaluation record of a workdir's `split` (its metrics.json), with a clear error."""
  path = results_dir(workdir, split, data) / "metrics.json"
  if not path.exists():
    # Without --config the workdir's config.json is used, whose eval.split is `test` and
    # eval.data empty; overrides need --config.
    flags_needed = "" if split == "test" else f" --config.eval.split={split}"
    flags_needed += f" --config.eval.data={data}" if data else ""
    flags_needed = f" --config=...{flags_needed}" if flags_needed else ""
    raise FileNotFoundError(f"{path} not found: run python -m relight_jax.main --mode=evaluate "
                            f"--workdir={workdir}{flags_needed} first")
  record = json.loads(path.read_text())
  if "meta" not in record or "subsets" not in record:
    raise ValueError(f"{path} is not an evaluation record of this version (no meta/subsets): "
                     "re-run --mode=evaluate")
  return record


def combine_workdirs(workdirs, split="test", data=""):
  """One table of several workdirs' evaluations (a column per model), with paired ratios.

  Args:
    workdirs: evaluated workdirs, a column per folder name: workdirs of one name (in
      different parents) are training seeds of one model. The first column is the
      reference of the paired Score ratios, which resample the seeds too.
    split: which evaluation of each (eval/ holds test's, eval_<split>/ the others').
    data: the evaluated dataset where it is not the training data's (`eval.data`).

  Returns:
    The Markdown table.

  Raises:
    FileNotFoundError, ValueError: a workdir without that evaluation, evaluations of
      different sets, or a seed that relit other pairs (the message names its workdir).
  """
  columns, per_examples, sources = {}, {}, {}
  for workdir in workdirs:
    label = pathlib.Path(workdir).name
    columns.setdefault(label, []).append(load_record(workdir, split, data))
    per_examples.setdefault(label, []).append(load_per_example(workdir, split, data))
    sources.setdefault(label, []).append(str(workdir))
  paired = None
  labels = list(columns)
  if len(labels) > 1:
    missing = [source for label in labels
               for source, item in zip(sources[label], per_examples[label], strict=True)
               if item is None]
    if not missing:
      paired = paired_ratios([columns[label][0] for label in labels],
                             [per_examples[label] for label in labels], labels,
                             [sources[label] for label in labels])
    else:
      logging.warning("No paired comparison: no %s in the evaluation of %s (evaluated "
                      "before it was written; re-run --mode=evaluate)", PER_EXAMPLE_FILE,
                      ", ".join(missing))
  return results_lib.format_table(columns, paired=paired)
