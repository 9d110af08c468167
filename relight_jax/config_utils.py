"""Config strings and config files: parsing, loading and saving.

A config file is `configs/<model>.py` with `get_config(arg=None)`. Its argument is a
config string such as `smoke` or `preset=cpu,gan=True,data=synthetic`: comma-separated
`key=value` pairs typed by the fields of `defaults.ConfigArgs`, plus bare words that name
a preset (`smoke` means `preset=smoke`) or switch a boolean on (`gan` means `gan=True`).
Unknown keys and badly typed values fail with a message that lists what is accepted.
The keys themselves and the presets are declared in relight_jax/defaults.py.

`config_from_file` is the one loader of config files (the entry points, the demo, the
benchmarks, the tests and the notebooks use it). A workdir's `config.json` is read and
written with its checkpoints (relight_jax/checkpointing.py).
"""

import dataclasses
import importlib.util
import pathlib

from relight_jax import defaults


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


def finalize(config, arg):
  """Applies the config string `arg` to a full config and locks it."""
  defaults.apply_presets(config, parse_arg(arg))
  config.lock()
  return config
