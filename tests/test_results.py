"""Bootstrap intervals over locations or scenes, the protocol check and the Table 1 layout
(results.py)."""

import copy

import numpy as np
import pytest

from relight_jax.evaluation import results


def _pairs(num_scenes, per_pair_of_scenes=3):
  """Every ordered pair of different scenes, `per_pair_of_scenes` times: [N, 4]."""
  rows = [(a, k, b, k + 1) for a in range(num_scenes) for b in range(num_scenes) if a != b
          for k in range(per_pair_of_scenes)]
  return np.asarray(rows)


def test_scene_weights_are_products_of_scene_counts():
  pairs = _pairs(5)
  weights = results.scene_weights(pairs, 5, samples=50, seed=3)
  counts = np.random.default_rng(3).multinomial(5, np.full(5, 0.2), size=50)
  np.testing.assert_array_equal(weights, counts[:, pairs[:, 0]] * counts[:, pairs[:, 2]])


def test_resampling_scenes_sees_what_resampling_pairs_misses():
  # Values that depend on the input scene (pairs of one scene are not independent): the
  # interval over scenes must be far wider than a naive bootstrap over pairs.
  rng = np.random.default_rng(0)
  pairs = _pairs(12)
  scene_effect = rng.normal(0.0, 1.0, 12)
  values = 5.0 + scene_effect[pairs[:, 0]] + rng.normal(0.0, 0.1, len(pairs))
  per_example = {"mse": values, "identity/mse": np.full(len(pairs), 5.0)}
  summary = results.summarize(per_example, pairs, 12, samples=1000, seed=0)
  low, high = summary["metrics"]["mse"]["ci95"]
  naive = [np.mean(rng.choice(values, len(values))) for _ in range(1000)]
  naive_low, naive_high = np.percentile(naive, [2.5, 97.5])
  assert low < values.mean() < high
  assert (high - low) > 3 * (naive_high - naive_low)
  # The scene-level spread sets the width: about 2 * 1.96 * sd(scene effect) / sqrt(12).
  assert 0.5 < (high - low) / (2 * 1.96 * scene_effect.std() / np.sqrt(12)) < 2.0
  # Score is the ratio of means, in the point estimate and in every replicate.
  score = summary["metrics"]["score"]
  assert score["mean"] == pytest.approx(5.0 / values.mean())
  assert score["ci95"][0] == pytest.approx(5.0 / high, rel=0.05)


def test_summarize_without_replicates_and_identity_score():
  pairs = _pairs(3)
  per_example = {"mse": np.full(len(pairs), 0.02), "identity/mse": np.full(len(pairs), 0.06)}
  summary = results.summarize(per_example, pairs, 3, samples=0, seed=0)
  assert summary["num_pairs"] == len(pairs) and summary["num_scenes"] == 3
  assert summary["metrics"]["score"] == {"mean": pytest.approx(3.0),
                                         "ci95": [pytest.approx(3.0), pytest.approx(3.0)]}
  assert summary["metrics"]["identity/score"]["mean"] == 1.0


def _record(label, mse, seed=0, **meta):
  pairs = _pairs(4)
  per_example = {"mse": np.full(len(pairs), mse), "identity/mse": np.full(len(pairs), 0.06),
                 "psnr": np.full(len(pairs), 20.0), "identity/psnr": np.full(len(pairs), 12.0)}
  base = {"label": label, "model": "envmap", "recipe": "report", "width": 0.25, "seed": seed,
          "steps": 100, "train_pairing": "different_scene,different_direction",
          "train_extra": "", "data": "vidit/synthetic_small", "split": "test",
          "image_size": 64, "eval_pairing": "different_scene,different_direction",
          "eval_num_pairs": 1000, "eval_seed": 1234, "bootstrap_samples": 100,
          "bootstrap_seed": 0}
  base.update(meta)
  return {"meta": base, "subsets": {
      "eval": results.summarize(per_example, pairs, 4, samples=100, seed=0)}}


