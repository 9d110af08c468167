"""Evaluation results: bootstrap confidence intervals, the protocol record, Table 1.

An evaluation of one model is a record `{"meta": {...}, "subsets": {subset: summary}}`
(the workdir's `eval/metrics.json`). `meta` says what was evaluated and how (data,
split, image size, pairing rule, pair-list seed, steps, ...); a summary holds, for every
metric, its mean over the subset's fixed pair list and a 95% confidence interval.

Confidence intervals are bootstrap percentiles that resample *scenes*, not pairs: the
pairs of one scene share its content, so they are not independent draws. A replicate
draws the split's scenes with replacement and weights every pair (I, T) by
count(scene_I) * count(scene_T) (a pigeonhole bootstrap for pairs of scenes). Score is
the ratio of the weighted mean l2 of the identity to that of the model in every
replicate, as it is the ratio of the means on the full list. Fixed pair lists whose
scenes are not known (the challenge releases) resample the pairs instead (`pair_weights`).

Records combine into one table only when they evaluated the same sets
(`check_compatible`); the columns of one model over several seeds show mean +- sd.
Two models evaluated on the same pairs are compared *paired* (`score_ratio`): the ratio of
their Scores with an interval from the same resampled scenes for both, which is much
tighter than two separate intervals, since most of their spread is the scenes' and
common to both.
"""


import numpy as np

SUBSET_TITLES = {
    "eval": "Eval",
    "eval_same_temperature": "Eval[c_I = c_T]",
    "eval_same_direction": "Eval[d_I = d_T]",
}
# Table rows: (metric key, row title, format). Image metrics have an identity value.
IMAGE_ROWS = (("mse", "MSE", "{:.4f}"), ("psnr", "PSNR (dB)", "{:.2f}"),
              ("ssim", "SSIM", "{:.4f}"), ("dssim", "DSSIM = (1 - SSIM) / 2", "{:.4f}"),
              ("lpips", "LPIPS", "{:.4f}"), ("score", "Score", "{:.3f}"))
LIGHT_ROWS = (("light/direction_accuracy", "Light direction accuracy (+-22.5 deg)", "{:.3f}"),
              ("light/direction_error_deg", "Light direction error (deg)", "{:.1f}"),
              ("light/temperature_error_k", "Light temperature error (K)", "{:.0f}"),
              ("light/envmap_error", "Envmap error Le (eq. 2)", "{:.3f}"),
              ("light/lc", "Lc", "{:.4f}"), ("light/ld", "Ld", "{:.4f}"))
# What two evaluations must share to sit in one table.
PROTOCOL_KEYS = ("data", "split", "image_size", "eval_pairing", "eval_num_pairs", "eval_seed",
                 "bootstrap_samples", "bootstrap_seed")


def scene_weights(pairs, num_scenes, samples, seed):
  """Bootstrap weights of the pairs: [samples, N] = count(scene_I) * count(scene_T).

  Args:
    pairs: int [N, 4] of (scene_I, light_I, scene_T, light_T).
    num_scenes: scenes of the split (the population resampled).
    samples: number of replicates.
    seed: seed of the resampling.
  """
  rng = np.random.default_rng(seed)
  counts = rng.multinomial(num_scenes, np.full(num_scenes, 1.0 / num_scenes), size=samples)
  return (counts[:, pairs[:, 0]] * counts[:, pairs[:, 2]]).astype(np.float64)


def pair_weights(num_pairs, samples, seed):
  """Bootstrap weights that resample the pairs themselves: [samples, N] draw counts.

  For fixed pair lists whose scenes are not known (the challenge releases name pairs,
  not scenes), where the pair is the only unit there is to resample.
  """
  rng = np.random.default_rng(seed)
  return rng.multinomial(num_pairs, np.full(num_pairs, 1.0 / num_pairs),
                         size=samples).astype(np.float64)


def summarize(per_example, pairs, num_scenes, *, samples, seed):
  """Means and 95% bootstrap CIs of every per-example metric, and of Score.

  Args:
    per_example: {metric: [N] values}, with "mse" and "identity/mse".
    pairs: int [N, 4], the pairs the values belong to.
    num_scenes: scenes of the evaluated split.
    samples: bootstrap replicates (0: no intervals, each ci95 is [mean, mean]).
    seed: bootstrap seed.

  Returns:
    {"num_pairs", "num_scenes", "metrics": {key: {"mean": x, "ci95": [lo, hi]}}}.
  """
  weights = scene_weights(pairs, num_scenes, samples, seed) if samples else None
  return {"num_pairs": int(len(pairs)), "num_scenes": int(num_scenes),
          "metrics": summarize_weighted(per_example, weights)}


