"""A workdir's or bundle's config.json: written and read back, checked against this version.

`save_config` writes a config as JSON; `load_config` reads it back (tuples as tuples),
fills in the keys added since with the values that switch their feature off
(`ADDED_KEYS`), and refuses any other difference from the model's config file. Kept apart
from checkpointing.py so that reading a config (a bundled model's) needs no orbax.
"""

import json
import logging
import pathlib

import ml_collections

from relight_jax.common import atomic
from relight_jax.config import config_utils
from relight_jax.models import registry


def save_config(config, path):
  """Writes `config` as JSON to `path` atomically (a workdir's `config.json`)."""
  atomic.write_text(path, config.to_json(indent=2, sort_keys=True))


def load_config(path):
  """Reads a config written by `save_config`; tuples come back as tuples.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: not JSON, or keys other than this version's (named, with defaults).
  """
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

  config = ml_collections.ConfigDict(to_tuples(raw))
  _add_switched_off_features(config, path)
  _check_keys(config, path)
  return config


# Keys added after workdirs were written, each with the value that does what the code did
# before the key existed (a feature switched off): a config.json lacking them means that.
# Any other missing key is an error (_check_keys): its old meaning is unknown.
ADDED_KEYS = {
    "model.relit_shading": False,
    "loss.shading_weight": 0.0,
    "loss.relit_shading_weight": 0.0,
    "eval.data": "",
    "model.envmap_convention": "v1",
}


def _add_switched_off_features(config, path):
  for dotted, value in ADDED_KEYS.items():
    section, key = dotted.split(".")
    if section in config and key not in config[section]:
      logging.info("%s predates %s: reading it as %r (the behaviour before it existed)",
                   path, dotted, value)
      config[section][key] = value


def _check_keys(config, path):
  """Raises unless `config` has exactly the keys this version declares for its model.

  A config.json written by another version of relight_jax would otherwise be read with
  silent defaults for what it lacks; the message names each key and its current default.
  The reference is the config file of the model's spec (models/registry.py).
  """
  name = config.get("model", {}).get("name")
  try:
    spec = registry.spec_of(name)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from None
  reference = config_utils.config_from_file(spec.config_file)
  flat = dict(_flat_items(reference.to_dict()))
  found = {key for key, _ in _flat_items(config.to_dict())}
  missing, unknown = sorted(set(flat) - found), sorted(found - set(flat))
  if not missing and not unknown:
    return
  parts = []
  if missing:
    parts.append("it lacks " + ", ".join(f"{key} (default {flat[key]!r})" for key in missing))
  if unknown:
    parts.append("this version has no " + ", ".join(unknown))
  raise ValueError(f"{path} was written by another version of relight_jax: "
                   f"{'; '.join(parts)}. Edit it (add the keys with the values the run "
                   "used, remove the others) or train again in a new workdir.")


def _flat_items(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flat_items(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value
