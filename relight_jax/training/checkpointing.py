"""Orbax checkpoints of a training workdir, and loading a trained model for inference.

A workdir holds `config.json` (the experiment config) and `checkpoints/<step>/` with two
items: "state" (the `TrainState`) and "data" (the training stream's grain iterator
state, so a resumed run continues with exactly the batches it would have seen).

Restoring always passes an abstract target whose leaves carry shardings
(`jax.eval_shape` + `ShapeDtypeStruct(..., sharding=...)`), so a checkpoint written on N
devices restores on M devices, CPU or GPU (without them orbax refuses 4 -> 1 with
"Topology mismatch").

Each step this version saves also gets `checkpoints/<step>/manifest.json`: every file of
the step with its size and sha256, written once orbax has committed the step (at the next
save or `wait_until_finished`, for async saves). `restore_latest_good` checks it, restores,
checks the state is finite, and falls back to the previous step when any of that fails,
so a disk error, a half-copied workdir or a NaN written by a diverged run is noticed
rather than silently relit or resumed from. A step without a manifest (written by an
older relight_jax, or a run killed between orbax's commit and the manifest) is restored
unverified, with a warning: older workdirs must still load, and a damaged one still falls
back when orbax fails to read it or it holds non-finite values.

Only proven damage deletes a step (when a resumed run must save over it): files that
differ from their manifest, or a state holding NaN or inf. A step that fails to restore
for any other reason may be intact (too many open files, out of memory, a network
filesystem's hiccup), so a resume stops there with `UnrestorableCheckpointError` naming
it, and deletes nothing.

A full disk is recognised however the storage layer reports it (`disk_full`): an
`OSError` with ENOSPC, or TensorStore's `ValueError` whose text says RESOURCE_EXHAUSTED /
"No space left on device"; the half-written `*.orbax-checkpoint-tmp*` folders it leaves
are removed by `remove_unfinished`.
"""

import errno
import functools
import hashlib
import json
import logging
import pathlib
import re
import shutil

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relight_jax.common import atomic
from relight_jax.training import config_file
from relight_jax.training import state as state_lib

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
MANIFEST_FILE = "manifest.json"
_MANIFEST_FORMAT = 1
_REASON_CHARS = 300  # an orbax or tensorstore message is cut to this in one-line reasons


def _save_arrays_from_one_replica():
  """Has orbax save every jax.Array from one replica, not replica-parallel.

  The train state is replicated on every device. Orbax's default on CPU saves each array
  replica-parallel: each of R replicas writes 1/R of it, cut out by one eager slice per
  replica and array, each compiled on first use (hundreds of leaves x 4 devices). One
  replica writing whole arrays is orbax's own default on GPU; on CPU it makes a save
  several times faster (bench/checkpoint_save.py). Restoring is unchanged, checkpoints
  written the other way included.
  """
  absl_logger = logging.getLogger("absl")  # orbax warns that a default is replaced
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)
  finally:
    absl_logger.setLevel(level)


_save_arrays_from_one_replica()


class ConfigMismatchError(ValueError):
  """A checkpoint holds a training state of another structure than the config builds.

  The config is wrong, not the checkpoint: `restore_latest_good` raises it rather than
  falling back to an older step of the same structure.
  """


class CorruptCheckpointError(ValueError):
  """No checkpoint of a workdir is intact (the message names each step tried and why)."""


class UnrestorableCheckpointError(RuntimeError):
  """A checkpoint not proven damaged failed to restore while resuming; it was kept.

  Attributes:
    step: the checkpoint's step.
    directory: its folder.
  """

  def __init__(self, step, directory, reason):
    self.step, self.directory = step, directory
    super().__init__(
        f"checkpoint {directory} (step {step}) could not be restored ({reason}) but is not "
        "proven damaged, so nothing was deleted: rerun the same command to retry (a passing "
        "I/O error, too many open files, out of memory); if it fails again, move that folder "
        f"out of {pathlib.Path(directory).parent} to resume from the step before it")


# Where orbax stages a step until it commits it (step and item folders alike).
_UNFINISHED_MARK = ".orbax-checkpoint-tmp"
_NO_SPACE = re.compile(r"No space left on device|ENOSPC|os_error_code='28'")
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


