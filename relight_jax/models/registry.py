"""The model table: one `ModelSpec` per `model.name`, read by everything else.

A spec says all that the rest of relight_jax needs to know about a model: how to build
it from a config's `model` section, its own loss terms (`training/loss_terms.py`), what
its light estimate is (an RGB or HSV envmap, or a (direction, temperature) prediction),
how it takes a light label at inference, and which config file declares it. No other
module compares `model.name` with a string. A new model is its module in models/, its
spec here and its config file in configs/ (tests/test_models.py checks every spec).

`conv_module` is the one seam between the models and relight_jax/cpu_kernels: every
convolution of every model goes through the module it returns, and `kernel_cache`
replays the Winograd kernels it transformed (inference).
"""

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from relight_jax import cpu_kernels
from relight_jax.cpu_kernels import winograd
from relight_jax.data import envmap
from relight_jax.models import discriminator
from relight_jax.models import geometry
from relight_jax.models import latent
from relight_jax.models import relighter
from relight_jax.models import transport
from relight_jax.models import unet
from relight_jax.training import loss_terms

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# What a model's encoding holds as its light estimate (the key of its encode() outputs):
# an RGB envmap [b, 16, 32, 3], an HSV envmap vector [b, 514] (with an RGB view under
# "envmap"), or a (direction deg, temperature K) prediction [b, 2].
LIGHT_OUTPUTS = ("envmap", "envmap_hsv", "prediction")


