"""Training objectives: a model's loss terms composed into its loss (report §3.4).

Each model's own terms (Le on envmaps, Lc + Ld, geometry losses, ...) are named by its
`models/registry.ModelSpec` (the functions are in `loss_terms.py`); composed here with
what every model shares: the reconstruction term, picked by `loss.reconstruction` ('l1' |
'l2' | 'lpips') so ablations need no code; the report's abandoned latent losses L(1) /
L(2) (§3.4), added when `loss.scene_latent_weight` or `loss.light_latent_weight` is
non-zero; and the generator's GAN term. `needs_ground_truth_latent` /
`needs_relit_latent` tell the train step what to encode besides I and T: each costs one
more encoder pass, worth it only when a loss reads it.
"""

from collections.abc import Callable

import jax.numpy as jnp
import ml_collections

from relight_jax.models import registry
from relight_jax.training import losses

LATENT_LOSSES = ("plain", "with_reference")


def needs_relit_latent(loss_config) -> bool:
  """Whether the loss reads the relit image's latents (the report's latent losses)."""
  return bool(loss_config.scene_latent_weight or loss_config.light_latent_weight)


def needs_ground_truth_latent(model_name: str, loss_config) -> bool:
  """Whether the loss reads G's latents: the model's own terms or the latent losses."""
  return (registry.spec_of(model_name).needs_ground_truth_latent
          or needs_relit_latent(loss_config))


def _reconstruction(outputs, batch, loss_config, lpips_fn):
  name = loss_config.reconstruction
  relit, ground_truth = outputs["relit"], batch["ground_truth"]
  if name == "l1":
    return losses.l1(relit, ground_truth)
  if name == "l2":
    return losses.l2(relit, ground_truth)
  if name == "lpips":
    if lpips_fn is None:
      return losses.lpips_loss(relit, ground_truth, loss_config.lpips_net)
    return jnp.mean(lpips_fn(relit, ground_truth))
  raise ValueError(f"loss.reconstruction={name!r} is not one of 'l1', 'l2', 'lpips'")


def _latent_loss_terms(outputs, loss_config):
  """The report's L(1) / L(2) scene and light latent losses (§3.4) with their weights."""
  form = loss_config.latent_loss
  if form not in LATENT_LOSSES:
    raise ValueError(f"loss.latent_loss={form!r} is not one of {LATENT_LOSSES}")
  terms = {}
  # L_s compares the scene latents of I, G and relit (same scene); its reference pair
  # (T, G) has different scenes. L_l compares the light latents of T, G and relit (same
  # light); its reference pair (I, G) has different lights.
  for kind, weight, (a, b, c), (ref_a, ref_b) in (
      ("scene", loss_config.scene_latent_weight, ("input", "ground_truth", "relit"),
       ("target", "ground_truth")),
      ("light", loss_config.light_latent_weight, ("target", "ground_truth", "relit"),
       ("input", "ground_truth"))):
    if not weight:
      continue
    if outputs.get(f"input_{kind}") is None and outputs.get(f"target_{kind}") is None:
      raise ValueError(f"loss.{kind}_latent_weight={weight} but this model has no {kind} "
                       "latent (the Envmap model's latent is all light)")
    latents = [outputs[f"{role}_{kind}"] for role in (a, b, c)]
    if form == "plain":
      value = losses.latent_loss(*latents)
    else:
      value = losses.latent_loss_with_reference(
          *latents, outputs[f"{ref_a}_{kind}"], outputs[f"{ref_b}_{kind}"])
    terms[f"{kind}_latent"] = (weight, value)
  return terms


def compute_losses(model_name: str, outputs: dict, batch: dict,
                   loss_config: ml_collections.ConfigDict, *,
                   lpips_fn: Callable | None = None,
                   discriminator_fake_logits=None):
  """Composes a model's training loss (report §3.4); pure and jit-able.

  Args:
    model_name: a key of `models/registry.SPECS`.
    outputs: the Relighter's output dict ("relit" and the role-prefixed latents).
    batch: the input pipeline's batch (ground_truth, *_envmap, *_envmap_hsv,
      *_temperature, *_direction).
    loss_config: the config's `loss` section (reconstruction, reconstruction_weight,
      envmap_weight, hue_weight, saturation_weight, value_weight, temperature_weight,
      direction_weight, lpips_net, gan_weight).
    lpips_fn: optional per-example LPIPS (images in [0, 1] -> [b]); defaults to
      `losses.lpips_distance` with `loss.lpips_net`.
    discriminator_fake_logits: the discriminator's logits on the relit images when a GAN
      is trained; adds gan_weight * LSGAN generator loss.

  Returns:
    (total_loss scalar, dict of the unweighted terms and "total").
  """
  spec = registry.spec_of(model_name)
  terms = {"reconstruction": (loss_config.reconstruction_weight,
                              _reconstruction(outputs, batch, loss_config, lpips_fn))}
  terms.update(spec.loss_terms(outputs, batch, loss_config))
  if needs_relit_latent(loss_config):
    terms.update(_latent_loss_terms(outputs, loss_config))
  if discriminator_fake_logits is not None:
    terms["generator_gan"] = (loss_config.gan_weight,
                              losses.lsgan_generator_loss(discriminator_fake_logits))
  total = sum(weight * value for weight, value in terms.values())
  values = {name: value for name, (_, value) in terms.items()}
  values["total"] = total
  return total, values


def discriminator_loss(real_logits, fake_logits):
  """LSGAN discriminator loss on the PatchGAN logits of G (real) and Ĝ (fake)."""
  return losses.lsgan_discriminator_loss(real_logits, fake_logits)