def test_table_states_the_protocol_and_shows_intervals_and_seed_spread():
  columns = {"Envmap": [_record("Envmap", 0.02), _record("Envmap", 0.03, seed=1)],
             "IP": [_record("IP", 0.03)]}
  table = results.format_table(columns, reference={"eval": {"Envmap": {"mse": 0.0219}}})
  assert "Data: `vidit/synthetic_small`, split `test`, 64 px." in table
  assert "seed 1234" in table and "over scenes" in table
  assert "seed 0: 100 steps, seed 1: 100 steps" in table
  assert "### Eval (36 pairs, 4 scenes)" in table
  assert "| Metric | Identity (G_hat = I) | Envmap | Envmap (report) | IP |" in table
  # Envmap: mean ± sd over its two seeds, the report's figure, IP: mean [CI].
  assert "| MSE | 0.0600 [0.0600, 0.0600] | 0.0250 ± 0.0071 | 0.0219 | 0.0300 [0.0300, 0.0300] |" \
      in table


@pytest.mark.parametrize("key, value", [("split", "validation"), ("image_size", 32),
                                        ("eval_seed", 7), ("data", "vidit/synthetic"),
                                        ("eval_pairing", "different_scene")])
def test_combining_different_evaluations_is_refused_naming_the_difference(key, value):
  other = _record("IP", 0.03, **{key: value})
  with pytest.raises(ValueError, match=f"different {key}"):
    results.format_table({"Envmap": [_record("Envmap", 0.02)], "IP": [other]})


def test_combining_lists_of_other_lengths_is_refused():
  other = _record("IP", 0.03)
  shorter = copy.deepcopy(other)
  shorter["subsets"]["eval"]["num_pairs"] = 5
  with pytest.raises(ValueError, match="Eval has 36 pairs in one and 5"):
    results.format_table({"Envmap": [_record("Envmap", 0.02)], "IP": [shorter]})


def test_a_paired_ratio_sees_what_two_intervals_cannot():
  # Model B is 20% better than A on every pair, but the scenes' difficulty varies far
  # more than that: their separate intervals overlap, the paired one excludes 1.
  rng = np.random.default_rng(0)
  pairs = _pairs(12)
  difficulty = np.exp(rng.normal(0.0, 0.5, 12))[pairs[:, 0]]
  mse_a = 0.02 * difficulty * np.exp(rng.normal(0.0, 0.05, len(pairs)))
  mse_b = mse_a / 1.25
  identity = np.full(len(pairs), 0.06)
  separate = [results.summarize({"mse": mse, "identity/mse": identity}, pairs, 12,
                                samples=1000, seed=0)["metrics"]["score"]
              for mse in (mse_a, mse_b)]
  assert separate[1]["ci95"][0] < separate[0]["ci95"][1]
  ratio = results.score_ratio(mse_a, mse_b, pairs, 12, samples=1000, seed=0)
  assert ratio["mean"] == pytest.approx(separate[1]["mean"] / separate[0]["mean"])
  assert ratio["mean"] == pytest.approx(1.25)
  assert 1.2 < ratio["ci95"][0] <= ratio["ci95"][1] < 1.3
  assert ratio["share_above_one"] == 1.0
  # A model no better than A: its interval holds 1.
  noisy = mse_a * np.exp(rng.normal(0.0, 0.05, len(pairs)))
  same = results.score_ratio(mse_a, noisy, pairs, 12, samples=1000, seed=0)
  assert same["ci95"][0] < 1.0 < same["ci95"][1]
  with pytest.raises(ValueError, match="one MSE per pair"):
    results.score_ratio(mse_a, mse_b[:-1], pairs, 12, samples=10, seed=0)


def test_the_paired_row_follows_the_table():
  ratio = {"mean": 1.5, "ci95": [1.2, 1.8], "share_above_one": 1.0}
  table = results.format_table({"Envmap": [_record("Envmap", 0.03)], "IP": [_record("IP", 0.02)]},
                               paired={"eval": {"IP": ratio}})
  assert "| Score / Envmap (paired) | – | 1 | 1.500 [1.200, 1.800] |" in table
  assert "resample the bootstrap's units jointly" in table
  assert "(paired)" not in results.format_table({"Envmap": [_record("Envmap", 0.03)]})


def _seeded(seed_factors, base, rng, noise=0.05):
  """[S, N] per-seed MSE: `base` scaled by each seed's factor, with per-pair noise."""
  return np.stack([base * factor * np.exp(rng.normal(0.0, noise, len(base)))
                   for factor in seed_factors])


