"""Config plumbing: the typed config-string arguments and the sections shared by all models.

A config file is `configs/<model>.py` with `get_config(arg=None)`. Its argument is a
config string such as `smoke` or `preset=cpu,gan=True,data=synthetic`: comma-separated
`key=value` pairs typed by the defaults in `ARG_DEFAULTS`, plus bare words that name a
preset (`smoke` means `preset=smoke`) or switch a boolean on (`gan` means `gan=True`).
Unknown keys and badly typed values fail with a message that lists what is accepted.

`base_config()` declares every key shared by the three models (data, train, eval,
checkpoint, logging), each with a comment; the model files add their `model` and `loss`
sections and call `apply_presets()`.
"""

import dataclasses
import importlib.util
import json
import pathlib

import ml_collections

PRESETS = ("smoke", "cpu", "paper")
# How a model is trained. 'report': the original code's training (Adam at torch's
# default rate 1e-3, constant; batch 25 for the envmap models and 8 for the
# IlluminationPredicter, which the original trained on all pairs; direct output).
# 'ours': our additions for short CPU runs (residual output, same-direction pairs
# mixed in, a cosine-decayed rate; docs/deviations.md).
RECIPES = ("report", "ours")
DEFAULT_RECIPES = {"smoke": "report", "cpu": "ours", "paper": "report"}
# The original's batch sizes and training lengths (trainWithGeneratedEnvmaps.py: 30
# epochs of 100,000 sampled pairs at batch 25 for Envmap, 20 epochs of 400,000 for
# Envmap + scene; train.py with default_config.txt: 60,000 batches of 8).
REPORT_BATCH = {"envmap": 25, "envmap_scene": 25, "illumination_predictor": 8}
REPORT_STEPS = {"envmap": 120_000, "envmap_scene": 320_000, "illumination_predictor": 60_000}
# The original's pairing per model: the envmap models drew pairs of different scenes and
# different directions (report §3.1); the IlluminationPredicter drew from all pairs.
REPORT_PAIRING = {"envmap": "different_scene,different_direction",
                  "envmap_scene": "different_scene,different_direction",
                  "illumination_predictor": ""}


@dataclasses.dataclass(frozen=True)
class ConfigArgs:
  """The typed variants a config string can select."""

  preset: str = "cpu"      # one of PRESETS: the sizes (data, image size, width, steps)
  recipe: str = ""         # one of RECIPES (empty: the preset's own, DEFAULT_RECIPES)
  gan: bool = False        # add the PatchGAN discriminator (report §3.5, "realistic" GAN)
  data: str = ""           # TFDS config of `vidit` (empty: the preset's own)
  bf16: bool = False       # bfloat16 compute, float32 master weights
  steps: int = 0           # override train.num_steps (0: the preset's own)
  disabled_skips: str = ""  # skip links the decoder drops, '+'-separated: "0+1+2"
  target_skips: str = ""   # skip links taken from T instead of I, '+'-separated


ARG_DEFAULTS = ConfigArgs()


def _parse_bool(key, text):
  lowered = text.strip().lower()
  if lowered in ("1", "true", "yes", "on"):
    return True
  if lowered in ("0", "false", "no", "off"):
    return False
  raise ValueError(f"config argument {key}={text!r}: expected a boolean (True/False)")


def parse_arg(arg):
  """Parses a config-string argument into `ConfigArgs`.

  Args:
    arg: None, '' or a string such as 'smoke' or 'preset=cpu,gan=True,data=synthetic'.

  Returns:
    The parsed `ConfigArgs`.

  Raises:
    ValueError: unknown key, unknown preset or a value of the wrong type.
  """
  values = {}
  fields = {field.name: field for field in dataclasses.fields(ConfigArgs)}
  for token in (arg or "").split(","):
    token = token.strip()
    if not token:
      continue
    if "=" in token:
      key, text = (part.strip() for part in token.split("=", 1))
    elif token in PRESETS:
      key, text = "preset", token
    elif token in fields and fields[token].type is bool:
      key, text = token, "True"
    else:
      raise ValueError(
          f"config argument {token!r} is neither key=value, a preset {PRESETS} nor a "
          f"boolean switch; valid keys: {sorted(fields)}")
    if key not in fields:
      raise ValueError(f"unknown config argument {key!r}; valid keys: {sorted(fields)}")
    kind = fields[key].type
    if kind is bool:
      values[key] = _parse_bool(key, text)
    elif kind is int:
      try:
        values[key] = int(text)
      except ValueError:
        raise ValueError(f"config argument {key}={text!r}: expected an integer") from None
    else:
      values[key] = text
  parsed = ConfigArgs(**values)
  if parsed.preset not in PRESETS:
    raise ValueError(f"unknown preset {parsed.preset!r}; expected one of {PRESETS}")
  if parsed.recipe and parsed.recipe not in RECIPES:
    raise ValueError(f"unknown recipe {parsed.recipe!r}; expected one of {RECIPES}")
  for key in ("disabled_skips", "target_skips"):
    _parse_indices(key, getattr(parsed, key))
  return parsed


