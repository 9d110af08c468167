"""Training: the loop around the train step of `relight_jax.step`.

The step is jitted once over a one-axis `data` mesh (state replicated, batch sharded,
state buffers donated). The loop resumes from the latest orbax checkpoint (state +
data-stream position), writes TensorBoard scalars/images through clu, prints a progress
line with steps/s and ETA, evaluates periodically, and stops on a non-finite loss
without saving it, so the last good checkpoint stays the latest.
"""

import functools
import logging
import pathlib
import queue
import threading
import time

import jax
import numpy as np
from clu import metric_writers
from clu import periodic_actions

from relight_jax import checkpointing
from relight_jax import evaluate
from relight_jax import input_pipeline
from relight_jax import parallel
from relight_jax import results as results_lib
from relight_jax import state as state_lib
from relight_jax import step as step_lib
from relight_jax import visualize


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

  def next(self):
    host_batch, device_batch, data_state, error = self._queue.get()
    if error is not None:
      raise error
    return host_batch, device_batch, data_state


def _check_workdir(config, workdir):
  """Refuses to resume a workdir trained with another model (its config.json)."""
  path = workdir / checkpointing.CONFIG_FILE
  if path.exists():
    previous = checkpointing.load_config(path)
    if previous.model.to_dict() != config.model.to_dict():
      raise ValueError(
          f"{workdir} holds a run of another model ({previous.model.name}, width "
          f"{previous.model.width}); use a new --workdir or the same model config")


