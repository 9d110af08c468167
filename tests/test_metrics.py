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


@pytest.mark.parametrize("convention", ["original", "v1"])
def test_light_estimates_of_generated_envmaps_are_exact(convention):
  # The azimuth and colour readouts of each convention give back the light it drew.
  from relight_jax.data import envmap
  from relight_jax.data import lights
  temperatures = np.repeat(np.asarray(lights.TEMPERATURES_K), 8)
  directions = np.tile(np.arange(8), 5)
  rgb, _ = envmap.batch_envmaps(temperatures, directions, convention)
  north = envmap.convention(convention).north_column
  azimuth = metrics.envmap_azimuth_deg(jnp.asarray(rgb).sum(-1), north)
  np.testing.assert_allclose(azimuth, 45.0 * directions)
  estimated = metrics.envmap_temperature_k(jnp.asarray(rgb), *envmap.palette(convention))
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


# Independent numpy references of the light-change metrics and the baselines.


def _np_linear(image):
  image = np.clip(image.astype(np.float64), 0, 1)
  return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4)


def _np_srgb(linear):
  linear = np.clip(linear, 0, 1)
  return np.where(linear <= 0.0031308, 12.92 * linear,
                  1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055)


def _np_log_y(image):
  return np.log(_np_linear(image) @ np.array([0.2126, 0.7152, 0.0722]) + 0.01)


def _np_change_score(inputs, truths, predictions):
  """Σ over pairs and changed pixels of (I - G)² / the same of (Ĝ - G)²."""
  identity = model = 0.0
  for i, g, p in zip(inputs, truths, predictions, strict=True):
    changed = np.abs(_np_log_y(g) - _np_log_y(i)) > np.log(1.5)
    identity += np.sum((i - g)[changed] ** 2)
    model += np.sum((p - g)[changed] ** 2)
  return identity / model


def _np_correlation(i, g, p):
  base = _np_log_y(i).ravel()
  predicted = (_np_log_y(p) - _np_log_y(i)).ravel()
  true = (_np_log_y(g) - _np_log_y(i)).ravel()
  # Both changes less their least-squares fit on I's log luminance (a tone curve of I).
  design = np.stack([np.ones_like(base), base], axis=1)
  predicted = predicted - design @ np.linalg.lstsq(design, predicted, rcond=None)[0]
  true = true - design @ np.linalg.lstsq(design, true, rcond=None)[0]
  if predicted.var() <= 1e-6 or true.var() <= 1e-6:
    return 0.0
  return np.corrcoef(predicted, true)[0, 1]


