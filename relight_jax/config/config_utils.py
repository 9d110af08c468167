"""Config strings and config files: parsing, loading and saving.

A config file is `configs/<model>.py` with `get_config(arg=None)`. Its argument is a
config string such as `smoke` or `preset=cpu,gan=True,data=synthetic`: comma-separated
`key=value` pairs typed by the fields of `defaults.ConfigArgs`, plus bare words that name
a preset (`smoke` means `preset=smoke`) or switch a boolean on (`gan` means `gan=True`).
Unknown keys and badly typed values fail with a message that lists what is accepted.
The keys themselves and the presets are declared in relight_jax/config/defaults.py.

`config_from_file` is the one loader of config files (the entry points, the demo, the
benchmarks, the tests and the notebooks use it). A workdir's `config.json` is read and
written with its checkpoints (relight_jax/training/checkpointing.py).

`validate` refuses numeric settings no run can use (a NaN or negative learning rate, a
zero batch, an image size the encoder cannot halve evenly, a batch, width or image size
far past what memory holds, ...) with an error naming the key. `finalize` calls it after
the presets; command-line overrides (`--config.train.learning_rate=...`) are applied after
the config file returns, so the entry point calls it again on the final config.
"""

import dataclasses
import importlib.util
import math
import numbers
import pathlib

from relight_jax.config import defaults


def _parse_bool(key, text):
  lowered = text.strip().lower()
  if lowered in ("1", "true", "yes", "on"):
    return True
  if lowered in ("0", "false", "no", "off"):
    return False
  raise ValueError(f"config argument {key}={text!r}: expected a boolean (True/False)")


def parse_arg(arg):
  """Parses a config-string argument into `defaults.ConfigArgs`.

  Args:
    arg: None, '' or a string such as 'smoke' or 'preset=cpu,gan=True,data=synthetic'.

  Returns:
    The parsed `defaults.ConfigArgs`.

  Raises:
    ValueError: unknown key, unknown preset or a value of the wrong type.
  """
  values = {}
  fields = {field.name: field for field in dataclasses.fields(defaults.ConfigArgs)}
  for token in (arg or "").split(","):
    token = token.strip()
    if not token:
      continue
    if "=" in token:
      key, text = (part.strip() for part in token.split("=", 1))
    elif token in defaults.PRESETS:
      key, text = "preset", token
    elif token in fields and fields[token].type is bool:
      key, text = token, "True"
    else:
      raise ValueError(
          f"config argument {token!r} is neither key=value, a preset {defaults.PRESETS} nor a "
          f"boolean switch; valid keys: {sorted(fields)}")
    if key not in fields:
      raise ValueError(f"unknown config argument {key!r}; valid keys: {sorted(fields)}")
    kind = fields[key].type
    if kind is bool:
      values[key] = _parse_bool(key, text)
    elif kind == tuple[int, ...]:
      values[key] = _parse_indices(key, text)
    elif kind is int:
      try:
        values[key] = int(text)
      except ValueError:
        raise ValueError(f"config argument {key}={text!r}: expected an integer") from None
    else:
      values[key] = text
  parsed = defaults.ConfigArgs(**values)
  if parsed.preset not in defaults.PRESETS:
    raise ValueError(f"unknown preset {parsed.preset!r}; expected one of {defaults.PRESETS}")
  if parsed.recipe and parsed.recipe not in defaults.RECIPES:
    raise ValueError(f"unknown recipe {parsed.recipe!r}; expected one of {defaults.RECIPES}")
  return parsed


def _parse_indices(key, text):
  try:
    return tuple(int(part) for part in text.split("+") if part.strip())
  except ValueError:
    raise ValueError(f"config argument {key}={text!r}: expected skip-link indices joined "
                     "by '+', e.g. 0+1+2") from None


def _configs_dir():
  """The experiment configs: relight_jax/configs/ when installed from a wheel (setup.py
  installs the top-level configs/ there), the repository's configs/ in a clone."""
  package = pathlib.Path(__file__).resolve().parents[1]  # relight_jax/
  installed = package / "configs"
  return installed if installed.is_dir() else package.parent / "configs"


CONFIGS_DIR = _configs_dir()


def resolve_config_path(file_name):
  """The config file `file_name` names, as the README writes it from any directory.

  A path that exists is taken as is; otherwise "envmap.py" and "configs/envmap.py" name
  the shipped config (so the documented `--config=configs/envmap.py` works outside a clone,
  after `pip install`).

  Raises:
    FileNotFoundError: naming the file and the shipped configs.
  """
  path = pathlib.Path(file_name)
  if path.exists():
    return path
  shipped = pathlib.PurePosixPath(file_name)
  if shipped.parts[:1] == ("configs",):
    shipped = shipped.relative_to("configs")
  if not shipped.is_absolute() and (CONFIGS_DIR / shipped).exists():
    return CONFIGS_DIR / shipped
  names = sorted(p.name for p in CONFIGS_DIR.glob("*.py"))
  raise FileNotFoundError(f"config file {file_name!r} not found (the shipped configs, in "
                          f"{CONFIGS_DIR}: {', '.join(names)})")


def config_from_file(spec):
  """Loads `configs/<file>.py[:arg]` like --config of relight_jax.main.

  Args:
    spec: "envmap.py:smoke" (a shipped config) or a path with an optional ":arg", e.g.
      "configs/envmap.py:preset=paper" (see `resolve_config_path`).

  Returns:
    The locked config.
  """
  file_name, _, arg = spec.partition(":")
  path = resolve_config_path(file_name)
  module_spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def resolve_config_flag(argv):
  """`argv` with the file of `--config=FILE[:arg]` resolved by `resolve_config_path`
  (absl's config flag opens the file itself, relative to the working directory)."""
  resolved = []
  for item in argv:
    if item.startswith("--config="):
      file_name, colon, arg = item[len("--config="):].partition(":")
      item = f"--config={resolve_config_path(file_name)}{colon}{arg}"
    resolved.append(item)
  return resolved