def _write_pictures(writer, step, host_batch, outputs, count=4):
  relit = np.asarray(jax.device_get(outputs["relit"]))
  batch = input_pipeline.to_float(host_batch)
  images = {"relighting": visualize.triplet_grid(batch, relit, count)[None]}
  for role in ("input", "target"):
    key = f"{role}_envmap"
    if key in outputs:
      predicted = np.asarray(jax.device_get(outputs[key]), np.float32)
      images[f"envmap/{role}"] = visualize.envmap_grid(predicted, batch[key], count)[None]
  writer.write_images(step, images)


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir` (resuming if possible), then runs the full evaluation.

  Returns:
    (final `TrainState`, evaluation results, Markdown table).
  """
  train_state = train(config, workdir)
  record, table = evaluate.run(config, workdir, train_state, parallel.create_placement())
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


def train(config, workdir):
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Args:
    config: experiment config (see configs/).
    workdir: where checkpoints, TensorBoard events and evaluation results go.

  Returns:
    The final `TrainState`.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  _check_workdir(config, workdir)
  placement = parallel.create_placement()
  for name, batch_size in (("train.batch_size", config.train.batch_size),
                           ("eval.batch_size", config.eval.batch_size)):
    if batch_size % len(placement.mesh.devices.flat):
      raise ValueError(
          f"{name}={batch_size} does not split over the {placement.mesh.devices.size} "
          f"devices: use a multiple of {placement.mesh.devices.size} (--config.{name}=...)")
  host = input_pipeline.HostSlice(jax.process_index(), jax.process_count())
  data = config.data
  train_images = input_pipeline.SceneImages(
      data.name, data.train_split, data.data_dir, data.image_size, data.cache_mib)
  eval_images = input_pipeline.SceneImages(
      data.name, data.eval_split, data.data_dir, data.image_size, data.cache_mib)
  rules = input_pipeline.parse_rule(data.pairing)
  iterator = iter(input_pipeline.train_dataset(
      train_images, rules, seed=config.seed, global_batch=config.train.batch_size, host=host,
      extra_rule_names=input_pipeline.parse_rule(data.extra_pairing),
      extra_fraction=data.extra_fraction))

  manager = checkpointing.create_manager(
      workdir, max_to_keep=config.checkpoint.max_to_keep, async_save=config.checkpoint.async_save)
  train_state, data_state = checkpointing.restore(manager, config, placement.replicated)
  if train_state is None:
    train_state = jax.jit(functools.partial(state_lib.create_train_state, config),
                          out_shardings=placement.replicated)(state_lib.init_key(config.seed))
  else:
    iterator.set_state(data_state)
    logging.info("Resumed from step %d", int(train_state.step))
  # Only now: a config whose state cannot restore the checkpoints leaves config.json as
  # it was, still describing them (evaluate and relight read it).
  if jax.process_index() == 0:
    checkpointing.save_config(config, workdir / checkpointing.CONFIG_FILE)
  start_step = int(jax.device_get(train_state.step))
  num_steps = config.train.num_steps

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0, asynchronous=True)
  if start_step == 0:
    logging.info("Parameters: %d relighter", state_lib.parameter_count(train_state.params))
    writer.write_hparams({key: value for key, value in _flatten(config.to_dict()).items()})

  step_fn = jax.jit(
      functools.partial(step_lib.train_step, config=config),
      in_shardings=(placement.replicated, placement.batch),
      out_shardings=(placement.replicated, placement.replicated), donate_argnums=0)
  predict_fn = jax.jit(step_lib.predict)
  eval_step_fn = evaluate.make_eval_step(config, False, placement.replicated, placement.batch)
  periodic_sets = periodic_eval_sets(config, train_images, eval_images)
  report_progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer)
  prefetcher = _Prefetcher(iterator, placement.put_batch, config.data.prefetch)
  pending, last_log = [], (start_step, time.time())
  last_saved = manager.latest_step()

  try:
    for step in range(start_step + 1, num_steps + 1):
      host_batch, device_batch, data_state = prefetcher.next()
      train_state, metrics = step_fn(train_state, device_batch)
      pending.append(metrics)
      report_progress(step)
      is_last = step == num_steps
      save_now = step % config.train.checkpoint_every == 0 or is_last
      if step % config.train.log_every == 0 or save_now:
        # Metrics are fetched every log_every steps only: no host sync inside the loop.
        fetched = jax.device_get(pending)
        pending = []
        averaged = {key: float(np.mean([item[key] for item in fetched])) for key in fetched[0]}
        if not all(np.isfinite(value) for value in averaged.values()):
          raise FloatingPointError(
              f"non-finite training loss at step {step} ({averaged}); the last good checkpoint "
              f"(step {last_saved}) in {workdir / checkpointing.CHECKPOINT_DIR} is kept. Lower "
              f"--config.train.learning_rate or try model.dtype=float32.")
        writer.write_scalars(step, {f"train/{key}": value for key, value in averaged.items()})
        elapsed = time.time() - last_log[1]
        rate = (step - last_log[0]) / max(elapsed, 1e-9)
        last_log = (step, time.time())
        logging.info("step %d/%d loss %.4f  %.2f steps/s  %.1f pairs/s  ETA %s", step, num_steps,
                     averaged["loss"], rate, rate * config.train.batch_size,
                     _format_eta((num_steps - step) / max(rate, 1e-9)))
      if step % config.train.image_every == 0 or is_last:
        _write_pictures(writer, step, host_batch, predict_fn(train_state, device_batch))
      if step % config.train.eval_every == 0 or is_last:
        scores = {}
        for name, (images, pairs) in periodic_sets.items():
          per_example, _ = evaluate.evaluate_pairs(
              train_state, images, pairs, config=config,
              step_fn=eval_step_fn, put_batch=placement.put_batch)
          summary = results_lib.means(per_example)
          writer.write_scalars(step, {f"{name}/{key}": value for key, value in summary.items()})
          scores[name] = summary["score"]
        logging.info("step %d Score: Train %.3f, validation Eval %.3f, Eval[d_I = d_T] %.3f",
                     step, scores["train_set"], scores["eval"], scores["eval_same_direction"])
      if save_now:
        checkpointing.save(manager, step, train_state, data_state)
        last_saved = step
  finally:
    prefetcher.close()
    manager.wait_until_finished()
    manager.close()
    writer.flush()
  return train_state


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
      flat[name] = str(value) if isinstance(value, (tuple, list)) else value
  return flat
