"""Per-model training objectives: the report's losses composed for each variant (report §3.4).

  envmap                  Lr (reconstruction, ℓ1 in the report) + Le (eq. 2) on the
                          predicted envmaps of I and T, the two terms summed as in the
                          original's `trainWithGeneratedEnvmaps.py`.
  envmap_scene            LPIPS reconstruction + cosine hue + MSE saturation + Le on the
                          512 envmap values, on I and T, summed likewise.
  illumination_predictor  ℓ2 reconstruction + Lc + Ld averaged over I, T and G (the
                          original code's average; G must be encoded).
  geometry_envmap         the Envmap model's terms + auxiliary losses on the predicted
                          geometry of I and T against the renderer's maps
                          (models/geometry.py; the batch must carry them: data.aovs).

The reconstruction term is picked by `loss.reconstruction` ('l1' | 'l2' | 'lpips') so
ablations need no code. The report's abandoned latent losses L(1) / L(2) (§3.4) are
added when `loss.scene_latent_weight` or `loss.light_latent_weight` is non-zero.
`needs_ground_truth_latent` / `needs_relit_latent` tell the train step what to encode
besides I and T: each costs one more encoder pass, worth it only when a loss reads it.
"""

from collections.abc import Callable

import jax.numpy as jnp
import ml_collections

from relight_jax.data import lights
from relight_jax.training import losses

# Whether a model's loss reads the ground truth's latent (then the train step must call
# the model with ground_truth=G). Envmap models supervise I's and T's envmaps only (the
# original's GroundtruthEnvmapSwapNet encoded just I and T).
NEEDS_GROUND_TRUTH_LATENT = {
    "envmap": False,
    "envmap_scene": False,
    "illumination_predictor": True,
    "geometry_envmap": False,
}

_ROLES = ("input", "target", "ground_truth")
LATENT_LOSSES = ("plain", "with_reference")


def needs_relit_latent(loss_config) -> bool:
  """Whether the loss reads the relit image's latents (the report's latent losses)."""
  return bool(loss_config.scene_latent_weight or loss_config.light_latent_weight)


def needs_ground_truth_latent(model_name: str, loss_config) -> bool:
  """Whether the loss reads G's latents: the model's own terms or the latent losses."""
  return NEEDS_GROUND_TRUTH_LATENT[model_name] or needs_relit_latent(loss_config)


def _encoded_roles(outputs):
  """The roles (input, target, ground_truth) whose latents are in the model outputs."""
  return [role for role in _ROLES if f"{role}_light" in outputs]


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


# The envmap models supervise the envmaps of I and T (the original never encoded G).
_ENVMAP_ROLES = ("input", "target")


def _envmap_terms(outputs, batch, loss_config):
  # Summed, not averaged, over I and T, as the original's loss: its unit weights assume
  # that balance against the reconstruction term (tests/test_envmap_loss.py).
  envmap = sum(losses.log_l2(outputs[f"{role}_envmap"], batch[f"{role}_envmap"])
               for role in _ENVMAP_ROLES)
  return {"envmap": (loss_config.envmap_weight, envmap)}


def _envmap_scene_terms(outputs, batch, loss_config):
  per_role = [losses.hsv_envmap_losses(outputs[f"{role}_envmap_hsv"],
                                       batch[f"{role}_envmap_hsv"], lights.ENVMAP_PEAK)
              for role in _ENVMAP_ROLES]
  summed = lambda key: sum(terms[key] for terms in per_role)
  return {
      "hue": (loss_config.hue_weight, summed("hue")),
      "saturation": (loss_config.saturation_weight, summed("saturation")),
      "value": (loss_config.value_weight, summed("value")),
  }


def _illumination_predictor_terms(outputs, batch, loss_config):
  roles = _encoded_roles(outputs)
  if "ground_truth" not in roles:
    raise ValueError("illumination_predictor's loss averages Lc and Ld over I, T and G: "
                     "call the model with ground_truth (NEEDS_GROUND_TRUTH_LATENT)")
  temperature = direction = 0.0
  for role in roles:
    prediction = outputs[f"{role}_prediction"]  # [b, 2] = (direction deg, temperature K)
    # Direction index -> azimuth (lights.py's convention). Arithmetic, not a table lookup:
    # in jax 0.10 gathering from a constant with a batch sharded on 'data' fails to trace.
    azimuth = lights.DEGREES_PER_DIRECTION * batch[f"{role}_direction"].astype(jnp.float32)
    direction += losses.direction_loss(azimuth, prediction[:, 0])
    temperature += losses.temperature_loss(batch[f"{role}_temperature"], prediction[:, 1])
  return {
      "temperature": (loss_config.temperature_weight, temperature / len(roles)),
      "direction": (loss_config.direction_weight, direction / len(roles)),
  }


# Geometry map -> (its loss weight's key in the `loss` section, the loss). An albedo map
# would be one more entry (and one in models/geometry.GEOMETRY_CHANNELS).
GEOMETRY_LOSSES = {
    "normals": ("normals_weight", losses.normals_loss),
    "depth": ("depth_weight", losses.l1),
    "shading": ("shading_weight", losses.l1),
}


def _geometry_envmap_terms(outputs, batch, loss_config):
  terms = _envmap_terms(outputs, batch, loss_config)
  for name, (weight_key, loss) in GEOMETRY_LOSSES.items():
    weight = loss_config[weight_key]
    if f"input_{name}" not in outputs or not weight:
      continue
    if f"input_{name}" not in batch:
      raise ValueError(f"loss.{weight_key}={weight} needs the renderer's {name} maps in the "
                       f"batch: set data.aovs to include {name!r}")
    # Averaged over I and T: both are real renders whose maps the dataset stores.
    value = sum(loss(batch[f"{role}_{name}"], outputs[f"{role}_{name}"])
                for role in _ENVMAP_ROLES) / len(_ENVMAP_ROLES)
    terms[name] = (weight, value)
  weight = loss_config.relit_shading_weight
  if "relit_shading" in outputs and weight:
    if "ground_truth_shading" not in batch:
      raise ValueError(f"loss.relit_shading_weight={weight} needs the renderer's shading "
                       "maps in the batch: set data.aovs to include 'shading' (a v2 dataset)")
    # G's shading: I's scene under T's light direction, what the shading head predicts.
    terms["relit_shading"] = (weight, losses.l1(batch["ground_truth_shading"],
                                                outputs["relit_shading"]))
  return terms


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


# model.name -> the model's latent loss terms {name: (weight, value)}.
LATENT_TERMS: dict[str, Callable] = {
    "envmap": _envmap_terms,
    "envmap_scene": _envmap_scene_terms,
    "illumination_predictor": _illumination_predictor_terms,
    "geometry_envmap": _geometry_envmap_terms,
}


def compute_losses(model_name: str, outputs: dict, batch: dict,
                   loss_config: ml_collections.ConfigDict, *,
                   lpips_fn: Callable | None = None,
                   discriminator_fake_logits=None):
  """Composes a model's training loss (report §3.4); pure and jit-able.

  Args:
    model_name: a key of LATENT_TERMS ('envmap' | 'envmap_scene' |
      'illumination_predictor' | 'geometry_envmap').
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
  if model_name not in LATENT_TERMS:
    raise ValueError(f"model name {model_name!r} is not one of {sorted(LATENT_TERMS)}")
  terms = {"reconstruction": (loss_config.reconstruction_weight,
                              _reconstruction(outputs, batch, loss_config, lpips_fn))}
  terms.update(LATENT_TERMS[model_name](outputs, batch, loss_config))
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