def disk_full(error):
  """The path a full disk stopped writing, when `error` (or what it wraps) says so.

  Orbax and TensorStore report a full disk as an `OSError` (errno ENOSPC), possibly
  wrapped, or only in the text of a `ValueError` ('RESOURCE_EXHAUSTED ... No space left on
  device [os_error_code='28']').

  Returns:
    None when the error is not a full disk; else the file or folder named in it, or ''
    when none is.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return error.filename or ""
    text = str(error)
    if _NO_SPACE.search(text):
      quoted = _QUOTED_PATH.findall(text)
      return quoted[-1] if quoted else ""
    error = error.__cause__ or error.__context__
  return None


def remove_unfinished(directory):
  """Deletes the uncommitted step folders orbax left in `directory` (a failed save's).

  Returns:
    The paths removed.
  """
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  removed = []
  for path in directory.iterdir():
    if _UNFINISHED_MARK in path.name:
      shutil.rmtree(path, ignore_errors=True)
      removed.append(path)
  return removed


# The config file's reading and writing live in config_file.py (which loading a bundled
# model imports without orbax); their names stay here for the workdir code and tests.
save_config = config_file.save_config
load_config = config_file.load_config
ADDED_KEYS = config_file.ADDED_KEYS
_flat_items = config_file._flat_items  # pylint: disable=protected-access


class CheckpointManager(ocp.CheckpointManager):
  """An orbax CheckpointManager that writes a manifest for each step it saves.

  A step's manifest is written once orbax has finished it: right after a synchronous
  save; after an async one, in the next `wait_until_finished` (which orbax's own `save`
  and `close` call first, so the previous step's manifest is written when the next save
  starts). Only steps saved by this manager get one: a step found on disk without a
  manifest may already be damaged, and hashing it would vouch for the damage.
  """

  def __init__(self, directory, *, options, item_names):
    # Set before orbax's constructor, which may already wait for pending saves.
    self._unmanifested = []
    self._writes_async = options.enable_async_checkpointing
    super().__init__(directory, options=options, item_names=item_names)

  def save(self, step, *args, **kwargs):
    """orbax's `save`; also records the step for its manifest (written now if synchronous)."""
    saved = super().save(step, *args, **kwargs)
    if saved:
      self._unmanifested.append(int(step))
      if not self._writes_async:
        self._write_manifests()
    return saved

  def wait_until_finished(self):
    """orbax's `wait_until_finished`, then the manifests of the steps it finished."""
    super().wait_until_finished()
    self._write_manifests()

  def _write_manifests(self):
    steps, self._unmanifested = self._unmanifested, []
    if jax.process_index() != 0:  # one writer for the directory all processes share
      return
    for step in steps:
      directory = step_directory(self, step)
      # Gone when orbax's save failed (never committed) or max_to_keep removed it since.
      if directory.is_dir():
        write_manifest(directory)


def create_manager(workdir, *, max_to_keep=3, async_save=True, owner=False):
  """A `CheckpointManager` over `workdir/checkpoints` with items 'state' and 'data'.

  Args:
    workdir: the training workdir.
    max_to_keep: steps kept by `save`.
    async_save: save in the background.
    owner: the caller holds the workdir's lock (the training run): the staging folders of
      saves a killed or out-of-space run left are removed now. A reader must not, or it
      would remove those of the run saving now.
  """
  directory = pathlib.Path(workdir).absolute() / CHECKPOINT_DIR
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True,
      cleanup_tmp_directories=owner)
  return CheckpointManager(directory, options=options, item_names=("state", "data"))


def step_directory(manager, step):
  """The directory of checkpoint `step` (orbax's default step names: the bare number)."""
  return pathlib.Path(manager.directory) / str(step)


def _sha256(path):
  with open(path, "rb") as stream:
    return hashlib.file_digest(stream, "sha256").hexdigest()


def _step_files(directory):
  """Relative POSIX paths of the files under `directory`, but the manifest and its temps."""
  return sorted(
      path.relative_to(directory).as_posix() for path in directory.rglob("*")
      if path.is_file() and not path.name.startswith((MANIFEST_FILE, f".{MANIFEST_FILE}")))


