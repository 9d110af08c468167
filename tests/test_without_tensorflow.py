"""Build, train, evaluate, export and relight with TensorFlow absent.

TensorFlow is not a dependency. It may still be installed in the environment running the
tests (it is in many), so the commands run with a `sitecustomize` that hides it from the
import system exactly as an uninstalled package is hidden: `import tensorflow` raises
ModuleNotFoundError and `importlib.util.find_spec("tensorflow")` returns None (TFDS asks
the second question before choosing its TensorFlow-free paths). PYTHONPATH carries the
hook into every process the commands start (the renderer's workers included).
"""

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]

_HIDE_TENSORFLOW = textwrap.dedent("""\
    import importlib.machinery
    import sys

    _HIDDEN = ("tensorflow", "tensorflow_cpu", "tf_keras", "keras", "tensorboard_data_server")


    class _WithoutTensorFlow(importlib.machinery.PathFinder):
      @classmethod
      def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in _HIDDEN:
          return None
        return super().find_spec(name, path, target)


    sys.meta_path[:] = [_WithoutTensorFlow if finder is importlib.machinery.PathFinder
                        else finder for finder in sys.meta_path]
    """)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  hook = tmp_path_factory.mktemp("hide_tensorflow")
  (hook / "sitecustomize.py").write_text(_HIDE_TENSORFLOW)
  pythonpath = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
  return dict(os.environ, PYTHONPATH=pythonpath, JAX_NUM_CPU_DEVICES="2",
              JAX_COMPILATION_CACHE_DIR=os.environ.get("RELIGHT_JAX_CACHE_DIR",
                                                       str(REPO / ".jax_cache")))


def _run(env, *args):
  completed = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
  assert completed.returncode == 0, (args, completed.stdout[-3000:], completed.stderr[-3000:])
  return completed


def test_the_hook_hides_tensorflow(env):
  out = _run(env, "-c", "import importlib.util\n"
             "print(importlib.util.find_spec('tensorflow'))\n"
             "try:\n  import tensorflow\nexcept ModuleNotFoundError as e:\n  print(e)\n")
  assert out.stdout.splitlines() == ["None", "No module named 'tensorflow'"]


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="TensorFlow is not installed, so the whole suite (its commands, "
                    "the build, training, evaluation, export and relighting) runs without it")
def test_build_train_evaluate_export_and_relight(env, tmp_path):
  workdir = tmp_path / "run"
  data_dir = tmp_path / "tfds"
  _run(env, "-m", "relight_jax.datasets.build", "vidit/synthetic_tiny",
       f"--data_dir={data_dir}", "--render_workers=2")
  trained = _run(env, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
                 f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
                 "--config.train.num_steps=3", "--config.train.eval_every=3")
  assert "| Metric | Identity (G_hat = I) |" in trained.stdout
  assert list(workdir.glob("events.out.tfevents.*"))
  _run(env, "-m", "relight_jax.main", f"--workdir={workdir}", "--mode=evaluate")
  _run(env, "-m", "relight_jax.export", f"--workdir={workdir}",
       f"--output={tmp_path / 'relighter.bin'}", "--platforms=cpu")
  rng = np.random.default_rng(0)
  for name in ("photo", "target"):
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
        tmp_path / f"{name}.png")
  for source in (f"--workdir={workdir}", f"--exported={tmp_path / 'relighter.bin'}"):
    output = tmp_path / f"relit_{source[2:9]}.png"
    _run(env, "-m", "relight_jax.relight", source, f"--input={tmp_path / 'photo.png'}",
         f"--target={tmp_path / 'target.png'}", f"--output={output}")
    assert Image.open(output).size == (48, 40)
