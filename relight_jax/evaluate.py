"""Evaluation over the report's Eval sets, Table 1, and the best/median/worst sheet.

For every subset (Eval, Eval[c_I = c_T], Eval[d_I = d_T], report §3.5) a fixed seeded
list of pairs is relit; per-example MSE, PSNR, SSIM, LPIPS and latent distances are
averaged over the list. Every metric is also computed for the identity mapping G_hat = I,
the baseline row. Score = mean l2(G, I) / mean l2(G, G_hat) over the subset (> 1 beats the
identity; a ratio of means, not a mean of ratios, so that near-identical pairs do not
dominate it). Results go to `<workdir>/eval/metrics.json`, `table.md` and `sheet_<subset>.png`.

Several workdirs' metrics.json combine into one table with a column per model:
  python -m relight_jax.evaluate --workdir=runs/envmap --workdir=runs/ip --output=table.md
"""

import functools
import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from absl import app
from absl import flags
from jax.experimental import multihost_utils

from relight_jax import input_pipeline
from relight_jax import metrics
from relight_jax import step as step_lib
from relight_jax import visualize
from relight_jax.models import registry

SUBSET_TITLES = {
    "eval": "Eval",
    "eval_same_temperature": "Eval[c_I = c_T]",
    "eval_same_direction": "Eval[d_I = d_T]",
}
TABLE_ROWS = (("mse", "MSE", "{:.4f}"), ("psnr", "PSNR", "{:.2f} dB"), ("ssim", "SSIM", "{:.4f}"),
              ("lpips", "LPIPS", "{:.4f}"), ("score", "Score", "{:.3f}"))


def predict(variables, batch, *, config):
  """The relighter's outputs on a batch in inference mode (BatchNorm running stats)."""
  batch = step_lib.float_images(batch)
  model = registry.create_model(config.model)
  return model.apply(variables, batch["input_image"], batch["target_image"], train=False)


def eval_step(variables, batch, *, config, with_lpips):
  """Per-example metrics of the model and of the identity mapping on one batch.

  Returns:
    Dict of float32 [batch] arrays.
  """
  batch = step_lib.float_images(batch)
  model = registry.create_model(config.model)
  relit = model.apply(variables, batch["input_image"], batch["target_image"], train=False)["relit"]
  ground_truth, input_image = batch["ground_truth"], batch["input_image"]
  results = {}
  for prefix, candidate in (("", relit), ("identity/", input_image)):
    results[prefix + "mse"] = metrics.mse(ground_truth, candidate)
    results[prefix + "psnr"] = metrics.psnr(ground_truth, candidate)
    results[prefix + "ssim"] = metrics.ssim(ground_truth, candidate)
    if with_lpips:
      results[prefix + "lpips"] = metrics.lpips(ground_truth, candidate)
  # Report §3.5: distances between the scene (light) latents of I, T, G and G_hat. One
  # encoder call over the four stacked images (inference BatchNorm: no cross-talk).
  stacked = jnp.concatenate([input_image, batch["target_image"], ground_truth, relit], axis=0)
  encoded = model.apply(variables, stacked, train=False, method=model.encode)
  size = input_image.shape[0]
  for kind in ("scene", "light"):
    if encoded.get(kind) is not None:
      results.update(metrics.latent_distances(
          {role: encoded[kind][k * size:(k + 1) * size]
           for k, role in enumerate(metrics.LATENT_ROLES)}, kind))
  return results


