"""The training step: one optimisation step on a global batch, as a pure function.

`train_step(state, batch, config=...)` is what `train.train` jits over the `data` mesh
and what `bench/train_step.py` times. GAN configs alternate a PatchGAN discriminator
update (LSGAN, its own Adam) with the relighter's update in the same step. This module
imports only JAX, optax and the model and loss modules, not the data, logging and
evaluation stack (TensorFlow, TFDS, clu, grain): a GPU machine without those can run the
benchmark (bench/gpu_check.sh).
"""

import jax
import jax.numpy as jnp
import optax

from relight_jax import losses
from relight_jax import objectives


def float_images(batch):
  """The batch with its uint8 images as float32 in [0, 1] (done on device, in jit)."""
  converted = dict(batch)
  for key in ("input_image", "target_image", "ground_truth"):
    if batch[key].dtype == jnp.uint8:
      converted[key] = batch[key].astype(jnp.float32) / 255.0
  return converted


def _discriminator_input(input_image, candidate):
  # pix2pix's conditional PatchGAN judges (input, candidate) pairs.
  return jnp.concatenate([input_image, candidate], axis=-1)


def _apply_discriminator(discriminator, params, images):
  variables = {"params": params, "batch_stats": discriminator.batch_stats}
  logits, updates = discriminator.apply_fn(variables, images, train=True, mutable=["batch_stats"])
  return logits, updates["batch_stats"]


def train_step(train_state, batch, *, config, lpips_fn=None):
  """One optimisation step on a global batch.

  Args:
    train_state: `state.TrainState` (replicated).
    batch: dict following the batch contract of `objectives.py`, images uint8 or float.
    config: experiment config (static).
    lpips_fn: optional LPIPS callable; by default `objectives` uses losses.lpips_loss.

  Returns:
    (new train state, dict of scalar metrics).
  """
  batch = float_images(batch)
  model_name = config.model.name
  needs_ground_truth = objectives.needs_ground_truth_latent(model_name, config.loss)
  needs_relit = objectives.needs_relit_latent(config.loss)
  discriminator = train_state.discriminator if config.train.gan else None

  def loss_fn(params):
    outputs, updates = train_state.apply_fn(
        {"params": params, "batch_stats": train_state.batch_stats},
        batch["input_image"], batch["target_image"],
        ground_truth=batch["ground_truth"] if needs_ground_truth else None,
        train=True, mutable=["batch_stats"])
    if needs_relit:
      # The relit image's latents for the report's latent losses: one more encoder pass,
      # differentiated through (the losses pull relit towards G's latents).
      relit_encoded, updates = train_state.apply_fn(
          {"params": params, "batch_stats": updates["batch_stats"]}, outputs["relit"],
          train=True, mutable=["batch_stats"], method="encode")
      outputs = dict(outputs, **{f"relit_{key}": value for key, value in relit_encoded.items()
                                 if value is not None})
    total, terms = objectives.compute_losses(
        model_name, outputs, batch, config.loss, lpips_fn=lpips_fn)
    discriminator_stats = None
    if discriminator is not None:
      fake_logits, discriminator_stats = _apply_discriminator(
          discriminator, discriminator.params,
          _discriminator_input(batch["input_image"], outputs["relit"]))
      adversarial = losses.lsgan_generator_loss(fake_logits)
      terms["generator_adversarial"] = adversarial
      total = total + config.loss.gan_weight * adversarial
    return total, (terms, updates["batch_stats"], outputs["relit"], discriminator_stats)

  (total, (terms, batch_stats, relit, _)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(train_state.params)
  metrics = dict(terms, loss=total, grad_norm=optax.tree.norm(grads))
  new_discriminator = train_state.discriminator
  if discriminator is not None:
    fake = jax.lax.stop_gradient(relit)

    def discriminator_loss_fn(params):
      real_logits, stats = _apply_discriminator(
          discriminator, params, _discriminator_input(batch["input_image"], batch["ground_truth"]))
      fake_logits, _ = _apply_discriminator(
          discriminator.replace(batch_stats=stats), params,
          _discriminator_input(batch["input_image"], fake))
      return losses.lsgan_discriminator_loss(real_logits, fake_logits), stats

    (discriminator_loss, stats), discriminator_grads = jax.value_and_grad(
        discriminator_loss_fn, has_aux=True)(discriminator.params)
    new_discriminator = discriminator.apply_gradients(
        grads=discriminator_grads).replace(batch_stats=stats)
    metrics["discriminator"] = discriminator_loss
  new_state = train_state.apply_gradients(
      grads=grads, batch_stats=batch_stats, discriminator=new_discriminator)
  return new_state, metrics