def write_manifest(directory):
  """Writes `directory/manifest.json`: each file's size and sha256, atomically.

  Args:
    directory: a committed checkpoint step directory.

  Returns:
    The manifest's path.
  """
  directory = pathlib.Path(directory)
  files = {}
  for name in _step_files(directory):
    path = directory / name
    files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
  text = json.dumps({"format": _MANIFEST_FORMAT, "files": files}, indent=1, sort_keys=True)
  path = directory / MANIFEST_FILE
  atomic.write_text(path, text)
  return path


def manifest_problem(directory):
  """Checks a step directory against its manifest.

  Files the manifest does not list are ignored: orbax reads only what it wrote, and an
  unrelated file (a temp left by a killed manifest write) does not damage a checkpoint.

  Args:
    directory: a checkpoint step directory holding a manifest.

  Returns:
    None when every listed file has its size and sha256, else the first difference, in
    words.
  """
  directory = pathlib.Path(directory)
  try:
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    files = manifest["files"]
    listed = [(name, int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()]
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    return f"its {MANIFEST_FILE} is unreadable ({_one_line(error)})"
  for name, size, sha256 in listed:
    path = directory / name
    if not path.is_file():
      return f"{name} is missing"
    if path.stat().st_size != size:
      return f"{name} has {path.stat().st_size} bytes, its manifest says {size}"
    if _sha256(path) != sha256:
      return f"{name} does not match its sha256 in {MANIFEST_FILE}"
  return None


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

  The files are not checked against the step's manifest: `restore_latest_good` does.

  Returns:
    (TrainState, data_state dict) or (None, None) when there is no checkpoint.

  Raises:
    ConfigMismatchError: the checkpoint holds a state of another structure than `config`
      builds (names the settings that decide it).
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
    raise ConfigMismatchError(
        f"the checkpoint {step_directory(manager, step)} holds a training "
        f"state of another shape than this config builds: the model settings, "
        f"train.lr_decay, train.warmup_steps and train.gan decide it. Resume with the "
        f"settings it was written with (the workdir's {CONFIG_FILE}) or use a new "
        f"--workdir. Orbax: {error}") from None
  return restored["state"], restored["data"]


def restore_latest_good(manager, config, sharding, step=None, *, delete_skipped=False):
  """Restores the latest intact checkpoint at or before `step` (default: the latest).

  A step is skipped, with one warning line naming it and why, when its manifest does not
  match its files, orbax fails to restore it (whatever it raises: tensorstore, JSON or
  pytree errors) or the restored state holds NaN or inf. A step without a manifest is
  restored unverified, with a warning (see the module docstring). With `delete_skipped`,
  a step orbax fails to restore stops the search instead (`UnrestorableCheckpointError`):
  the failure may be passing and the step intact, and the older step the run would
  resume from would have to delete it.

  Args:
    manager: a `CheckpointManager` (`create_manager`).
    config: the experiment config (builds the abstract target).
    sharding: placement of every restored leaf.
    step: the step to try first; default the latest.
    delete_skipped: once an intact step is restored, delete the damaged ones skipped on
      the way (all later than it): those whose files differ from their manifest or that
      hold non-finite values, the only proofs of damage. A resumed run needs it: orbax's
      `save` silently skips any step not past the latest one on disk, so the run would
      not checkpoint again until it passed the damaged steps.

  Returns:
    (TrainState, data_state dict, step) of the first intact checkpoint, or
    (None, None, None) when there is none at all.

  Raises:
    FileNotFoundError: `step` is not one of the checkpoints.
    ConfigMismatchError: a checkpoint holds a state of another structure than `config`
      builds: the config is wrong, so no older step is tried.
    CorruptCheckpointError: no checkpoint at or before `step` is intact.
    UnrestorableCheckpointError: with `delete_skipped`, a step failed to restore although
      its files are not proven damaged (kept; the message says what to do).
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise FileNotFoundError(f"no checkpoint at step {step} in {manager.directory} "
                              f"(it holds steps {sorted(steps)})")
    steps = [candidate for candidate in steps if candidate <= step]
  if not steps:
    return None, None, None
  tried, skipped = [], []
  for candidate in steps:
    directory = step_directory(manager, candidate)
    if (directory / MANIFEST_FILE).is_file():
      reason = manifest_problem(directory)
    else:
      reason = None
      logging.warning("checkpoint %s has no %s (an older relight_jax, or a run stopped "
                      "before writing it): restoring it unverified", directory, MANIFEST_FILE)
    if reason is None:
      try:
        train_state, data_state = restore(manager, config, sharding, candidate)
      except ConfigMismatchError:
        raise
      except Exception as error:  # pylint: disable=broad-exception-caught
        # Damaged files surface as any of tensorstore, JSON, pytree or key errors, and so
        # do passing ones (EMFILE, EIO, out of memory): only a reader may fall back.
        reason = f"orbax cannot restore it: {_one_line(error)}"
        if delete_skipped:
          raise UnrestorableCheckpointError(candidate, directory, reason) from error
      else:
        reason = non_finite(train_state)
        if reason is None:
          if delete_skipped:
            for damaged in skipped:
              manager.delete(damaged)
              logging.warning("deleted the damaged checkpoint %s: the run resumes from "
                              "step %d", step_directory(manager, damaged), candidate)
          return train_state, data_state, candidate
    logging.warning("skipping checkpoint %s: %s", directory, reason)
    tried.append(f"step {candidate} ({reason})")
    skipped.append(candidate)
  raise CorruptCheckpointError(f"no intact checkpoint in {manager.directory}: tried "
                               + "; ".join(tried))


def _one_line(error):
  """`error` as one line of at most _REASON_CHARS characters, its type first.

  The innermost cause is the one shown: orbax wraps tensorstore's precise message
  ("Truncated Zstd-compressed stream" in file ...) in a generic one with the array spec.
  """
  while error.__cause__ is not None:
    error = error.__cause__
  text = " ".join(str(error).split())
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 3] + "..."


@jax.jit
def _all_finite(leaves):
  # One reduction per leaf in one computation: no copy of the state to host.
  return jnp.stack([jnp.isfinite(leaf).all() for leaf in leaves])


def non_finite(train_state):
  """None when every floating leaf of the state is finite, else a reason naming one."""
  named = [(path, leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(train_state)[0]
           if jnp.issubdtype(leaf.dtype, jnp.inexact)]
  if not named:
    return None
  finite = jax.device_get(_all_finite([leaf for _, leaf in named]))
  for (path, _), ok in zip(named, finite, strict=True):
    if not ok:
      return f"it holds NaN or inf, e.g. in {jax.tree_util.keystr(path)}"
  return None


def replicated_sharding():
  """Replicated placement over every device (a one-axis 'data' mesh)."""
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  return NamedSharding(mesh, P())


def restore_workdir(workdir, config, sharding, step=None):
  """`restore_latest_good` on the checkpoints of `workdir`, without keeping a manager open
  (for readers: evaluation, inference); returns (train_state, data_state, step), None's
  when there is no checkpoint."""
  manager = create_manager(workdir, async_save=False)
  try:
    return restore_latest_good(manager, config, sharding, step)
  finally:
    manager.close()


def load_inference_variables(workdir, step=None):
  """Loads a trained model's config and variables from a workdir, on the present devices.

  Args:
    workdir: a training workdir (with config.json and checkpoints/).
    step: checkpoint step; default the latest.

  Returns:
    (config, {'params', 'batch_stats'}, step).

  The latest (or `step`) checkpoint that is intact is used: a damaged one is skipped with
  a warning naming it (`restore_latest_good`), so the step returned may be an earlier one.

  Raises:
    FileNotFoundError: no config or no checkpoint in `workdir`, or no checkpoint `step`.
    ConfigMismatchError: the checkpoints do not fit config.json (a ValueError).
    CorruptCheckpointError: no checkpoint is intact (a ValueError naming each).
  """
  workdir = pathlib.Path(workdir)
  config = load_config(workdir / CONFIG_FILE)
  train_state, _, step = restore_workdir(workdir, config, replicated_sharding(), step)
  if train_state is None:
    raise FileNotFoundError(f"no checkpoint in {workdir / CHECKPOINT_DIR}: train first")
  return config, state_lib.variables_of(train_state), step
