"""Every config key, declared once with its meaning, and the presets and recipes.

A config file (`configs/<model>.py`) builds its config from `base_config()` (the
sections shared by all models: data, train, eval, checkpoint), `model_section(name)` and
`loss_section(...)`, then lets relight_jax/config/config_utils.py apply its config string,
which selects a preset (sizes), a recipe (how the model is trained) and switches
(`ConfigArgs`, applied by `apply_presets`).

This module imports neither JAX nor Flax: reading a config is cheap.
"""

import dataclasses

import ml_collections

PRESETS = ("smoke", "cpu", "paper")
# How a model is trained. 'report': the original code's training (Adam at torch's
# default rate 1e-3, constant; the batch size, step count and pairing rule each model's
# config file states in its `ReportTraining`; direct output). 'ours': our additions for
# short CPU runs (residual output, same-direction pairs mixed in, a cosine-decayed rate;
# docs/deviations.md).
RECIPES = ("report", "ours")
DEFAULT_RECIPES = {"smoke": "report", "cpu": "ours", "paper": "report"}


@dataclasses.dataclass(frozen=True)
class ReportTraining:
  """How the original code trained a model: what recipe 'report' and preset 'paper' set.

  Attributes:
    batch_size: train.batch_size of recipe 'report'.
    num_steps: train.num_steps of preset 'paper'.
    pairing: data.pairing of recipe 'report' (input_pipeline.RULES names; '' = all pairs).
  """

  batch_size: int
  num_steps: int
  pairing: str


# The report's rule (§3.1): I and T of different scenes, lit from different directions.
REPORT_RULE = "different_scene,different_direction"


@dataclasses.dataclass(frozen=True)
class ConfigArgs:
  """The typed variants a config string can select."""

  preset: str = "cpu"      # one of PRESETS: the sizes (data, image size, width, steps)
  recipe: str = ""         # one of RECIPES (empty: the preset's own, DEFAULT_RECIPES)
  gan: bool = False        # add the PatchGAN discriminator (report §3.5, "realistic" GAN)
  data: str = ""           # TFDS config of `vidit` (empty: the preset's own)
  bf16: bool = False       # bfloat16 compute, float32 master weights
  steps: int = 0           # override train.num_steps (0: the preset's own)
  # Skip links the decoder drops / takes from T instead of I; written '+'-separated in a
  # config string: "disabled_skips=0+1+2".
  disabled_skips: tuple[int, ...] = ()
  target_skips: tuple[int, ...] = ()


ARG_DEFAULTS = ConfigArgs()


