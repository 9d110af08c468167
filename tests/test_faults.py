"""Faults a user meets, injected end to end through the command lines.

Each case ends in a result or in one line naming the path and the fix, never in a
traceback, a black image or lost work. Here: a checkpoint that fails to restore once is
kept; a real full disk (a 3 MB tmpfs, as root); a resume with changed settings; waiting
for data and a second signal; the umask; the pretrained bundle's destination; relight's
inputs and outputs (oversized PNG text, format limits, FIFOs and devices, sizes, a racing
writer); a config-string typo; a damaged array_record file; two builds into one data_dir.
Bounded real-VIDIT reads and zip members are in tests/test_vidit_errors.py. The
lower-level cases have their tests beside their code: the workdir lock, signals, a full
disk and a workdir that is a file (tests/test_workdir.py); checkpoint manifests, bit
flips, missing files, NaN states (tests/test_checkpointing.py); a planted or tampered
native library (relight_jax/cpu_kernels/tests/test_native_tiles.py); malicious or huge
depth pickles (tests/test_vidit_errors.py); impossible settings (tests/test_config.py);
the relight command's path mistakes (tests/test_relight.py).
"""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import checkpointed_workdir
from conftest import load_config
from PIL import Image

from relight_jax import export
from relight_jax import main
from relight_jax import relight
from relight_jax.common import atomic
from relight_jax.inference import trained_model
from relight_jax.training import checkpointing
from relight_jax.training import train

