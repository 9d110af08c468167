"""Tests of the evaluation metrics (metrics.py) against scikit-image and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
from skimage.metrics import structural_similarity

from relight_jax.evaluation import metrics


def _pair(shape, noise, seed):
  rng = np.random.default_rng(seed)
  a = rng.uniform(size=shape).astype(np.float32)
  b = np.clip(a + noise * rng.normal(size=shape), 0, 1).astype(np.float32)
  return a, b


@pytest.mark.parametrize("shape, noise", [((3, 32, 40, 3), 0.1), ((2, 64, 64, 3), 0.3),
                                          ((1, 24, 24, 3), 0.0)])
def test_ssim_and_psnr_match_scikit_image(shape, noise):
  a, b = _pair(shape, noise, seed=shape[1])
  # Smooth one image so SSIM is not trivially near 0 or 1.
  a[0] = (a[0] + np.roll(a[0], 1, axis=0)) / 2
  ssim = jax.jit(metrics.ssim)(a, b)
  assert ssim.shape == (shape[0],)
  for i in range(shape[0]):
    reference = structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1,
                                      channel_axis=-1)
    np.testing.assert_allclose(ssim[i], reference, atol=1e-4)
    np.testing.assert_allclose(metrics.dssim(a, b)[i], (1 - reference) / 2, atol=1e-4)
    if noise:
      np.testing.assert_allclose(metrics.psnr(a, b)[i],
                                 peak_signal_noise_ratio(a[i], b[i], data_range=1), atol=1e-4)


def test_mse_psnr_values():
  a = np.zeros((2, 8, 8, 3), np.float32)
  b = np.stack([np.full((8, 8, 3), 0.1), np.full((8, 8, 3), 0.5)]).astype(np.float32)
  np.testing.assert_allclose(metrics.mse(a, b), [0.01, 0.25], rtol=1e-5)
  np.testing.assert_allclose(metrics.psnr(a, b), [20.0, 10 * np.log10(4)], rtol=1e-5)


def test_score():
  rng = np.random.default_rng(0)
  input_image, ground_truth = rng.uniform(size=(2, 2, 8, 8, 3)).astype(np.float32)
  # Ĝ = I scores exactly 1 (the identity-mapping baseline).
  np.testing.assert_allclose(metrics.score(input_image, ground_truth, input_image), 1.0,
                             rtol=1e-6)
  # Ĝ halfway between I and G: ℓ2(G, Ĝ) = ℓ2(G, I) / 4, so Score = 4 (> 1: better than I).
  halfway = (input_image + ground_truth) / 2
  np.testing.assert_allclose(metrics.score(input_image, ground_truth, halfway), 4.0, rtol=1e-5)
  assert np.all(np.isfinite(metrics.score(input_image, ground_truth, ground_truth)))


def test_latent_distances():
  rng = np.random.default_rng(2)
  latents = {role: rng.normal(size=(3, 2, 2, 4)).astype(np.float32)
             for role in ("input", "target", "ground_truth", "relit")}
  distances = metrics.latent_distances(latents, "scene")
  assert len(distances) == 6 and all(v.shape == (3,) for v in distances.values())
  expected = ((latents["input"] - latents["relit"]) ** 2).reshape(3, -1).mean(-1)
  np.testing.assert_allclose(distances["scene_input_relit"], expected, rtol=1e-5)
  latents["target"] = None
  assert set(metrics.latent_distances(latents, "light")) == {
      "light_input_ground_truth", "light_input_relit", "light_ground_truth_relit"}


def test_image_metrics_jit_per_example():
  a, b = _pair((3, 32, 32, 3), 0.2, seed=5)
  result = jax.jit(metrics.image_metrics)(a, b, b)
  assert set(result) == {"mse", "psnr", "ssim", "dssim", "score", "identity_mse", "lpips"}
  assert all(v.shape == (3,) for v in result.values())
  np.testing.assert_allclose(result["ssim"], 1.0, atol=1e-5)
  np.testing.assert_allclose(result["lpips"], 0.0, atol=1e-6)
  identity = metrics.image_metrics(jnp.asarray(a), jnp.asarray(b), jnp.asarray(a),
                                   with_lpips=False)
  np.testing.assert_allclose(identity["score"], 1.0, rtol=1e-6)
  assert "lpips" not in identity


def test_light_estimates_of_generated_envmaps_are_exact():
  from relight_jax.data import envmap
  from relight_jax.data import lights
  from relight_jax.evaluation import evaluate
  temperatures = np.repeat(np.asarray(lights.TEMPERATURES_K), 8)
  directions = np.tile(np.arange(8), 5)
  rgb, _ = envmap.batch_envmaps(temperatures, directions)
  azimuth = metrics.envmap_azimuth_deg(jnp.asarray(rgb).sum(-1))
  np.testing.assert_allclose(azimuth, 45.0 * directions)
  estimated = metrics.envmap_temperature_k(jnp.asarray(rgb), *evaluate.PALETTE)
  np.testing.assert_allclose(estimated, temperatures)


def test_light_estimate_metrics():
  result = metrics.light_estimate_metrics(
      jnp.array([0.0, 350.0, 90.0]), jnp.array([22.0, 20.0, 270.0]),
      jnp.array([2500.0, 6500.0, 4500.0]), jnp.array([2500.0, 4500.0, 3500.0]))
  np.testing.assert_allclose(result["direction_error_deg"], [22.0, 30.0, 180.0], atol=1e-4)
  np.testing.assert_array_equal(result["direction_accuracy"], [1.0, 0.0, 0.0])
  np.testing.assert_allclose(result["temperature_error_k"], [0.0, 2000.0, 1000.0])
  lc = metrics.temperature_loss(jnp.array([2500.0, 6500.0, 4500.0]),
                                jnp.array([2500.0, 4500.0, 3500.0]))
  ld = metrics.direction_loss(jnp.array([0.0, 350.0, 90.0]), jnp.array([22.0, 20.0, 270.0]))
  np.testing.assert_allclose(lc, [0.0, 1.0, 0.25])
  np.testing.assert_allclose(ld, [1 - np.cos(np.radians(22.0)),
                                  1 - np.cos(np.radians(30.0)), 2.0], atol=1e-6)
