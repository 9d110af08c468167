"""Evaluation metrics with pinned conventions (report §3.5).

Every function is per-example (returns [batch]) and jit-able, so evaluation can average
over a dataset and pick the best and worst examples. Images are float [batch, H, W, 3] in
[0, 1]. Conventions, chosen because the report's were off:
  * MSE and PSNR on [0, 1], PSNR with a peak of 1.
  * SSIM on [0, 1] with an 11x11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, the
    population covariance, averaged over the valid (unpadded) window positions and the
    channels: scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1). The report's "SSIM"
    came from kornia's ssim of the time, which returned DSSIM = (1 - SSIM) / 2.
  * LPIPS with AlexNet on images mapped to [-1, 1] (the report fed [0, 1]).
  * Score = ℓ2(G, I) / ℓ2(G, Ĝ): > 1 beats the identity mapping Ĝ = I. The report's
    text defines it so; its printed formula is the inverse.
  * Latent distances (report §3.5): mean squared difference between two latents.
  * Light estimates (report §4.1): direction error and accuracy (within ±22.5°, half a
    direction class), temperature error; Lc, Ld and Le per example; for envmaps the
    direction is the brightest column's azimuth and the temperature the palette colour
    nearest the map's.
"""

import dm_pix
import jax
import jax.numpy as jnp

from relight_jax.training import losses

# A perfect reconstruction gives ℓ2 = 0; bound Score and PSNR instead of dividing by 0.
_EPSILON = 1e-12
# Latent roles compared by the report's latent distances (§3.5): I, T, G and Ĝ.
LATENT_ROLES = ("input", "target", "ground_truth", "relit")


def _per_example_mean(x):
  return jnp.mean(x.reshape(x.shape[0], -1), axis=-1)


def mse(prediction, target):
  """Per-example mean squared error on [0, 1] images, [batch]."""
  return _per_example_mean(jnp.square(prediction.astype(jnp.float32) -
                                      target.astype(jnp.float32)))


def psnr(prediction, target):
  """Per-example PSNR in dB with a peak value of 1, [batch]."""
  return -10.0 * jnp.log10(jnp.maximum(mse(prediction, target), _EPSILON))


def ssim(prediction, target):
  """Per-example SSIM (11x11 Gaussian window, σ 1.5, data range 1), [batch].

  Matches scikit-image's structural_similarity with gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1 (tested to 1e-4).
  """
  return dm_pix.ssim(prediction.astype(jnp.float32), target.astype(jnp.float32),
                     max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)


def dssim(prediction, target):
  """(1 - SSIM) / 2, the quantity kornia's ssim returned (likely the report's "SSIM")."""
  return (1.0 - ssim(prediction, target)) / 2.0


def lpips(prediction, target):
  """Per-example LPIPS-AlexNet on images mapped to [-1, 1], [batch]."""
  return losses.lpips_distance(prediction, target, "alex")


def score(input_image, ground_truth, relit):
  """The report's Score ℓ2(G, I) / ℓ2(G, Ĝ) per example (> 1 beats Ĝ = I), [batch].

  Per-example ratios are heavy-tailed (when I ≈ G); for the dataset-level Score divide
  the dataset means of the two ℓ2 terms instead (`score_terms`).
  """
  identity_error, relit_error = score_terms(input_image, ground_truth, relit)
  return identity_error / jnp.maximum(relit_error, _EPSILON)


def score_terms(input_image, ground_truth, relit):
  """(ℓ2(G, I), ℓ2(G, Ĝ)) per example: the numerator and denominator of Score."""
  return mse(input_image, ground_truth), mse(relit, ground_truth)


def latent_distance(latent_a, latent_b):
  """Per-example ℓ2 (mean squared difference) between two latents of any shape, [batch]."""
  return mse(latent_a, latent_b)


def latent_distances(latents: dict, kind: str) -> dict:
  """The report's latent distances ℓ2(Φ_I1, Φ_I2) for I1, I2 in {I, T, G, Ĝ} (§3.5).

  Args:
    latents: role ("input", "target", "ground_truth", "relit") -> latent [batch, ...];
      roles that are missing (or None) are skipped.
    kind: "scene" or "light", used in the keys.

  Returns:
    dict "{kind}_{role_a}_{role_b}" -> [batch], one per pair of available roles.
  """
  roles = [r for r in LATENT_ROLES if latents.get(r) is not None]
  return {f"{kind}_{a}_{b}": latent_distance(latents[a], latents[b])
          for i, a in enumerate(roles) for b in roles[i + 1:]}


