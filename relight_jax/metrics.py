"""Evaluation metrics with pinned conventions (report §3.5; DESIGN.md "Metrics").

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
"""

import dm_pix
import jax.numpy as jnp

from relight_jax import losses

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
