"""Evaluation results: bootstrap confidence intervals, the protocol record, Table 1.

An evaluation of one model is a record `{"meta": {...}, "subsets": {subset: summary}}`
(the workdir's `eval/metrics.json`). `meta` says what was evaluated and how (data,
split, image size, pairing rule, pair-list seed, steps, ...); a summary holds, for every
metric, its mean over the subset's fixed pair list and a 95% confidence interval.

Confidence intervals are bootstrap percentiles that resample *locations*, not pairs nor
scenes: the views of one location share its room, materials and most objects, and the
pairs of one scene its content, so none of them are independent draws. A replicate draws
the split's locations with replacement (all views of a drawn location together) and
weights every pair (I, T) by count(location_I) * count(location_T) (a pigeonhole
bootstrap for pairs of units). Where the split's locations are not known (real VIDIT has
no location labels) the unit is the scene, with a logged note; the summary and the
table's protocol line say which unit was resampled. Each Score (the model's, a
baseline's, the change-mask Score) is the ratio of the weighted mean l2 of the identity
to that of the candidate in every replicate, as it is the ratio of the means on the full
list. Fixed pair lists whose scenes are not known (the challenge releases) resample the
pairs instead (`pair_weights`).

Besides the model, a record holds the identity mapping ("identity/...") and the
baselines and oracles of `baselines.py` ("colour_transfer/", "oracle_gain/",
"oracle_smooth/"): the tables show them as columns before the models', the oracles
marked "(oracle: sees G)". Records written before those existed still combine: their
missing cells show "–".

Records combine into one table only when they evaluated the same sets
(`check_compatible`); the columns of one model over several seeds show mean +- sd.
Two models evaluated on the same pairs are compared *paired* (`score_ratio`): the ratio of
their Scores with an interval from the same resampled locations (or scenes) for both,
which is much tighter than two separate intervals, since most of their spread is the
locations' and common to both. Over several training seeds (`score_ratio_seeds`) each
replicate also resamples each model's seeds, independently for the two, since a second
training run moves a Score by more than one run's interval over locations says.
"""


import logging

import numpy as np

SUBSET_TITLES = {
    "eval": "Eval",
    "eval_same_temperature": "Eval[c_I = c_T]",
    "eval_same_direction": "Eval[d_I = d_T]",
    "eval_same_location": "Eval[same location]",
}
# Table rows: (metric key, row title, format). Image metrics have an identity value.
IMAGE_ROWS = (("mse", "MSE", "{:.4f}"), ("psnr", "PSNR (dB)", "{:.2f}"),
              ("ssim", "SSIM", "{:.4f}"), ("dssim", "DSSIM = (1 - SSIM) / 2", "{:.4f}"),
              ("lpips", "LPIPS", "{:.4f}"), ("mps", "MPS = (SSIM + 1 - LPIPS) / 2", "{:.4f}"),
              ("score", "Score", "{:.3f}"), ("change_score", "Change-mask Score", "{:.3f}"),
              ("relighting_correlation", "Relighting correlation", "{:.3f}"))
# The candidates scored next to every model (prefix, column title), in column order.
BASELINE_COLUMNS = (("identity/", "Identity (G_hat = I)"),
                    ("colour_transfer/", "Colour transfer from T"),
                    ("oracle_gain/", "Best RGB gain (oracle: sees G)"),
                    ("oracle_smooth/", "Smooth gain field (oracle: sees G)"))
# Ratio metrics: (key, per-example term). Over a set each is mean(identity/<term>) /
# mean(<prefix><term>), for the model and for every baseline.
RATIOS = (("score", "mse"), ("change_score", "change_mse"))
LIGHT_ROWS = (("light/direction_accuracy", "Light direction accuracy (+-22.5 deg)", "{:.3f}"),
              ("light/direction_error_deg", "Light direction error (deg)", "{:.1f}"),
              ("light/temperature_error_k", "Light temperature error (K)", "{:.0f}"),
              ("light/envmap_error", "Envmap error Le (eq. 2)", "{:.3f}"),
              ("light/lc", "Lc", "{:.4f}"), ("light/ld", "Ld", "{:.4f}"))
