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
  * Score = ℓ2(G, I) / ℓ2(G, Ĝ): > 1 beats the identity mapping Ĝ = I. This is the
    original code's (`train.py`: MSE(I, G) / MSE(Ĝ, G)) and §4.1's reading ("better than
    the identity mapping" above 1); the report's printed formula (§3.5) is its inverse,
    ℓ2(G, Ĝ) / ℓ2(G, I). Over a set it is the ratio of the sums (equivalently of the
    means) of the two ℓ2 terms over the pairs; the original averaged per-batch ratios.
  * MPS = ½ (SSIM + 1 − LPIPS), NTIRE 2021's ranking score (challenge report, arXiv
    2104.13365), per pair; computed where LPIPS is.
  * Luminance Y: the Rec. 709 weights (0.2126, 0.7152, 0.0722) of the *linear* RGB, the
    images' sRGB encoding undone, so that a ratio of Ys is a ratio of light.
  * Change-mask Score: Score restricted to the pixels whose light changes between I and G,
    the mask M = |log(Y_G + ε) − log(Y_I + ε)| > log(1.5) with ε = 0.01 (CHANGE_EPSILON,
    CHANGE_THRESHOLD). Over a set: Σ_pairs Σ_{M, channels} (I − G)² / Σ_pairs Σ_{M, channels}
    (Ĝ − G)², the ratio of the sums over every changed pixel of every pair, so a pair with
    no changed pixel adds nothing to either sum. Per pair, `change_mse` is the masked sum
    divided by the image's H·W·3 values (its mean over pairs is the pooled sum / (N H W 3)).
  * Relighting correlation: per pair, the Pearson correlation over pixels of the predicted
    change log(Y_Ĝ + ε) − log(Y_I + ε) with the true change log(Y_G + ε) − log(Y_I + ε),
    each first stripped of its least-squares fit a + b · log(Y_I + ε): the part a tone
    curve of I (a gain, a gamma, a contrast change) could produce. Without that step a
    global gain scores about ±0.8 on hard shadows, because the true change anticorrelates
    with I's brightness (I's shadows light up, its lit parts fall in shadow) and ε makes
    a gain's log change depend on the brightness. 1 when the change lands where it
    should. When either residual is constant over the image (variance below
    CORRELATION_MIN_VARIANCE: the identity, a global gain without ε's bend) it is 0: such
    a change says nothing about where the light moves.
  * Latent distances (report §3.5): mean squared difference between two latents.
  * Light estimates (report §4.1): direction error and accuracy (within ±22.5°, half a
    direction class), temperature error; Lc, Ld and Le per example; for envmaps the
    direction is the brightest column's azimuth and the temperature the palette colour
    nearest the map's.
"""

import dm_pix
import jax
import jax.numpy as jnp

from relight_jax.common import srgb
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


# Images are stored sRGB-encoded (rendered PNGs, VIDIT's photographs): light adds up in
# linear RGB, where a luminance ratio is a ratio of light (common/srgb.py).
# ε of the log luminance: about sRGB 25/255. A one-step 8-bit change near black is a large
# ratio of tiny values; ε keeps such quantisation and render noise out of the change mask
# (0 -> 10/255 moves log(Y + ε) by 0.27 < log 1.5), while a shadow edge (Y 0.3 -> 0.03)
# moves it by 2.1.
CHANGE_EPSILON = 0.01
# A pixel's light changes when its luminance rises or falls by more than half (×1.5 or
# ×1/1.5): above the renders' noise and what a temperature swap alone does (the
# renderer's lights have equal luminance, render/illumination.py, so only coloured
# surfaces' Y moves), below a cast shadow's contrast (×3 and more).
CHANGE_THRESHOLD = 0.4054651  # log(1.5)
# Changes whose variance over the image is below this count as constant (correlation 0).
CORRELATION_MIN_VARIANCE = 1e-6


def luminance(image):
  """Relative luminance Y of sRGB-encoded images [batch, H, W, 3], [batch, H, W]."""
  return srgb.to_linear(jnp.asarray(image)) @ jnp.asarray(srgb.LUMINANCE_WEIGHTS, jnp.float32)


def log_luminance(image):
  """log(Y + CHANGE_EPSILON), [batch, H, W]."""
  return jnp.log(luminance(image) + CHANGE_EPSILON)


def change_mask(input_image, ground_truth):
  """1 where the light changes between I and G (|Δ log Y| > CHANGE_THRESHOLD), [b, H, W]."""
  change = log_luminance(ground_truth) - log_luminance(input_image)
  return (jnp.abs(change) > CHANGE_THRESHOLD).astype(jnp.float32)


def change_mse(ground_truth, candidate, mask):
  """Squared error on the changed pixels, summed, over the image's H·W·3 values, [batch].

  Args:
    ground_truth: G, [batch, H, W, 3].
    candidate: Ĝ (or I for the change-mask Score's numerator).
    mask: `change_mask`, [batch, H, W].
  """
  error = jnp.square(candidate.astype(jnp.float32) - ground_truth.astype(jnp.float32))
  return _per_example_mean(error * mask[..., None])


def _tone_residual(change, base):
  """`change` [b, n] less its least-squares fit a + b · base (base centred, [b, n])."""
  change = change - jnp.mean(change, axis=-1, keepdims=True)
  base_variance = jnp.mean(jnp.square(base), axis=-1, keepdims=True)
  slope = jnp.where(base_variance > 0,
                    jnp.mean(change * base, axis=-1, keepdims=True)
                    / jnp.where(base_variance > 0, base_variance, 1.0), 0.0)
  return change - slope * base


def relighting_correlation(input_image, ground_truth, relit):
  """Correlation of the predicted and true log-luminance changes beyond a tone curve of I.

  See the module docstring; 0 where either residual change is constant, [batch].
  """
  base = log_luminance(input_image)
  predicted = (log_luminance(relit) - base).reshape(base.shape[0], -1)
  true = (log_luminance(ground_truth) - base).reshape(base.shape[0], -1)
  base = base.reshape(base.shape[0], -1)
  base = base - jnp.mean(base, axis=-1, keepdims=True)
  predicted = _tone_residual(predicted, base)
  true = _tone_residual(true, base)
  variance_predicted = jnp.mean(jnp.square(predicted), axis=-1)
  variance_true = jnp.mean(jnp.square(true), axis=-1)
  covariance = jnp.mean(predicted * true, axis=-1)
  varies = ((variance_predicted > CORRELATION_MIN_VARIANCE)
            & (variance_true > CORRELATION_MIN_VARIANCE))
  denominator = jnp.sqrt(jnp.where(varies, variance_predicted * variance_true, 1.0))
  return jnp.where(varies, covariance / denominator, 0.0)


def mean_perceptual_score(ssim_value, lpips_value):
  """MPS = ½ (SSIM + 1 − LPIPS), NTIRE 2021's ranking score (arXiv 2104.13365)."""
  return 0.5 * (ssim_value + (1.0 - lpips_value))


def candidate_metrics(input_image, ground_truth, candidate, mask, *, with_lpips):
  """Every per-example image metric of one candidate Ĝ (a model's, a baseline's), [batch].

  Args:
    input_image: I, [batch, H, W, 3] in [0, 1].
    ground_truth: G.
    candidate: Ĝ.
    mask: `change_mask(input_image, ground_truth)`, shared by all candidates.
    with_lpips: also LPIPS and MPS (needs H, W >= 32).

  Returns:
    dict mse, psnr, ssim, dssim, change_mse, relighting_correlation, (lpips, mps).
  """
  result = {"mse": mse(ground_truth, candidate), "psnr": psnr(ground_truth, candidate),
            "ssim": ssim(ground_truth, candidate)}
  result["dssim"] = (1.0 - result["ssim"]) / 2.0
  result["change_mse"] = change_mse(ground_truth, candidate, mask)
  result["relighting_correlation"] = relighting_correlation(input_image, ground_truth,
                                                            candidate)
  if with_lpips:
    result["lpips"] = lpips(ground_truth, candidate)
    result["mps"] = mean_perceptual_score(result["ssim"], result["lpips"])
  return result


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


def envmap_azimuth_deg(brightness, north_column=0.0):
  """Azimuth of an envmap's brightest column (lights.py's convention), [batch], in [0, 360).

  Args:
    brightness: [batch, height, width] non-negative values (e.g. an envmap's channel sum).
    north_column: the column of azimuth 0 as a fraction of the width, the envmap
      convention's (`envmap.CONVENTIONS[...].north_column`); azimuth grows with the column.
  """
  width = brightness.shape[-1]
  column = jnp.argmax(jnp.sum(brightness, axis=1), axis=-1).astype(jnp.float32)
  return jnp.mod(column - north_column * width, width) * (360.0 / width)


def envmap_temperature_k(envmap_rgb, palette_rgb, palette_k):
  """The palette temperature whose light colour is nearest the envmap's mean colour, [batch].

  Args:
    envmap_rgb: [batch, height, width, 3] non-negative.
    palette_rgb: [n, 3] light colours, largest channel 1 (`envmap.palette`).
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
