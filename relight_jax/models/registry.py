"""Model registry: config `model` section -> Flax modules (the report's three models and ours).

`MODELS` maps a config's `model.name` to its latent head; `create_model` builds the
`Relighter` (for GEOMETRY_MODELS the `geometry.GeometryRelighter`) and
`create_discriminator` the PatchGAN from the same section (its keys are
declared, with their meaning, in relight_jax/config/defaults.py). Every convolution of both
goes through one module, `conv_module(model.conv_impl)`: this is the one place that
chooses between XLA's convolutions and relight_jax/cpu_kernels.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from relight_jax import cpu_kernels
from relight_jax.models import discriminator
from relight_jax.models import geometry
from relight_jax.models import latent
from relight_jax.models import relighter
from relight_jax.models import unet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


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


# model.name -> builder of the latent head (report: "Envmap", "Envmap + scene",
# "IlluminationPredicter"; ours: "geometry_envmap", the Envmap head with geometry).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "envmap": _envmap_head,
    "envmap_scene": _envmap_scene_head,
    "illumination_predictor": _illumination_predictor_head,
    "geometry_envmap": _envmap_head,
}
# Models built as geometry.GeometryRelighter (auxiliary geometry heads, envmap shading).
GEOMETRY_MODELS = ("geometry_envmap",)


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


def create_model(model_config: ml_collections.ConfigDict, *, conv=None) -> nn.Module:
  """Builds the relighter described by a config's `model` section.

  Args:
    model_config: ConfigDict with the keys of defaults.model_section.
    conv: a convolution module used instead of `conv_module(model_config.conv_impl)`
      (benchmarks compare the kernels of cpu_kernels one by one this way).

  Returns:
    An unbound `Relighter` or `GeometryRelighter`; initialise with
    `model.init(rng, input_image, target_image, train=False)`.
  """
  if model_config.name not in MODELS:
    raise ValueError(f"model.name={model_config.name!r} is not one of {sorted(MODELS)}")
  dtype = _dtype(model_config)
  conv = conv or conv_module(model_config.conv_impl)
  channels = unet.unet_channels(model_config.width, model_config.depth)
  head = MODELS[model_config.name](model_config, channels.latent, dtype, conv)
  if model_config.name in GEOMETRY_MODELS:
    if model_config.disabled_skips or model_config.target_skips:
      raise ValueError(f"model.name={model_config.name!r} uses every skip link of the input "
                       "image: model.disabled_skips and model.target_skips must be empty")
    return geometry.GeometryRelighter(
        latent_head=head,
        geometry_maps=tuple(model_config.geometry_maps),
        light_elevation_deg=model_config.light_elevation_deg,
        relit_shading=bool(model_config.relit_shading),
        width=model_config.width,
        depth=model_config.depth,
        bottleneck_convs=model_config.bottleneck_convs,
        residual=_output_is_residual(model_config),
        dtype=dtype,
        conv=conv)
  return relighter.Relighter(
      latent_head=head,
      width=model_config.width,
      depth=model_config.depth,
      bottleneck_convs=model_config.bottleneck_convs,
      disabled_skips=tuple(model_config.disabled_skips),
      target_skips=tuple(model_config.target_skips),
      residual=_output_is_residual(model_config),
      dtype=dtype,
      conv=conv)


OUTPUTS = ("direct", "residual")


def _output_is_residual(model_config):
  if model_config.output not in OUTPUTS:
    raise ValueError(f"model.output={model_config.output!r} is not one of {OUTPUTS}")
  return model_config.output == "residual"


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
