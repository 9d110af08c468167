"""The choice of contact-sheet examples (tables: tests/test_results.py)."""

import numpy as np
import pytest

from relight_jax.evaluation import evaluate
from relight_jax.training import checkpointing


def test_sheet_picks_best_median_and_worst_by_improvement():
  per_example = {"mse": np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
                 "identity/mse": np.full(5, 4.0)}
  groups, improvement = evaluate.sheet_indices(per_example, 1)
  assert [int(g[0]) for g in groups] == [0, 2, 4]
  np.testing.assert_allclose(improvement, [4, 2, 1, 0.5, 0.25])


def _write_record(workdir, **meta):
  import json

  from test_results import _record
  (workdir / "eval").mkdir(parents=True)
  (workdir / "eval" / "metrics.json").write_text(json.dumps(_record(workdir.name, 0.02, **meta)))


def test_combine_command_writes_one_table_and_refuses_other_evaluations(tmp_path):
  import subprocess
  import sys
  for name, split in (("envmap", "test"), ("ip", "test"), ("tuned", "validation")):
    _write_record(tmp_path / name, split=split)
  (tmp_path / "old" / "eval").mkdir(parents=True)
  (tmp_path / "old" / "eval" / "metrics.json").write_text('{"eval": {"mse": 0.1}}')
  command = [sys.executable, "-m", "relight_jax.evaluate", f"--output={tmp_path / 'table.md'}"]
  combined = subprocess.run(command + [f"--workdir={tmp_path / 'envmap'}",
                                       f"--workdir={tmp_path / 'ip'}"],
                            capture_output=True, text=True)
  assert combined.returncode == 0, combined.stderr
  assert "| Metric | Identity (G_hat = I) | envmap | ip |" in (tmp_path / "table.md").read_text()
  refused = subprocess.run(command + [f"--workdir={tmp_path / 'envmap'}",
                                      f"--workdir={tmp_path / 'tuned'}"],
                           capture_output=True, text=True)
  assert refused.returncode != 0
  assert "different split ('test' vs 'validation')" in refused.stderr
  old = subprocess.run(command + [f"--workdir={tmp_path / 'old'}"], capture_output=True,
                       text=True)
  assert old.returncode != 0 and "not an evaluation record of this version" in old.stderr


def _write_per_example(workdir, pairs, mse):
  evaluate.write_per_example(workdir / "eval", {"eval": (pairs, {
      "mse": mse, "identity/mse": np.full(len(pairs), 0.06)})})


def _combine(tmp_path, *names):
  import subprocess
  import sys
  return subprocess.run(
      [sys.executable, "-m", "relight_jax.evaluate", f"--output={tmp_path / 'table.md'}"]
      + [f"--workdir={tmp_path / name}" for name in names], capture_output=True, text=True)


def test_combining_models_evaluated_on_the_same_pairs_compares_them_paired(tmp_path):
  from test_results import _pairs
  pairs = _pairs(4)
  rng = np.random.default_rng(0)
  mse = 0.03 * np.exp(rng.normal(0.0, 0.3, len(pairs)))
  for name in ("envmap", "shadow", "other_pairs", "old"):
    _write_record(tmp_path / name)
  _write_per_example(tmp_path / "envmap", pairs, mse)
  _write_per_example(tmp_path / "shadow", pairs, mse / 2)
  _write_per_example(tmp_path / "other_pairs", pairs[::-1], mse / 2)
  combined = _combine(tmp_path, "envmap", "shadow")
  assert combined.returncode == 0, combined.stderr
  assert "| Score / envmap (paired) | – | 1 | 2.000 [2.000, 2.000] |" in combined.stdout
  refused = _combine(tmp_path, "envmap", "other_pairs")
  assert refused.returncode != 0 and "relit different pairs" in refused.stderr
  unpaired = _combine(tmp_path, "envmap", "old")  # evaluated before per_example.npz
  assert unpaired.returncode == 0 and "(paired)" not in unpaired.stdout
  assert "No paired comparison" in unpaired.stderr and "old" in unpaired.stderr
  (tmp_path / "old" / "eval" / evaluate.PER_EXAMPLE_FILE).write_bytes(b"truncated")
  broken = _combine(tmp_path, "envmap", "old")
  assert broken.returncode != 0 and "not a readable per-example record" in broken.stderr


