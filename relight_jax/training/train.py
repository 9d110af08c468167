"""Training: the loop around the train step of `relight_jax.training.step`.

The step is jitted once over a one-axis `data` mesh (state replicated, batch sharded,
state buffers donated). The loop resumes from the latest orbax checkpoint (state +
data-stream position), averages the step's metrics on device between log steps (clu's
`metrics.Average`), writes TensorBoard scalars/images (`relight_jax.training.summaries`),
logs a new model's parameter table (clu's `parameter_overview`), prints a progress line
with steps/s and ETA, evaluates periodically, and stops on a non-finite loss without
saving it, so the last good checkpoint stays the latest.

The workdir is locked (`relight_jax.training.workdir`) for the whole run, and SIGTERM / SIGINT
(preemption, Ctrl-C) stop the loop after its current step with a checkpoint of that
step: `Preempted` says where, and rerunning resumes to the same result. A signal that
arrives while the loop waits for its next batch stops the wait too, and the periodic
evaluation's remaining sets are skipped; a second signal stops the process at once (the
checkpoints already written are kept; a save in progress is discarded at the next run).

A resume compares the run's settings with the workdir's `config.json`: any difference
that changes what is trained (image size, batch, learning rate, pairing rule, seed, ...)
is listed and refused (`ConfigChangedError`) unless `allow_config_change`, which keeps
the old file beside the new one. The length of the run (with a constant rate), the
logging, checkpoint and evaluation cadences, the data's location and the final
evaluation's settings may change freely (`FREELY_CHANGED`).
"""

import contextlib
import datetime
import functools
import logging
import os
import pathlib
import queue
import signal
import sys
import threading
import time

import jax
import numpy as np
from clu import parameter_overview
from jax.experimental import multihost_utils

from relight_jax.data import input_pipeline
from relight_jax.datasets import scene_images
from relight_jax.evaluation import evaluate
from relight_jax.evaluation import visualize
from relight_jax.training import checkpointing
from relight_jax.training import parallel
from relight_jax.training import state as state_lib
from relight_jax.training import step as step_lib
from relight_jax.training import summaries
from relight_jax.training import workdir as workdir_lib


class Preempted(Exception):
  """Training stopped on a signal, after saving a checkpoint of its last step.

  Attributes:
    step: the last step trained (and saved).
    signum: the signal's number (`signal.SIGTERM`, `signal.SIGINT`).
    checkpoint_dir: where the checkpoint is.
  """

  def __init__(self, step, signum, checkpoint_dir):
    self.step, self.signum, self.checkpoint_dir = step, signum, checkpoint_dir
    if step == 0:  # stopped while waiting for the first batch: nothing trained to save
      super().__init__(f"stopped by {signal.Signals(signum).name} before the first step; "
                       "nothing was trained; rerun the same command to start")
    else:
      super().__init__(
          f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved in "
          f"{checkpoint_dir}; rerun the same command to resume")

  def __reduce__(self):
    return Preempted, (self.step, self.signum, self.checkpoint_dir)

  @property
  def exit_status(self):
    """The shell's status of a process the signal ended: 128 + its number."""
    return 128 + self.signum


class ConfigChangedError(ValueError):
  """A resume whose settings differ from the workdir's config.json (listed in the message)."""


