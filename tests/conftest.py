"""Test-wide JAX settings: 4 fake CPU devices and the persistent compilation cache.

Set here (not at import of the package) so that library code has no import-time side
effects. Four devices make sharding bugs show up on a laptop.
"""

import fcntl
import gc
import json
import os
import pathlib
import shutil
import subprocess

# Mitsuba must be imported before TensorFlow, or the process aborts at exit
# (see relight_jax/render/mitsuba_scene.py); test modules import both.
import mitsuba  # noqa: F401  isort: skip
import jax  # noqa: E402  isort: skip

_REPO = pathlib.Path(__file__).resolve().parents[1]

_CACHE_DIR = os.environ.get("RELIGHT_JAX_CACHE_DIR", str(_REPO / ".jax_cache"))
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Keys the tests make are "rbg" keys, as the library's initialisation key is
# (training/state.init_key): a jitted U-Net initialisation compiles several times faster
# than with threefry, and an eager one compiles each initialiser per parameter shape.
jax.config.update("jax_default_prng_impl", "rbg")
# The commands tests start (relight_jax.main, figures, the CLIs) share the cache too: a
# test that runs one command three times compiles once. (tests/test_distributed.py
# removes it for its workers.)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# The commands tests start compile with XLA's optimisation passes mostly off: they run a
# few steps of smoke-size models, so compiling is most of their time (the distributed
# test's two workers: 77 s -> 39 s on 2 cores). JAX read the variable when it was
# imported above, so this process keeps its defaults (see `unoptimised_compiles`).
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"

import pytest  # noqa: E402

# ---------------------------------------------------------------- the two tiers
#
# `make test-fast` (pytest -m "not integration") runs everything in this process on
# in-memory arrays or the rendered tiny datasets; `make test` adds the integration tier.
# The rule: a test is `integration` when it starts another Python process (a command
# line, a notebook kernel, a venv, worker processes), runs the training loop end to end
# (train.train, main.run, reproduce), or compiles whole models over and over (over 10 s
# with a warm compilation cache: docs/testing.md). The assignment is this table, by module (None:
# every test of the module) or by test name (parametrised cases included); a fast test
# that starts the interpreter fails, naming this table (see _no_interpreter_in_fast_tests).
INTEGRATION = {
    "test_app.py": {"test_the_app_relights_over_http",
                    "test_the_page_draws_in_a_headless_browser"},
    "test_beam_build.py": {"test_beam_build_writes_the_records_of_the_local_build"},
    "test_bench_gpu_check.py": {"test_step_and_benchmarks_import_no_data_or_logging_stack"},
    "test_config.py": {"test_main_refuses_an_impossible_override_before_writing"},
    "test_distributed.py": {"test_two_processes_train_and_evaluate_as_one",
                            "test_distributed_without_a_cluster_or_flags_says_what_to_give"},
    "test_evaluate.py": {"test_combine_command_writes_one_table_and_refuses_other_evaluations",
                         "test_combining_models_evaluated_on_the_same_pairs_compares_them_paired",
                         "test_training_modes_require_config",
                         "test_other_splits_do_not_replace_the_test_tables",
                         "test_evaluate_mode_without_config_uses_the_workdirs",
                         "test_the_evaluation_keeps_its_per_example_metrics",
                         "test_the_evaluation_goes_to_tensorboard"},
    "test_envmap_loss.py": {
        "test_le_weighs_against_reconstruction_as_in_the_original_at_initialisation"},
    "test_export.py": {"test_exported_file_matches_the_model_at_any_batch_without_its_code"},
    "test_faults.py": {"test_a_second_signal_stops_at_once",
                       "test_a_config_string_typo_is_one_line_without_traceback",
                       "test_a_real_full_disk_ends_in_one_line_and_leaves_no_staging_folder"},
    "test_geometry_model.py": {
        "test_shadow_model_predicts_shadings_and_learns_them",
        "test_auxiliary_losses_are_wired_and_train_the_geometry_head_and_encoder",
        "test_inference_needs_only_rgb",
        "test_geometry_losses_need_the_maps_and_say_so"},
    "test_host_memory.py": None,
    "test_image_io.py": {"test_heic_without_the_plugin_says_what_to_install"},
    "test_logs.py": None,
    "test_notebooks.py": {"test_train_then_relight_notebooks_run_as_in_colab"},
    "test_packaging.py": None,
    "test_relight.py": {"test_cli_subprocess_exit_status",
                        "test_relight_function_replays_the_winograd_kernels"},
    "test_relight_by_light.py": {
        "test_figures_command_draws_the_readme_pictures",
        "test_relighting_by_a_light_latent_is_relighting_by_a_target_with_that_latent",
        "test_envmap_models_relight_by_the_generated_envmap"},
    "test_train.py": {"test_reproduce_smoke_trains_evaluates_on_test_and_writes_table1",
                      "test_gan_variant_steps_and_saves_its_discriminator",
                      "test_checkpoint_restores_on_a_different_device_count",
                      "test_sigkill_then_resume_gives_the_uninterrupted_result",
                      "test_tensorboard_events_hold_scalars_and_images",
                      "test_non_finite_loss_stops_and_keeps_last_good_checkpoint",
                      "test_refuses_to_resume_another_model",
                      "test_resuming_with_another_schedule_names_it_and_keeps_config"},
    "test_transport_model.py": {"test_the_transport_model_trains_and_evaluates"},
    "test_vidit_builder.py": {"test_preview_cli"},
    "test_without_tensorflow.py": None,
    "test_workdir.py": {"test_command_line_refuses_a_workdir_another_process_holds",
                        "test_sigterm_saves_the_step_and_the_resumed_run_matches",
                        "test_sigint_on_a_checkpoint_step_saves_it_once"},
}