# What two evaluations must share to sit in one table.
PROTOCOL_KEYS = ("data", "split", "image_size", "eval_pairing", "eval_num_pairs", "eval_seed",
                 "bootstrap_samples", "bootstrap_seed", "bootstrap_unit")
# Values of protocol keys that records written before the key existed had.
_PROTOCOL_DEFAULTS = {"bootstrap_unit": "scenes"}
# What the protocol line says of each bootstrap unit.
UNIT_WORDS = {"locations": "locations (all views of a drawn location together)",
              "scenes": "scenes (the split's locations are unknown)",
              "pairs": "pairs"}


def scene_weights(pairs, num_scenes, samples, seed, locations=None):
  """Bootstrap weights of the pairs: [samples, N] = count(unit_I) * count(unit_T).

  Args:
    pairs: int [N, 4] of (scene_I, light_I, scene_T, light_T).
    num_scenes: scenes of the split.
    samples: number of replicates.
    seed: seed of the resampling.
    locations: optional [num_scenes] location of every scene: the units resampled are
      then the locations (a drawn location brings all its views); without, the scenes.
  """
  rng = np.random.default_rng(seed)
  if locations is None:
    unit = np.arange(num_scenes)
  else:
    locations = np.asarray(locations)
    if locations.shape != (num_scenes,):
      raise ValueError(f"{locations.shape[0]} scene locations for {num_scenes} scenes")
    _, unit = np.unique(locations, return_inverse=True)
  num_units = int(unit.max()) + 1
  counts = rng.multinomial(num_units, np.full(num_units, 1.0 / num_units), size=samples)
  return (counts[:, unit[pairs[:, 0]]] * counts[:, unit[pairs[:, 2]]]).astype(np.float64)


def bootstrap_unit(locations):
  """"locations" when the scenes' locations are known, else "scenes" (logged)."""
  if locations is None:
    logging.info("Bootstrap intervals resample scenes: the split's locations are unknown")
    return "scenes"
  return "locations"


def pair_weights(num_pairs, samples, seed):
  """Bootstrap weights that resample the pairs themselves: [samples, N] draw counts.

  For fixed pair lists whose scenes are not known (the challenge releases name pairs,
  not scenes), where the pair is the only unit there is to resample.
  """
  rng = np.random.default_rng(seed)
  return rng.multinomial(num_pairs, np.full(num_pairs, 1.0 / num_pairs),
                         size=samples).astype(np.float64)


