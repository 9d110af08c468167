"""Training and evaluation end to end on the tiny synthetic dataset."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import load_config
from conftest import unoptimised_jit

from relight_jax.data import input_pipeline
from relight_jax.datasets import scene_images
from relight_jax.training import checkpointing
from relight_jax.training import parallel
from relight_jax.training import state as state_lib
from relight_jax.training import step as step_lib
from relight_jax.training import train

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(name, data_dir, arg="smoke", **overrides):
  return load_config(name, arg, **{"data.data_dir": data_dir, **overrides})


def _adam_rates(optimizer, steps):
  """The rate of each step: Adam's update of a scalar under a constant gradient of 1
  is -rate / (1 + eps), since its bias-corrected moments are both 1."""
  params = np.float32(0.0)
  opt_state = optimizer.init(params)
  rates = []
  for _ in range(steps):
    updates, opt_state = optimizer.update(np.float32(1.0), opt_state, params)
    rates.append(-float(updates) * (1 + 1e-8))
  return np.array(rates)


def test_learning_rate_schedules():
  constant = _adam_rates(state_lib.make_optimizer(1e-3, 0, 0.9, 0.999), 5)
  np.testing.assert_allclose(constant, 1e-3, rtol=1e-4)
  steps = np.arange(8)
  cosine = _adam_rates(state_lib.make_optimizer(1e-3, 0, 0.9, 0.999, "cosine", 8), 8)
  np.testing.assert_allclose(cosine, 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / 8)),
                             rtol=1e-4, atol=1e-9)
  # Warm-up 2 steps from 0, then a half cosine over the remaining 6.
  warm = _adam_rates(state_lib.make_optimizer(1e-3, 2, 0.9, 0.999, "cosine", 8), 8)
  np.testing.assert_allclose(warm[:3], [0.0, 5e-4, 1e-3], rtol=1e-4, atol=1e-9)
  np.testing.assert_allclose(warm[2:], 1e-3 * 0.5 * (1 + np.cos(np.pi * steps[:6] / 6)),
                             rtol=1e-4, atol=1e-9)
  with pytest.raises(ValueError, match="train.lr_decay='linear'"):
    state_lib.make_optimizer(1e-3, 0, 0.9, 0.999, "linear", 8)
  with pytest.raises(ValueError, match=r"train.num_steps \(4\) > train.warmup_steps \(4\)"):
    state_lib.make_optimizer(1e-3, 4, 0.9, 0.999, "cosine", 4)


def test_presets_choose_their_schedule(tiny_data_dir):
  assert _config("envmap", tiny_data_dir).train.lr_decay == "constant"
  demo = load_config("envmap", "cpu")
  assert (demo.train.lr_decay, demo.train.learning_rate) == ("cosine", 5e-4)
  assert load_config("envmap", "paper").train.lr_decay == "constant"
  # create_train_state passes the schedule on: a scalar of its optimizer, 4 steps. (Traced
  # only: the optimizer is a static field of the state.)
  config = _config("envmap", tiny_data_dir, **{"train.lr_decay": "cosine",
                                                "train.num_steps": 4})
  train_state = jax.eval_shape(lambda key: state_lib.create_train_state(config, key),
                               jax.random.key(0))
  rates = _adam_rates(train_state.tx, 4)
  np.testing.assert_allclose(rates, config.train.learning_rate * np.array(
      [1.0, 0.5 + 0.5 * np.cos(np.pi / 4), 0.5, 0.5 - 0.5 * np.cos(np.pi / 4)]), rtol=1e-4)


def test_reproduce_smoke_trains_evaluates_on_test_and_writes_table1(tiny_data_dir, tmp_path,
                                                                   unoptimised_compiles):
  from relight_jax import reproduce
  # Two of the three report models: the envmap model's loop and evaluation (light
  # estimates from envmaps) and the IlluminationPredicter's (from latents, batch 8). The
  # third, Envmap + scene, runs the envmap model's path with another network, whose
  # gradients and losses tests/test_models.py checks.
  result, table = reproduce.reproduce("smoke", tmp_path, seeds=(0,), data_dir=tiny_data_dir,
                                      models=("envmap", "illumination_predictor"))
  assert set(result) == {"envmap", "illumination_predictor", "identity", "colour_transfer",
                         "oracle_gain", "oracle_smooth"}
  for model, subsets in result.items():
    assert set(subsets) == {"eval", "eval_same_temperature", "eval_same_direction",
                            "eval_same_location"}, model
    for subset, values in subsets.items():
      for key in ("mse", "psnr", "ssim", "score"):
        low, high = values[key]["ci95"]
        assert low <= values[key]["mean"] + 1e-9 and values[key]["mean"] <= high + 1e-9
        assert np.isfinite(values[key]["mean"]), (model, subset, key)
  # Identity mapping on Eval[d_I = d_T] is far better than on Eval (same shadows).
  assert (result["identity"]["eval_same_direction"]["mse"]["mean"]
          < result["identity"]["eval"]["mse"]["mean"])
  # The light estimates of the report's §4.1, per model kind.
  assert {"light/lc", "light/ld", "light/direction_accuracy"} <= set(
      result["illumination_predictor"]["eval"])
  assert {"light/envmap_error", "light/direction_accuracy", "light/temperature_error_k"} <= set(
      result["envmap"]["eval"])
  assert json.loads((tmp_path / "metrics.json").read_text()) == result
  assert (tmp_path / "table1.md").read_text() == table
  assert "split `test`" in table and "| Envmap | Envmap (report) |" in table
  assert table.count("Envmap (report)") == 1  # the report printed Table 1 for Eval only
  figures = {path.name for path in (tmp_path / "figures").iterdir()}
  assert {"envmap_seed0_training.png", "envmap_seed0_envmaps_eval.png",
          "illumination_predictor_seed0_sheet_eval_same_direction.png"} <= figures
  # Each workdir's own record: the test split, its protocol, every subset.
  record = json.loads((tmp_path / "runs" / "envmap_seed0" / "eval" / "metrics.json").read_text())
  assert record["meta"]["split"] == "test" and record["meta"]["recipe"] == "report"
  assert record["subsets"]["eval"]["num_pairs"] == 16
  # Re-running resumes: nothing is retrained, the same table comes out.
  again, _ = reproduce.reproduce("smoke", tmp_path, seeds=(0,), data_dir=tiny_data_dir,
                                 models=("illumination_predictor",))
  assert again["illumination_predictor"] == result["illumination_predictor"]


def test_gan_variant_steps_and_saves_its_discriminator(tiny_data_dir, tmp_path):
  # The training loop treats the state as one pytree (relight_jax/training/train.py has
  # no GAN branch): what the variant adds is the discriminator's state, its update in the
  # step and its place in the checkpoint, tested here on the loop's batches.
  config = _config("envmap", tiny_data_dir, "smoke,gan=True")
  initial = unoptimised_jit(lambda key: state_lib.create_train_state(config, key))(
      state_lib.init_key(0))
  step = unoptimised_jit(lambda s, b: step_lib.train_step(s, b, config=config))
  train_state, batch = initial, _batch(config, tiny_data_dir)
  for _ in range(2):
    train_state, metrics = step(train_state, batch)
  assert int(train_state.step) == 2 and int(train_state.discriminator.step) == 2
  assert state_lib.parameter_count(train_state.discriminator.params) > 0
  assert {"generator_gan", "discriminator"} <= set(metrics)
  assert all(np.isfinite(float(value)) for value in metrics.values()), metrics
  moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                 initial.discriminator.params, train_state.discriminator.params)
  assert all(jax.tree_util.tree_leaves(moved)), moved
  manager = checkpointing.create_manager(tmp_path, async_save=False)
  checkpointing.save(manager, 2, train_state, {"next_index": 2})
  one_device = parallel.create_placement(jax.devices()[:1])
  restored, _ = checkpointing.restore(manager, config, one_device.replicated)
  manager.close()
  for got, want in zip(jax.tree_util.tree_leaves(jax.device_get(restored.discriminator)),
                       jax.tree_util.tree_leaves(jax.device_get(train_state.discriminator)),
                       strict=True):
    np.testing.assert_array_equal(got, want)


def _batch(config, data_dir, seed=0):
  images = scene_images.SceneImages(config.data.name, "train", data_dir,
                                      config.data.image_size, 64)
  rules = input_pipeline.parse_rule(config.data.pairing)
  return next(iter(input_pipeline.train_dataset(
      images, rules, seed=seed, global_batch=config.train.batch_size)))


def test_four_devices_match_one_device(tiny_data_dir):
  config = _config("envmap", tiny_data_dir)
  host_batch = _batch(config, tiny_data_dir)
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    placement = parallel.create_placement(devices)
    assert placement.mesh.size == len(devices)
    train_state = unoptimised_jit(lambda key: state_lib.create_train_state(config, key),
                                  out_shardings=placement.replicated)(state_lib.init_key(0))
    step = unoptimised_jit(lambda s, b: step_lib.train_step(s, b, config=config),
                           in_shardings=(placement.replicated, placement.batch),
                           out_shardings=(placement.replicated, placement.replicated))
    new_state, metrics = step(train_state, placement.put_batch(host_batch))
    results.append(jax.device_get((metrics, new_state.batch_stats)))
  (metrics_1, stats_1), (metrics_4, stats_4) = results
  # Every loss term and the gradient norm agree: BatchNorm sees the global batch on 4
  # devices exactly as on 1. (Parameters after one Adam step are not compared: Adam's
  # first update is ~lr * sign(g), which turns 1e-7 noise on near-zero gradients into
  # lr-sized differences.)
  assert set(metrics_1) == set(metrics_4) and "grad_norm" in metrics_1
  for key in metrics_1:
    # The gradient norm sums millions of squares all-reduced in another order: 5e-5
    # relative seen. Per-device BatchNorm statistics would differ at the percent level.
    tolerance = 2e-4 if key == "grad_norm" else 1e-5
    np.testing.assert_allclose(metrics_1[key], metrics_4[key], rtol=tolerance, err_msg=key)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         stats_1, stats_4)


def test_checkpoint_restores_on_a_different_device_count(trained_workdir):
  config, path, final_params = trained_workdir  # saved from the 4-device mesh
  one_device = parallel.create_placement(jax.devices()[:1])
  manager = checkpointing.create_manager(path, async_save=False)
  restored, data_state = checkpointing.restore(manager, config, one_device.replicated)
  manager.close()
  assert int(restored.step) == 3 and "next_index" in json.dumps(data_state)
  assert restored.params is not None
  restored_params = jax.tree_util.tree_leaves(jax.device_get(restored.params))
  assert len(restored_params) == len(final_params) > 10
  for expected, actual in zip(final_params, restored_params, strict=True):
    np.testing.assert_array_equal(actual, expected)
  assert len(jax.tree_util.tree_leaves(restored.params)[0].sharding.device_set) == 1


def _main_command(workdir, data_dir, steps):
  return [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
          f"--workdir={workdir}", "--mode=train", f"--config.data.data_dir={data_dir}",
          f"--config.train.num_steps={steps}", "--config.train.checkpoint_every=2",
          "--config.train.log_every=1", "--config.train.eval_every=1000",
          "--config.train.image_every=1000"]


def test_sigkill_then_resume_gives_the_uninterrupted_result(tiny_data_dir, tmp_path):
  steps = 8
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="1", PYTHONUNBUFFERED="1")
  reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
  subprocess.run(_main_command(reference, tiny_data_dir, steps), cwd=REPO, env=env, check=True,
                 capture_output=True)
  process = subprocess.Popen(_main_command(interrupted, tiny_data_dir, steps), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = interrupted / checkpointing.CHECKPOINT_DIR
  deadline = time.time() + 240
  while time.time() < deadline and not (checkpoints / "4").exists():
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert (checkpoints / "4").exists(), "the run never reached its second checkpoint"
  assert not (checkpoints / str(steps)).exists(), "killed too late to test a resume"
  subprocess.run(_main_command(interrupted, tiny_data_dir, steps), cwd=REPO, env=env,
                 check=True, capture_output=True)
  config = _config("envmap", tiny_data_dir)
  placement = parallel.create_placement(jax.devices()[:1])
  finals = []
  for workdir in (reference, interrupted):
    manager = checkpointing.create_manager(workdir, async_save=False)
    assert manager.latest_step() == steps
    finals.append(jax.device_get(checkpointing.restore(manager, config, placement.replicated)[0]))
    manager.close()
  jax.tree_util.tree_map(np.testing.assert_array_equal, finals[0].params, finals[1].params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, finals[0].batch_stats,
                         finals[1].batch_stats)


def test_tensorboard_events_hold_scalars_and_images(trained_workdir):
  from tensorboard.backend.event_processing import event_accumulator

  config, path, _ = trained_workdir
  accumulator = event_accumulator.EventAccumulator(str(path), size_guidance={"tensors": 0})
  accumulator.Reload()
  tags = set(accumulator.Tags()["tensors"])
  # The report's Fig. 6: Score on Train, on Eval and on Eval[d_I = d_T] during training,
  # and the light estimates of Fig. 5 / §4.1.
  for tag in ("train/loss", "train/reconstruction", "train/envmap", "train_set/score",
              "eval/score", "eval_same_direction/score", "eval/light/direction_accuracy",
              "eval/light/envmap_error", "relighting", "envmap/input"):
    assert tag in tags, (tag, sorted(tags))
  from tensorboard.util import tensor_util
  # clu's parameter overview of the new model, as Markdown text.
  (overview,) = accumulator.Tensors("parameters")
  assert "Total: " in tensor_util.make_ndarray(overview.tensor_proto).item().decode()
  image_event = accumulator.Tensors("relighting")[-1]
  width, height = (int(v) for v in tensor_util.make_ndarray(image_event.tensor_proto)[:2])
  assert width == 4 * config.data.image_size and height > 0


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_data_dir, tmp_path,
                                                             unoptimised_compiles):
  config = _config("envmap", tiny_data_dir, **{
      "train.learning_rate": float("nan"), "train.log_every": 1, "train.checkpoint_every": 1,
      "train.eval_every": 100, "train.image_every": 100})
  # A NaN rate makes the parameters NaN after step 1, before any loss is: the state is
  # refused before it is saved, and nothing (config.json included) is written.
  with pytest.raises(FloatingPointError, match=r"train state after step 1 is not finite.*"
                     r"no checkpoint was written"):
    train.train(config, tmp_path)
  manager = checkpointing.create_manager(tmp_path, async_save=False)
  assert manager.latest_step() is None
  manager.close()
  assert not (tmp_path / checkpointing.CONFIG_FILE).exists()


def _copy(trained_workdir, tmp_path):
  """A copy of the trained workdir, for a test that trains in it."""
  shutil.copytree(trained_workdir[1], tmp_path / "run")
  return tmp_path / "run"


def test_refuses_to_resume_another_model(trained_workdir, tiny_data_dir, tmp_path):
  path = _copy(trained_workdir, tmp_path)
  other = _config("illumination_predictor", tiny_data_dir)
  with pytest.raises(ValueError, match="holds a run of another model"):
    train.train(other, path)


def test_resuming_with_another_schedule_names_it_and_keeps_config(trained_workdir,
                                                                   tiny_data_dir, tmp_path):
  path = _copy(trained_workdir, tmp_path)
  config_json = (path / checkpointing.CONFIG_FILE).read_text()
  # A decaying rate adds a step count to the optimizer state: the checkpoint cannot fit.
  other = _config("envmap", tiny_data_dir, **{"train.num_steps": 4, "train.eval_every": 100,
                                              "train.lr_decay": "cosine"})
  with pytest.raises(train.ConfigChangedError,
                     match=r"other settings than this run's: train.lr_decay 'constant' -> "
                     r"'cosine', train.num_steps 3 -> 4; .*--allow_config_change"):
    train.train(other, path)
  # Allowed, the change still cannot restore the checkpoint: refused, naming why.
  with pytest.raises(ValueError, match=r"checkpoints/3 holds a training state.*train.lr_decay"):
    train.train(other, path, allow_config_change=True)
  # config.json still describes the checkpoints, so the trained model still loads.
  assert (path / checkpointing.CONFIG_FILE).read_text() == config_json
  _, variables, step = checkpointing.load_inference_variables(path)
  assert step == 3 and "params" in variables


@pytest.mark.parametrize("form", ["plain", "with_reference"])
def test_latent_losses_train_and_move_the_scene_latents(form, tiny_data_dir):
  # The report's L(1) / L(2) (§3.4) from a config alone: the step encodes G and relit too.
  config = _config("illumination_predictor", tiny_data_dir, **{
      "loss.scene_latent_weight": 1.0, "loss.light_latent_weight": 1.0,
      "loss.latent_loss": form})
  images = scene_images.SceneImages(config.data.name, "train", tiny_data_dir, 32)
  pairs = input_pipeline.eval_pairs(images.num_scenes, ("different_scene",), 8, 0)
  batch = input_pipeline.stack_examples(images, pairs)
  train_state = unoptimised_jit(lambda key: state_lib.create_train_state(config, key))(
      jax.random.key(0))
  _, metrics = unoptimised_jit(lambda s, b: step_lib.train_step(s, b, config=config))(
      train_state, batch)
  assert np.isfinite(float(metrics["scene_latent"])) and float(metrics["scene_latent"]) > 0
  assert np.isfinite(float(metrics["light_latent"]))
  with_weight = float(metrics["loss"])
  assert with_weight > float(metrics["reconstruction"]) + float(metrics["scene_latent"]) * 0.99


def test_envmap_model_has_no_scene_latent_to_constrain(tiny_data_dir):
  config = _config("envmap", tiny_data_dir, **{"loss.scene_latent_weight": 1.0})
  images = scene_images.SceneImages(config.data.name, "train", tiny_data_dir, 32)
  batch = input_pipeline.stack_examples(
      images, input_pipeline.eval_pairs(images.num_scenes, ("different_scene",), 8, 0))
  # Refused while the step is traced: shapes only, nothing is computed.
  with pytest.raises(ValueError, match="no scene latent"):
    jax.eval_shape(lambda key: step_lib.train_step(
        state_lib.create_train_state(config, key), batch, config=config), jax.random.key(0))


def test_batch_that_does_not_split_over_the_devices_is_refused(tiny_data_dir, tmp_path):
  config = _config("envmap", tiny_data_dir, **{"train.batch_size": 25})
  with pytest.raises(ValueError, match="train.batch_size=25 does not split over the 4 devices"):
    train.train(config, tmp_path)
