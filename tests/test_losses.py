"""Tests of the report's losses (losses.py): values against closed forms and LPIPS sanity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from relight_jax.training import losses


@pytest.mark.parametrize("d, d_hat, expected", [
    (0.0, 0.0, 0.0), (135.0, 135.0, 0.0), (0.0, 180.0, 2.0), (90.0, -90.0, 2.0),
    (315.0, 45.0, 1.0), (350.0, 10.0, 1.0 - np.cos(np.radians(20.0)))])
def test_direction_loss(d, d_hat, expected):
  """Ld (eq. 1): 0 for equal angles, 2 for opposite, periodic over 360 deg."""
  value = losses.direction_loss(jnp.array([d]), jnp.array([d_hat]))
  np.testing.assert_allclose(value, expected, atol=1e-6)


def test_temperature_loss():
  """Lc = (c - ĉ)² / 2000²: a 2000 K error costs 1."""
  value = losses.temperature_loss(jnp.array([2500.0, 6500.0]), jnp.array([4500.0, 6500.0]))
  np.testing.assert_allclose(value, 0.5, rtol=1e-6)


def test_l1_l2_log_l2_against_numpy():
  rng = np.random.default_rng(0)
  a, b = rng.uniform(size=(2, 3, 4, 3)), rng.uniform(size=(2, 3, 4, 3))
  np.testing.assert_allclose(losses.l1(a, b), np.abs(a - b).mean(), rtol=1e-6)
  np.testing.assert_allclose(losses.l2(a, b), ((a - b) ** 2).mean(), rtol=1e-6)
  np.testing.assert_allclose(losses.log_l2(a, b), ((np.log(1 + a) - np.log(1 + b)) ** 2).mean(),
                             rtol=1e-5)


def test_hsv_envmap_losses():
  predicted = jnp.concatenate([jnp.array([[0.95, 0.5]]), jnp.full((1, 512), 1.0)], axis=1)
  target = jnp.concatenate([jnp.array([[0.05, 0.25]]), jnp.zeros((1, 512))], axis=1)
  terms = losses.hsv_envmap_losses(predicted, target, 1.0)
  # In 0..255 units (the envmaps'), hue and saturation are compared in turns and [0, 1].
  scaled = losses.hsv_envmap_losses(predicted.at[:, :2].multiply(255.0),
                                    target.at[:, :2].multiply(255.0), 255.0)
  np.testing.assert_allclose(scaled["hue"], terms["hue"], rtol=1e-5)
  np.testing.assert_allclose(scaled["saturation"], terms["saturation"], rtol=1e-5)
  # Hue wraps around: 0.95 and 0.05 turns are 0.1 turn apart.
  np.testing.assert_allclose(terms["hue"], 1 - np.cos(2 * np.pi * 0.1), rtol=1e-5)
  np.testing.assert_allclose(terms["saturation"], 0.0625, rtol=1e-6)
  np.testing.assert_allclose(terms["value"], np.log(2.0) ** 2, rtol=1e-5)


def test_lsgan_losses():
  ones, zeros = jnp.ones((2, 6, 6, 1)), jnp.zeros((2, 6, 6, 1))
  assert float(losses.lsgan_discriminator_loss(ones, zeros)) == 0.0
  assert float(losses.lsgan_discriminator_loss(zeros, ones)) == 2.0
  assert float(losses.lsgan_generator_loss(ones)) == 0.0
  np.testing.assert_allclose(losses.lsgan_generator_loss(jnp.full((1, 2, 2, 1), 0.5)), 0.25)


def test_latent_losses():
  rng = np.random.default_rng(1)
  a, b, c = (rng.normal(size=(2, 4, 4, 5)) for _ in range(3))
  mse = lambda x, y: ((x - y) ** 2).mean()
  expected = (mse(a, b) + mse(a, c) + mse(c, b)) / 3
  np.testing.assert_allclose(losses.latent_loss(a, b, c), expected, rtol=1e-5)
  assert float(losses.latent_loss(a, a, a)) == 0.0
  np.testing.assert_allclose(losses.latent_loss_with_reference(a, b, c, b, c),
                             expected / mse(b, c), rtol=1e-5)


def _structured_image(size=64, seed=0):
  """A textured test image: smooth colour field + blocks + thin lines, in [0, 1]."""
  rng = np.random.default_rng(seed)
  field = ndimage.gaussian_filter(rng.uniform(size=(size, size, 3)), (4, 4, 0))
  field = (field - field.min()) / (field.max() - field.min())
  yy, xx = np.mgrid[:size, :size]
  blocks = (((yy // 8) + (xx // 8)) % 2)[..., None] * 0.5
  lines = ((xx % 5) == 0)[..., None] * 0.3
  return np.clip(0.4 * field + blocks + lines, 0, 1).astype(np.float32)[None]


def test_lpips_identity_symmetry_and_ranking():
  image = _structured_image()
  shifted = np.roll(image, 1, axis=2)
  blurred = ndimage.gaussian_filter(image, (0, 2, 2, 0)).astype(np.float32)
  lpips = jax.jit(losses.lpips_distance)
  assert lpips(image, image).shape == (1,)
  np.testing.assert_allclose(lpips(image, image), 0.0, atol=1e-6)
  np.testing.assert_allclose(lpips(image, blurred), lpips(blurred, image), rtol=1e-5)
  assert float(lpips(image, blurred)[0]) > float(lpips(image, shifted)[0]) > 0.0


def test_lpips_maps_inputs_to_signed_range():
  """The [0, 1] -> [-1, 1] mapping (the original fed [0, 1], a bug we fix)."""
  module, params = losses.lpips_network("alex")
  a, b = _structured_image(32, 1), _structured_image(32, 2)
  direct = module.apply({"params": params}, 2 * a - 1, 2 * b - 1).reshape(-1)
  np.testing.assert_allclose(losses.lpips_distance(a, b), direct, rtol=1e-5)
  unmapped = module.apply({"params": params}, a, b).reshape(-1)
  assert not np.allclose(direct, unmapped, rtol=1e-3)


def test_lpips_vgg_and_gradient():
  a, b = _structured_image(32, 3), _structured_image(32, 4)
  np.testing.assert_allclose(losses.lpips_distance(a, a, "vgg"), 0.0, atol=1e-6)
  assert float(losses.lpips_distance(a, b, "vgg")[0]) > 0.0
  grad = jax.grad(lambda x: losses.lpips_loss(x, b))(a)
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_lpips_bad_net_raises():
  with pytest.raises(ValueError, match="alex"):
    losses.lpips_network("squeeze")