def summarize(per_example, pairs, num_scenes, *, samples, seed, locations=None):
  """Means and 95% bootstrap CIs of every per-example metric, and of the Scores.

  Args:
    per_example: {metric: [N] values}, with "mse" and "identity/mse".
    pairs: int [N, 4], the pairs the values belong to.
    num_scenes: scenes of the evaluated split.
    samples: bootstrap replicates (0: no intervals, each ci95 is [mean, mean]).
    seed: bootstrap seed.
    locations: optional [num_scenes] location of every scene (resample locations).

  Returns:
    {"num_pairs", "num_scenes", "num_locations" (None if unknown), "resampled" (the
    bootstrap's unit, "locations" or "scenes"), "metrics": {key: {"mean": x,
    "ci95": [lo, hi]}}}.
  """
  weights = scene_weights(pairs, num_scenes, samples, seed, locations) if samples else None
  return {"num_pairs": int(len(pairs)), "num_scenes": int(num_scenes),
          "num_locations": None if locations is None else int(len(np.unique(locations))),
          "resampled": "scenes" if locations is None else "locations",
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
    replicates = with_score(replicate_means(weights, values))
  summary = {}
  for key, mean in point.items():
    if key in replicates:
      low, high = np.percentile(replicates[key], [2.5, 97.5])
      summary[key] = {"mean": mean, "ci95": [float(low), float(high)]}
    else:
      summary[key] = {"mean": mean, "ci95": [mean, mean]}
  for ratio, _ in RATIOS:
    if ratio in point:
      summary[f"identity/{ratio}"] = {"mean": 1.0, "ci95": [1.0, 1.0]}
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


def score_ratio(reference_mse, model_mse, pairs, num_scenes, *, samples, seed,
                locations=None):
  """Score of a model over a reference model's, on the same pairs, with a paired 95% CI.

  Score_model / Score_reference = l2(G, G_hat_reference) / l2(G, G_hat_model): the
  identity's term cancels. Every replicate weights both models' pairs by the same
  resampled locations (or scenes, `scene_weights`), so the interval reflects how
  consistently one beats the other across them, not how hard they are.

  Args:
    reference_mse, model_mse: [N] per-example MSE of the two models on `pairs`.
    pairs: int [N, 4], the pairs both were evaluated on.
    num_scenes: scenes of the evaluated split.
    samples: bootstrap replicates (0: the ci95 is [mean, mean]).
    seed: bootstrap seed.
    locations: optional [num_scenes] location of every scene (resample locations).

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
  replicates = replicate_means(scene_weights(pairs, num_scenes, samples, seed, locations),
                               {"reference": reference, "model": model})
  ratios = replicates["reference"] / np.maximum(replicates["model"], 1e-12)
  low, high = np.percentile(ratios, [2.5, 97.5])
  return {"mean": mean, "ci95": [float(low), float(high)],
          "share_above_one": float(np.mean(ratios > 1))}


def score_ratio_seeds(reference_mse, model_mse, pairs, num_scenes, *, samples, seed,
                      locations=None):
  """`score_ratio` over several training seeds of each model, resampling the seeds too.

  The point estimate is the reference's MSE averaged over its seeds and pairs over the
  model's. Every replicate weights the pairs by one draw of locations (or scenes,
  `scene_weights`), shared by both models as in `score_ratio`, and also draws each
  model's seeds with replacement, independently for the two: a seed of one model has no
  counterpart among the other's, while a pair does. The interval then covers how
  training varies with its seed as well as how the locations vary; with one seed each it
  is `score_ratio`'s.

  Args:
    reference_mse, model_mse: [S_reference, N] and [S_model, N] per-example MSE of each
      training seed of the two models on `pairs` ([N]: one seed).
    pairs: int [N, 4], the pairs every seed of both was evaluated on.
    num_scenes: scenes of the evaluated split.
    samples: bootstrap replicates (0: the ci95 is [mean, mean]).
    seed: bootstrap seed (of both the locations' and the seeds' draws).
    locations: optional [num_scenes] location of every scene (resample locations).

  Returns:
    {"mean": ratio, "ci95": [low, high], "share_above_one": fraction of replicates > 1,
    "reference_seeds": S_reference, "model_seeds": S_model}.
  """
  reference = np.asarray(reference_mse, np.float64)
  model = np.asarray(model_mse, np.float64)
  reference = reference[None] if reference.ndim == 1 else reference
  model = model[None] if model.ndim == 1 else model
  if (reference.ndim != 2 or model.ndim != 2 or not len(reference) or not len(model)
      or reference.shape[1] != len(pairs) or model.shape[1] != len(pairs)):
    raise ValueError(f"score_ratio_seeds needs one MSE per pair for every seed of both "
                     f"models: {len(pairs)} pairs, {reference.shape} and {model.shape} "
                     "values")
  counts = {"reference_seeds": len(reference), "model_seeds": len(model)}
  # Each seed's own mean first, then the seeds': the order `score_ratio` sums in, so
  # that one seed each gives its result to the last bit.
  mean = float(np.mean([row.mean() for row in reference])
               / max(np.mean([row.mean() for row in model]), 1e-12))
  if not samples:
    return {"mean": mean, "ci95": [mean, mean], "share_above_one": float(mean > 1), **counts}
  weights = scene_weights(pairs, num_scenes, samples, seed, locations)
  usable = weights.sum(axis=1) > 0  # the replicates that `replicate_means` keeps
  replicates = replicate_means(weights, {
      (name, index): row for name, values in (("reference", reference), ("model", model))
      for index, row in enumerate(values)})
  # The seeds' draws come from a stream of their own: the locations' draws stay those
  # of `scene_weights(..., seed)`, whatever the seed counts.
  rng = np.random.default_rng((seed, 1))

  def over_drawn_seeds(name, values):
    """[replicates] mean over the replicate's drawn seeds of their weighted means."""
    per_seed = np.stack([replicates[name, index] for index in range(len(values))], axis=1)
    picked = rng.integers(len(values), size=(samples, len(values)))[usable]
    return np.take_along_axis(per_seed, picked, axis=1).mean(axis=1)

  reference_means = over_drawn_seeds("reference", reference)
  model_means = over_drawn_seeds("model", model)
  ratios = reference_means / np.maximum(model_means, 1e-12)
  low, high = np.percentile(ratios, [2.5, 97.5])
  return {"mean": mean, "ci95": [float(low), float(high)],
          "share_above_one": float(np.mean(ratios > 1)), **counts}


