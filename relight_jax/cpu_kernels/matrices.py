"""The Winograd F(2 x 2, 3 x 3) and F(4 x 4, 3 x 3) transform matrices.

Shared by winograd.py (the jax.numpy transforms) and native_tiles.py, which checks that
the C++ library compiled in the same ones.
"""

import numpy as np

# Winograd transform matrices (Lavin & Gray 2016) for a 3-tap correlation:
# y = A^T [(G g G^T) * (B^T d B)] A over (m + 2) x (m + 2) input tiles d.
TRANSFORM_MATRICES = {
  2: dict(
    BT=np.array([[1, 0, -1, 0],
                 [0, 1, 1, 0],
                 [0, -1, 1, 0],
                 [0, 1, 0, -1]], np.float64),
    G=np.array([[1, 0, 0],
                [1 / 2, 1 / 2, 1 / 2],
                [1 / 2, -1 / 2, 1 / 2],
                [0, 0, 1]], np.float64),
    AT=np.array([[1, 1, 1, 0],
                 [0, 1, -1, -1]], np.float64)),
  4: dict(
    BT=np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], np.float64),
    G=np.array([[1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1]], np.float64),
    AT=np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64)),
}