def image_metrics(input_image, ground_truth, relit, *, with_lpips: bool = True) -> dict:
  """All per-example image metrics of a batch (evaluation's Table 1 rows), [batch] each.

  Args:
    input_image: I, [batch, H, W, 3].
    ground_truth: G.
    relit: Ĝ (pass I to get the identity-mapping baseline row).
    with_lpips: also compute LPIPS (needs H, W >= 32).

  Returns:
    dict mse, psnr, ssim, dssim, (lpips), score, identity_mse.
  """
  identity_error, relit_error = score_terms(input_image, ground_truth, relit)
  result = {
      "mse": relit_error,
      "psnr": psnr(relit, ground_truth),
      "ssim": ssim(relit, ground_truth),
      "dssim": dssim(relit, ground_truth),
      "score": identity_error / jnp.maximum(relit_error, _EPSILON),
      "identity_mse": identity_error,
  }
  if with_lpips:
    result["lpips"] = lpips(relit, ground_truth)
  return result


# A predicted light direction counts as right within half a direction class (8 classes).
DIRECTION_TOLERANCE_DEG = 22.5


def wrapped_angle_error_deg(angle_deg, predicted_deg):
  """|angle - predicted| on the circle, in [0, 180] degrees, [batch]."""
  difference = jnp.mod(predicted_deg - angle_deg + 180.0, 360.0) - 180.0
  return jnp.abs(difference)


def envmap_azimuth_deg(brightness):
  """Azimuth of an envmap's brightest column (lights.py's convention), [batch].

  Args:
    brightness: [batch, height, width] non-negative values (e.g. an envmap's channel sum).
  """
  width = brightness.shape[-1]
  column = jnp.argmax(jnp.sum(brightness, axis=1), axis=-1)
  return column.astype(jnp.float32) * (360.0 / width)


def envmap_temperature_k(envmap_rgb, palette_rgb, palette_k):
  """The palette temperature whose light colour is nearest the envmap's mean colour, [batch].

  Args:
    envmap_rgb: [batch, height, width, 3] non-negative.
    palette_rgb: [n, 3] light colours, largest channel 1 (`envmap.light_rgb`).
    palette_k: [n] their temperatures in kelvin.
  """
  colour = jnp.sum(envmap_rgb.astype(jnp.float32), axis=(1, 2))
  colour = colour / jnp.maximum(jnp.max(colour, axis=-1, keepdims=True), _EPSILON)
  distance = jnp.sum(jnp.square(colour[:, None, :] - jnp.asarray(palette_rgb)[None]), -1)
  # A one-hot product, not a gather: gathering from a constant with a batch sharded on
  # 'data' does not trace here.
  nearest = jax.nn.one_hot(jnp.argmin(distance, axis=-1), len(palette_k))
  return nearest @ jnp.asarray(palette_k, jnp.float32)


def light_estimate_metrics(direction_deg, predicted_direction_deg, temperature_k,
                           predicted_temperature_k):
  """How well a light was estimated, per example: the report's §4.1 measurements.

  Returns:
    dict "direction_error_deg", "direction_accuracy" (1 within DIRECTION_TOLERANCE_DEG),
    "temperature_error_k" (absolute), [batch] each.
  """
  error = wrapped_angle_error_deg(direction_deg, predicted_direction_deg)
  return {
      "direction_error_deg": error,
      "direction_accuracy": (error <= DIRECTION_TOLERANCE_DEG).astype(jnp.float32),
      "temperature_error_k": jnp.abs(predicted_temperature_k - temperature_k),
  }


# The training losses per example (each example a batch of one): Ld (eq. 1), Lc and Le
# (eq. 2) as the models are trained with them, [batch] each.
direction_loss = jax.vmap(losses.direction_loss)
temperature_loss = jax.vmap(losses.temperature_loss)
envmap_error = jax.vmap(losses.log_l2)