def means(per_example):
  """Plain means of every metric and the Scores (no intervals)."""
  return with_score({key: float(np.mean(value)) for key, value in per_example.items()})


def with_score(means):
  """`means` ({metric: mean}, floats or arrays of replicates) with the Scores added.

  For every candidate prefix ("" for the model, "oracle_gain/", ...) with a "mse" (a
  "change_mse"), "<prefix>score" ("<prefix>change_score") = mean identity/<term> / mean
  <prefix><term>. A ratio whose identity term is 0 (no changed pixel in the whole set)
  is left out.
  """
  result = dict(means)
  for ratio, term in RATIOS:
    identity = means.get(f"identity/{term}")
    if identity is None or (np.ndim(identity) == 0 and identity <= 0):
      continue
    for key, value in means.items():
      prefix = key[:-len(term)]
      if key.endswith(term) and (prefix == "" or
                                 (prefix.endswith("/") and prefix != "identity/")):
        found = identity / np.maximum(value, 1e-12)
        result[prefix + ratio] = float(found) if np.ndim(found) == 0 else found
  return result


def check_compatible(records, labels):
  """Raises ValueError unless every record evaluated the same sets as the first.

  Args:
    records: evaluation records (`{"meta", "subsets"}`).
    labels: a name for each record (its workdir), used in the message.
  """
  first, first_label = records[0], labels[0]
  def setting(record, key):
    return record["meta"].get(key, _PROTOCOL_DEFAULTS.get(key))

  for record, label in zip(records[1:], labels[1:], strict=True):
    for key in PROTOCOL_KEYS:
      if setting(record, key) != setting(first, key):
        raise ValueError(
            f"cannot combine {first_label} and {label}: they were evaluated with different "
            f"{key} ({setting(first, key)!r} vs {setting(record, key)!r}); evaluate "
            f"both with the same settings and version (--mode=evaluate)")
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
  unit = meta.get("bootstrap_unit", _PROTOCOL_DEFAULTS["bootstrap_unit"])
  if meta.get("locations_known") is False:
    same_location = ("; Eval[same location] is absent: the split's locations are unknown")
  elif meta.get("locations_known"):
    same_location = ("; Eval[same location] keeps Eval's rule with T from I's location, "
                     "pairs that Eval also holds")
  else:
    same_location = ""
  return [f"Data: `{meta['data']}`, split `{meta['split']}`, {meta['image_size']} px. "
          f"Pairs: fixed list of up to {meta['eval_num_pairs']} per set, seed "
          f"{meta['eval_seed']}, rule `{pairing}` (Eval[c_I = c_T] adds equal temperatures, "
          f"Eval[d_I = d_T] requires equal directions{same_location}). 95% CIs: "
          f"{meta['bootstrap_samples']} bootstrap replicates over {UNIT_WORDS[unit]} (seed "
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
         "on [-1, 1]; MPS = (SSIM + 1 - LPIPS) / 2 (NTIRE 2021's ranking score); Score = "
         "l2(G, I) / l2(G, G_hat) over the set (> 1 beats the identity mapping). "
         "Change-mask Score: the Score on the pixels whose light changes, "
         "|log(Y_G + 0.01) - log(Y_I + 0.01)| > log 1.5 (Y: linear luminance), pooled over "
         "the set. Relighting correlation: per pair, the correlation over pixels of the "
         "predicted and true change of log(Y + 0.01) from I, both less their linear fit on "
         "I's log(Y + 0.01) (what a tone curve of I explains; 0 for the identity). "
         "Baselines: colour transfer imposes T's per-channel mean and sd on I in "
         "linear RGB (never sees G); the oracles see G: the best per-channel gain from I to "
         "G, and I * blur(G) / blur(I) with a Gaussian sigma of 8 px at 64 px (scaled with "
         "the size): tone alone, no sharp shadow moved. "
         "Light rows: averaged over the estimates of I, T and G (envmap models: the "
         "brightest column and the nearest light colour of the predicted envmap).")