class _StopSignals:
  """Notes the first SIGTERM / SIGINT while training, for the loop to act on after a step.

  A preempted job gets SIGTERM and then, after a grace period, SIGKILL: the default
  handlers would lose every step since the last periodic checkpoint. Handlers are only
  installed in the main thread (Python refuses them elsewhere) and in single-process
  runs; multi-process runs must stop at the same step on every process, which
  `jax.distributed`'s own SIGTERM notifier agrees on (see `requested`).

  A second signal (the user pressing Ctrl-C again, `timeout` or a scheduler insisting)
  ends the process at once with that signal's status, after one line on stderr: whatever
  the loop is waiting on (data, a long evaluation) does not hold it.
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}
    self._across_processes = jax.process_count() > 1

  def _note(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
      print(f"{signal.Signals(signum).name}: stopping after the current step with a "
            "checkpoint (send it again to stop now, without one)", file=sys.stderr, flush=True)
      return
    print(f"{signal.Signals(signum).name} again: stopping now; the checkpoints already "
          "written are kept, rerun the same command to resume", file=sys.stderr, flush=True)
    # The default action ends the process with the signal's status, as the shell and
    # schedulers expect; the workdir lock (flock) goes with the process.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)

  def __enter__(self):
    if self._across_processes or threading.current_thread() is not threading.main_thread():
      return self
    for signum in self._SIGNALS:
      # None: a handler installed outside Python, which signal.signal could not put back.
      if signal.getsignal(signum) is not None:
        self._previous[signum] = signal.signal(signum, self._note)
    return self

  def __exit__(self, *exc_info):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
    return False

  def requested(self, step):
    """Whether to stop after `step` (the same answer on every process)."""
    if self._across_processes:
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.received = signal.SIGTERM
      except RuntimeError as error:  # jax_enable_preemption_service is off
        logging.warning("SIGTERM will not save a checkpoint in this run: %s", error)
        self._across_processes = False
    return self.received is not None


class _Prefetcher:
  """Background thread: next host batch -> device batch, with the stream state after it."""

  def __init__(self, iterator, put_batch, depth):
    self._iterator, self._put_batch = iterator, put_batch
    self._queue = queue.Queue(maxsize=max(depth, 1))
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _put(self, item):
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def _run(self):
    try:
      while not self._stop.is_set():
        host_batch = next(self._iterator)
        data_state = self._iterator.get_state()
        self._put((host_batch, self._put_batch(host_batch), data_state, None))
    except Exception as error:  # pylint: disable=broad-except  # re-raised in the consumer
      self._put((None, None, None, error))

  def close(self):
    """Stops the thread (a thread left blocked at interpreter exit can crash it)."""
    self._stop.set()
    self._thread.join(timeout=10)

  def next(self, stop=None):
    """The next (host batch, device batch, data state); None once `stop` has a signal.

    The wait polls `stop` (a `_StopSignals`): a stalled data source must not keep a
    stopped run alive.
    """
    while True:
      try:
        host_batch, device_batch, data_state, error = self._queue.get(timeout=0.2)
        break
      except queue.Empty:
        if stop is not None and stop.received is not None:
          return None
    if error is not None:
      raise error
    return host_batch, device_batch, data_state


# Settings a resumed run may change: they decide when things are logged, saved or
# evaluated, where the data is read from, and the final evaluation, not the batches
# trained or the updates made. train.num_steps too, unless the rate decays over it.
FREELY_CHANGED = (
    "train.log_every", "train.image_every", "train.checkpoint_every", "train.eval_every",
    "train.eval_batches", "data.data_dir", "data.cache_mib", "data.prefetch", "eval.",
    "checkpoint.")


def config_changes(previous, config):
  """The settings of `config` that differ from `previous` and decide what is trained.

  Returns:
    ["key old -> new", ...] in key order; empty when a resume may go on.
  """
  old = dict(checkpointing._flat_items(previous.to_dict()))  # pylint: disable=protected-access
  new = dict(checkpointing._flat_items(config.to_dict()))  # pylint: disable=protected-access
  free = list(FREELY_CHANGED)
  if old.get("train.lr_decay") == new.get("train.lr_decay") == "constant":
    free.append("train.num_steps")
  changes = []
  for key in sorted(set(old) | set(new)):
    if key.startswith(tuple(free)) or old.get(key) == new.get(key):
      continue
    changes.append(f"{key} {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}")
  return changes


def _check_workdir(config, workdir, allow_config_change):
  """Refuses to resume a workdir trained with another model or other settings.

  Returns:
    Where the old config.json was copied when a change was allowed, else None.
  """
  path = workdir / checkpointing.CONFIG_FILE
  if not path.exists():
    return None
  previous = checkpointing.load_config(path)
  if previous.model.name != config.model.name:
    raise ValueError(
        f"{workdir} holds a run of another model ({previous.model.name}, width "
        f"{previous.model.width}); use a new --workdir or the same model config")
  changes = config_changes(previous, config)
  if not changes:
    return None
  listed = ", ".join(changes)
  if not allow_config_change:
    raise ConfigChangedError(
        f"{workdir} was trained with other settings than this run's: {listed}; resume with "
        f"its settings ({path}), use a new --workdir, or pass --allow_config_change to "
        "resume with these (the old config.json is then kept beside the new one)")
  stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
  kept = path.with_name(f"config.before-{stamp}.json")
  if jax.process_index() == 0:
    checkpointing.save_config(previous, kept)
  logging.warning("resuming %s with changed settings (%s); its previous config.json is "
                  "kept as %s", workdir, listed, kept)
  return kept


def _write_pictures(writer, step, host_batch, outputs, placement, count=4):
  # This process's rows of the batch-sharded outputs, those of its host batch: the
  # other processes' rows are not addressable here.
  outputs = multihost_utils.global_array_to_host_local_array(
      outputs, placement.mesh, placement.batch.spec)
  relit = np.asarray(outputs["relit"])
  batch = input_pipeline.to_float(host_batch)
  images = {"relighting": visualize.triplet_grid(batch, relit, count)[None]}
  for role in ("input", "target"):
    key = f"{role}_envmap"
    if key in outputs:
      predicted = np.asarray(outputs[key], np.float32)
      images[f"envmap/{role}"] = visualize.envmap_grid(predicted, batch[key], count)[None]
  if "relit_shading" in outputs and "ground_truth_shading" in batch:
    # The shadow model's shading of I's scene under T's light, beside the renderer's.
    images["shading/relit"] = visualize.map_grid(np.asarray(outputs["relit_shading"]),
                                                 batch["ground_truth_shading"], count)[None]
  writer.write_images(step, images)


def train_and_evaluate(config, workdir, *, allow_config_change=False):
  """Trains `config` in `workdir` (resuming if possible), then runs the full evaluation.

  Returns:
    (final `TrainState`, evaluation results, Markdown table).

  Raises:
    Preempted, workdir.WorkdirBusyError, workdir.BadWorkdirError, ConfigChangedError:
      see `train`.
  """
  with workdir_lib.lock(workdir, primary=jax.process_index() == 0) as path:
    train_state = _train(config, path, allow_config_change)
    record, table = evaluate.run(config, path, train_state, parallel.create_placement())
  return train_state, record, table


def periodic_eval_sets(config, train_images, eval_images):
  """The sets of the periodic evaluation (report Fig. 6): {name: (images, pairs)}.

  "train_set": pairs of training scenes under the Eval rule (the report's Train set, which
  shows overfitting); "eval" and "eval_same_direction": the validation split's Eval and
  Eval[d_I = d_T]. Each holds train.eval_batches batches, fixed and seeded.
  """
  count = config.train.eval_batches * config.eval.batch_size
  subsets = input_pipeline.eval_subsets(config.eval.pairing)
  sets = {}
  for name, images, rules in (("train_set", train_images, subsets["eval"]),
                              ("eval", eval_images, subsets["eval"]),
                              ("eval_same_direction", eval_images,
                               subsets["eval_same_direction"])):
    sets[name] = (images, input_pipeline.eval_pairs(images.num_scenes, rules, count,
                                                    config.eval.seed))
  return sets


def train(config, workdir, *, allow_config_change=False):
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Args:
    config: experiment config (see configs/).
    workdir: where checkpoints, TensorBoard events and evaluation results go.
    allow_config_change: resume even where `config` differs from the workdir's
      config.json in settings that change what is trained (the old file is kept as
      config.before-<time>.json).

  Returns:
    The final `TrainState`.

  Raises:
    Preempted: SIGTERM or SIGINT arrived; the step it arrived in was finished and saved.
    workdir.WorkdirBusyError: another run holds `workdir`.
    workdir.BadWorkdirError: `workdir` is a file.
    ConfigChangedError: the workdir was trained with other settings (listed).
    checkpointing.UnrestorableCheckpointError: the latest checkpoint failed to restore
      but is not proven damaged (kept).
  """
  # Only process 0 writes config.json and the TensorBoard events; the others would find
  # its lock taken.
  with workdir_lib.lock(workdir, primary=jax.process_index() == 0) as path:
    return _train(config, path, allow_config_change)