def _located_mse(rng):
  """Pairs of 12 scenes in 4 locations of 3 views, their locations and a reference MSE
  whose difficulty varies by location far more than the models differ."""
  pairs = _pairs(12)
  locations = np.repeat(np.arange(4), 3)
  difficulty = np.exp(rng.normal(0.0, 0.5, 4))[locations][pairs[:, 0]]
  return pairs, locations, 0.02 * difficulty * np.exp(rng.normal(0.0, 0.05, len(pairs)))


@pytest.mark.parametrize("samples", [0, 300])
@pytest.mark.parametrize("with_locations", [False, True])
def test_one_seed_each_is_the_single_runs_paired_ratio(samples, with_locations):
  rng = np.random.default_rng(4)
  pairs, locations, mse_a = _located_mse(rng)
  # float32, as per_example.npz stores them
  mse_b = (mse_a / 1.1 * np.exp(rng.normal(0.0, 0.1, len(pairs)))).astype(np.float32)
  locations = locations if with_locations else None
  expected = results.score_ratio(mse_a, mse_b, pairs, 12, samples=samples, seed=7,
                                 locations=locations)
  for reference, model in ((mse_a[None], mse_b[None]), (mse_a, mse_b)):
    found = results.score_ratio_seeds(reference, model, pairs, 12, samples=samples, seed=7,
                                      locations=locations)
    assert found.pop("reference_seeds") == 1 and found.pop("model_seeds") == 1
    assert found == expected  # to the last bit


def test_a_model_better_on_every_location_and_seed_is_above_one_over_seeds():
  rng = np.random.default_rng(0)
  pairs, locations, mse_a = _located_mse(rng)
  reference = _seeded((0.95, 1.0, 1.05), mse_a, rng)
  model = _seeded((1 / 1.25, 1 / 1.2, 1 / 1.3), mse_a, rng)
  ratio = results.score_ratio_seeds(reference, model, pairs, 12, samples=1000, seed=0,
                                    locations=locations)
  assert ratio["mean"] == pytest.approx(reference.mean() / model.mean())
  assert 1.1 < ratio["ci95"][0] < ratio["mean"] < ratio["ci95"][1] < 1.45
  assert ratio["share_above_one"] == 1.0
  assert (ratio["reference_seeds"], ratio["model_seeds"]) == (3, 3)
  # Deterministic given the bootstrap seed; another seed draws other replicates.
  again = results.score_ratio_seeds(reference, model, pairs, 12, samples=1000, seed=0,
                                    locations=locations)
  assert again == ratio
  assert results.score_ratio_seeds(reference, model, pairs, 12, samples=1000, seed=1,
                                   locations=locations)["ci95"] != ratio["ci95"]


def test_one_good_seed_does_not_make_a_better_model():
  # Better than the reference by 1.25x with its seed 0, worse with the two others: that
  # run alone is clearly better, the model over its seeds is not.
  rng = np.random.default_rng(1)
  pairs, locations, mse_a = _located_mse(rng)
  reference = _seeded((0.98, 1.0, 1.02), mse_a, rng)
  model = _seeded((0.8, 1.05, 1.1), mse_a, rng)
  lucky = results.score_ratio(reference[0], model[0], pairs, 12, samples=1000, seed=0,
                              locations=locations)
  assert 1.0 < lucky["ci95"][0]
  ratio = results.score_ratio_seeds(reference, model, pairs, 12, samples=1000, seed=0,
                                    locations=locations)
  assert ratio["ci95"][0] < 1.0 < ratio["ci95"][1]
  assert 0.1 < ratio["share_above_one"] < 0.9


def test_resampling_seeds_widens_the_interval_only_where_seeds_disagree():
  rng = np.random.default_rng(2)
  pairs, locations, mse_a = _located_mse(rng)
  width = lambda ratio: ratio["ci95"][1] - ratio["ci95"][0]

  def with_and_without_seeds(reference, model):
    over_seeds = results.score_ratio_seeds(reference, model, pairs, 12, samples=1000,
                                           seed=0, locations=locations)
    # The seeds' mean as if it were one run: the locations' spread alone.
    averaged = results.score_ratio(reference.mean(axis=0), model.mean(axis=0), pairs, 12,
                                   samples=1000, seed=0, locations=locations)
    assert over_seeds["mean"] == pytest.approx(averaged["mean"])
    return width(over_seeds), width(averaged)

  disagreeing = with_and_without_seeds(_seeded((0.9, 1.0, 1.1), mse_a, rng),
                                       _seeded((0.75, 0.9, 1.05), mse_a, rng))
  assert disagreeing[0] > 2 * disagreeing[1]
  agreeing = with_and_without_seeds(np.stack([mse_a] * 3), np.stack([mse_a / 1.1] * 2))
  assert agreeing[0] == pytest.approx(agreeing[1], rel=1e-9)


