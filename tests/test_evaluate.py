"""The choice of contact-sheet examples (tables: tests/test_results.py)."""

import numpy as np

from relight_jax import evaluate


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


def test_other_splits_do_not_replace_the_test_tables(tiny_data_dir, tmp_path):
  import json

  from conftest import checkpointed_workdir
  from conftest import load_config
  checkpointed_workdir(tmp_path, 3)
  config = load_config("envmap", "smoke", **{"data.data_dir": tiny_data_dir})
  test_record, _ = evaluate.run_workdir(config, tmp_path)
  with config.unlocked():
    config.eval.split = "validation"
  validation_record, _ = evaluate.run_workdir(config, tmp_path)
  assert evaluate.load_record(tmp_path) == json.loads(json.dumps(test_record))
  assert evaluate.load_record(tmp_path, "validation")["meta"]["split"] == "validation"
  assert (tmp_path / "eval_validation" / "table.md").exists()
  assert validation_record["meta"]["split"] == "validation"