def summarize_weighted(per_example, weights):
  """{key: {"mean", "ci95"}} of every metric and of Score, from bootstrap `weights`.

  Args:
    per_example: {metric: [N] values}, with "mse" and "identity/mse".
    weights: [samples, N] weights of the pairs in each replicate (`scene_weights`,
      `pair_weights`), or None for no intervals (each ci95 is [mean, mean]).
  """
  values = {key: np.asarray(value, np.float64) for key, value in per_example.items()}
  point = means(values)
  replicates = {}
  if weights is not None:
    replicates = replicate_means(weights, values)
    replicates["score"] = replicates["identity/mse"] / np.maximum(replicates["mse"], 1e-12)
  summary = {}
  for key, mean in point.items():
    if key in replicates:
      low, high = np.percentile(replicates[key], [2.5, 97.5])
      summary[key] = {"mean": mean, "ci95": [float(low), float(high)]}
    else:
      summary[key] = {"mean": mean, "ci95": [mean, mean]}
  summary["identity/score"] = {"mean": 1.0, "ci95": [1.0, 1.0]}
  return summary


def replicate_means(weights, values):
  """{key: [replicates] weighted means} of `values` ({key: [N]}) under bootstrap `weights`.

  A replicate may draw no scene pair present in the list (all its weights zero): such
  replicates are dropped, for every key alike.
  """
  total = weights.sum(axis=1)
  usable = total > 0
  weights, total = weights[usable], total[usable]
  return {key: weights @ np.asarray(value, np.float64) / total
          for key, value in values.items()}


def score_ratio(reference_mse, model_mse, pairs, num_scenes, *, samples, seed):
  """Score of a model over a reference model's, on the same pairs, with a paired 95% CI.

  Score_model / Score_reference = l2(G, G_hat_reference) / l2(G, G_hat_model): the
  identity's term cancels. Every replicate weights both models' pairs by the same
  resampled scenes (`scene_weights`), so the interval reflects how consistently one
  beats the other across scenes, not how hard the scenes are.

  Args:
    reference_mse, model_mse: [N] per-example MSE of the two models on `pairs`.
    pairs: int [N, 4], the pairs both were evaluated on.
    num_scenes: scenes of the evaluated split.
    samples: bootstrap replicates (0: the ci95 is [mean, mean]).
    seed: bootstrap seed.

  Returns:
    {"mean": ratio, "ci95": [low, high], "share_above_one": fraction of replicates > 1}.
  """
  reference = np.asarray(reference_mse, np.float64)
  model = np.asarray(model_mse, np.float64)
  if reference.shape != model.shape or reference.shape != (len(pairs),):
    raise ValueError(f"score_ratio needs one MSE per pair for both models: {len(pairs)} "
                     f"pairs, {reference.shape} and {model.shape} values")
  mean = float(reference.mean() / max(model.mean(), 1e-12))
  if not samples:
    return {"mean": mean, "ci95": [mean, mean], "share_above_one": float(mean > 1)}
  replicates = replicate_means(scene_weights(pairs, num_scenes, samples, seed),
                               {"reference": reference, "model": model})
  ratios = replicates["reference"] / np.maximum(replicates["model"], 1e-12)
  low, high = np.percentile(ratios, [2.5, 97.5])
  return {"mean": mean, "ci95": [float(low), float(high)],
          "share_above_one": float(np.mean(ratios > 1))}


def means(per_example):
  """Plain means of every metric and the Score (no intervals)."""
  return with_score({key: float(np.mean(value)) for key, value in per_example.items()})


def with_score(means):
  """`means` ({metric: mean}) with the Score of those means added."""
  return dict(means, score=means["identity/mse"] / max(means["mse"], 1e-12))


def check_compatible(records, labels):
  """Raises ValueError unless every record evaluated the same sets as the first.

  Args:
    records: evaluation records (`{"meta", "subsets"}`).
    labels: a name for each record (its workdir), used in the message.
  """
  first, first_label = records[0], labels[0]
  for record, label in zip(records[1:], labels[1:], strict=True):
    for key in PROTOCOL_KEYS:
      if record["meta"].get(key) != first["meta"].get(key):
        raise ValueError(
            f"cannot combine {first_label} and {label}: they were evaluated with different "
            f"{key} ({first['meta'].get(key)!r} vs {record['meta'].get(key)!r}); evaluate "
            f"both with the same settings (--mode=evaluate)")
    for subset in set(first["subsets"]) & set(record["subsets"]):
      counts = [r["subsets"][subset]["num_pairs"] for r in (first, record)]
      if counts[0] != counts[1]:
        title = SUBSET_TITLES.get(subset, subset)
        raise ValueError(f"cannot combine {first_label} and {label}: {title} has "
                         f"{counts[0]} pairs in one and {counts[1]} in the other")


def _cell(records, key, subset, fmt):
  """One table cell: mean [CI] of one record, or mean +- sd over several (seeds)."""
  found = [r["subsets"][subset]["metrics"][key] for r in records
           if subset in r["subsets"] and key in r["subsets"][subset]["metrics"]]
  if not found:
    return "–"
  if len(found) == 1:
    return _interval(found[0], fmt)
  values = np.array([item["mean"] for item in found])
  return f"{fmt.format(values.mean())} ± {fmt.format(values.std(ddof=1))}"


def _interval(summary, fmt):
  low, high = summary["ci95"]
  return f"{fmt.format(summary['mean'])} [{fmt.format(low)}, {fmt.format(high)}]"


