"""Orbax checkpoints of a training workdir, and loading a trained model for inference.

A workdir holds `config.json` (the experiment config) and `checkpoints/<step>/` with two
items: "state" (the `TrainState`) and "data" (the training stream's grain iterator
state, so a resumed run continues with exactly the batches it would have seen).

Restoring always passes an abstract target whose leaves carry shardings
(`jax.eval_shape` + `ShapeDtypeStruct(..., sharding=...)`), so a checkpoint written on N
devices restores on M devices, CPU or GPU (without them orbax refuses 4 -> 1 with
"Topology mismatch").
"""

import functools
import json
import pathlib

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relight_jax import defaults
from relight_jax import state as state_lib

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def save_config(config, path):
  """Writes `config` as JSON to `path` atomically (a workdir's `config.json`)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(config.to_json(indent=2, sort_keys=True))
  temporary.replace(path)


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
  _check_keys(config, path)
  return config


def _check_keys(config, path):
  """Raises unless `config` has exactly the keys this version declares (defaults.py).

  A config.json written by another version of relight_jax would otherwise be read with
  silent defaults for what it lacks; the message names each key and its current default.
  """
  name = config.get("model", {}).get("name")
  if name not in defaults.MODEL_NAMES:
    raise ValueError(f"{path}: model.name={name!r} is not one of {defaults.MODEL_NAMES}")
  reference = defaults.base_config()
  reference.model = defaults.model_section(name)
  reference.loss = defaults.loss_section("l1")
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


def create_manager(workdir, *, max_to_keep=3, async_save=True):
  """Orbax CheckpointManager over `workdir/checkpoints` with items 'state' and 'data'."""
  directory = pathlib.Path(workdir).absolute() / CHECKPOINT_DIR
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True)
  return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def save(manager, step, train_state, data_state, *, force=False):
  """Saves the state and the data-stream position at `step` (async if configured)."""
  return manager.save(
      step,
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(train_state),
          data=ocp.args.JsonSave(data_state)),
      force=force)


def abstract_state(config, sharding):
  """The `TrainState`'s shapes and dtypes, every leaf placed with `sharding`."""
  shapes = jax.eval_shape(functools.partial(state_lib.create_train_state, config),
                          state_lib.init_key(0))
  return jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding), shapes)


def restore(manager, config, sharding, step=None):
  """Restores (state, data_state) at `step` (default: latest) onto `sharding`.

  Returns:
    (TrainState, data_state dict) or (None, None) when there is no checkpoint.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return None, None
  target = abstract_state(config, sharding)
  try:
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data=ocp.args.JsonRestore()))
  except ValueError as error:
    if "do not match" not in str(error):  # orbax: "... tree structures do not match"
      raise
    raise ValueError(
        f"the checkpoint {pathlib.Path(manager.directory) / str(step)} holds a training "
        f"state of another shape than this config builds: the model settings, "
        f"train.lr_decay, train.warmup_steps and train.gan decide it. Resume with the "
        f"settings it was written with (the workdir's {CONFIG_FILE}) or use a new "
        f"--workdir. Orbax: {error}") from None
  return restored["state"], restored["data"]


def replicated_sharding():
  """Replicated placement over every device (a one-axis 'data' mesh)."""
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  return NamedSharding(mesh, P())


def load_inference_variables(workdir, step=None):
  """Loads a trained model's config and variables from a workdir, on the present devices.

  Args:
    workdir: a training workdir (with config.json and checkpoints/).
    step: checkpoint step; default the latest.

  Returns:
    (config, {'params', 'batch_stats'}, step).

  Raises:
    FileNotFoundError: no config or no checkpoint in `workdir`.
  """
  workdir = pathlib.Path(workdir)
  config = load_config(workdir / CONFIG_FILE)
  manager = create_manager(workdir, async_save=False)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir / CHECKPOINT_DIR}: train first")
    train_state, _ = restore(manager, config, replicated_sharding(), step)
  finally:
    manager.close()
  return config, state_lib.variables_of(train_state), step