def _seed_workdirs(tmp_path, name, pairs, mses):
  """Workdirs seed<k>/<name> of one model's training seeds, each evaluated on `pairs`."""
  workdirs = []
  for seed, mse in enumerate(mses):
    workdir = tmp_path / f"seed{seed}" / name
    _write_record(workdir, seed=seed)
    _write_per_example(workdir, pairs, mse)
    workdirs.append(workdir)
  return workdirs


def test_combining_seeds_of_each_model_resamples_them_in_the_paired_ratio(tmp_path):
  import re

  from test_results import _pairs

  from relight_jax.evaluation import results
  pairs = _pairs(4)
  rng = np.random.default_rng(0)
  mse = 0.03 * np.exp(rng.normal(0.0, 0.3, len(pairs)))
  envmap_mse = [mse * factor for factor in (0.95, 1.0, 1.05)]
  shadow_mse = [mse / 2 * factor for factor in (0.9, 1.0, 1.1)]
  envmap = _seed_workdirs(tmp_path, "envmap", pairs, envmap_mse)
  shadow = _seed_workdirs(tmp_path, "shadow", pairs, shadow_mse)
  table = evaluate.combine_workdirs([*envmap, *shadow])
  # per_example.npz stores float32; the record's bootstrap: 100 replicates over scenes.
  expected = results.score_ratio_seeds(np.float32(envmap_mse), np.float32(shadow_mse), pairs,
                                       4, samples=100, seed=0)
  low, high = expected["ci95"]
  assert (f"| Score / envmap (paired) | – | 1 | {expected['mean']:.3f} [{low:.3f}, "
          f"{high:.3f}] (3 vs 3 seeds) |") in table
  assert low < 2.0 < high and high - low > 0.1  # the seeds' spread, not only the scenes'
  assert "seed 0: 100 steps, seed 1: 100 steps, seed 2: 100 steps" in table
  assert results.PAIRED_SEEDS_NOTE in table
  # One seed of the reference against three of the model.
  assert "(3 vs 1 seeds)" in evaluate.combine_workdirs([envmap[0], *shadow])
  # A seed evaluated on other pairs is refused, naming its workdir.
  stray = _seed_workdirs(tmp_path / "stray", "shadow", pairs[::-1], shadow_mse[:1])[0]
  with pytest.raises(ValueError, match=re.escape(f"cannot pair {stray} with {envmap[0]}: "
                                                 "their Eval evaluations relit different")):
    evaluate.combine_workdirs([*envmap, *shadow, stray])
  stray_reference = _seed_workdirs(tmp_path / "stray", "envmap", pairs[::-1], envmap_mse[:1])[0]
  with pytest.raises(ValueError, match=re.escape(f"cannot pair {stray_reference} with")):
    evaluate.combine_workdirs([*envmap, stray_reference, *shadow])


def test_reproduce_pairs_every_model_with_the_first_over_its_seeds(tmp_path):
  import json

  from test_results import _pairs

  from relight_jax import reproduce
  pairs = _pairs(4)
  mse = np.full(len(pairs), 0.03)
  workdirs = {"envmap": _seed_workdirs(tmp_path, "envmap", pairs, [mse, mse * 1.1]),
              "illumination_predictor": _seed_workdirs(tmp_path, "ip", pairs,
                                                       [mse / 2, mse / 2.2])}
  columns = {model: [json.loads((workdir / "eval" / "metrics.json").read_text())
                     for workdir in workdirs[model]] for model in workdirs}
  paired = reproduce._paired(columns, workdirs)
  ratio = paired["eval"][reproduce.LABELS["illumination_predictor"]]
  assert (ratio["reference_seeds"], ratio["model_seeds"]) == (2, 2)
  assert ratio["mean"] == pytest.approx(2.1 / (1 / 2 + 1 / 2.2), rel=1e-5)
  assert reproduce._paired({"envmap": columns["envmap"]}, workdirs) is None
  (workdirs["envmap"][1] / "eval" / evaluate.PER_EXAMPLE_FILE).unlink()
  assert reproduce._paired(columns, workdirs) is None


