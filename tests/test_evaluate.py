"""Table 1 formatting and the choice of contact-sheet examples."""

import numpy as np

from relight_jax import evaluate


def _summary(mse, identity_mse):
  return {"mse": mse, "psnr": 20.0, "ssim": 0.5, "score": identity_mse / mse,
          "identity/mse": identity_mse, "identity/psnr": 12.0, "identity/ssim": 0.4,
          "identity/score": 1.0, "num_pairs": 10}


def test_table_has_an_identity_column_then_one_column_per_model():
  results = {"envmap": {"eval": _summary(0.02, 0.06)},
             "ip": {"eval": _summary(0.03, 0.06), "eval_same_direction": _summary(0.01, 0.005)}}
  table = evaluate.format_table(results)
  assert "### Eval (10 pairs)" in table
  assert "| Metric | Identity (G_hat = I) | envmap | ip |" in table
  assert "| MSE | 0.0600 | 0.0200 | 0.0300 |" in table
  assert "| Score | 1.000 | 3.000 | 2.000 |" in table
  assert "Eval[d_I = d_T]" not in table  # the first model was not evaluated on it
  assert "LPIPS" not in table.split("MSE and PSNR")[0]  # no LPIPS row when not computed


def test_sheet_picks_best_median_and_worst_by_improvement():
  per_example = {"mse": np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
                 "identity/mse": np.full(5, 4.0)}
  groups, improvement = evaluate.sheet_indices(per_example, 1)
  assert [int(g[0]) for g in groups] == [0, 2, 4]
  np.testing.assert_allclose(improvement, [4, 2, 1, 0.5, 0.25])