def test_per_seed_values_of_other_pairs_are_refused():
  pairs = _pairs(4)
  mse = np.full((3, len(pairs)), 0.02)
  with pytest.raises(ValueError, match=r"one MSE per pair for every seed of both models: "
                     r"36 pairs, \(3, 36\) and \(2, 35\)"):
    results.score_ratio_seeds(mse, mse[:2, :-1], pairs, 4, samples=10, seed=0)
  with pytest.raises(ValueError, match="one MSE per pair"):
    results.score_ratio_seeds(mse[:0], mse, pairs, 4, samples=10, seed=0)


def test_the_paired_row_says_how_many_seeds_it_resampled():
  ratio = {"mean": 1.5, "ci95": [1.2, 1.8], "share_above_one": 1.0, "reference_seeds": 2,
           "model_seeds": 3}
  columns = {"Envmap": [_record("Envmap", 0.03), _record("Envmap", 0.03, seed=1)],
             "IP": [_record("IP", 0.02, seed=k) for k in range(3)]}
  table = results.format_table(columns, paired={"eval": {"IP": ratio}})
  assert "| Score / Envmap (paired) | – | 1 | 1.500 [1.200, 1.800] (3 vs 2 seeds) |" in table
  assert results.PAIRED_SEEDS_NOTE in table and results.PAIRED_ONE_SEED_NOTE not in table
  single = dict(ratio, reference_seeds=1, model_seeds=1)
  table = results.format_table({"Envmap": [_record("Envmap", 0.03)],
                                "IP": [_record("IP", 0.02)]}, paired={"eval": {"IP": single}})
  assert "| Score / Envmap (paired) | – | 1 | 1.500 [1.200, 1.800] |" in table
  assert results.PAIRED_ONE_SEED_NOTE in table and results.PAIRED_SEEDS_NOTE not in table


def test_location_weights_draw_the_views_of_a_location_together():
  pairs = _pairs(6)
  locations = np.array([10, 10, 11, 11, 12, 12])  # 3 locations of 2 views
  weights = results.scene_weights(pairs, 6, samples=50, seed=3, locations=locations)
  counts = np.random.default_rng(3).multinomial(3, np.full(3, 1 / 3), size=50)
  unit = locations - 10
  np.testing.assert_array_equal(weights,
                                counts[:, unit[pairs[:, 0]]] * counts[:, unit[pairs[:, 2]]])
  with pytest.raises(ValueError, match="5 scene locations for 6 scenes"):
    results.scene_weights(pairs, 6, samples=5, seed=0, locations=locations[:5])


def test_resampling_locations_sees_what_resampling_scenes_misses():
  # 4 locations of 6 views each; the values depend on the input's location: scenes of one
  # location are not independent, so the interval over locations is the wider one.
  rng = np.random.default_rng(1)
  pairs = _pairs(24, per_pair_of_scenes=1)
  locations = np.repeat(np.arange(4), 6)
  effect = rng.normal(0.0, 1.0, 4)[locations]
  values = 5.0 + effect[pairs[:, 0]] + rng.normal(0.0, 0.1, len(pairs))
  per_example = {"mse": values, "identity/mse": np.full(len(pairs), 5.0)}
  by_scene = results.summarize(per_example, pairs, 24, samples=500, seed=0)
  by_location = results.summarize(per_example, pairs, 24, samples=500, seed=0,
                                  locations=locations)
  assert by_scene["resampled"] == "scenes" and by_scene["num_locations"] is None
  assert by_location["resampled"] == "locations" and by_location["num_locations"] == 4
  width = lambda summary: np.diff(summary["metrics"]["mse"]["ci95"])[0]
  assert width(by_location) > 1.5 * width(by_scene)