def _fetch(tree):
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def evaluate_pairs(variables, images, pairs, *, config, step_fn, put_batch,
                   max_batches=None, progress=False):
  """Relights `pairs` in fixed-size batches; returns (summary, per-example arrays).

  Args:
    variables: the relighter's variables (replicated).
    images: `input_pipeline.SceneImages` of the evaluation split.
    pairs: int array [N, 4] from `input_pipeline.eval_pairs`.
    config: experiment config.
    step_fn: jitted `eval_step` (see `make_eval_step`).
    put_batch: host batch -> global device batch.
    max_batches: stop after this many batches (periodic evaluation during training).
    progress: show a progress bar.
  """
  host = input_pipeline.HostSlice(jax.process_index(), jax.process_count())
  collected, masks = [], []
  batches = input_pipeline.eval_batches(images, pairs, config.eval.batch_size, host)
  total = -(-len(pairs) // config.eval.batch_size)
  if max_batches is not None:
    total = min(total, max_batches)
  for index, batch in enumerate(tqdm.tqdm(batches, total=total, desc="eval", leave=False,
                                          disable=not progress)):
    if max_batches is not None and index >= max_batches:
      break
    mask = batch.pop("mask")
    collected.append(step_fn(variables, put_batch(batch)))
    masks.append(mask)
  per_example = {key: np.concatenate([np.asarray(_fetch(item[key])) for item in collected])
                 for key in collected[0]}
  mask = np.concatenate([np.asarray(_fetch(put_batch({"m": m})["m"])) for m in masks]) > 0
  per_example = {key: value[mask] for key, value in per_example.items()}
  summary = {key: float(np.mean(value)) for key, value in per_example.items()}
  summary["score"] = summary["identity/mse"] / max(summary["mse"], 1e-12)
  summary["identity/score"] = 1.0
  summary["num_pairs"] = int(mask.sum())
  return summary, per_example


def make_eval_step(config, with_lpips, replicated, batch_sharding):
  """`eval_step` jitted over the mesh: variables replicated, batch sharded on 'data'."""
  return jax.jit(
      functools.partial(eval_step, config=config, with_lpips=with_lpips),
      in_shardings=(replicated, batch_sharding), out_shardings=batch_sharding)


def format_table(results_by_model):
  """Markdown tables in the layout of the report's Table 1, one per evaluation subset.

  Args:
    results_by_model: {model label: {subset: summary dict}} (summaries of `evaluate_pairs`).

  Returns:
    Markdown text: per subset, rows MSE/PSNR/SSIM/LPIPS/Score, an identity column, then
    one column per model.
  """
  labels = list(results_by_model)
  first = results_by_model[labels[0]]
  lines = []
  for subset, title in SUBSET_TITLES.items():
    if subset not in first:
      continue
    pairs = first[subset].get("num_pairs", "?")
    lines += [f"### {title} ({pairs} pairs)", "",
              "| Metric | Identity (G_hat = I) | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 2) + "|"]
    for key, name, fmt in TABLE_ROWS:
      if key not in first[subset]:
        continue
      cells = [fmt.format(first[subset][f"identity/{key}"])]
      for label in labels:
        value = results_by_model[label].get(subset, {}).get(key)
        cells.append("n/a" if value is None else fmt.format(value))
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
  lines.append("MSE and PSNR on [0, 1]; SSIM: 11x11 Gaussian window, sigma 1.5 (not DSSIM); "
               "LPIPS: AlexNet on [-1, 1]; Score = l2(G, I) / l2(G, G_hat) (> 1 beats the "
               "identity mapping).")
  return "\n".join(lines) + "\n"


def sheet_indices(per_example, count):
  """Indices of the `count` best, median and worst examples by improvement over identity."""
  improvement = per_example["identity/mse"] / np.maximum(per_example["mse"], 1e-12)
  order = np.argsort(-improvement)
  middle = max(len(order) // 2 - count // 2, 0)
  picked = [order[:count], order[middle:middle + count], order[-count:]]
  return [np.asarray(group) for group in picked], improvement


def write_sheet(path, variables, images, pairs, per_example, *, config, count):
  """Writes a contact sheet of the best, median and worst examples (rows I | T | G | relit)."""
  groups, improvement = sheet_indices(per_example, count)
  indices = np.concatenate(groups)
  batch = input_pipeline.stack_examples(images, pairs[indices])
  relit = jax.device_get(jax.jit(functools.partial(predict, config=config))(
      variables, batch)["relit"])
  grid = visualize.triplet_grid(batch, relit, count=len(indices))
  size = batch["input_image"].shape[1]
  labels = [f"{name} x{improvement[i]:.2f}" for name, group in
            zip(("best", "median", "worst"), groups, strict=True) for i in group]
  grid = np.concatenate([grid, _label_column(labels, size)], axis=1)
  grid = visualize.with_titles(grid, visualize.COLUMN_TITLES + ("l2(G,I)/l2(G,G_hat)",), size)
  return visualize.save_png(path, grid)


def _label_column(labels, size):
  import PIL.Image  # pylint: disable=g-import-not-at-top
  import PIL.ImageDraw  # pylint: disable=g-import-not-at-top
  column = PIL.Image.new("RGB", (max(size, 96), size * len(labels)), (255, 255, 255))
  draw = PIL.ImageDraw.Draw(column)
  for index, label in enumerate(labels):
    draw.text((4, index * size + size // 2 - 5), label, fill=(0, 0, 0))
  return np.asarray(column)


def _atomic_write_text(path, text):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(text)
  temporary.replace(path)


def write_results(eval_dir, label, results):
  """Writes metrics.json and table.md for one model."""
  eval_dir = pathlib.Path(eval_dir)
  _atomic_write_text(eval_dir / "metrics.json", json.dumps(results, indent=2, sort_keys=True))
  table = format_table({label: results})
  _atomic_write_text(eval_dir / "table.md", table)
  return table


def run(config, workdir, variables, placement, label=None):
  """Full evaluation of trained `variables`: every subset, metrics.json, table.md, sheets.

  Args:
    config: experiment config.
    workdir: training workdir; results go to `<workdir>/eval/`.
    variables: the relighter's variables, replicated over `placement`.
    placement: `parallel.Placement`.
    label: the model's column title (default: the workdir's name).

  Returns:
    (results {subset: summary}, Markdown table).
  """
  eval_dir = pathlib.Path(workdir) / "eval"
  images = input_pipeline.SceneImages(
      config.data.name, config.data.eval_split, config.data.data_dir, config.data.image_size,
      config.data.cache_mib)
  step_fn = make_eval_step(config, config.eval.lpips, placement.replicated, placement.batch)
  results = {}
  for offset, (subset, rules) in enumerate(
      input_pipeline.eval_subsets(config.eval.pairing).items()):
    pairs = input_pipeline.eval_pairs(images.num_scenes, rules, config.eval.num_pairs,
                                      config.eval.seed + offset)
    logging.info("Evaluating %s: %d pairs", SUBSET_TITLES[subset], len(pairs))
    summary, per_example = evaluate_pairs(
        variables, images, pairs, config=config, step_fn=step_fn,
        put_batch=placement.put_batch, progress=True)
    results[subset] = summary
    if jax.process_index() == 0:
      write_sheet(eval_dir / f"sheet_{subset}.png", variables, images, pairs, per_example,
                  config=config, count=config.eval.sheet_examples)
  table = format_table({label or pathlib.Path(workdir).name: results})
  if jax.process_index() == 0:
    write_results(eval_dir, label or pathlib.Path(workdir).name, results)
  return results, table


def run_workdir(config, workdir, step=None):
  """Evaluates the latest (or `step`) checkpoint of `workdir`; see `run`."""
  from relight_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from relight_jax import parallel  # pylint: disable=g-import-not-at-top
  from relight_jax import state as state_lib  # pylint: disable=g-import-not-at-top
  placement = parallel.create_placement()
  manager = checkpointing.create_manager(workdir, async_save=False)
  try:
    train_state, _ = checkpointing.restore(manager, config, placement.replicated, step)
  finally:
    manager.close()
  if train_state is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}: train first (--mode=train)")
  return run(config, workdir, state_lib.variables_of(train_state), placement)


FLAGS = flags.FLAGS


def main(argv):
  """Combines the metrics.json of several workdirs into one table (a column per model)."""
  del argv
  results = {}
  for workdir in FLAGS.workdir:
    path = pathlib.Path(workdir) / "eval" / "metrics.json"
    if not path.exists():
      raise SystemExit(f"{path} not found: run python -m relight_jax.main --mode=evaluate "
                       f"--workdir={workdir} --config=... first")
    results[pathlib.Path(workdir).name] = json.loads(path.read_text())
  table = format_table(results)
  if FLAGS.output:
    _atomic_write_text(FLAGS.output, table)
  print(table)
  logging.info("Combined %d models", len(results))


if __name__ == "__main__":
  flags.DEFINE_multi_string("workdir", None, "Workdirs whose eval/metrics.json to combine.")
  flags.DEFINE_string("output", "", "Where to write the combined Markdown table.")
  flags.mark_flag_as_required("workdir")
  app.run(main)