PAIRED_NOTE = ("Paired rows: each model's Score over the first column's on the same pairs "
               "(`score_ratio_seeds`); their 95% CIs resample the bootstrap's units jointly "
               "for both models.")
# What the paired rows' intervals say of training seeds: over several, or one each.
PAIRED_SEEDS_NOTE = ("Where a column holds several training seeds, each replicate also draws "
                     "each model's seeds with replacement, independently for the two models "
                     "(a seed of one has no counterpart in the other), and averages each "
                     "model's MSE over its drawn seeds; \"(m vs r seeds)\" counts the "
                     "model's seeds and the first column's.")
PAIRED_ONE_SEED_NOTE = ("One training seed per model: the paired intervals do not cover how "
                        "training varies with its seed (compare over several seeds).")


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
    paired: optional {subset: {label: `score_ratio_seeds` (or `score_ratio`) result}}
      of the columns after the first against the first, shown as a row "Score / <first
      label> (paired)"; a ratio over several seeds says how many each side had.

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
    # The baselines do not depend on the model: the first record's are every model's.
    baseline_keys = set(summary["metrics"])
    shown = [(prefix, title_) for prefix, title_ in BASELINE_COLUMNS
             if prefix == "identity/" or any(k.startswith(prefix) for k in baseline_keys)]
    header = ["Metric"] + [title_ for _, title_ in shown]
    for label in labels:
      header += [label] + ([f"{label} (report)"] if label in printed else [])
    lines += [f"### {title} ({_counted(summary)})", "",
              "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    present = set().union(*(r["subsets"].get(subset, {}).get("metrics", {}) for r in flat))
    for key, name, fmt in (IMAGE_ROWS + LIGHT_ROWS) if rows is None else rows:
      if key not in present:
        continue
      cells = [_cell([first], prefix + key, subset, fmt) for prefix, _ in shown]
      for label in labels:
        cells.append(_cell(columns[label], key, subset, fmt))
        if label in printed:
          value = printed[label].get(key)
          cells.append("–" if value is None else fmt.format(value))
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if (paired or {}).get(subset):
      cells = ["–"] * len(shown)
      for index, label in enumerate(labels):
        ratio = paired[subset].get(label)
        cells.append("1" if index == 0 else "–" if ratio is None else _paired_cell(ratio))
        if label in printed:
          cells.append("–")
      lines.append(f"| Score / {labels[0]} (paired) | " + " | ".join(cells) + " |")
    lines.append("")
  lines.append(notes)
  unit = first["meta"].get("bootstrap_unit", _PROTOCOL_DEFAULTS["bootstrap_unit"])
  lines += ["", f"Resampled unit of the 95% CIs: {UNIT_WORDS[unit]}."]
  if paired:
    ratios = [ratio for by_label in paired.values() for ratio in by_label.values()]
    seeds_note = (PAIRED_SEEDS_NOTE if any(_seed_counts(ratio) != (1, 1) for ratio in ratios)
                  else PAIRED_ONE_SEED_NOTE)
    lines += ["", f"{PAIRED_NOTE} {seeds_note}"]
  return "\n".join(lines) + "\n"


def _seed_counts(ratio):
  """(the model's, the reference's) training seeds of a paired ratio (`score_ratio`: 1)."""
  return ratio.get("model_seeds", 1), ratio.get("reference_seeds", 1)


def _paired_cell(ratio):
  """A paired ratio's mean [CI], with its seed counts where seeds were resampled."""
  cell = _interval(ratio, "{:.3f}")
  counts = _seed_counts(ratio)
  return cell if counts == (1, 1) else f"{cell} ({counts[0]} vs {counts[1]} seeds)"


def _counted(summary):
  """"N pairs, S scenes, L locations; P% of pixels change light" of a subset's summary."""
  parts = [f"{summary['num_pairs']} pairs"]
  for key, noun in (("num_scenes", "scene"), ("num_locations", "location")):
    if summary.get(key) is not None:
      parts.append(f"{summary[key]} {noun}" + ("" if summary[key] == 1 else "s"))
  text = ", ".join(parts)
  changed = summary["metrics"].get("change_fraction")
  if changed is not None:
    text += f"; {100 * changed['mean']:.0f}% of pixels change light"
  return text