EARLIER, LATEST = 3, 5


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A workdir with checkpoints at steps 3 and 5, a photo and a target."""
  path = tmp_path_factory.mktemp("faults")
  workdir = path / "run"
  checkpointed_workdir(workdir, EARLIER, seed=1)
  checkpointed_workdir(workdir, LATEST, seed=2)
  rng = np.random.default_rng(0)
  for name in ("photo", "target"):
    Image.fromarray((rng.random((40, 56, 3)) * 255).astype(np.uint8)).save(path / f"{name}.png")
  return path


@pytest.fixture
def scene(pristine, tmp_path):
  shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
  return tmp_path


def _relight(scene, output, *source):
  # The network's image: a few training steps change the light too little for two
  # checkpoints' ratio-form results to differ in 8 bits.
  return relight.main([*source, f"--input={scene / 'photo.png'}",
                       f"--target={scene / 'target.png'}", f"--output={output}",
                       "--form=direct"])


def _largest_file(workdir, step):
  """The biggest file of a step's state: it holds the weights."""
  files = [path for path in (workdir / checkpointing.CHECKPOINT_DIR / str(step) /
                             "state").rglob("*") if path.is_file()]
  return max(files, key=lambda path: path.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_relight_uses_the_previous_checkpoint_when_the_latest_is_damaged(scene, damage, caplog):
  # What the fallback must give: the relit image of step 3 alone.
  shutil.copytree(scene / "run", scene / "earlier")
  shutil.rmtree(scene / "earlier" / checkpointing.CHECKPOINT_DIR / str(LATEST))
  assert _relight(scene, scene / "earlier.png", f"--workdir={scene / 'earlier'}") == 0
  assert _relight(scene, scene / "latest.png", f"--workdir={scene / 'run'}") == 0
  assert not np.array_equal(np.asarray(Image.open(scene / "latest.png")),
                            np.asarray(Image.open(scene / "earlier.png")))

  target = _largest_file(scene / "run", LATEST)
  data = target.read_bytes()
  if damage == "truncate":
    target.write_bytes(data[:len(data) // 2])
  else:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(flipped))
  with caplog.at_level(logging.WARNING):
    assert _relight(scene, scene / "relit.png", f"--workdir={scene / 'run'}") == 0
  warnings = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
  assert len(warnings) == 1 and f"{LATEST}" in warnings[0]
  relit = np.asarray(Image.open(scene / "relit.png"))
  np.testing.assert_array_equal(relit, np.asarray(Image.open(scene / "earlier.png")))


def test_a_damaged_export_is_refused_in_one_line(scene, capsys):
  exported = scene / "relighter.bin"
  assert export.main([f"--workdir={scene / 'run'}", f"--output={exported}"]) == 0
  data = bytearray(exported.read_bytes())
  data[len(data) // 2] ^= 0xFF
  exported.write_bytes(bytes(data))
  capsys.readouterr()
  assert _relight(scene, scene / "relit.png", f"--exported={exported}") == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and str(exported) in error[0] and "sha256" in error[0]
  assert not (scene / "relit.png").exists()


def _one_line_exit(exit_info):
  message = str(exit_info.value.code)
  assert "\n" not in message and "Traceback" not in message
  return message


def test_a_checkpoint_that_fails_to_restore_once_is_kept_and_named(scene, monkeypatch):
  workdir = scene / "run"
  config = load_config("envmap", "smoke")
  original = checkpointing.restore

  def too_many_open_files(manager, config, sharding, step=None):
    if step == LATEST:
      raise OSError(errno.EMFILE, "Too many open files")
    return original(manager, config, sharding, step)

  manager = checkpointing.create_manager(workdir, async_save=False)
  try:
    with monkeypatch.context() as patch:
      patch.setattr(checkpointing, "restore", too_many_open_files)
      with pytest.raises(checkpointing.UnrestorableCheckpointError) as error:
        checkpointing.restore_latest_good(manager, config, checkpointing.replicated_sharding(),
                                          delete_skipped=True)
    message = str(error.value)
    assert f"{checkpointing.CHECKPOINT_DIR}/{LATEST} (step {LATEST})" in message
    assert "Too many open files" in message and "nothing was deleted" in message
    assert sorted(manager.all_steps()) == [EARLIER, LATEST]
    # The failure passed: the same step restores on the next try.
    _, _, step = checkpointing.restore_latest_good(
        manager, config, checkpointing.replicated_sharding(), delete_skipped=True)
    assert step == LATEST
  finally:
    manager.close()
  latest = workdir / checkpointing.CHECKPOINT_DIR / str(LATEST)
  assert checkpointing.manifest_problem(latest) is None


def test_the_command_line_names_a_kept_unrestorable_checkpoint_in_one_line(tmp_path, monkeypatch):
  def unrestorable(config, path, **kwargs):
    del config, kwargs
    raise checkpointing.UnrestorableCheckpointError(5, path / "checkpoints" / "5", "EIO")

  monkeypatch.setattr(train, "train", unrestorable)
  with pytest.raises(SystemExit) as exit_info:
    main.run("train", None, tmp_path)
  message = _one_line_exit(exit_info)
  assert message.startswith(f"error: checkpoint {tmp_path / 'checkpoints' / '5'} (step 5)")


def test_disk_full_is_recognised_in_tensorstore_text():
  error = ValueError('RESOURCE_EXHAUSTED: Error writing "x" in OCDBT database at local file '
                     '"/w/checkpoints/3.orbax-checkpoint-tmp/": Failed writing: "/w/checkpoints/'
                     '3.orbax-checkpoint-tmp/d/ab": Failed to write 6090752 bytes to file 7: No '
                     "space left on device [os_error_code='28']")
  assert checkpointing.disk_full(error) == "/w/checkpoints/3.orbax-checkpoint-tmp/d/ab"
  assert checkpointing.disk_full(RuntimeError("wrapped")) is None
  try:
    raise RuntimeError("orbax: save failed") from OSError(errno.ENOSPC, "full", "/w/f")
  except RuntimeError as wrapped:
    assert checkpointing.disk_full(wrapped) == "/w/f"


@pytest.fixture
def small_disk(tmp_path):
  """A 3 MB tmpfs folder (a full disk for a smoke model's 6 MB checkpoint), root only."""
  if not hasattr(os, "geteuid") or os.geteuid() != 0:
    pytest.skip("mounting a small tmpfs for a real full disk needs root")
  folder = tmp_path / "small_disk"
  folder.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
                           capture_output=True, text=True, check=False)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
  try:
    yield folder
  finally:
    subprocess.run(["umount", str(folder)], check=False)


def test_a_real_full_disk_ends_in_one_line_and_leaves_no_staging_folder(small_disk, tiny_data_dir):
  workdir = small_disk / "run"
  config = load_config("envmap", "smoke", **{
      "data.data_dir": tiny_data_dir, "train.num_steps": 1, "train.eval_every": 100,
      "train.image_every": 100, "checkpoint.async_save": True})
  with pytest.raises(SystemExit) as exit_info:
    main.run("train", config, workdir)
  message = _one_line_exit(exit_info)
  assert message.startswith(f"error: no space left on device writing {workdir}/checkpoints/")
  assert "rerun the same command" in message
  left = [path.name for path in (workdir / checkpointing.CHECKPOINT_DIR).iterdir()]
  assert not [name for name in left if "orbax-checkpoint-tmp" in name], left


def _resume(scene, **overrides):
  config = load_config("envmap", "smoke", **overrides)
  with pytest.raises(SystemExit) as exit_info:
    main.run("train", config, scene / "run")
  return _one_line_exit(exit_info)


@pytest.mark.parametrize("key, value", [
    ("data.image_size", 64), ("train.batch_size", 16), ("train.learning_rate", 5e-4),
    ("data.pairing", "different_scene")])
def test_a_resume_with_other_settings_lists_them_and_refuses(scene, key, value):
  config_json = (scene / "run" / checkpointing.CONFIG_FILE).read_text()
  message = _resume(scene, **{key: value})
  assert message.startswith(f"error: {scene / 'run'} was trained with other settings")
  assert f"{key} " in message and f"-> {value!r}" in message
  assert "--allow_config_change" in message
  assert (scene / "run" / checkpointing.CONFIG_FILE).read_text() == config_json


def test_a_resume_may_change_the_length_and_cadences(scene):
  previous = checkpointing.load_config(scene / "run" / checkpointing.CONFIG_FILE)
  config = load_config("envmap", "smoke", **{
      "train.num_steps": 99, "train.log_every": 7, "data.data_dir": "elsewhere",
      "eval.num_pairs": 8})
  assert train.config_changes(previous, config) == []
  decaying = load_config("envmap", "smoke", **{"train.num_steps": 99, "train.lr_decay": "cosine"})
  assert [change.split()[0] for change in train.config_changes(previous, decaying)] == [
      "train.lr_decay", "train.num_steps"]


def test_allow_config_change_keeps_the_old_config_beside(scene):
  workdir = scene / "run"
  config_json = (workdir / checkpointing.CONFIG_FILE).read_text()
  config = load_config("envmap", "smoke", **{"train.learning_rate": 5e-4})
  kept = train._check_workdir(config, workdir, True)  # pylint: disable=protected-access
  assert kept.parent == workdir and kept.name.startswith("config.before-")
  assert kept.read_text() == config_json


def test_waiting_for_data_ends_on_the_first_signal():
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers need the main thread")
  release = threading.Event()

  class Stalled:
    def __next__(self):
      release.wait()
      raise StopIteration

    def get_state(self):
      return {}

  prefetcher = train._Prefetcher(Stalled(), lambda batch: batch, 1)  # pylint: disable=protected-access
  try:
    with train._StopSignals() as stop:  # pylint: disable=protected-access
      threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
      started = time.monotonic()
      assert prefetcher.next(stop) is None
      assert time.monotonic() - started < 5 and stop.received == signal.SIGTERM
  finally:
    release.set()
    prefetcher.close()


def test_a_second_signal_stops_at_once():
  script = ("import os, signal, time\n"
            "from relight_jax.training import train\n"
            "with train._StopSignals():\n"
            "  os.kill(os.getpid(), signal.SIGINT)\n"
            "  time.sleep(0.2)\n"
            "  os.kill(os.getpid(), signal.SIGINT)\n"
            "  time.sleep(60)\n"
            "print('still running')\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  started = time.monotonic()
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        env=env, timeout=120, check=False)
  assert done.returncode == -signal.SIGINT, done.stderr
  assert time.monotonic() - started < 60 and "still running" not in done.stdout
  lines = [line for line in done.stderr.splitlines() if line.startswith("SIGINT")]
  assert len(lines) == 2 and "again: stopping now" in lines[1]


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o077, 0o600, 0o700),
                                                            (0o022, 0o644, 0o755)])