# The longest tests (docs/testing.md), started in this order. The second renders its own
# dataset: the other worker need not wait for the shared one.
_START_FIRST = ("test_sigkill_then_resume_gives_the_uninterrupted_result",
                "test_build_train_evaluate_export_and_relight",
                "test_reproduce_smoke_trains_evaluates_on_test_and_writes_table1",
                "test_two_processes_train_and_evaluate_as_one",
                "test_train_then_relight_notebooks_run_as_in_colab")

# Modules whose tests share an expensive module fixture (a wheel in a venv, an evaluated
# workdir): xdist sends all of a module's tests to one worker, which builds it once.
ONE_WORKER = ("test_evaluate.py", "test_packaging.py")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
  del config
  checked = set()
  for item in items:
    names = INTEGRATION.get(item.path.name, ())
    if names and item.path not in checked:  # a renamed test must not drop out of its tier
      checked.add(item.path)
      source = item.path.read_text()
      missing = sorted(name for name in names if f"def {name}(" not in source)
      if missing:
        raise pytest.UsageError(f"tests/conftest.py INTEGRATION names tests that "
                                f"{item.path.name} does not define: {missing}")
    if names is None or item.originalname in names:
      item.add_marker(pytest.mark.integration)
    if item.path.name in ONE_WORKER:
      item.add_marker(pytest.mark.xdist_group(item.path.stem))
  # The longest tests first, then the other integration tests, then the fast tier: xdist
  # hands tests out in this order as workers free up, so the short ones fill in at the
  # end instead of one long test running alone. A ONE_WORKER module stays in one piece
  # with the integration tests: pytest tears a module fixture down when the next test is
  # another module's, and would build its expensive one again for the fast ones.
  items.sort(key=lambda item: (item.get_closest_marker("integration") is None
                               and item.path.name not in ONE_WORKER,
                               _START_FIRST.index(item.originalname)
                               if item.originalname in _START_FIRST else len(_START_FIRST)))


def pytest_collection_finish(session):
  """Keeps Python's cyclic garbage collector off the objects that live all run long.

  A worker runs hundreds of tests that trace and compile JAX programs; its heap fills
  with long-lived objects (modules, jaxprs, flax scopes, cached executables) that the
  collector would otherwise walk again and again. The imports and collected tests
  are frozen out of its reach, and collections are rarer: cycles are still collected,
  later (docs/testing.md, "Compiling less").
  """
  del session
  gc.collect()
  gc.freeze()
  gc.set_threshold(50_000, 50, 1_000)


@pytest.fixture(autouse=True)
def _no_interpreter_in_fast_tests(request, monkeypatch):
  """Fails a fast-tier test that starts a Python process: it belongs in INTEGRATION."""
  if request.node.get_closest_marker("integration"):
    return
  popen_init = subprocess.Popen.__init__

  def guarded(self, args, *rest, **kwargs):
    program = args if isinstance(args, str | bytes | os.PathLike) else args[0]
    if os.path.basename(os.fsdecode(program)).startswith("python"):
      raise AssertionError(f"{request.node.nodeid} starts {program}: list it in "
                           "tests/conftest.py INTEGRATION (the integration tier)")
    popen_init(self, args, *rest, **kwargs)

  monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


# ---------------------------------------------------------------- shared datasets


def _built_once(tmp_path_factory, name, build):
  """A folder `build(folder)` filled once per test run, whichever xdist worker asks first.

  Under xdist every worker has its own basetemp; their common parent holds the folder, a
  lock (the workers wait while one builds) and a marker written once the build is
  complete (a build cut off is redone).
  """
  if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: its own basetemp
    folder = tmp_path_factory.mktemp(name)
    build(folder)
    return folder
  root = tmp_path_factory.getbasetemp().parent
  folder, done = root / name, root / f"{name}.done"
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        build(folder)
        done.touch()
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
  return folder