def test_every_candidate_has_its_scores_as_ratios_of_sums():
  pairs = _pairs(3)
  count = len(pairs)
  rng = np.random.default_rng(0)
  change = rng.uniform(0.0, 0.02, count)
  change[0] = 0.0  # a pair with no changed pixel adds nothing to either sum
  per_example = {"mse": np.full(count, 0.02), "identity/mse": np.full(count, 0.06),
                 "oracle_smooth/mse": np.full(count, 0.015),
                 "change_mse": change, "identity/change_mse": 2 * change,
                 "oracle_smooth/change_mse": 1.5 * change,
                 "change_fraction": np.full(count, 0.25)}
  summary = results.summarize(per_example, pairs, 3, samples=50, seed=0)["metrics"]
  assert summary["score"]["mean"] == pytest.approx(3.0)
  assert summary["oracle_smooth/score"]["mean"] == pytest.approx(4.0)
  expected = per_example["identity/change_mse"].sum() / per_example["change_mse"].sum()
  assert summary["change_score"]["mean"] == pytest.approx(expected)
  assert summary["oracle_smooth/change_score"]["mean"] == pytest.approx(expected / 1.5)
  assert summary["identity/change_score"]["mean"] == 1.0
  assert "change_fraction_score" not in summary and "identity/score" in summary
  low, high = summary["change_score"]["ci95"]
  assert low <= summary["change_score"]["mean"] <= high


def _record_with_baselines(label, mse):
  record = _record(label, mse, bootstrap_unit="locations", locations_known=True)
  pairs = _pairs(4)
  count = len(pairs)
  per_example = {"mse": np.full(count, mse), "identity/mse": np.full(count, 0.06),
                 "change_mse": np.full(count, mse / 2),
                 "identity/change_mse": np.full(count, 0.04),
                 "relighting_correlation": np.full(count, 0.5),
                 "identity/relighting_correlation": np.zeros(count),
                 "change_fraction": np.full(count, 0.3)}
  for prefix, value in (("colour_transfer/", 0.05), ("oracle_gain/", 0.04),
                        ("oracle_smooth/", 0.03)):
    per_example.update({prefix + "mse": np.full(count, value),
                        prefix + "change_mse": np.full(count, 0.035),
                        prefix + "relighting_correlation": np.full(count, 0.2)})
  record["subsets"]["eval"] = results.summarize(per_example, pairs, 4, samples=20, seed=0,
                                                locations=np.array([0, 0, 1, 1]))
  return record


def test_the_table_shows_baselines_and_oracles_and_the_resampled_unit():
  table = results.format_table({"Envmap": [_record_with_baselines("Envmap", 0.02)]})
  assert ("| Metric | Identity (G_hat = I) | Colour transfer from T | Best RGB gain (oracle: "
          "sees G) | Smooth gain field (oracle: sees G) | Envmap |") in table
  assert "### Eval (36 pairs, 4 scenes, 2 locations; 30% of pixels change light)" in table
  assert ("| Score | 1.000 [1.000, 1.000] | 1.200 [1.200, 1.200] | 1.500 [1.500, 1.500] | "
          "2.000 [2.000, 2.000] | 3.000 [3.000, 3.000] |") in table
  assert "| Change-mask Score | 1.000 [1.000, 1.000] | 1.143 [1.143, 1.143] |" in table
  assert "| Relighting correlation | 0.000 [0.000, 0.000] | 0.200 [0.200, 0.200] |" in table
  assert "bootstrap replicates over locations (all views of a drawn location together)" in table
  assert table.rstrip().endswith(
      "Resampled unit of the 95% CIs: locations (all views of a drawn location together).")
  assert "Eval[same location] keeps Eval's rule" in table


def test_old_records_still_combine_with_old_ones_but_not_with_new_ones():
  old = _record("Old", 0.03)  # no baselines, no bootstrap_unit: resampled scenes
  table = results.format_table({"Old": [old], "Older": [_record("Older", 0.04)]})
  assert "| Metric | Identity (G_hat = I) | Old | Older |" in table
  assert "Resampled unit of the 95% CIs: scenes" in table
  with pytest.raises(ValueError, match=r"different bootstrap_unit \('locations' vs 'scenes'\)"):
    results.format_table({"New": [_record_with_baselines("New", 0.02)], "Old": [old]})