def test_written_files_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
  previous = os.umask(umask)
  try:
    atomic.write_text(tmp_path / "result.json", "{}")
    with atomic.replacing_folder(tmp_path / "submission") as staging:
      (staging / "a.txt").write_text("a")
    Image.new("RGB", (8, 8)).save(tmp_path / "unused.png")  # PIL's open() as a reference
  finally:
    os.umask(previous)
  assert (tmp_path / "result.json").stat().st_mode & 0o777 == file_mode
  assert (tmp_path / "submission").stat().st_mode & 0o777 == folder_mode
  assert (tmp_path / "unused.png").stat().st_mode & 0o777 == file_mode


def test_the_shipped_model_is_not_replaced_without_overwrite(scene, monkeypatch):
  shipped = scene / "shipped"
  shutil.copytree(trained_model.bundle_folder(), shipped)
  before = {path.name: path.read_bytes() for path in shipped.iterdir() if path.is_file()}
  monkeypatch.setattr(trained_model, "bundle_folder", lambda folder=None: shipped)
  with pytest.raises(trained_model.BundleError,
                     match=rf"^{shipped} holds the shipped reference model .*--overwrite"):
    trained_model.write_bundle(scene / "run")
  assert {path.name: path.read_bytes() for path in shipped.iterdir()
          if path.is_file()} == before
  # Where asked, it is written; over an existing bundle only with --overwrite.
  folder, manifest = trained_model.write_bundle(scene / "run", scene / "mine")
  assert folder == scene / "mine" and manifest["step"] == LATEST
  with pytest.raises(trained_model.BundleError, match="holds a model bundle"):
    trained_model.write_bundle(scene / "run", scene / "mine")
  trained_model.write_bundle(scene / "run", scene / "mine", step=EARLIER, overwrite=True)
  assert json.loads((scene / "mine" / "bundle.json").read_text())["step"] == EARLIER