def _build_vidit(config):
  def build(folder):
    from relight_jax.datasets import build as build_lib
    result = build_lib.build(config, str(folder), render_workers=1)
    (folder / "build.json").write_text(json.dumps(result))
  return build


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """TFDS data_dir holding `vidit/synthetic_tiny`, rendered once per test run (seconds);
  its folder's build.json is what `relight_jax.datasets.build.build` returned."""
  return str(_built_once(tmp_path_factory, "tfds", _build_vidit("synthetic_tiny")))


@pytest.fixture(scope="session")
def v2_tiny_data_dir(tmp_path_factory):
  """TFDS data_dir holding `vidit/synthetic_v2_tiny` (shading maps and light transport),
  rendered once."""
  return str(_built_once(tmp_path_factory, "tfds_v2", _build_vidit("synthetic_v2_tiny")))


def trained_config(data_dir):
  """The config of `trained_workdir`: the smoke envmap model, 3 steps, evaluated at 3."""
  return load_config("envmap", "smoke", **{"data.data_dir": data_dir, "train.num_steps": 3,
                                           "train.eval_every": 3})


@pytest.fixture(scope="session")
def trained_workdir(tiny_data_dir, tmp_path_factory):
  """(config, workdir, final params) of `trained_config` trained by `train.train` once per
  test run on the 4-device mesh: config.json, the checkpoint of step 3, the periodic
  evaluation and images in TensorBoard events. Tests read it; one that trains on or
  writes there must copy it. The final params (as `jax.device_get` gives them, leaves in
  tree order) are `train.train`'s return value, kept beside the workdir."""
  import numpy as np

  config = trained_config(tiny_data_dir)

  def build(folder):
    from relight_jax.training import train
    final_state = train.train(config, folder / "run")
    leaves = jax.tree_util.tree_leaves(jax.device_get(final_state.params))
    np.savez(folder / "final_params.npz", *leaves)

  folder = _built_once(tmp_path_factory, "trained_envmap", build)
  with np.load(folder / "final_params.npz") as saved:
    leaves = [saved[f"arr_{index}"] for index in range(len(saved.files))]
  return config, folder / "run", leaves


# XLA's CPU compiler without LLVM's optimisation passes: a whole model's gradient then
# compiles in about a third of the time (the geometry model's three loss gradients: 32 s
# -> 9 s on 2 cores), and runs slower, which tests that run it once do not notice.
UNOPTIMISED = {"xla_backend_optimization_level": 0}


@pytest.fixture
def unoptimised_compiles():
  """Everything the test compiles in this process, as the commands tests start compile
  (jax_disable_most_optimizations): for tests that train a few steps end to end."""
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", False)


def unoptimised_jit(function, **jit_options):
  """Like jax.jit(function, **jit_options), compiled with UNOPTIMISED (once per argument
  shapes): for tests that run a big program a few times (a train step, gradient wiring
  checks), whose time is compiling."""
  jitted, compiled = jax.jit(function, **jit_options), {}

  def call(*args):
    signature = str(jax.tree.map(lambda x: (jax.numpy.shape(x), getattr(x, "dtype", type(x))),
                                 args))
    if signature not in compiled:
      compiled[signature] = jitted.lower(*args).compile(compiler_options=UNOPTIMISED)
    return compiled[signature](*args)
  return call


def load_config(name, arg="smoke", **overrides):
  """Loads configs/<name>.py with a config string, then applies dotted overrides."""
  from relight_jax.config import config_utils

  config = config_utils.config_from_file(f"{name}.py:{arg}")
  with config.unlocked():
    for dotted, value in overrides.items():
      section, key = dotted.split(".")
      config[section][key] = value
  return config


def checkpointed_workdir(path, step, seed=3):
  """Writes a smoke-size envmap model as a training workdir (config + checkpoint at `step`).

  Returns:
    (config, train_state).
  """
  import jax

  from relight_jax.training import checkpointing
  from relight_jax.training import state as state_lib

  config = load_config("envmap", "smoke")
  train_state = jax.jit(lambda rng: state_lib.create_train_state(config, rng))(
      jax.random.key(seed))
  checkpointing.save_config(config, path / checkpointing.CONFIG_FILE)
  manager = checkpointing.create_manager(path, async_save=False)
  checkpointing.save(manager, step, train_state, {"position": 0})
  manager.wait_until_finished()
  manager.close()
  return config, train_state