def _train(config, workdir, allow_config_change=False):
  """`train` in a locked `workdir` (a `pathlib.Path`)."""
  _check_workdir(config, workdir, allow_config_change)
  placement = parallel.create_placement()
  for name, batch_size in (("train.batch_size", config.train.batch_size),
                           ("eval.batch_size", config.eval.batch_size)):
    if batch_size % len(placement.mesh.devices.flat):
      raise ValueError(
          f"{name}={batch_size} does not split over the {placement.mesh.devices.size} "
          f"devices: use a multiple of {placement.mesh.devices.size} (--config.{name}=...)")
  host = input_pipeline.HostSlice(jax.process_index(), jax.process_count())
  data = config.data
  train_images = scene_images.SceneImages(
      data.name, data.train_split, data.data_dir, data.image_size, data.cache_mib,
      aovs=data.aovs)
  eval_images = scene_images.SceneImages(
      data.name, data.eval_split, data.data_dir, data.image_size, data.cache_mib)
  rules = input_pipeline.parse_rule(data.pairing)
  iterator = iter(input_pipeline.train_dataset(
      train_images, rules, seed=config.seed, global_batch=config.train.batch_size, host=host,
      extra_rule_names=input_pipeline.parse_rule(data.extra_pairing),
      extra_fraction=data.extra_fraction, envmap_convention=config.model.envmap_convention))

  manager = checkpointing.create_manager(
      workdir, max_to_keep=config.checkpoint.max_to_keep, async_save=config.checkpoint.async_save,
      owner=jax.process_index() == 0)
  # A damaged or non-finite latest checkpoint falls back to the previous one; the damaged
  # ones are deleted, or orbax would not save those steps again. One that fails to restore
  # for another reason stops the run instead (it may be intact).
  train_state, data_state, _ = checkpointing.restore_latest_good(
      manager, config, placement.replicated, delete_skipped=True)
  if train_state is None:
    train_state = jax.jit(functools.partial(state_lib.create_train_state, config),
                          out_shardings=placement.replicated)(state_lib.init_key(config.seed))
  else:
    iterator.set_state(data_state)
    logging.info("Resumed from step %d", int(train_state.step))
  start_step = int(jax.device_get(train_state.step))
  num_steps = config.train.num_steps

  writer = summaries.create_writer(workdir, active=jax.process_index() == 0)
  if start_step == 0:
    # The table (a row per array, over a hundred) goes to TensorBoard's Text tab and the
    # debug log; the console, quiet by default, gets its total.
    overview = parameter_overview.get_parameter_overview(train_state.params)
    logging.info("Parameters: %s relighter (table: TensorBoard's Text tab, `parameters`)",
                 f"{int(parameter_overview.count_parameters(train_state.params)):,}")
    logging.debug("Parameters of the relighter:\n%s", overview)
    writer.write_texts(0, {"parameters": f"```\n{overview}\n```"})
    writer.write_hparams(_flatten(config.to_dict()))

  # The step's metrics are clu averages, merged on device until a log step reads them.
  step_fn = jax.jit(
      functools.partial(step_lib.train_step_averaged, config=config),
      in_shardings=(placement.replicated, placement.batch),
      out_shardings=(placement.replicated, placement.replicated), donate_argnums=0)
  merge_fn = jax.jit(step_lib.merge_averages, out_shardings=placement.replicated,
                     donate_argnums=0)
  means_fn = jax.jit(step_lib.computed_averages, out_shardings=placement.replicated)
  predict_fn = jax.jit(step_lib.predict, in_shardings=(placement.replicated, placement.batch),
                       out_shardings=placement.batch)
  # The baselines do not change with training: the final evaluation scores them once.
  eval_step_fn = evaluate.make_eval_step(config, False, placement.replicated, placement.batch,
                                         with_baselines=False)
  periodic_sets = periodic_eval_sets(config, train_images, eval_images)
  prefetcher = _Prefetcher(iterator, placement.put_batch, config.data.prefetch)
  pending, last_log = None, (start_step, time.time())
  last_saved = manager.latest_step()
  last_step = start_step
  config_written = False

  def save_checkpoint(step, force=False):
    nonlocal config_written, last_saved
    # Never write a checkpoint that a resume would have to skip.
    problem = checkpointing.non_finite(train_state)
    if problem:
      raise FloatingPointError(
          f"the train state after step {step} is not finite ({problem}); "
          f"{_kept(workdir, last_saved)}. Lower --config.train.learning_rate or try "
          "model.dtype=float32.")
    # config.json is written with this run's first checkpoint: a run that fails before
    # (a config whose state cannot restore the checkpoints, a diverging rate) leaves it
    # describing the checkpoints there (evaluate and relight read it).
    if not config_written and jax.process_index() == 0:
      checkpointing.save_config(config, workdir / checkpointing.CONFIG_FILE)
    config_written = True
    checkpointing.save(manager, step, train_state, data_state, force=force)
    last_saved = step

  with _StopSignals() as stop:
    try:
      for step in range(start_step + 1, num_steps + 1):
        fetched = prefetcher.next(stop)
        if fetched is None:  # a signal while waiting for data: the last step is saved below
          break
        host_batch, device_batch, data_state = fetched
        train_state, metrics = step_fn(train_state, device_batch)
        pending = metrics if pending is None else merge_fn(pending, metrics)
        is_last = step == num_steps
        save_now = step % config.train.checkpoint_every == 0 or is_last
        if step % config.train.log_every == 0 or save_now:
          # Metrics are fetched every log_every steps only: no host sync inside the loop.
          averaged = {key: float(value) for key, value in
                      jax.device_get(means_fn(pending)).items()}
          pending = None
          if not all(np.isfinite(value) for value in averaged.values()):
            raise FloatingPointError(
                f"non-finite training loss at step {step} ({averaged}); "
                f"{_kept(workdir, last_saved)}. Lower --config.train.learning_rate or try "
                "model.dtype=float32.")
          elapsed = time.time() - last_log[1]
          rate = (step - last_log[0]) / max(elapsed, 1e-9)
          last_log = (step, time.time())
          writer.write_scalars(step, {**{f"train/{key}": value for key, value in averaged.items()},
                                      "steps_per_sec": rate})
          logging.info("step %d/%d loss %.4f  %.2f steps/s  %.1f pairs/s  ETA %s", step, num_steps,
                       averaged["loss"], rate, rate * config.train.batch_size,
                       _format_eta((num_steps - step) / max(rate, 1e-9)))
        if step % config.train.image_every == 0 or is_last:
          _write_pictures(writer, step, host_batch, predict_fn(train_state, device_batch),
                          placement)
        if step % config.train.eval_every == 0 or is_last:
          scores = {}
          for name, (images, pairs) in periodic_sets.items():
            if stop.received is not None:
              break  # the step is saved below; its evaluation is not worth the wait
            summary = evaluate.evaluate_means(
                train_state, images, pairs, config=config, step_fn=eval_step_fn,
                put_batch=placement.put_batch, replicated=placement.replicated)
            writer.write_scalars(step, {f"{name}/{key}": value for key, value in summary.items()})
            scores[name] = summary["score"]
          if len(scores) == len(periodic_sets):
            logging.info("step %d Score: Train %.3f, validation Eval %.3f, Eval[d_I = d_T] "
                         "%.3f", step, scores["train_set"], scores["eval"],
                         scores["eval_same_direction"])
        if save_now:
          save_checkpoint(step)
        last_step = step
        if stop.requested(step):
          break
      if stop.received is not None and last_step not in (start_step, last_saved):
        logging.warning("%s: saving a checkpoint of step %d, then stopping",
                        signal.Signals(stop.received).name, last_step)
        save_checkpoint(last_step, force=True)
    finally:
      prefetcher.close()
      try:
        manager.wait_until_finished()
        manager.close()
      finally:
        writer.close()
        # A save that failed (a full disk) leaves its staging folder: never a checkpoint.
        if jax.process_index() == 0:
          checkpointing.remove_unfinished(manager.directory)
  if stop.received is not None:
    raise Preempted(last_step, stop.received, workdir / checkpointing.CHECKPOINT_DIR)
  return train_state