def test_a_read_only_bundle_folder_is_one_line(scene, monkeypatch):
  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")

  monkeypatch.setattr(atomic, "replacing", read_only)
  with pytest.raises(trained_model.BundleError,
                     match=rf"^cannot write the bundle in {scene / 'out'} \(Read-only file "
                     r"system\); pass --output=DIR"):
    trained_model.write_bundle(scene / "run", scene / "out")


@pytest.mark.parametrize("content", ["[1, 2]", "{\"step\": 5}", "not json"])
def test_a_bundle_manifest_of_the_wrong_shape_is_one_error(scene, content):
  folder = scene / "bundle"
  shutil.copytree(trained_model.bundle_folder(), folder)
  (folder / "bundle.json").write_text(content)
  with pytest.raises(ValueError, match=rf"^{folder / 'bundle.json'}: .*write the bundle again"):
    trained_model.load_pretrained(folder)


def _text_bomb(path):
  """A small PNG whose zTXt chunk decompresses to 5 MB (beyond PIL's text limit)."""
  from PIL import PngImagePlugin  # pylint: disable=g-import-not-at-top
  info = PngImagePlugin.PngInfo()
  info.add_text("comment", "x" * (5 << 20), zip=True)
  Image.new("RGB", (16, 16)).save(path, pnginfo=info)
  assert path.stat().st_size < 100_000


def test_a_png_with_an_oversized_text_chunk_is_named_and_skipped_in_a_batch(scene, capsys):
  folder = scene / "inputs"
  folder.mkdir()
  shutil.copy(scene / "photo.png", folder / "good.png")
  _text_bomb(folder / "bomb.png")
  capsys.readouterr()
  status = relight.main([f"--workdir={scene / 'run'}", f"--input={folder / 'bomb.png'}",
                         f"--target={scene / 'target.png'}", f"--output={scene / 'b.png'}"])
  error = capsys.readouterr().err.strip().splitlines()
  assert status == 1 and len(error) == 1 and str(folder / "bomb.png") in error[0]
  status = relight.main([f"--workdir={scene / 'run'}", f"--input={folder}",
                         f"--target={scene / 'target.png'}", f"--output={scene / 'out'}"])
  error = capsys.readouterr().err
  assert status == 1 and "Traceback" not in error
  assert f"{folder / 'bomb.png'}: refused or damaged" in error
  assert sorted(path.name for path in (scene / "out").iterdir()) == ["good__target.png"]


@pytest.mark.parametrize("size, name, message", [
    ((16_400, 8), "wide.webp", "larger than WEBP allows (16,383 pixels per side)"),
    ((65_600, 8), "wide.jpg", "larger than JPEG allows (65,500 pixels per side)"),
    ((40, 56), "result.xbm", "PIL's XBM cannot store an 8-bit RGB result"),
    ((40, 56), "result.h5", "PIL's HDF5 cannot store an 8-bit RGB result")])
def test_output_format_limits_are_checked_before_the_model(scene, capsys, monkeypatch, size,
                                                          name, message):
  def no_model(*args, **kwargs):
    raise AssertionError("the model was loaded")

  monkeypatch.setattr(relight.trained_model, "load_workdir", no_model)
  photo = scene / "wide.png"
  Image.new("RGB", size, (90, 120, 150)).save(photo)
  status = relight.main([f"--workdir={scene / 'run'}", f"--input={photo}",
                         f"--target={scene / 'target.png'}", f"--output={scene / name}"])
  error = capsys.readouterr().err.strip().splitlines()
  assert status == 1 and len(error) == 1, error
  assert str(scene / name) in error[0] and message in error[0]
  assert not (scene / name).exists()


