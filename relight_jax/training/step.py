"""The model's three steps, side by side, as pure functions of a `state.TrainState`.

  train_step  one optimisation step on a global batch (what `train.train` jits over the
              `data` mesh and `bench/train_step.py` times);
  eval_step   per-example metrics of the model and of the identity mapping on a batch
              (the evaluation tables, report §3.5 and §4.1); `baselines_step` adds the
              baselines' and oracles' (which need no model);
  predict     the model's outputs in inference mode (pictures).

All three call the model through the state's `apply_fn` (never rebuilding it from the
config), so a state whose model was built differently (another conv implementation,
bench/train_step.py's variants) is evaluated as it is trained. GAN configs alternate a
PatchGAN discriminator update (LSGAN, its own Adam) with the relighter's update in the
same train step. This module imports JAX, optax, clu's metrics and the model, loss and
metric modules only, not the data, logging and evaluation stack (TFDS, grain, TensorBoard).

`average_metrics` puts named scalar or per-example metrics in a clu `metrics.Collection` of
averages, on device: `train_step_averaged` (the step the training loop jits) returns the
step's metrics as one, which the loop merges until a log step, and the periodic
evaluation merges the eval step's per-example metrics, masked, over its batches.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from clu import metrics as clu_metrics

from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.evaluation import baselines
from relight_jax.evaluation import metrics
from relight_jax.models import registry
from relight_jax.training import objectives
from relight_jax.training import state as state_lib

# The roles whose light the model estimates in evaluation (all three are real images).
_LIGHT_ROLES = ("input", "target", "ground_truth")


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
    train_state: `state.TrainState` (replicated); the model is its `apply_fn`.
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
    fake_logits = None
    if discriminator is not None:
      # The generator's adversarial term is part of its loss (objectives.compute_losses);
      # the discriminator's batch statistics are updated by its own step below.
      fake_logits, _ = _apply_discriminator(
          discriminator, discriminator.params,
          _discriminator_input(batch["input_image"], outputs["relit"]))
    total, terms = objectives.compute_losses(
        model_name, outputs, batch, config.loss, lpips_fn=lpips_fn,
        discriminator_fake_logits=fake_logits)
    return total, (terms, updates["batch_stats"], outputs["relit"])

  (total, (terms, batch_stats, relit)), grads = jax.value_and_grad(
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
      return objectives.discriminator_loss(real_logits, fake_logits), stats

    (discriminator_loss, stats), discriminator_grads = jax.value_and_grad(
        discriminator_loss_fn, has_aux=True)(discriminator.params)
    new_discriminator = discriminator.apply_gradients(
        grads=discriminator_grads).replace(batch_stats=stats)
    metrics["discriminator"] = discriminator_loss
  new_state = train_state.apply_gradients(
      grads=grads, batch_stats=batch_stats, discriminator=new_discriminator)
  return new_state, metrics


def average_metrics(outputs, mask=None):
  """The clu `Collection` averaging each of `outputs` ({name: scalar or [batch] values}).

  Args:
    outputs: the metrics; values are averaged in float32.
    mask: [batch], nonzero where an example counts (the padding rows of an evaluation
      batch do not); it applies to the per-example values.

  Returns:
    A `Collection` of one `clu.metrics.Average` per name: merge it with the next ones
    (`merge`), then read the means with `computed_averages`.
  """
  names = tuple(sorted(outputs))
  values = {name: jnp.asarray(outputs[name], jnp.float32) for name in names}
  if mask is not None:
    values["mask"] = mask
  return _averages_collection(names).single_from_model_output(**values)


def computed_averages(collection):
  """{name: mean} (device scalars) of an `average_metrics` `Collection`."""
  computed = collection.compute()
  return {name: computed[field] for field, name in type(collection).metric_names.items()}


@functools.cache
def _averages_collection(names):
  # One class per set of names: jit keys its cache on the output's pytree type. A name
  # may hold `/` (`identity/mse`), which a field cannot: fields are numbered.
  fields = {f"metric_{index}": name for index, name in enumerate(names)}
  collection = clu_metrics.Collection.create(**{
      field: clu_metrics.Average.from_output(name) for field, name in fields.items()})
  collection.metric_names = fields
  return collection


def merge_averages(accumulated, collection):
  """`accumulated.merge(collection)`: a function to jit (one dispatch, not one per field)."""
  return accumulated.merge(collection)


def train_step_averaged(train_state, batch, *, config, lpips_fn=None):
  """`train_step` whose metrics come as a clu `Collection` of averages (one step's).

  Returns:
    (new train state, `Collection`); `computed_averages` reads it.
  """
  new_state, step_metrics = train_step(train_state, batch, config=config, lpips_fn=lpips_fn)
  return new_state, average_metrics(step_metrics)


def _light_metrics(model_name, encoded, batch, envmap_convention):
  """Per-example light-estimate metrics of one role's encoding (report §4.1).

  An envmap is read in the convention the model was trained on: its brightest column's
  azimuth by the convention's layout, its colour against the convention's light colours.
  """
  direction = lights.DEGREES_PER_DIRECTION * batch["direction"].astype(jnp.float32)
  temperature = batch["temperature"].astype(jnp.float32)
  light_output = registry.spec_of(model_name).light_output
  if light_output == "prediction":
    prediction = encoded["prediction"]  # [b, 2] = (direction deg, temperature K)
    result = metrics.light_estimate_metrics(direction, prediction[:, 0], temperature,
                                            prediction[:, 1])
    result["ld"] = metrics.direction_loss(direction, prediction[:, 0])
    result["lc"] = metrics.temperature_loss(temperature, prediction[:, 1])
    return result
  rgb = encoded["envmap"].astype(jnp.float32)  # [b, 16, 32, 3]
  result = metrics.light_estimate_metrics(
      direction,
      metrics.envmap_azimuth_deg(jnp.sum(rgb, axis=-1),
                                 envmap.convention(envmap_convention).north_column),
      temperature, metrics.envmap_temperature_k(rgb, *envmap.palette(envmap_convention)))
  if light_output == "envmap":
    result["envmap_error"] = metrics.envmap_error(rgb, batch["envmap"])
  else:  # Le on the 512 values, the term the Envmap + scene model is trained with.
    result["envmap_error"] = metrics.envmap_error(encoded["envmap_hsv"][:, 2:],
                                                  batch["envmap_hsv"][:, 2:])
  return result


def eval_step(train_state, batch, *, model_name, with_lpips, envmap_convention):
  """Per-example metrics of the model and of the identity mapping on one batch.

  The image metrics (`metrics.candidate_metrics`) of the model's Ĝ have no prefix; those
  of the identity Ĝ = I are under "identity/". "change_fraction" is the share of pixels
  whose light changes. The baselines and oracles are `baselines_step`'s: they do not
  change with training, and one program with them would be compiled twice in a run, for
  the periodic evaluations without them and the final one with them.

  Args:
    train_state: `state.TrainState`; the model is its `apply_fn` (inference BatchNorm).
    batch: dict following the batch contract of `objectives.py`, images uint8 or float.
    model_name: config.model.name (which light estimates the latents hold).
    with_lpips: also compute LPIPS (slow on a CPU).
    envmap_convention: config.model.envmap_convention, the generated envmaps the model
      learned: how its envmaps' direction and colour are read (data/envmap.py).

  Returns:
    Dict of float32 [batch] arrays.
  """
  batch = float_images(batch)
  model_variables = state_lib.variables_of(train_state)
  relit = train_state.apply_fn(model_variables, batch["input_image"], batch["target_image"],
                               train=False)["relit"]
  ground_truth, input_image = batch["ground_truth"], batch["input_image"]
  mask = metrics.change_mask(input_image, ground_truth)
  results = {"change_fraction": jnp.mean(mask.reshape(mask.shape[0], -1), axis=-1)}
  results.update(_candidate_metrics({"": relit, "identity/": input_image}, batch, mask,
                                    with_lpips))
  # Report §3.5: distances between the scene (light) latents of I, T, G and G_hat. One
  # encoder call over the four stacked images (inference BatchNorm: no cross-talk).
  stacked = jnp.concatenate([input_image, batch["target_image"], ground_truth, relit], axis=0)
  encoded = train_state.apply_fn(model_variables, stacked, train=False, method="encode")
  size = input_image.shape[0]
  part = lambda value, k: None if value is None else value[k * size:(k + 1) * size]
  for kind in ("scene", "light"):
    if encoded.get(kind) is not None:
      results.update(metrics.latent_distances(
          {role: part(encoded[kind], k) for k, role in enumerate(metrics.LATENT_ROLES)}, kind))
  per_role = []
  for k, role in enumerate(_LIGHT_ROLES):
    role_batch = {key: batch[f"{role}_{key}"] for key in
                  ("direction", "temperature", "envmap", "envmap_hsv")}
    per_role.append(_light_metrics(model_name,
                                   {key: part(value, k) for key, value in encoded.items()},
                                   role_batch, envmap_convention))
  for key in per_role[0]:
    results[f"light/{key}"] = sum(item[key] for item in per_role) / len(per_role)
  return results


def baselines_step(batch, *, with_lpips):
  """Per-example metrics of the baselines and oracles (`baselines.candidates`) on one
  batch, under their prefixes ("colour_transfer/", "oracle_gain/", "oracle_smooth/"),
  as `eval_step` scores the model."""
  batch = float_images(batch)
  input_image, ground_truth = batch["input_image"], batch["ground_truth"]
  return _candidate_metrics(
      baselines.candidates(input_image, batch["target_image"], ground_truth), batch,
      metrics.change_mask(input_image, ground_truth), with_lpips)


def _candidate_metrics(candidates, batch, mask, with_lpips):
  """{prefix + metric: [batch]} of each candidate Ĝ of {prefix: image} against G."""
  results = {}
  for prefix, candidate in candidates.items():
    for key, value in metrics.candidate_metrics(batch["input_image"], batch["ground_truth"],
                                                candidate, mask,
                                                with_lpips=with_lpips).items():
      results[prefix + key] = value
  return results


def predict(train_state, batch):
  """The model's outputs on a batch in inference mode (BatchNorm running statistics)."""
  batch = float_images(batch)
  return train_state.apply_fn(state_lib.variables_of(train_state), batch["input_image"],
                              batch["target_image"], train=False)