@contextlib.contextmanager
def command_line_exits():
  """For the entry points: a busy or bad workdir, or a stop by a signal, ends the process
  with one line (and, after a signal, the status schedulers expect) instead of a
  traceback."""
  try:
    yield
  except (workdir_lib.WorkdirBusyError, workdir_lib.BadWorkdirError, ConfigChangedError,
          checkpointing.UnrestorableCheckpointError, scene_images.DamagedDatasetError) as error:
    sys.exit(f"error: {error}")
  except Preempted as stop:
    print(stop, file=sys.stderr, flush=True)
    sys.exit(stop.exit_status)
  except KeyboardInterrupt:
    # Ctrl-C outside the training loop (loading, the final evaluation): nothing is being
    # saved there, so nothing is lost.
    print("interrupted by SIGINT; the checkpoints already written are kept; rerun the same "
          "command to resume", file=sys.stderr, flush=True)
    sys.exit(128 + signal.SIGINT)
  except Exception as error:  # pylint: disable=broad-except
    full = checkpointing.disk_full(error)
    if full is None:
      raise
    sys.exit(f"error: no space left on device writing {full or 'the workdir'}: "
             "free some space (or use a --workdir on another disk) and rerun the same "
             "command; the checkpoints written before are kept")


def _kept(workdir, last_saved):
  if last_saved is None:
    return "no checkpoint was written"
  return (f"the last checkpoint, step {last_saved} in "
          f"{pathlib.Path(workdir) / checkpointing.CHECKPOINT_DIR}, is kept and finite")


def _format_eta(seconds):
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _flatten(tree, prefix=""):
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "."))
    else:
      # TensorBoard's HParams take booleans, numbers and strings only.
      flat[name] = value if isinstance(value, bool | int | float | str) else str(value)
  return flat