def _parse_indices(key, text):
  try:
    return tuple(int(part) for part in text.split("+") if part.strip())
  except ValueError:
    raise ValueError(f"config argument {key}={text!r}: expected skip-link indices joined "
                     "by '+', e.g. 0+1+2") from None


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
  # all pairs. The 'report' recipe sets the original's rule per model (REPORT_PAIRING).
  config.data.pairing = "different_scene,different_direction"
  # A second pairing mixed into the training stream with probability extra_fraction
  # (our addition; 0 = the report's stream).
  config.data.extra_pairing = "different_scene,same_direction"
  config.data.extra_fraction = 0.0
  # Decode every image of a split once into memory when it fits in this many MiB; the
  # stream then only composes triplets (bench/input_pipeline.py measures the gain).
  config.data.cache_mib = 2048
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


def apply_presets(config, args):
  """Applies a preset (sizes), a recipe (training) and the switches of `args`.

  Args:
    config: a config with every section declared.
    args: parsed `ConfigArgs`.

  Returns:
    The same config, modified in place, for chaining.
  """
  name = config.model.name
  recipe = args.recipe or DEFAULT_RECIPES[args.preset]
  config.recipe = recipe
  if recipe == "report":
    config.train.learning_rate = 1e-3  # torch.optim.Adam's default, as the original ran it
    config.train.lr_decay = "constant"
    config.train.batch_size = REPORT_BATCH[name]
    config.data.pairing = REPORT_PAIRING[name]
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
  if args.preset == "smoke":
    # Seconds on 2 CPU cores: used by the tests. Batch 8 whatever the recipe, so that it
    # splits over the tests' 4 CPU devices.
    config.data.name = "vidit/synthetic_tiny"
    config.data.image_size = 32
    config.model.width = 0.125
    config.train.batch_size = 8
    config.train.num_steps = 6
    config.train.log_every = 2
    config.train.image_every = 3
    config.train.checkpoint_every = 3
    config.train.eval_every = 6
    config.train.eval_batches = 1
    config.eval.num_pairs = 16
    config.eval.batch_size = 8
    config.eval.lpips = False
    config.eval.bootstrap_samples = 200
    config.checkpoint.async_save = False
  elif args.preset == "cpu":
    # A width-reduced model at 64 px that trains on 2 cores in minutes (the demo).
    config.data.name = "vidit/synthetic_small"
    config.data.image_size = 64
    config.model.width = 0.25
    config.train.num_steps = 1500
    config.eval.num_pairs = 1000
    config.eval.batch_size = 50
  elif args.preset == "paper":
    # The report's sizes: 256 px, full-width U-Net (512 x 16 x 16 latent); a GPU run.
    config.data.name = "vidit/synthetic"
    config.data.image_size = 256
    config.model.width = 1.0
    config.train.num_steps = REPORT_STEPS[name]
    config.train.log_every = 100
    config.train.image_every = 1000
    config.train.checkpoint_every = 2000
    config.train.eval_every = 5000
    config.eval.num_pairs = 10_000
    config.eval.batch_size = 64
  if args.data:
    config.data.name = args.data if "/" in args.data else f"vidit/{args.data}"
  if args.gan:
    config.train.gan = True
    config.loss.gan_weight = 0.01
  if args.bf16:
    config.model.dtype = "bfloat16"
  if args.steps:
    config.train.num_steps = args.steps
  config.model.disabled_skips = _parse_indices("disabled_skips", args.disabled_skips)
  config.model.target_skips = _parse_indices("target_skips", args.target_skips)
  return config


CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


def config_from_file(spec):
  """Loads `configs/<file>.py[:arg]` like --config of relight_jax.main.

  Args:
    spec: "envmap.py:smoke" (a file of the repository's configs/) or a path with an
      optional ":arg", e.g. "configs/envmap.py:preset=paper".

  Returns:
    The locked config.
  """
  file_name, _, arg = spec.partition(":")
  path = pathlib.Path(file_name)
  if not path.exists():
    path = CONFIGS_DIR / file_name
  if not path.exists():
    raise FileNotFoundError(f"config file {file_name!r} not found (nor in {CONFIGS_DIR})")
  module_spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def save_config(config, path):
  """Writes `config` as JSON to `path` atomically (the workdir's `config.json`)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(config.to_json(indent=2, sort_keys=True))
  temporary.replace(path)


def load_config(path):
  """Reads a config written by `save_config`; tuples come back as tuples."""
  path = pathlib.Path(path)
  try:
    raw = json.loads(path.read_text())
  except FileNotFoundError:
    raise FileNotFoundError(f"no config at {path}: is this a training workdir?") from None
  except json.JSONDecodeError as error:
    raise ValueError(f"{path} is not valid JSON: {error}") from None

  def to_tuples(value):
    if isinstance(value, list):
      return tuple(to_tuples(item) for item in value)
    if isinstance(value, dict):
      return {key: to_tuples(item) for key, item in value.items()}
    return value

  return ml_collections.ConfigDict(to_tuples(raw))


def model_section(name):
  """Returns the `model` section (paper sizes) for a model name of the registry.

  The registry's `default_model_config`, whose keys are exactly those `create_model`
  reads (each commented there); imported here, not at module level, so that reading a
  config does not import Flax.
  """
  from relight_jax.models import registry  # pylint: disable=g-import-not-at-top
  return registry.default_model_config(name)


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


def finalize(config, arg):
  """Applies the config string `arg` to a full config and locks it."""
  apply_presets(config, parse_arg(arg))
  config.lock()
  return config