def test_other_splits_do_not_replace_the_test_tables(evaluated_workdir, tiny_data_dir,
                                                     tmp_path):
  import json
  import shutil

  from conftest import load_config
  workdir = tmp_path / "run"
  shutil.copytree(evaluated_workdir, workdir)
  test_record = evaluate.load_record(workdir)
  config = load_config("envmap", "smoke", **{"data.data_dir": tiny_data_dir,
                                             "eval.split": "validation"})
  validation_record, _ = evaluate.run_workdir(config, workdir)
  assert evaluate.load_record(workdir) == json.loads(json.dumps(test_record))
  assert evaluate.load_record(workdir, "validation")["meta"]["split"] == "validation"
  assert (workdir / "eval_validation" / "table.md").exists()
  assert validation_record["meta"]["split"] == "validation"


@pytest.fixture(scope="module")
def evaluated_workdir(tiny_data_dir, tmp_path_factory):
  """A smoke workdir (checkpoint of step 3) evaluated by --mode=evaluate without --config."""
  from conftest import checkpointed_workdir
  from conftest import load_config

  from relight_jax import main
  workdir = tmp_path_factory.mktemp("evaluated")
  checkpointed_workdir(workdir, 3)
  # As training writes it: the data_dir the run used, here the tiny dataset's.
  checkpointing.save_config(load_config("envmap", "smoke", **{"data.data_dir": tiny_data_dir}),
                            workdir / checkpointing.CONFIG_FILE)
  main.run("evaluate", None, workdir)
  return workdir


def test_evaluate_mode_without_config_uses_the_workdirs(evaluated_workdir):
  assert evaluate.load_record(evaluated_workdir)["meta"]["split"] == "test"
  assert (evaluated_workdir / "eval" / "table.md").exists()
  assert (evaluated_workdir / "eval" / "sheet_eval.png").exists()


def test_the_evaluation_keeps_its_per_example_metrics(evaluated_workdir):
  record = evaluate.load_record(evaluated_workdir)
  per_example = evaluate.load_per_example(evaluated_workdir)
  assert set(per_example) == set(record["subsets"])
  for subset, (pairs, values) in per_example.items():
    summary = record["subsets"][subset]
    assert pairs.shape == (summary["num_pairs"], 4)
    assert values["mse"].mean() == pytest.approx(summary["metrics"]["mse"]["mean"], rel=1e-5)
    assert set(values) >= {"mse", "identity/mse", "psnr", "ssim"}
    for prefix in ("", "identity/", "colour_transfer/", "oracle_gain/", "oracle_smooth/"):
      assert {prefix + key for key in ("mse", "change_mse", "relighting_correlation")} <= set(
          values)
      assert prefix + "score" in summary["metrics"]
    assert np.all(values["identity/relighting_correlation"] == 0.0)


def test_the_evaluation_knows_the_splits_locations(evaluated_workdir):
  # synthetic_tiny's test split: one location of two views.
  record = evaluate.load_record(evaluated_workdir)
  assert record["meta"]["bootstrap_unit"] == "locations"
  assert len(set(record["meta"]["scene_locations"])) == 1
  assert "eval_same_location" in record["subsets"]
  assert record["subsets"]["eval"]["num_locations"] == 1
  table = (evaluated_workdir / "eval" / "table.md").read_text()
  assert "### Eval[same location]" in table and "(oracle: sees G)" in table