@dataclasses.dataclass(frozen=True)
class LightComposition:
  """How a model that composes light itself is relit by coloured direction weights.

  Attributes:
    relight: (model, variables, input_image [b, S, S, 3], coloured [b, 8, 3], form) ->
      relit [b, S, S, 3]: Σ_d W_d ⊙ M̂_d + F̂ composed once (W_d: basis direction d's
      weight times its light's linear colour, lights summed), in `form` "absolute" (the
      network's image) or "ratio" (I's pixels times the change of light).
    own_light: (encoded) -> (direction weights [b, 8], linear colour [b, 3]): the light
      an image's encoding (the model's encode() outputs) estimates, what a light that
      leaves out its direction or its colour keeps.
    forms: the forms `relight` takes.
  """

  relight: Callable
  own_light: Callable
  forms: tuple[str, ...] = ("absolute", "ratio")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything about one model that code outside models/ needs.

  Attributes:
    title: the model's name in tables and logs (the report's for its three).
    in_report: one of the report's three models (reproduce.py trains those).
    build: (model_config, conv, dtype) -> the unbound relighter module.
    loss_terms: (outputs, batch, loss_config) -> {name: (weight, value)}, the model's own
      terms; objectives.compute_losses adds reconstruction, latent and GAN terms.
    needs_ground_truth_latent: its loss reads G's encoding (one more encoder pass).
    light_output: one of LIGHT_OUTPUTS, what its encoding estimates the light as.
    label_light: (temperature_k, direction_index, envmap_convention) -> its light latent
      [1, ...] for a light label, generated in the convention the model was trained on
      (model.envmap_convention); None when the model has no generated form of a light, and a label
      is read as the mean light latent of its training images under that light.
    label_source: how a label becomes its light latent, in words (logs, model cards).
    light_composition: a `LightComposition` for a model that composes any light itself
      (coloured direction weights: several lights, intensity, any azimuth, exactly);
      None for a label model, whose lights other than its labels are mixes of its
      outputs for labels (inference/light_mix.py, an approximation).
    config_file: the file of configs/ that declares it (checkpointing checks an old
      workdir's config.json against its keys).
  """

  title: str
  in_report: bool
  build: Callable[[ml_collections.ConfigDict, type, jnp.dtype], nn.Module]
  loss_terms: Callable[..., dict]
  needs_ground_truth_latent: bool
  light_output: str
  label_light: Callable | None
  label_source: str
  light_composition: LightComposition | None
  config_file: str

  @property
  def any_label_temperature(self) -> bool:
    """Whether a label may name any temperature of the data's range, not only the five
    rendered ones (a generated envmap interpolates colours; reference images do not)."""
    return self.label_light is not None


OUTPUTS = ("direct", "residual")


def _output_is_residual(model_config):
  if model_config.output not in OUTPUTS:
    raise ValueError(f"model.output={model_config.output!r} is not one of {OUTPUTS}")
  return model_config.output == "residual"


def _relighter(head_fn):
  """build() of the report's Relighter (U-Net + a latent head) with the head of head_fn."""
  def build(model_config, conv, dtype):
    channels = unet.unet_channels(model_config.width, model_config.depth)
    return relighter.Relighter(
        latent_head=head_fn(model_config, channels.latent, dtype, conv),
        width=model_config.width,
        depth=model_config.depth,
        bottleneck_convs=model_config.bottleneck_convs,
        disabled_skips=tuple(model_config.disabled_skips),
        target_skips=tuple(model_config.target_skips),
        residual=_output_is_residual(model_config),
        dtype=dtype,
        conv=conv)
  return build


def _envmap_head(config, latent_channels, dtype, conv):
  return latent.EnvmapLatent(latent_channels, config.envmap_height, config.envmap_width,
                             dtype=dtype, conv=conv)


def _envmap_scene_head(config, latent_channels, dtype, conv):
  return latent.EnvmapSceneLatent(latent_channels, config.envmap_height, config.envmap_width,
                                  dtype=dtype, conv=conv)


def _illumination_predictor_head(config, latent_channels, dtype, conv):
  del conv  # the head has no convolutions
  return latent.IlluminationPredictorLatent(latent_channels, config.light_channels,
                                            tuple(config.predictor_hidden), dtype=dtype)


def _geometry_relighter(model_config, conv, dtype):
  if model_config.disabled_skips or model_config.target_skips:
    raise ValueError(f"model.name={model_config.name!r} uses every skip link of the input "
                     "image: model.disabled_skips and model.target_skips must be empty")
  channels = unet.unet_channels(model_config.width, model_config.depth)
  return geometry.GeometryRelighter(
      latent_head=_envmap_head(model_config, channels.latent, dtype, conv),
      geometry_maps=tuple(model_config.geometry_maps),
      light_elevation_deg=model_config.light_elevation_deg,
      relit_shading=bool(model_config.relit_shading),
      north_column=envmap.convention(model_config.envmap_convention).north_column,
      width=model_config.width,
      depth=model_config.depth,
      bottleneck_convs=model_config.bottleneck_convs,
      residual=_output_is_residual(model_config),
      dtype=dtype,
      conv=conv)


def _transport_relighter(model_config, conv, dtype):
  if model_config.disabled_skips or model_config.target_skips:
    raise ValueError(f"model.name={model_config.name!r} decodes I's transport from all of "
                     "I's skip links: model.disabled_skips and model.target_skips must be empty")
  # model.output is not read: Ĝ is composed from the predicted transport, and neither a
  # decoded image nor a change of I's logits ('residual', the 'ours' recipe's) exists here.
  return transport.TransportRelighter(
      # configs/transport.py declares the key; a bare defaults.model_section has the default.
      form=model_config.get("transport_form", transport.FORMS[0]),
      light_hidden=tuple(model_config.predictor_hidden),
      width=model_config.width,
      depth=model_config.depth,
      bottleneck_convs=model_config.bottleneck_convs,
      dtype=dtype,
      conv=conv)


def _transport_terms(outputs, batch, loss_config):
  # The renderer's physics, which the loss terms' layer may not import, comes from the model.
  return loss_terms.transport_terms(
      outputs, batch, loss_config, code=transport.transport_code,
      compose_all=transport.compose_all_lights, light_rgbs=transport.temperature_rgbs())


def _transport_light_of_label(temperature_k, direction_index, envmap_convention):
  del envmap_convention  # its light is numbers, not an envmap
  return transport.label_light(temperature_k, direction_index)


def _transport_relight_coloured(model, variables, input_image, coloured, form):
  return model.apply(variables, input_image, coloured, form=form,
                     method="relight_with_coloured_weights")


def _transport_own_light(encoded):
  return transport.split_light(encoded["light"])


_TRANSPORT_COMPOSITION = LightComposition(relight=_transport_relight_coloured,
                                          own_light=_transport_own_light,
                                          forms=transport.FORMS)


def _rgb_envmap_of_label(temperature_k, direction_index, envmap_convention):
  return envmap.envmap_rgb(temperature_k, direction_index, envmap_convention)[None]


def _hsv_envmap_of_label(temperature_k, direction_index, envmap_convention):
  return envmap.envmap_hsv(temperature_k, direction_index, envmap_convention)[None]


_RGB_ENVMAP_LABEL = "generated RGB envmap (envmap.envmap_rgb)"

# model.name -> its spec. The report's three (its names: "Envmap", "Envmap + scene",
# "IlluminationPredicter") and ours; configs/shadow_envmap.py is geometry_envmap with
# its shading switches on; transport predicts the renderer's light transport
# (models/transport.py).
SPECS: dict[str, ModelSpec] = {
    "envmap": ModelSpec(
        title="Envmap", in_report=True, build=_relighter(_envmap_head),
        loss_terms=loss_terms.envmap_terms, needs_ground_truth_latent=False,
        light_output="envmap", label_light=_rgb_envmap_of_label,
        label_source=_RGB_ENVMAP_LABEL, light_composition=None,
        config_file="envmap.py"),
    "envmap_scene": ModelSpec(
        title="Envmap + scene", in_report=True, build=_relighter(_envmap_scene_head),
        loss_terms=loss_terms.envmap_scene_terms, needs_ground_truth_latent=False,
        light_output="envmap_hsv", label_light=_hsv_envmap_of_label,
        label_source="generated HSV envmap (envmap.envmap_hsv)", light_composition=None,
        config_file="envmap_scene.py"),
    # The original averaged Lc and Ld over I, T and G: its loss reads G's encoding.
    "illumination_predictor": ModelSpec(
        title="IlluminationPredicter", in_report=True,
        build=_relighter(_illumination_predictor_head),
        loss_terms=loss_terms.illumination_predictor_terms, needs_ground_truth_latent=True,
        light_output="prediction", label_light=None,
        label_source="mean light latent of the training images under that light",
        light_composition=None, config_file="illumination_predictor.py"),
    "geometry_envmap": ModelSpec(
        title="Geometry Envmap", in_report=False, build=_geometry_relighter,
        loss_terms=loss_terms.geometry_envmap_terms, needs_ground_truth_latent=False,
        light_output="envmap", label_light=_rgb_envmap_of_label,
        label_source=_RGB_ENVMAP_LABEL, light_composition=None,
        config_file="geometry_envmap.py"),
    "transport": ModelSpec(
        title="Transport", in_report=False, build=_transport_relighter,
        loss_terms=_transport_terms, needs_ground_truth_latent=False,
        light_output="prediction", label_light=_transport_light_of_label,
        label_source="one-hot direction weights and the renderer's linear colour of the "
                     "temperature (illumination.light_rgb)",
        light_composition=_TRANSPORT_COMPOSITION, config_file="transport.py"),
}


def spec_of(name: str) -> ModelSpec:
  """The spec of `model.name`; ValueError naming the registered models otherwise."""
  if name not in SPECS:
    raise ValueError(f"model.name={name!r} is not one of {sorted(SPECS)}")
  return SPECS[name]


def _dtype(config):
  if config.dtype not in DTYPES:
    raise ValueError(f"model.dtype={config.dtype!r} is not one of {sorted(DTYPES)}")
  return DTYPES[config.dtype]


@functools.cache
def conv_module(impl: str):
  """flax's nn.Conv computing its convolutions as `model.conv_impl` says (cpu_kernels).

  Cached, so that every model built for one setting holds the same (equal) module.
  """
  function = cpu_kernels.conv_general_dilated(impl)
  if function is None:
    return nn.Conv
  return functools.partial(nn.Conv, conv_general_dilated=function)


def recording_kernels():
  """Context in which the models' Winograd convolutions record their transformed kernels
  (which depend on the variables only); yields a tape whose `.kernels` to replay."""
  return winograd.recording_kernels()


def replaying_kernels(kernels):
  """Context in which the models' Winograd convolutions reuse recorded kernels."""
  return winograd.replaying_kernels(kernels)


def create_model(model_config: ml_collections.ConfigDict, *, conv=None) -> nn.Module:
  """Builds the relighter described by a config's `model` section.

  Args:
    model_config: ConfigDict with the keys of config/defaults.model_section.
    conv: a convolution module used instead of `conv_module(model_config.conv_impl)`
      (benchmarks compare the kernels of cpu_kernels one by one this way).

  Returns:
    An unbound relighter (`Relighter`, `GeometryRelighter` or `TransportRelighter`);
    initialise with
    `model.init(rng, input_image, target_image, train=False)`.
  """
  spec = spec_of(model_config.name)
  # A bad model.envmap_convention fails here, not at the first batch or label.
  envmap.convention(model_config.envmap_convention)
  return spec.build(model_config, conv or conv_module(model_config.conv_impl),
                    _dtype(model_config))


def create_discriminator(model_config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the PatchGAN discriminator (pix2pix 70x70 at 3 layers) of a `model` section.

  Args:
    model_config: ConfigDict with `discriminator_features`, `discriminator_layers`
      and `dtype`.

  Returns:
    An unbound `PatchDiscriminator`: `apply(variables, image, train=...)` -> logits.
  """
  return discriminator.PatchDiscriminator(
      features=model_config.discriminator_features,
      num_layers=model_config.discriminator_layers,
      dtype=_dtype(model_config),
      conv=conv_module(model_config.conv_impl))


def encoder_downsampling(model_config) -> int:
  """Total downsampling factor of the encoder (the stem's stride-2 conv + `depth` stages):
  working resolutions must be multiples of it."""
  return 2 ** (model_config.depth + 1)