# Counts and intervals, in steps, batches or pairs: 0 would divide by zero or run nothing.
_POSITIVE_INTS = ("train.batch_size", "train.num_steps", "train.log_every", "train.image_every",
                  "train.checkpoint_every", "train.eval_every", "train.eval_batches",
                  "eval.batch_size", "eval.num_pairs")
# Upper bounds past which a run exhausts memory (or XLA aborts) before its first step,
# with nothing written: far above every preset (report: batch 16, 256 px, width 1).
MAX_BATCH = 4096
MAX_WIDTH = 16.0
MAX_IMAGE_SIZE = 4096
_BATCHES = ("train.batch_size", "eval.batch_size")
_LEARNING_RATES = ("train.learning_rate", "train.discriminator_learning_rate")
_ADAM_BETAS = ("train.b1", "train.b2")  # Adam divides by 1 - beta**step.


def _get(config, dotted):
  """The value at `dotted` ('section.key'), or None where the config has no such key."""
  section, key = dotted.split(".")
  if section not in config or key not in config[section]:
    return None
  return config[section][key]


def _is_real(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _refuse(dotted, value, expected):
  raise ValueError(f"config {dotted}={value!r}: expected {expected} "
                   f"(set it with --config.{dotted}=...)")


def validate(config):
  """Refuses numeric settings that no run can use.

  Call it on the final config: after the presets (`finalize` does) and again after any
  override, e.g. `--config.train.learning_rate=nan` on the command line. Keys a config
  lacks are skipped.

  Args:
    config: a full config (`ConfigDict`), locked or not.

  Returns:
    The same config, for chaining.

  Raises:
    ValueError: one line naming the first bad key, its value and what is expected.
  """
  for dotted in _LEARNING_RATES:
    value = _get(config, dotted)
    if value is not None and not (_is_real(value) and math.isfinite(value) and value > 0):
      _refuse(dotted, value, "a finite number > 0")
  for dotted in _ADAM_BETAS:
    value = _get(config, dotted)
    if value is not None and not (_is_real(value) and 0 <= value < 1):
      _refuse(dotted, value, "a number in [0, 1)")
  for dotted in _POSITIVE_INTS:
    value = _get(config, dotted)
    if value is not None and not (_is_int(value) and value > 0):
      _refuse(dotted, value, "a positive integer")
  for dotted in _BATCHES:
    value = _get(config, dotted)
    if value is not None and value > MAX_BATCH:
      _refuse(dotted, value, f"at most {MAX_BATCH} pairs (memory grows with the batch)")
  warmup = _get(config, "train.warmup_steps")
  if warmup is not None and not (_is_int(warmup) and warmup >= 0):
    _refuse("train.warmup_steps", warmup, "an integer >= 0")
  fraction = _get(config, "data.extra_fraction")
  if fraction is not None and not (_is_real(fraction) and 0 <= fraction <= 1):
    _refuse("data.extra_fraction", fraction, "a probability in [0, 1]")
  width = _get(config, "model.width")
  if width is not None and not (_is_real(width) and math.isfinite(width) and width > 0):
    _refuse("model.width", width, "a finite channel multiplier > 0")
  if width is not None and width > MAX_WIDTH:
    _refuse("model.width", width, f"a channel multiplier of at most {MAX_WIDTH:g} "
            "(parameters grow with its square)")
  depth = _get(config, "model.depth")
  if depth is not None and not (_is_int(depth) and depth >= 1):
    _refuse("model.depth", depth, "an integer >= 1")
  size = _get(config, "data.image_size")
  if size is not None:
    # The encoder halves the image depth + 1 times (models/unet.py, latent_size).
    multiple = 2 ** ((depth if depth is not None else 0) + 1)
    if not (_is_int(size) and size > 0 and size % multiple == 0):
      _refuse("data.image_size", size, f"a positive multiple of {multiple}, as the encoder "
              f"halves the image model.depth + 1 = {multiple.bit_length() - 1} times")
    if size > MAX_IMAGE_SIZE:
      _refuse("data.image_size", size, f"at most {MAX_IMAGE_SIZE} pixels per side")
  if "loss" in config:
    for key in sorted(config.loss):
      value = config.loss[key]
      if key.endswith("_weight") and not (_is_real(value) and math.isfinite(value)
                                          and value >= 0):
        _refuse(f"loss.{key}", value, "a finite weight >= 0")
  return config


# The v2 synthetic dataset of each preset's size (the presets' own datasets are v1's), for
# the models that read v2's maps (shading, light transport).
V2_DATA = {"smoke": "synthetic_v2_tiny", "cpu": "synthetic_v2_small", "paper": "synthetic_v2"}


def with_v2_data(arg):
  """`arg` with its preset's v2 dataset (V2_DATA) as `data=` unless it names a dataset."""
  parsed = parse_arg(arg)
  if parsed.data:
    return arg
  return f"{arg or ''},data={V2_DATA[parsed.preset]}"


def finalize(config, arg, report):
  """Applies the config string `arg` to a full config, validates it and locks it.

  Args:
    config: a full config (every section declared).
    arg: the config string (preset, recipe, switches), or None.
    report: the model's `defaults.ReportTraining` (how the original trained it).

  Returns:
    The locked config.
  """
  defaults.apply_presets(config, parse_arg(arg), report)
  validate(config)
  config.lock()
  return config
