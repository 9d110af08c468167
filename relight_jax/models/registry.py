"""Model registry: config `model` section -> Flax modules (the report's three models).

`MODELS` maps a config's `model.name` to its latent head; `create_model` builds the
`Relighter` and `create_discriminator` the PatchGAN from the same section, whose keys
are exactly those of `default_model_config` (configs copy it).
"""

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from relight_jax.models import discriminator
from relight_jax.models import latent
from relight_jax.models import relighter
from relight_jax.models import unet
from relight_jax.models import winograd

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _envmap_head(config, latent_channels, dtype, convs):
  return latent.EnvmapLatent(latent_channels, config.envmap_height, config.envmap_width,
                             dtype=dtype, **convs)


def _envmap_scene_head(config, latent_channels, dtype, convs):
  return latent.EnvmapSceneLatent(latent_channels, config.envmap_height, config.envmap_width,
                                  dtype=dtype, **convs)


def _illumination_predictor_head(config, latent_channels, dtype, convs):
  del convs  # the head has no convolutions
  return latent.IlluminationPredictorLatent(latent_channels, config.light_channels,
                                            tuple(config.predictor_hidden), dtype=dtype)


# model.name -> builder of the latent head (report: "Envmap", "Envmap + scene",
# "IlluminationPredicter").
MODELS: dict[str, Callable[..., nn.Module]] = {
    "envmap": _envmap_head,
    "envmap_scene": _envmap_scene_head,
    "illumination_predictor": _illumination_predictor_head,
}


def _dtype(config):
  if config.dtype not in DTYPES:
    raise ValueError(f"model.dtype={config.dtype!r} is not one of {sorted(DTYPES)}")
  return DTYPES[config.dtype]


def create_model(model_config: ml_collections.ConfigDict) -> relighter.Relighter:
  """Builds the relighter described by a config's `model` section.

  Args:
    model_config: ConfigDict with the keys of `default_model_config`.

  Returns:
    An unbound `Relighter`; initialise with
    `model.init(rng, input_image, target_image, train=False)`.
  """
  if model_config.name not in MODELS:
    raise ValueError(f"model.name={model_config.name!r} is not one of {sorted(MODELS)}")
  dtype = _dtype(model_config)
  # The 3x3 convolutions' algorithms (models/winograd.py). Configs saved before the keys
  # existed (a run's config.json) get the defaults.
  convs = {}
  for key, allowed in (("conv_kernel_grad", winograd.KERNEL_GRADS),
                       ("conv_forward", winograd.FORWARDS),
                       ("winograd_transforms", winograd.TRANSFORMS)):
    convs[key] = model_config.get(key, "auto")
    if convs[key] not in allowed:
      raise ValueError(f"model.{key}={convs[key]!r} is not one of {allowed}")
  channels = unet.unet_channels(model_config.width, model_config.depth)
  head = MODELS[model_config.name](model_config, channels.latent, dtype, convs)
  return relighter.Relighter(
      latent_head=head,
      width=model_config.width,
      depth=model_config.depth,
      bottleneck_convs=model_config.bottleneck_convs,
      disabled_skips=tuple(model_config.disabled_skips),
      target_skips=tuple(model_config.target_skips),
      residual=_output_is_residual(model_config),
      dtype=dtype,
      **convs)


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
      dtype=_dtype(model_config))


def default_model_config(name: str = "envmap") -> ml_collections.ConfigDict:
  """The `model` section of a config at paper size (report §3.2-3.4) for a model name.

  Args:
    name: a key of MODELS.

  Returns:
    An unlocked ConfigDict with exactly the keys `create_model` reads.
  """
  if name not in MODELS:
    raise ValueError(f"model name {name!r} is not one of {sorted(MODELS)}")
  config = ml_collections.ConfigDict()
  config.name = name  # 'envmap' | 'envmap_scene' | 'illumination_predictor'
  config.width = 1.0  # Channel multiplier; 1.0 = paper sizes (latent 512 channels).
  config.depth = 3  # Double-conv down stages: 64 -> 128 -> 256 -> 512.
  config.bottleneck_convs = 3  # Convs at the latent resolution (independent weights).
  config.disabled_skips = ()  # Skip link indices not used (0 = shallowest, 10 in all).
  config.target_skips = ()  # Skip link indices taken from the target image T.
  config.envmap_height = 16  # Envmap size (report §3.4: 16 x 32).
  config.envmap_width = 32
  config.light_channels = 3  # illumination_predictor: light latent channels.
  config.predictor_hidden = (20, 10)  # illumination_predictor: MLP hidden sizes.
  config.dtype = "float32"  # Compute dtype: 'float32' | 'bfloat16' (params float32).
  # Kernel gradients of the 3x3 convs: 'auto' (Winograd for the layers on >= 16 px maps
  # that it speeds up on the CPU; XLA's elsewhere) | 'winograd' | 'xla'. Same gradients
  # up to float32 rounding (models/winograd.py). Also the 7x7 stem's (Winograd over a
  # space-to-depth map, models/space_to_depth.py) and, unless 'xla', on the CPU the
  # strided convs' (one patch product, models/patch_gradient.py).
  config.conv_kernel_grad = "auto"
  # Forward pass and input gradient of the 3x3 convs (and of the stem): 'auto'
  # (Winograd for the layers it speeds up on the CPU; XLA's elsewhere) | 'winograd' |
  # 'xla'. Same outputs and gradients up to float32 rounding.
  config.conv_forward = "auto"
  # The Winograd tile transforms: 'auto' (C++, compiled on first use, on the CPU where a
  # C++ compiler is found; jax.numpy's otherwise) | 'native' (C++ or an error) | 'xla'
  # (models/native_tiles.py). 'auto' also picks the layers above by which one is used.
  config.winograd_transforms = "auto"
  config.output = "direct"  # 'direct' (report) | 'residual' (logit change of I, our addition).
  config.discriminator_features = 64  # PatchGAN base width (pix2pix ndf).
  config.discriminator_layers = 3  # PatchGAN stride-2 layers (70x70 receptive field).
  return config
