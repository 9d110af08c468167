"""Baselines and oracles that every evaluation scores next to the model (jit-able).

A Score above 1 can be earned by tone alone: the right overall brightness and colour,
with no shadow moved. These candidates Ĝ show how much, on the same pairs and with the
same metrics as the model:

  identity         Ĝ = I (the Score's reference; computed by the eval step itself).
  colour_transfer  I with T's per-channel mean and standard deviation (Reinhard et al.,
                   "Color transfer between images", 2001), in linear RGB: a change of the
                   light's intensity and colour temperature acts on each linear channel as
                   a gain (von Kries), so matching T's statistics there is what a global
                   light change would do. It never sees G: a baseline a model must beat.
  oracle_gain      (oracle: sees G) the per-channel gain g_c = Σ I_c G_c / Σ I_c² that
                   minimises ‖g_c I_c − G_c‖², on the stored (sRGB) values the metrics
                   read: the best any global RGB gain can do.
  oracle_smooth    (oracle: sees G) I · blur(G) / blur(I), a Gaussian blur of σ = 8 px at
                   64 px (σ = 8 S / 64 at S px): the right low-frequency light everywhere,
                   no sharp shadow moved.

Every candidate is clipped to [0, 1], the range of the images it is compared with
(clipping can only bring it nearer G there).
"""

import jax.numpy as jnp

from relight_jax.common import srgb

# σ of the smooth gain field's blur at 64 px; it scales with the image side.
SMOOTH_SIGMA_AT_64 = 8.0
# Keeps the smooth oracle's ratio finite where I (or G) is black.
_SMOOTH_EPSILON = 1e-3
# Keeps the colour transfer finite on a flat input channel.
_STD_EPSILON = 1e-3
# Prefixes of the candidates' metrics, in table order; ORACLES see G.
PREFIXES = ("colour_transfer/", "oracle_gain/", "oracle_smooth/")
ORACLES = ("oracle_gain/", "oracle_smooth/")


def smooth_sigma(size):
  """The smooth oracle's blur σ in pixels at an image side of `size` px."""
  return SMOOTH_SIGMA_AT_64 * size / 64.0


def _blur_matrix(size, sigma):
  # Row i holds the Gaussian weights of every pixel j of the line, normalised to sum 1:
  # each output is a weighted mean of the pixels inside the image (no padding values),
  # with no truncation of the kernel.
  positions = jnp.arange(size, dtype=jnp.float32)
  weights = jnp.exp(-0.5 * jnp.square((positions[:, None] - positions[None]) / sigma))
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def gaussian_blur(image, sigma):
  """Normalised Gaussian blur of [batch, H, W, C] images: every output pixel is the
  Gaussian-weighted mean (σ in pixels) of the image's own pixels.

  A separable product of two [S, S] matrices (no truncation, exact at the borders); at
  256 px that is 2 x 256³ multiply-adds per channel, less than a model's forward pass.
  """
  rows = _blur_matrix(image.shape[1], sigma)
  columns = _blur_matrix(image.shape[2], sigma)
  return jnp.einsum("ij,bjkc,lk->bilc", rows, image.astype(jnp.float32), columns)


def colour_transfer(input_image, target_image):
  """I with T's per-channel mean and standard deviation in linear RGB, [batch, H, W, 3]."""
  source = srgb.to_linear(jnp.asarray(input_image))
  reference = srgb.to_linear(jnp.asarray(target_image))
  source_mean = jnp.mean(source, axis=(1, 2), keepdims=True)
  source_std = jnp.std(source, axis=(1, 2), keepdims=True)
  reference_mean = jnp.mean(reference, axis=(1, 2), keepdims=True)
  reference_std = jnp.std(reference, axis=(1, 2), keepdims=True)
  moved = ((source - source_mean) / jnp.maximum(source_std, _STD_EPSILON) * reference_std
           + reference_mean)
  return srgb.to_srgb(moved)


def oracle_gain(input_image, ground_truth):
  """(Oracle) I times the per-channel least-squares gain to G, [batch, H, W, 3]."""
  source = input_image.astype(jnp.float32)
  target = ground_truth.astype(jnp.float32)
  gain = (jnp.sum(source * target, axis=(1, 2), keepdims=True)
          / jnp.maximum(jnp.sum(jnp.square(source), axis=(1, 2), keepdims=True), 1e-12))
  return jnp.clip(gain * source, 0.0, 1.0)


def oracle_smooth(input_image, ground_truth):
  """(Oracle) I · blur(G) / blur(I), σ = `smooth_sigma` of the side, [batch, H, W, 3]."""
  source = input_image.astype(jnp.float32)
  sigma = smooth_sigma(source.shape[1])
  gain = ((gaussian_blur(ground_truth, sigma) + _SMOOTH_EPSILON)
          / (gaussian_blur(source, sigma) + _SMOOTH_EPSILON))
  return jnp.clip(source * gain, 0.0, 1.0)


def candidates(input_image, target_image, ground_truth):
  """{prefix: Ĝ} of the baselines and oracles (in PREFIXES order), float [batch, H, W, 3]."""
  return {
      "colour_transfer/": colour_transfer(input_image, target_image),
      "oracle_gain/": oracle_gain(input_image, ground_truth),
      "oracle_smooth/": oracle_smooth(input_image, ground_truth),
  }