def _lit_scenes(size=32, seed=0):
  """(I, G): random albedos under a light that moves a hard shadow (the right third in
  shadow in I, the left third in G; the middle lit in both, 10% brighter in G),
  sRGB-encoded, float32 [2, S, S, 3]."""
  rng = np.random.default_rng(seed)
  albedo = rng.uniform(0.2, 0.8, size=(2, size, size, 3))
  column = np.arange(size)
  light_i = np.where(column >= 2 * size // 3, 0.08, 0.6)
  light_g = np.where(column < size // 3, 0.08, 0.66)
  to_image = lambda light: _np_srgb(albedo * light[None, None, :, None]).astype(np.float32)
  return to_image(light_i), to_image(light_g)


def test_change_metrics_match_numpy_references():
  rng = np.random.default_rng(4)
  inputs, truths = _lit_scenes()
  predictions = np.clip(truths + 0.1 * rng.normal(size=truths.shape), 0, 1).astype(np.float32)
  mask = metrics.change_mask(inputs, truths)
  for index in range(2):
    expected = np.abs(_np_log_y(truths[index]) - _np_log_y(inputs[index])) > np.log(1.5)
    np.testing.assert_array_equal(np.asarray(mask[index]) > 0, expected)
  terms = [jax.jit(metrics.change_mse)(truths, candidate, mask)
           for candidate in (inputs, predictions)]
  np.testing.assert_allclose(np.mean(terms[0]) / np.mean(terms[1]),
                             _np_change_score(inputs, truths, predictions), rtol=1e-4)
  correlation = jax.jit(metrics.relighting_correlation)(inputs, truths, predictions)
  for index in range(2):
    np.testing.assert_allclose(
        correlation[index], _np_correlation(inputs[index], truths[index], predictions[index]),
        atol=1e-4)
  np.testing.assert_allclose(metrics.mean_perceptual_score(0.7087, 0.1737), 0.7675, atol=1e-4)


def test_change_metrics_take_known_values():
  inputs, truths = _lit_scenes()
  mask = metrics.change_mask(inputs, truths)
  # The light moves on two thirds of the image (left and right thirds), not in the middle.
  np.testing.assert_allclose(np.mean(mask, axis=(1, 2)), 2 / 3, atol=1 / 32)
  correlation = lambda candidate: np.asarray(
      metrics.relighting_correlation(inputs, truths, candidate))
  np.testing.assert_allclose(correlation(truths), 1.0, atol=1e-5)  # identical change
  # Half the true change in log luminance: correlation is blind to the amplitude.
  half = _np_srgb(_np_linear(inputs) * np.sqrt(
      _np_linear(truths) / np.maximum(_np_linear(inputs), 1e-6))).astype(np.float32)
  assert np.all(correlation(half) > 0.99)
  # The opposite change (light moved the wrong way); no change; tone curves of I (a gain,
  # a gamma), which move no light, near 0 (ε bends a gain's log change a little).
  opposite = _np_srgb(_np_linear(inputs) ** 2 / np.maximum(_np_linear(truths), 1e-6))
  assert np.all(correlation(opposite.astype(np.float32)) < -0.9)
  np.testing.assert_array_equal(correlation(inputs), 0.0)
  for tone in (_np_srgb(0.9 * _np_linear(inputs)), _np_srgb(1.3 * _np_linear(inputs)),
               inputs ** 1.2):
    assert np.all(np.abs(correlation(tone.astype(np.float32))) < 0.1)
  # Right everywhere the light does not change, I where it does: Score > 1 but the
  # change-mask Score is exactly 1 (it only sees the changed pixels).
  elsewhere = np.where(np.asarray(mask)[..., None] > 0, inputs, truths)
  terms = [np.mean(metrics.change_mse(truths, c, mask)) for c in (inputs, elsewhere)]
  assert terms[0] / terms[1] == pytest.approx(1.0)
  assert metrics.score(inputs, truths, elsewhere).min() > 1.0
  assert np.all(metrics.change_mse(truths, truths, mask) == 0.0)


def test_gaussian_blur_is_a_normalised_weighted_mean():
  from relight_jax.evaluation import baselines
  rng = np.random.default_rng(1)
  image = rng.uniform(size=(1, 9, 11, 2)).astype(np.float32)
  sigma = 2.5
  rows, columns = np.meshgrid(np.arange(9), np.arange(11), indexing="ij")
  expected = np.zeros_like(image, np.float64)
  for y in range(9):
    for x in range(11):
      weights = np.exp(-((rows - y) ** 2 + (columns - x) ** 2) / (2 * sigma ** 2))
      expected[0, y, x] = np.tensordot(weights, image[0], axes=2) / weights.sum()
  np.testing.assert_allclose(baselines.gaussian_blur(image, sigma), expected, atol=1e-5)
  assert baselines.smooth_sigma(64) == 8.0 and baselines.smooth_sigma(256) == 32.0


def test_baselines_match_numpy_references():
  from relight_jax.evaluation import baselines
  rng = np.random.default_rng(2)
  inputs, truths = _lit_scenes(size=16, seed=2)
  targets = rng.uniform(0.1, 0.9, size=inputs.shape).astype(np.float32)
  found = jax.jit(baselines.candidates)(inputs, targets, truths)
  assert list(found) == list(baselines.PREFIXES)
  # Colour transfer: T's per-channel mean and sd imposed on I, in linear RGB.
  source, reference = _np_linear(inputs), _np_linear(targets)
  moved = ((source - source.mean((1, 2), keepdims=True)) / source.std((1, 2), keepdims=True)
           * reference.std((1, 2), keepdims=True) + reference.mean((1, 2), keepdims=True))
  np.testing.assert_allclose(found["colour_transfer/"], _np_srgb(moved), atol=2e-4)
  # Best RGB gain: the least-squares gain of every channel; no other gain does better.
  gain = np.sum(inputs * truths, (1, 2)) / np.sum(inputs ** 2, (1, 2))
  expected = np.clip(inputs * gain[:, None, None], 0, 1)
  np.testing.assert_allclose(found["oracle_gain/"], expected, atol=1e-5)
  for factor in (0.97, 1.03):
    worse = np.clip(inputs * gain[:, None, None] * factor, 0, 1)
    assert np.all(metrics.mse(truths, worse) > metrics.mse(truths, found["oracle_gain/"]))
  # Smooth gain field: I * blur(G) / blur(I) with sigma = 8 * 16 / 64 = 2 px.
  blur = lambda x: np.asarray(baselines.gaussian_blur(x, 2.0))
  expected = np.clip(inputs * (blur(truths) + 1e-3) / (blur(inputs) + 1e-3), 0, 1)
  np.testing.assert_allclose(found["oracle_smooth/"], expected, atol=1e-5)


def _gradient_and_thin_shadows(size):
  """(I, G): a broad shading gradient that turns from right-lit to left-lit (at most
  ×1.44, under the change threshold) and two thin hard shadows that move by two widths."""
  rng = np.random.default_rng(0)
  albedo = rng.uniform(0.3, 0.7, size=(2, size, size, 3))
  x = np.arange(size) / (size - 1)
  width = size // 32
  shadow_i, shadow_g = np.ones(size), np.ones(size)
  for start in (size // 4, 3 * size // 4):
    shadow_i[start:start + width] = 0.15
    shadow_g[start + 2 * width:start + 3 * width] = 0.15
  to_image = lambda light: _np_srgb(albedo * light[None, None, :, None]).astype(np.float32)
  return to_image((0.41 + 0.18 * x) * shadow_i), to_image((0.59 - 0.18 * x) * shadow_g)


def test_a_smooth_gain_earns_score_but_not_change_mask_score():
  # The oracles see G but move no sharp shadow: the smooth gain field earns a Score from
  # the broad gradient, and on the pixels whose light changes (the shadows) it does little
  # better than I; the best global gain earns about nothing, with correlation 0.
  from relight_jax.evaluation import baselines
  inputs, truths = _gradient_and_thin_shadows(64)
  found = baselines.candidates(inputs, inputs, truths)
  mask = metrics.change_mask(inputs, truths)
  np.testing.assert_allclose(np.mean(mask), 4 / 32)  # the two shadows, before and after
  score = lambda c: np.mean(metrics.mse(truths, inputs)) / np.mean(metrics.mse(truths, c))
  change_score = lambda c: (np.mean(metrics.change_mse(truths, inputs, mask))
                            / np.mean(metrics.change_mse(truths, c, mask)))
  smooth = found["oracle_smooth/"]
  assert score(smooth) > 1.2 and change_score(smooth) < 1.1
  assert change_score(found["oracle_gain/"]) < 1.05
  np.testing.assert_array_equal(metrics.relighting_correlation(inputs, truths,
                                                               found["oracle_gain/"]), 0.0)
  assert change_score(np.where(np.asarray(mask)[..., None] > 0, truths, inputs)) > 1e6
