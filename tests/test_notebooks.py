"""Runs colab/train.ipynb then colab/relight.ipynb top to bottom, as in Colab, on a CPU.

The kernel finds a stand-in `google.colab` (tests/fake_colab: uploads from a folder,
downloads into one, Drive as a folder), so the Colab-only cells run too: the train
notebook unpacks the repository from an uploaded zip, keeps its workdir on the "Drive",
starts TensorBoard and downloads the exported model; the relight notebook relights an
uploaded photo under an uploaded target's light with that model, then by a light label
with the bundled reference model. Settings come from environment variables, which the
kernel inherits: the smoke config, the session's tiny dataset, folders in tmp.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import jax
import nbformat
import numpy as np
from nbclient import NotebookClient
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
FAKE_COLAB = pathlib.Path(__file__).resolve().parent / "fake_colab"


def _execute(name, extra_cells=()):
  """Executes colab/<name> (plus `extra_cells`) in a fresh kernel; returns the notebook."""
  notebook = nbformat.read(REPO / "colab" / name, as_version=4)
  notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in extra_cells)
  NotebookClient(notebook, timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": str(REPO / "colab")}}).execute()
  return notebook


def _texts(notebook, output_types=("stream", "display_data", "execute_result")):
  texts = []
  for cell in notebook.cells:
    for output in cell.get("outputs", []):
      if output["output_type"] in output_types:
        texts.append(output.get("text", "") + json.dumps(output.get("data", {})))
  return "\n".join(texts)


def _repository_zip(path):
  """The clone's files (tracked, and new ones not ignored) as GitHub's Download ZIP has
  them: under one top-level folder."""
  names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
    for name in names:
      if (REPO / name).is_file():
        zipped.write(REPO / name, f"relight_jax-main/{name}")


def _stop_tensorboards(logdir):
  """Stops the TensorBoard servers still serving `logdir`; returns how many there were."""
  from tensorboard import manager
  servers = [info for info in manager.get_all() if str(logdir) in info.logdir]
  for info in servers:
    try:
      os.kill(info.pid, 15)
    except ProcessLookupError:
      pass
  return len(servers)


def _colab_env(monkeypatch, tmp_path, uploads):
  # Colab's PATH has the `tensorboard` program that %tensorboard starts: so has this venv's.
  monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable),
                                              os.environ.get("PATH", "")]))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      filter(None, [str(FAKE_COLAB), os.environ.get("PYTHONPATH")])))
  monkeypatch.setenv("FAKE_COLAB_UPLOADS", str(uploads))
  monkeypatch.setenv("FAKE_COLAB_DOWNLOADS", str(tmp_path / "downloads"))
  # The training subprocesses share the tests' persistent compilation cache.
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(jax.config.jax_compilation_cache_dir))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def test_stored_notebooks_have_no_outputs():
  for name in ("train.ipynb", "relight.ipynb"):
    notebook = nbformat.read(REPO / "colab" / name, as_version=4)
    for cell in notebook.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None, name


def test_train_then_relight_notebooks_run_as_in_colab(tiny_data_dir, tmp_path, monkeypatch):
  uploads = tmp_path / "uploads"
  uploads.mkdir()
  _repository_zip(uploads / "0_relight_jax-main.zip")
  rng = np.random.default_rng(0)
  for name in ("1_photo.png", "2_light.png"):
    Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(uploads / name)
  _colab_env(monkeypatch, tmp_path, uploads)
  repo_copy = tmp_path / "content" / "relight_jax"
  monkeypatch.setenv("RELIGHT_REPO_DIR", str(repo_copy))
  monkeypatch.setenv("RELIGHT_REPO_URL", "")
  monkeypatch.setenv("RELIGHT_CONFIG", "configs/envmap.py:smoke")
  monkeypatch.setenv("RELIGHT_DATA_DIR", tiny_data_dir)
  monkeypatch.setenv("RELIGHT_DRIVE_FOLDER", "relight_runs")
  monkeypatch.setenv("RELIGHT_DRIVE_MOUNT", str(tmp_path / "drive"))
  workdir = tmp_path / "drive" / "MyDrive" / "relight_runs" / "colab"

  probe = 'import sys\nprint("JAX in this kernel:", "jax" in sys.modules)'
  try:
    notebook = _execute("train.ipynb", [probe])
  finally:
    servers = _stop_tensorboards(workdir)
  text = _texts(notebook)
  assert f"unpacked from 0_relight_jax-main.zip at {repo_copy}" in text
  assert (repo_copy / "pyproject.toml").exists()
  assert "already installed, not running:" in text and "-c" in text and "constraints.txt" in text
  assert "vidit/synthetic_tiny" in text and "| MSE |" in text  # the evaluation table
  assert (workdir / "relighter.bin").stat().st_size > 0  # on the "Drive"
  assert (tmp_path / "downloads" / "relighter.bin").exists()
  assert "JAX in this kernel: False" in text
  # %tensorboard started a server on the workdir and showed it as Colab does (a frame
  # through the kernel's proxied port); the kernel's end may already have stopped it.
  assert "google.colab.kernel.proxyPort" in text, servers
  # Progress bars redraw one displayed line, not one printed line per refresh.
  streams = _texts(notebook, ("stream",))
  assert "\r" not in streams and "%|" not in streams
  assert "%|" in _texts(notebook, ("display_data",))

  monkeypatch.setenv("RELIGHT_REPO_DIR", str(REPO))
  monkeypatch.setenv("RELIGHT_MODEL", "exported")
  monkeypatch.setenv("RELIGHT_MODEL_PATH", str(workdir / "relighter.bin"))
  monkeypatch.setenv("RELIGHT_OUTPUT_DIR", str(tmp_path / "relit"))
  notebook = _execute("relight.ipynb")
  text = _texts(notebook)
  assert "working resolution 32 px" in text
  relit = tmp_path / "relit" / "input_1_photo__target_2_light.png"
  assert Image.open(relit).size == (96, 72)  # the uploaded photo's full resolution
  assert (tmp_path / "downloads" / relit.name).exists()
  assert text.count("image/png") >= 2  # the side-by-side figure and the crop figure

  # The form's default model, the bundled reference model, relighting by a light label.
  monkeypatch.setenv("RELIGHT_MODEL", "reference")
  monkeypatch.setenv("RELIGHT_MODEL_PATH", "")
  monkeypatch.setenv("RELIGHT_INPUT", str(relit))
  monkeypatch.setenv("RELIGHT_LIGHT", "W,3500")
  text = _texts(_execute("relight.ipynb"))
  assert "working resolution 64 px" in text and "light: W,3500" in text
  assert Image.open(tmp_path / "relit" / f"{relit.stem}__W_3500.png").size == (96, 72)