def test_the_evaluation_goes_to_tensorboard(evaluated_workdir):
  from tensorboard.backend.event_processing import event_accumulator
  accumulator = event_accumulator.EventAccumulator(
      str(evaluated_workdir), size_guidance={event_accumulator.TENSORS: 0,
                                             event_accumulator.IMAGES: 0,
                                             event_accumulator.SCALARS: 0})
  accumulator.Reload()
  tags = accumulator.Tags()
  record = evaluate.load_record(evaluated_workdir)
  assert "final_test/table" in tags["tensors"]
  for subset in record["subsets"]:
    for key in ("score", "relighting_correlation", "oracle_smooth/score"):
      assert f"final_test/{subset}/{key}" in tags["tensors"] + tags["scalars"]
    assert f"final_test/sheet_{subset}" in tags["tensors"] + tags["images"]
  # (Eval[d_I = d_T] changes the light's colour only: no pixel's light changes by x1.5,
  # so it has no change-mask Score.)
  assert "final_test/eval/change_score" in tags["tensors"] + tags["scalars"]
  (text,) = accumulator.Tensors("final_test/table")
  assert text.step == record["meta"]["steps"]  # the evaluated train state's
  table = text.tensor_proto.string_val[0].decode()
  assert table == (evaluated_workdir / "eval" / "table.md").read_text()
  assert "| Metric | Identity (G_hat = I) |" in table


def test_evaluate_mode_refuses_a_config_of_another_model(tmp_path):
  from conftest import load_config

  from relight_jax import main
  checkpointing.save_config(load_config("envmap", "smoke"), tmp_path / checkpointing.CONFIG_FILE)
  other = load_config("envmap", "smoke", **{"model.width": 0.25})
  with pytest.raises(SystemExit, match=r"^error: --config's model differs .*"
                     r"model\.width=0\.25 \(the workdir's: 0\.125\)") as refused:
    main.run("evaluate", other, tmp_path)
  assert "\n" not in str(refused.value.code)
  with pytest.raises(SystemExit, match=r"^error: no config at .*config\.json"):
    main.run("evaluate", None, tmp_path / "empty")
  broken = load_config("envmap", "smoke", **{"train.learning_rate": float("nan")})
  checkpointing.save_config(broken, tmp_path / checkpointing.CONFIG_FILE)
  with pytest.raises(SystemExit, match=r"config\.json: config train\.learning_rate=nan"):
    main.run("evaluate", None, tmp_path)


def test_training_modes_require_config(tmp_path):
  import subprocess
  import sys
  completed = subprocess.run(
      [sys.executable, "-m", "relight_jax.main", f"--workdir={tmp_path / 'run'}", "--mode=train"],
      capture_output=True, text=True, timeout=120, check=False)
  assert completed.returncode == 1
  assert completed.stderr.strip().splitlines()[-1].startswith(
      "error: --config is required for --mode=train")
  assert not (tmp_path / "run").exists()


def test_evaluations_of_other_datasets_get_their_own_folder(tmp_path):
  assert evaluate.results_dir(tmp_path) == tmp_path / "eval"
  assert evaluate.results_dir(tmp_path, "validation") == tmp_path / "eval_validation"
  assert (evaluate.results_dir(tmp_path, "test", "vidit/synthetic_v2_eval")
          == tmp_path / "eval_synthetic_v2_eval_test")
  # Its TensorBoard tags are named as its folder: no tag of the test evaluation is reused.
  assert evaluate.summary_prefix("test") == "final_test"
  assert (evaluate.summary_prefix("test", "vidit/synthetic_v2_eval")
          == "final_synthetic_v2_eval_test")
  # The hint is a command that works: overrides of an evaluation need --config.
  with pytest.raises(FileNotFoundError,
                     match=r"--config=\.\.\. --config.eval.data=vidit/synthetic_v2_eval first"):
    evaluate.load_record(tmp_path, "test", "vidit/synthetic_v2_eval")
