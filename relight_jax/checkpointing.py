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
import pathlib

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relight_jax import config_utils
from relight_jax import state as state_lib

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


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
  config = config_utils.load_config(workdir / CONFIG_FILE)
  manager = create_manager(workdir, async_save=False)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir / CHECKPOINT_DIR}: train first")
    train_state, _ = restore(manager, config, replicated_sharding(), step)
  finally:
    manager.close()
  return config, state_lib.variables_of(train_state), step
