"""Runs colab/train.ipynb then colab/relight.ipynb top to bottom on the CPU at smoke size.

The notebooks read their settings from environment variables (the kernel inherits this
process's environment): the smoke config, the session's tiny dataset, a workdir in tmp.
Colab-only cells (install, TensorBoard, uploads, downloads) are guarded by `IN_COLAB`.
"""

import json
import pathlib

import jax
import nbformat
from nbclient import NotebookClient
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]


def _execute(name):
  """Executes colab/<name> in a fresh kernel; returns all its text outputs joined."""
  notebook = nbformat.read(REPO / "colab" / name, as_version=4)
  NotebookClient(notebook, timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": str(REPO / "colab")}}).execute()
  texts = []
  for cell in notebook.cells:
    for output in cell.get("outputs", []):
      texts.append(output.get("text", ""))
      texts.append(json.dumps(output.get("data", {})))
  return "\n".join(texts)


def test_stored_notebooks_have_no_outputs():
  for name in ("train.ipynb", "relight.ipynb"):
    notebook = nbformat.read(REPO / "colab" / name, as_version=4)
    for cell in notebook.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None, name


def test_train_then_relight_notebooks_run_at_smoke_size(tiny_data_dir, tmp_path, monkeypatch):
  workdir = tmp_path / "workdir"
  monkeypatch.setenv("RELIGHT_REPO_DIR", str(REPO))
  monkeypatch.setenv("RELIGHT_CONFIG", "configs/envmap.py:smoke")
  monkeypatch.setenv("RELIGHT_DATA_DIR", tiny_data_dir)
  monkeypatch.setenv("RELIGHT_WORKDIR", str(workdir))
  monkeypatch.setenv("RELIGHT_OUTPUT_DIR", str(tmp_path / "relit"))
  # The training subprocesses share the tests' persistent compilation cache.
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(jax.config.jax_compilation_cache_dir))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")

  text = _execute("train.ipynb")
  assert "vidit/synthetic_tiny" in text and "| MSE |" in text  # the evaluation table
  assert (workdir / "relighter.bin").stat().st_size > 0

  monkeypatch.setenv("RELIGHT_EXPORTED", str(workdir / "relighter.bin"))
  text = _execute("relight.ipynb")
  assert "working resolution 32 px" in text
  relit = tmp_path / "relit" / "astronaut__coffee.png"
  assert Image.open(relit).size == (512, 512)  # skimage's astronaut at full resolution
  assert text.count("image/png") >= 2  # the side-by-side figure and the crop figure
