"""The sRGB transfer function (IEC 61966-2-1) and the luminance of linear sRGB.

One definition for the metrics, the baselines, the relighting's linear-light arithmetic,
the light mixer and the transport model. Images are stored sRGB-encoded (rendered PNGs,
VIDIT's and users' photographs); light adds up in linear RGB. Each function takes NumPy
arrays (host-side photo work) or JAX arrays, tracers included, and returns the same kind,
in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np

LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)  # Y of linear sRGB (ITU-R BT.709)


def _namespace(array):
  return jnp if isinstance(array, jax.Array) else np


def to_linear(image):
  """sRGB values -> linear light, elementwise, on values clipped to [0, 1]."""
  xp = _namespace(image)
  image = xp.clip(xp.asarray(image, xp.float32), 0.0, 1.0)
  # The power's argument is kept at or above the branch point, so that its gradient stays
  # finite where the linear branch is taken (jnp.where passes the unused branch's NaN).
  curve = ((xp.maximum(image, 0.04045) + 0.055) / 1.055) ** 2.4
  return xp.where(image <= 0.04045, image / 12.92, curve)


def to_srgb(linear):
  """Linear light -> sRGB values in [0, 1], elementwise, on values clipped to [0, 1] (as
  the renderer clips)."""
  xp = _namespace(linear)
  linear = xp.clip(xp.asarray(linear, xp.float32), 0.0, 1.0)
  # Kept off 0, where the power's gradient is infinite (see to_linear).
  curve = 1.055 * xp.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055
  return xp.where(linear <= 0.0031308, 12.92 * linear, curve)