def base_config():
  """Returns the sections shared by every model's config, each key commented."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # seeds parameter init, the training stream and dropout-free step rngs
  config.recipe = "report"  # how the model is trained: one of RECIPES (set by the preset)

  config.data = ml_collections.ConfigDict()
  config.data.name = "vidit/synthetic_small"  # TFDS dataset/config of 40-illumination scenes
  config.data.data_dir = "data/tfds"          # TFDS data_dir (relative to the working directory)
  config.data.train_split = "train"
  # Split of the periodic evaluation during training (and of any choice made from it).
  config.data.eval_split = "validation"
  config.data.image_size = 64                 # pixels per side fed to the model (resized if needed)
  # Pairing rule of the training stream (report §3.1: I and T from different scenes, lit
  # from different directions). Comma-separated names of input_pipeline.RULES; empty =
  # all pairs. The 'report' recipe sets the original's rule of each model (its config file).
  config.data.pairing = "different_scene,different_direction"
  # A second pairing mixed into the training stream with probability extra_fraction
  # (our addition; 0 = the report's stream).
  config.data.extra_pairing = "different_scene,same_direction"
  config.data.extra_fraction = 0.0
  # Decode every image of a split once into memory when it fits in this many MiB; the
  # stream then only composes triplets (bench/input_pipeline.py measures the gain).
  config.data.cache_mib = 2048
  # Per-scene maps of the renderer added to every triplet as {input,target}_<name>
  # (scene_images.AOVS: 'depth', 'normals', 'shading'; 'transport' adds I's
  # input_transport and input_fixed_light); only models with losses on them read them.
  config.data.aovs = ()
  config.data.prefetch = 2                    # batches prepared ahead by a background thread

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 16                # global batch (split over all devices)
  config.train.num_steps = 1000
  config.train.learning_rate = 2e-4           # optax Adam (report: Adam; rate not given)
  config.train.b1 = 0.9
  config.train.b2 = 0.999
  config.train.warmup_steps = 0               # linear warm-up from 0 to the peak rate
  # After the warm-up: 'constant' (the rate stays at its peak; the report gives no
  # schedule) or 'cosine' (half-cosine decay to 0 at num_steps; state.make_optimizer).
  config.train.lr_decay = "constant"
  config.train.gan = False                    # alternate PatchGAN discriminator updates
  config.train.discriminator_learning_rate = 2e-4
  config.train.log_every = 25                 # fetch metrics, write scalars, print progress
  config.train.image_every = 250              # write I/T/G/relit grids and envmaps
  config.train.checkpoint_every = 250
  # Periodic evaluation: Score and metrics on a few batches of Train (pairs of training
  # scenes), of Eval and of Eval[d_I = d_T] on data.eval_split (report Fig. 6).
  config.train.eval_every = 500
  config.train.eval_batches = 4               # batches per set of that periodic evaluation

  config.eval = ml_collections.ConfigDict()
  # Split of the final evaluation tables: 'test' (locations never used for a choice).
  config.eval.split = "test"
  # Dataset of the final evaluation when it is not data.name (e.g. vidit/synthetic_v2_eval,
  # test sets of 24 locations); empty = data.name. Results go to eval_<config>_<split>/.
  config.eval.data = ""
  # Rule of Eval; Eval[c_I = c_T] and Eval[d_I = d_T] derive from it (input_pipeline).
  # The same for every model, so that their tables combine.
  config.eval.pairing = "different_scene,different_direction"
  config.eval.num_pairs = 10_000              # fixed seeded Eval list (report: 10,000)
  config.eval.batch_size = 32
  config.eval.seed = 1234                     # seed of the fixed evaluation lists
  config.eval.lpips = True                    # LPIPS-AlexNet column (slow on CPU at 256 px)
  config.eval.sheet_examples = 3              # best / median / worst examples on the sheet
  # 95% confidence intervals: bootstrap replicates resampling scenes (pairs of one scene
  # are not independent), and the seed of that resampling.
  config.eval.bootstrap_samples = 1000
  config.eval.bootstrap_seed = 0

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.max_to_keep = 3
  config.checkpoint.async_save = True
  return config


def model_section(name: str = "envmap") -> ml_collections.ConfigDict:
  """The `model` section of a config at paper size (report §3.2-3.4) for a model name.

  Args:
    name: a key of models/registry.SPECS (checked when the model is built).

  Returns:
    An unlocked ConfigDict with the keys the models of models/registry.py read; a
    model's config file may add keys of its own.
  """
  config = ml_collections.ConfigDict()
  config.name = name  # a key of models/registry.SPECS
  config.width = 1.0  # Channel multiplier; 1.0 = paper sizes (latent 512 channels).
  config.depth = 3  # Double-conv down stages: 64 -> 128 -> 256 -> 512.
  config.bottleneck_convs = 3  # Convs at the latent resolution (independent weights).
  config.disabled_skips = ()  # Skip link indices not used (0 = shallowest, 10 in all).
  config.target_skips = ()  # Skip link indices taken from the target image T.
  config.envmap_height = 16  # Envmap size (report §3.4: 16 x 32).
  config.envmap_width = 32
  # The generated envmaps the model learns (data/envmap.CONVENTIONS): 'original' (the
  # original code's colours and blob layout) | 'v1' (our first maps, which workdirs
  # written before this key were trained on). The light latent means what it was trained
  # on: the ground truth, the label relighting and the geometry model's columns read it.
  config.envmap_convention = "original"
  config.light_channels = 3  # illumination_predictor: light latent channels.
  # geometry_envmap: maps its geometry head predicts (models/geometry.GEOMETRY_CHANNELS),
  # and the elevation of the renderer's light (render/mitsuba_scene.LIGHT_ELEVATION_DEG),
  # at which an envmap column's light is placed for shading.
  config.geometry_maps = ("normals", "depth")
  config.light_elevation_deg = 35.0
  # geometry_envmap: predict the shading of I's scene under T's light, cast shadows
  # included, and give it to the decoder (models/geometry.py; needs v2 data's shading).
  config.relit_shading = False
  # illumination_predictor and transport: hidden sizes of the light estimate's MLP.
  config.predictor_hidden = (20, 10)
  config.dtype = "float32"  # Compute dtype: 'float32' | 'bfloat16' (params float32).
  # How the convolutions are computed (relight_jax/cpu_kernels, docs/cpu_kernels.md):
  # 'cpu_fast' (Winograd and two other rewrites on the CPU, for the layers where they
  # measured faster; XLA's convolutions on GPUs) | 'xla'. Same outputs and gradients up
  # to float32 rounding.
  config.conv_impl = "cpu_fast"
  config.output = "direct"  # 'direct' (report) | 'residual' (logit change of I, our addition).
  config.discriminator_features = 64  # PatchGAN base width (pix2pix ndf).
  config.discriminator_layers = 3  # PatchGAN stride-2 layers (70x70 receptive field).
  return config


def loss_section(reconstruction, **weights):
  """Returns the `loss` section: `reconstruction` names the image loss, weights default 0."""
  loss = ml_collections.ConfigDict()
  loss.reconstruction = reconstruction  # 'l1' | 'l2' | 'lpips'
  loss.reconstruction_weight = 1.0
  loss.envmap_weight = 0.0          # Le, log-L2 on the RGB envmap (eq. 2)
  loss.hue_weight = 0.0             # envmap_scene: cosine loss on the hue
  loss.saturation_weight = 0.0      # envmap_scene: MSE on the saturation
  loss.value_weight = 0.0           # envmap_scene: Le on the 512 brightness values
  loss.temperature_weight = 0.0     # Lc = (c - c_hat)^2 / 2000^2
  loss.direction_weight = 0.0       # Ld = 1 - cos(pi (d - d_hat) / 180), eq. 1
  loss.lpips_net = "alex"           # LPIPS backbone when reconstruction == 'lpips'
  loss.gan_weight = 0.0             # generator LSGAN term (gan=True sets it)
  # geometry_envmap's auxiliary losses on the predicted maps of I and T (the renderer's
  # AOVs): 1 - cos on normals, L1 on depth.
  loss.normals_weight = 0.0
  loss.depth_weight = 0.0
  # With model.relit_shading (v2 data): L1 on each image's own predicted shading (when
  # model.geometry_maps has 'shading') and on the predicted shading of I under T's light.
  loss.shading_weight = 0.0
  loss.relit_shading_weight = 0.0
  # The report's latent losses (§3.4), which it tried and abandoned: L(1) ('plain') or
  # L(2) ('with_reference') on the scene latents of I, G, relit and the light latents of
  # T, G, relit. 0 = off (the report's final models).
  loss.scene_latent_weight = 0.0
  loss.light_latent_weight = 0.0
  loss.latent_loss = "plain"        # 'plain' = L(1) | 'with_reference' = L(2)
  for key, value in weights.items():
    if key not in loss:
      raise ValueError(f"unknown loss weight {key!r}; valid: {sorted(loss)}")
    loss[key] = value
  return loss


# What each preset sets (over base_config and the recipe), as dotted keys.
PRESET_VALUES = {
    # Seconds on 2 CPU cores: used by the tests. Batch 8 whatever the recipe, so that it
    # splits over the tests' 4 CPU devices. One down stage and one bottleneck conv: on a
    # CPU, compiling the train step is most of a short run, and its time grows with the
    # layer count (depth 3 with 3 bottleneck convs takes about 2.5x as long). The paper's
    # depth is tested through its shapes and parameter counts (tests/test_models.py).
    "smoke": {
        "data.name": "vidit/synthetic_tiny", "data.image_size": 32, "model.width": 0.125,
        "model.depth": 1, "model.bottleneck_convs": 1,
        "train.batch_size": 8, "train.num_steps": 6, "train.log_every": 2,
        "train.image_every": 3, "train.checkpoint_every": 3, "train.eval_every": 6,
        "train.eval_batches": 1, "eval.num_pairs": 16, "eval.batch_size": 8,
        "eval.lpips": False, "eval.bootstrap_samples": 200, "checkpoint.async_save": False,
    },
    # A width-reduced model at 64 px that trains on 2 cores in minutes (the demo).
    "cpu": {
        "data.name": "vidit/synthetic_small", "data.image_size": 64, "model.width": 0.25,
        "train.num_steps": 1500, "eval.num_pairs": 1000, "eval.batch_size": 50,
    },
    # The report's sizes: 256 px, full-width U-Net (512 x 16 x 16 latent); a GPU run of
    # the original's step count of the model (its config file's ReportTraining).
    "paper": {
        "data.name": "vidit/synthetic", "data.image_size": 256, "model.width": 1.0,
        "train.log_every": 100, "train.image_every": 1000, "train.checkpoint_every": 2000,
        "train.eval_every": 5000, "eval.num_pairs": 10_000, "eval.batch_size": 64,
    },
}


def apply_presets(config, args, report):
  """Applies a preset (sizes), a recipe (training) and the switches of `args`.

  Args:
    config: a config with every section declared.
    args: parsed `ConfigArgs`.
    report: the model's `ReportTraining` (its config file's).

  Returns:
    The same config, modified in place, for chaining.
  """
  recipe = args.recipe or DEFAULT_RECIPES[args.preset]
  config.recipe = recipe
  if recipe == "report":
    config.train.learning_rate = 1e-3  # torch.optim.Adam's default, as the original ran it
    config.train.lr_decay = "constant"
    config.train.batch_size = report.batch_size
    config.data.pairing = report.pairing
    config.model.output = "direct"
    config.data.extra_fraction = 0.0
  else:
    # A few-minute CPU run cannot learn the identity through the U-Net: start from it
    # (residual output), and show same-direction pairs too, so that Eval[d_I = d_T] is
    # not lost. A rate decayed to 0 settles the final weights and BatchNorm statistics,
    # which a constant rate leaves to float32 rounding (docs/deviations.md).
    config.model.output = "residual"
    config.data.extra_fraction = 0.5
    config.train.batch_size = 16
    config.train.learning_rate = 5e-4
    config.train.lr_decay = "cosine"
  for dotted, value in PRESET_VALUES[args.preset].items():
    section, key = dotted.split(".")
    config[section][key] = value
  if args.preset == "paper":
    config.train.num_steps = report.num_steps
  if args.data:
    config.data.name = args.data if "/" in args.data else f"vidit/{args.data}"
  if args.gan:
    config.train.gan = True
    config.loss.gan_weight = 0.01
  if args.bf16:
    config.model.dtype = "bfloat16"
  if args.steps:
    config.train.num_steps = args.steps
  config.model.disabled_skips = args.disabled_skips
  config.model.target_skips = args.target_skips
  return config
