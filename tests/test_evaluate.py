"""The choice of contact-sheet examples (tables: tests/test_results.py)."""

import numpy as np

from relight_jax import evaluate


def test_sheet_picks_best_median_and_worst_by_improvement():
  per_example = {"mse": np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
                 "identity/mse": np.full(5, 4.0)}
  groups, improvement = evaluate.sheet_indices(per_example, 1)
  assert [int(g[0]) for g in groups] == [0, 2, 4]
  np.testing.assert_allclose(improvement, [4, 2, 1, 0.5, 0.25])