def protocol_lines(meta):
  """The sentence every table starts with: data, split, size, pairs, seeds."""
  pairing = meta.get("eval_pairing") or "all pairs"
  return [f"Data: `{meta['data']}`, split `{meta['split']}`, {meta['image_size']} px. "
          f"Pairs: fixed list of up to {meta['eval_num_pairs']} per set, seed "
          f"{meta['eval_seed']}, rule `{pairing}` (Eval[c_I = c_T] adds equal temperatures, "
          f"Eval[d_I = d_T] requires equal directions). 95% CIs: "
          f"{meta['bootstrap_samples']} bootstrap replicates over scenes (seed "
          f"{meta['bootstrap_seed']})."]


def model_line(label, records):
  meta = records[0]["meta"]
  if "recipe" not in meta:  # Not a model trained here, e.g. a challenge submission folder.
    return f"- **{label}**: {meta['model']}"
  runs = ", ".join(f"seed {r['meta']['seed']}: {r['meta']['steps']} steps" for r in records)
  extra = f" mixed with {meta['train_extra']}" if meta.get("train_extra") else ""
  return (f"- **{label}**: `{meta['model']}`, recipe `{meta['recipe']}`, width "
          f"{meta['width']}, trained on `{meta['train_pairing'] or 'all pairs'}`{extra} "
          f"({runs})")


NOTES = ("MSE and PSNR on [0, 1]; SSIM: 11x11 Gaussian window, sigma 1.5; LPIPS: AlexNet "
         "on [-1, 1]; Score = l2(G, I) / l2(G, G_hat) (> 1 beats the identity mapping). "
         "Light rows: averaged over the estimates of I, T and G (envmap models: the "
         "brightest column and the nearest light colour of the predicted envmap).")


PAIRED_NOTE = ("Paired rows: each model's Score over the first column's on the same pairs "
               "(`score_ratio`); their 95% CIs resample the scenes jointly for both models.")


def format_table(columns, *, reference=None, titles=None, rows=None, protocol=None,
                 notes=NOTES, paired=None):
  """Markdown tables in the layout of the report's Table 1, one per evaluation subset.

  Args:
    columns: {label: [records]} in column order; several records of one label are seeds
      (cells show mean ± sd over them), one record shows mean [95% CI].
    reference: optional {subset: {label: {metric key: value}}}, e.g. the report's printed
      Table 1 for "eval", shown as a "(report)" column after each model's.
    titles: {subset: title} of the tables, in order (default the report's Eval sets).
    rows: (metric key, row title, format) rows (default IMAGE_ROWS + LIGHT_ROWS).
    protocol: the lines that state the protocol (default `protocol_lines` of the first
      record's meta).
    notes: the closing paragraph that defines the rows.
    paired: optional {subset: {label: `score_ratio` result}} of the columns after the
      first against the first, shown as a row "Score / <first label> (paired)".

  Returns:
    Markdown text. Raises ValueError (check_compatible) for evaluations of other sets.
  """
  labels = list(columns)
  flat = [record for label in labels for record in columns[label]]
  check_compatible(flat, [label for label in labels for _ in columns[label]])
  first = flat[0]
  protocol = protocol_lines(first["meta"]) if protocol is None else list(protocol)
  lines = protocol + [""] + [model_line(label, columns[label]) for label in labels] + [""]
  for subset, title in (SUBSET_TITLES if titles is None else titles).items():
    if subset not in first["subsets"]:
      continue
    summary = first["subsets"][subset]
    printed = (reference or {}).get(subset, {})
    header = ["Metric", "Identity (G_hat = I)"]
    for label in labels:
      header += [label] + ([f"{label} (report)"] if label in printed else [])
    counted = f"{summary['num_pairs']} pairs" + (
        "" if summary["num_scenes"] is None else f", {summary['num_scenes']} scenes")
    lines += [f"### {title} ({counted})", "",
              "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    present = set().union(*(r["subsets"].get(subset, {}).get("metrics", {}) for r in flat))
    for key, name, fmt in (IMAGE_ROWS + LIGHT_ROWS) if rows is None else rows:
      if key not in present:
        continue
      identity_key = f"identity/{key}"
      cells = [_cell([first], identity_key, subset, fmt) if identity_key in present else "–"]
      for label in labels:
        cells.append(_cell(columns[label], key, subset, fmt))
        if label in printed:
          value = printed[label].get(key)
          cells.append("–" if value is None else fmt.format(value))
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if (paired or {}).get(subset):
      cells = ["–"]
      for index, label in enumerate(labels):
        ratio = paired[subset].get(label)
        cells.append("1" if index == 0 else "–" if ratio is None else _interval(ratio, "{:.3f}"))
        if label in printed:
          cells.append("–")
      lines.append(f"| Score / {labels[0]} (paired) | " + " | ".join(cells) + " |")
    lines.append("")
  lines.append(notes)
  if paired:
    lines.append("")
    lines.append(PAIRED_NOTE)
  return "\n".join(lines) + "\n"