@pytest.mark.parametrize("role", ["input", "exported"])
def test_a_fifo_or_device_is_refused_instead_of_hanging(scene, capsys, role):
  fifo = scene / "pipe.png"
  os.mkfifo(fifo)
  for special in (fifo, "/dev/zero"):
    if role == "input":
      argv = [f"--workdir={scene / 'run'}", f"--input={special}"]
    else:
      argv = [f"--exported={special}", f"--input={scene / 'photo.png'}"]
    started = time.monotonic()
    status = relight.main(argv + [f"--target={scene / 'target.png'}",
                                  f"--output={scene / 'o.png'}"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(error) == 1 and time.monotonic() - started < 30
    assert f"{special} is not a regular file" in error[0]


def test_an_exported_file_that_is_a_device_is_refused_by_the_api():
  with pytest.raises(ValueError, match="/dev/zero: not a regular file"):
    trained_model.load_exported("/dev/zero")


def test_sizes_that_exhaust_memory_are_refused(scene, capsys):
  status = relight.main([f"--workdir={scene / 'run'}", f"--input={scene / 'photo.png'}",
                         f"--target={scene / 'target.png'}", f"--output={scene / 'o.png'}",
                         "--size=100000"])
  error = capsys.readouterr().err.strip().splitlines()
  assert status == 1 and len(error) == 1 and "size=100000: expected" in error[0]
  from relight_jax.config import config_utils  # pylint: disable=g-import-not-at-top
  for key, value in (("model.width", 1000.0), ("train.batch_size", 10**7),
                     ("eval.batch_size", 10**7), ("data.image_size", 2**20)):
    config = load_config("envmap", "smoke", **{key: value})
    with pytest.raises(ValueError, match=rf"^config {key}={value!r}: expected .*at most"):
      config_utils.validate(config)


def test_an_output_another_run_wrote_meanwhile_is_kept_and_reported(scene, capsys,
                                                                    monkeypatch):
  output = scene / "shared.png"
  original = relight._relit_photo

  def racing(*args, **kwargs):
    result = original(*args, **kwargs)
    output.write_bytes(b"the other run's result")  # it finished first
    return result

  monkeypatch.setattr(relight, "_relit_photo", racing)
  assert _relight(scene, output, f"--workdir={scene / 'run'}") == 1
  error = capsys.readouterr().err
  assert f"{output} appeared while it was being written" in error
  assert output.read_bytes() == b"the other run's result"
  assert not [path for path in scene.iterdir() if path.name.startswith(".shared.png")]


def test_a_config_string_typo_is_one_line_without_traceback():
  done = subprocess.run(
      [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smok",
       "--workdir=unused", "--mode=train"],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=300,
      check=False)
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 1 and len(lines) == 1, done.stderr
  assert lines[0].startswith("error: flag --config=") and "Traceback" not in done.stderr
  assert "config argument 'smok' is neither key=value, a preset" in lines[0]


def test_a_truncated_array_record_names_the_file_and_the_rebuild(tiny_data_dir, tmp_path):
  from relight_jax.datasets import scene_images  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir, data_dir)
  (damaged,) = data_dir.glob("vidit/synthetic_tiny/*/*-train.array_record*")
  os.truncate(damaged, damaged.stat().st_size // 2)
  images = scene_images.SceneImages("vidit/synthetic_tiny", "train", str(data_dir), 32)
  with pytest.raises(scene_images.DamagedDatasetError) as raised:
    for scene in range(images.num_scenes):
      images.image(scene, 39)
  message = str(raised.value)
  assert message.startswith(f"{damaged}: record ") and "\n" not in message
  assert "damaged or truncated" in message and "relight_jax.datasets.build" in message
  with pytest.raises(SystemExit) as exit_info:
    with train.command_line_exits():
      images.image(images.num_scenes - 1, 39)
  assert _one_line_exit(exit_info).startswith(f"error: {damaged}: record ")


def test_a_second_build_into_one_data_dir_is_refused_in_one_line(tmp_path):
  import fcntl  # pylint: disable=g-import-not-at-top

  from relight_jax.datasets import build  # pylint: disable=g-import-not-at-top
  lock = tmp_path / "vidit" / ".synthetic_tiny.build.lock"
  lock.parent.mkdir(parents=True)
  with open(lock, "w", encoding="utf-8") as held:  # the first build, still rendering
    held.write("pid 12345")
    held.flush()
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(build.BuildBusyError) as raised:
      build.build("synthetic_tiny", str(tmp_path))
  message = str(raised.value)
  assert message.startswith(f"vidit/synthetic_tiny is being built into {tmp_path} by pid 12345")
  assert "wait for that build to finish, then rerun" in message and "\n" not in message
  assert not list((tmp_path / "vidit").glob("synthetic_tiny*"))
