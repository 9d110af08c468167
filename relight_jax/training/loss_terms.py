"""Each model's own loss terms (report §3.4), which its `models/registry.ModelSpec` names.

  envmap_terms                  Le (eq. 2) on the predicted envmaps of I and T, the two
                                terms summed as in the original's
                                `trainWithGeneratedEnvmaps.py`.
  envmap_scene_terms            cosine hue + MSE saturation + Le on the 512 envmap values,
                                on I and T, summed likewise.
  illumination_predictor_terms  Lc + Ld averaged over I, T and G (the original code's
                                average; G must be encoded).
  geometry_envmap_terms         the Envmap model's terms + auxiliary losses on the
                                predicted geometry of I and T against the renderer's maps
                                (models/geometry.py; the batch must carry them: data.aovs).
  transport_terms               the light-transport model's (models/transport.py): its
                                predicted transport and fixed lights against the stored
                                ones in log space, the 40 images of I's scene composed
                                from both in sRGB, and its light estimates of I and T
                                against their labels (the batch carries I's transport:
                                data.aovs has 'transport').

Each takes (outputs, batch, loss_config) and returns {name: (weight, value)}; the
reconstruction term, the report's latent losses and the GAN term, common to every model,
are added by `objectives.compute_losses`.
"""

import jax
import jax.numpy as jnp

from relight_jax.data import lights
from relight_jax.training import losses

_ROLES = ("input", "target", "ground_truth")


def encoded_roles(outputs):
  """The roles (input, target, ground_truth) whose latents are in the model outputs."""
  return [role for role in _ROLES if f"{role}_light" in outputs]


# The envmap models supervise the envmaps of I and T (the original never encoded G).
ENVMAP_ROLES = ("input", "target")


def envmap_terms(outputs, batch, loss_config):
  # Summed, not averaged, over I and T, as the original's loss: its unit weights assume
  # that balance against the reconstruction term (tests/test_envmap_loss.py).
  envmap = sum(losses.log_l2(outputs[f"{role}_envmap"], batch[f"{role}_envmap"])
               for role in ENVMAP_ROLES)
  return {"envmap": (loss_config.envmap_weight, envmap)}


def envmap_scene_terms(outputs, batch, loss_config):
  per_role = [losses.hsv_envmap_losses(outputs[f"{role}_envmap_hsv"],
                                       batch[f"{role}_envmap_hsv"], lights.ENVMAP_PEAK)
              for role in ENVMAP_ROLES]
  summed = lambda key: sum(terms[key] for terms in per_role)
  return {
      "hue": (loss_config.hue_weight, summed("hue")),
      "saturation": (loss_config.saturation_weight, summed("saturation")),
      "value": (loss_config.value_weight, summed("value")),
  }


def illumination_predictor_terms(outputs, batch, loss_config):
  roles = encoded_roles(outputs)
  if "ground_truth" not in roles:
    raise ValueError("illumination_predictor's loss averages Lc and Ld over I, T and G: "
                     "call the model with ground_truth (its ModelSpec.needs_ground_truth_latent)")
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


def geometry_envmap_terms(outputs, batch, loss_config):
  terms = envmap_terms(outputs, batch, loss_config)
  for name, (weight_key, loss) in GEOMETRY_LOSSES.items():
    weight = loss_config[weight_key]
    if f"input_{name}" not in outputs or not weight:
      continue
    if f"input_{name}" not in batch:
      raise ValueError(f"loss.{weight_key}={weight} needs the renderer's {name} maps in the "
                       f"batch: set data.aovs to include {name!r}")
    # Averaged over I and T: both are real renders whose maps the dataset stores.
    value = sum(loss(batch[f"{role}_{name}"], outputs[f"{role}_{name}"])
                for role in ENVMAP_ROLES) / len(ENVMAP_ROLES)
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


# Its loss weights (the config's `loss` section, configs/transport.py) by term.
TRANSPORT_WEIGHTS = {
    "transport": "transport_weight",
    "fixed_light": "fixed_light_weight",
    "all_lights": "all_lights_weight",
    "light_direction": "light_direction_weight",
    "light_colour": "light_colour_weight",
}


def transport_terms(outputs, batch, loss_config, *, code, compose_all, light_rgbs):
  """The light-transport model's terms (models/transport.py, docs/transport_model.md).

  The model's physics comes as arguments (this layer may not import the renderer nor the
  models; models/registry.py binds them):

  Args:
    outputs: the model's outputs (input_transport, input_fixed_light, {role}_light).
    batch: with input_transport [b, 8, S, S, 3] and input_fixed_light [b, S, S, 3] (the
      stored linear transport of I's scene) and the lights' labels.
    loss_config: the `loss` section (TRANSPORT_WEIGHTS' keys).
    code: linear transport -> the space its losses compare in (log(x + eps)).
    compose_all: (transport, fixed_light, light_rgbs) -> [b, 40, S, S, 3] sRGB images.
    light_rgbs: [5, 3] the renderer's linear colours of lights.TEMPERATURES_K.

  Returns:
    {name: (weight, value)} of the terms whose weight is not 0.
  """
  weights = {name: loss_config[key] for name, key in TRANSPORT_WEIGHTS.items()}
  terms = {}
  if weights["transport"] or weights["fixed_light"] or weights["all_lights"]:
    if "input_transport" not in batch:
      raise ValueError("the transport model's losses need I's stored light transport in the "
                       "batch: set data.aovs to include 'transport' (a v2 dataset of version "
                       "2.2.0 or later), or set loss.transport_weight, "
                       "loss.fixed_light_weight and loss.all_lights_weight to 0")
    transport, fixed = batch["input_transport"], batch["input_fixed_light"]
    if weights["transport"]:
      terms["transport"] = (weights["transport"],
                            losses.l1(code(outputs["input_transport"]), code(transport)))
    if weights["fixed_light"]:
      terms["fixed_light"] = (weights["fixed_light"],
                              losses.l1(code(outputs["input_fixed_light"]), code(fixed)))
    if weights["all_lights"]:
      # One encoder pass supervises all 40 images of I's scene, compared as images are.
      predicted = compose_all(outputs["input_transport"], outputs["input_fixed_light"],
                              light_rgbs)
      terms["all_lights"] = (weights["all_lights"],
                             losses.l1(predicted, compose_all(transport, fixed, light_rgbs)))
  temperatures = jnp.asarray(lights.TEMPERATURES_K, jnp.float32)
  direction = colour = 0.0
  roles = ("input", "target")  # the lights it estimates: I's (the ratio form) and T's
  for role in roles:
    light = outputs[f"{role}_light"].astype(jnp.float32)  # [b, 11]: 8 weights, RGB
    # Products with one-hot labels, not gathers (see illumination_predictor_terms).
    one_hot = jax.nn.one_hot(batch[f"{role}_direction"], lights.NUM_DIRECTIONS)
    direction += -jnp.mean(jnp.sum(
        one_hot * jnp.log(light[:, :lights.NUM_DIRECTIONS] + 1e-7), axis=-1))
    temperature = batch[f"{role}_temperature"].astype(jnp.float32)
    label_rgb = (temperature[:, None] == temperatures).astype(jnp.float32) @ jnp.asarray(
        light_rgbs, jnp.float32)
    colour += losses.l1(light[:, lights.NUM_DIRECTIONS:], label_rgb)
  for name, value in (("light_direction", direction), ("light_colour", colour)):
    if weights[name]:
      terms[name] = (weights[name], value / len(roles))
  return terms
