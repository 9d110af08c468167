"""The package as users install it: a wheel in a fresh venv, and what each extra needs.

The wheel is built from a copy of the sources without network access (no build
isolation: the test extra installs setuptools and build). The throwaway venv gets the
wheel alone (`--no-deps`); its dependencies are this environment's, reached through a
`.pth` line, so nothing is downloaded. The commands then run from a directory that is not
the clone, as after `pip install`.
"""

import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import venv

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
# Distributions imported when present and used when present: jax pickles with
# cloudpickle, colour-science registers plotting with matplotlib, numpy's f2py decodes with
# charset-normalizer, image_io registers pillow-heif's HEIC opener.
_OPTIONAL = ("cloudpickle", "matplotlib", "charset-normalizer", "pillow-heif")
_WHEEL_INPUTS = ("relight_jax", "configs", "pyproject.toml", "setup.py", "README.md", "LICENSE")


def _run(args, cwd, env=None, timeout=600):
  completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout, check=False)
  assert completed.returncode == 0, (args, completed.stdout[-3000:], completed.stderr[-3000:])
  return completed


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(bin folder, environment) of a fresh venv holding only the built wheel."""
  root = tmp_path_factory.mktemp("wheel")
  source = root / "source"
  source.mkdir()
  for name in _WHEEL_INPUTS:
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
      shutil.copy2(REPO / name, source / name)
  _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(root / "dist"),
        str(source)], cwd=root)
  (wheel,) = (root / "dist").glob("relight_jax-*.whl")
  target = root / "venv"
  venv.create(target, with_pip=False)
  bin_dir = target / "bin"
  _run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install",
        "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=root)
  site = _run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
               "'purelib'))"], cwd=root).stdout.strip()
  # This environment's packages, after the venv's own (where relight_jax is the wheel's).
  pathlib.Path(site, "outer_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="1", JAX_COMPILATION_CACHE_DIR=os.environ.get(
      "RELIGHT_JAX_CACHE_DIR", str(REPO / ".jax_cache")))
  env.pop("PYTHONPATH", None)
  return bin_dir, env


def test_the_wheel_holds_the_configs_license_and_console_scripts(installed, tmp_path):
  bin_dir, env = installed
  out = _run([str(bin_dir / "python"), "-c",
              "import relight_jax, relight_jax.config.config_utils as c, importlib.metadata as m\n"
              "print(relight_jax.__file__); print(c.CONFIGS_DIR)\n"
              "d = m.distribution('relight_jax'); print(d.metadata['License-Expression'])\n"
              "print(sorted(e.name for e in d.entry_points))"], cwd=tmp_path, env=env).stdout
  module, configs, license_name, scripts = out.splitlines()
  assert pathlib.Path(module).is_relative_to(bin_dir.parent)  # the wheel's, not the clone's
  assert sorted(path.name for path in pathlib.Path(configs).glob("*.py")) == sorted(
      path.name for path in (REPO / "configs").glob("*.py"))
  assert license_name == "MIT"
  assert scripts == str(["relight", "relight-jax", "relight-jax-app", "relight-jax-build",
                         "relight-jax-demo", "relight-jax-export"])


def test_installed_commands_run_from_any_directory(installed, tiny_data_dir, tmp_path):
  bin_dir, env = installed
  workdir = tmp_path / "run"
  trained = _run([str(bin_dir / "relight-jax"), "--config=configs/envmap.py:smoke",
                  f"--workdir={workdir}", f"--config.data.data_dir={tiny_data_dir}",
                  "--config.train.num_steps=3", "--config.train.eval_every=3"],
                 cwd=tmp_path, env=env)
  assert "| Metric | Identity (G_hat = I) |" in trained.stdout
  # The demo resumes the finished run (evaluation only) with a shipped config by name.
  demo = _run([str(bin_dir / "python"), "-m", "relight_jax.demo", "--config=envmap.py:smoke",
               f"--data_dir={tiny_data_dir}", f"--workdir={workdir}"], cwd=tmp_path, env=env)
  assert "[demo] Score on the test split's Eval" in demo.stdout
  rng = np.random.default_rng(0)
  for name in ("photo", "target"):
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
        tmp_path / f"{name}.png")
  _run([str(bin_dir / "relight"), f"--workdir={workdir}", "--input=photo.png",
        "--target=target.png", "--output=relit.png"], cwd=tmp_path, env=env)
  assert Image.open(tmp_path / "relit.png").size == (48, 40)
  # Without a model argument: the reference model the wheel ships.
  _run([str(bin_dir / "relight"), "--input=photo.png", "--light=W,3500",
        "--output=by_label.png"], cwd=tmp_path, env=env)
  assert Image.open(tmp_path / "by_label.png").size == (48, 40)


def _requirement_closure(requirements):
  """Distribution names (normalised) that `requirements` pull in, transitively: a
  dependency's own extras are not followed; one not installed here is another platform's."""
  seen, todo = set(), list(requirements)
  while todo:
    requirement = todo.pop()
    if "extra ==" in requirement.partition(";")[2]:
      continue
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
    key = _normalised(name)
    if key in seen:
      continue
    try:
      dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
      continue
    seen.add(key)
    todo.extend(dist.requires or ())
  return seen


def _normalised(name):
  return re.sub(r"[-_.]+", "-", name).lower()


def test_relighting_needs_only_the_core_dependencies(tmp_path):
  """The core install (no extra) is enough to relight with a trained workdir and with the
  bundled model by a label: every third-party module the relight command imports belongs
  to a core requirement (or is an optional import of one)."""
  from conftest import checkpointed_workdir
  checkpointed_workdir(tmp_path / "run", step=1)
  rng = np.random.default_rng(0)
  for name in ("photo", "target"):
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
        tmp_path / f"{name}.png")
  code = ("import sys\nbefore = set(sys.modules)\nfrom relight_jax import relight\n"
          f"status = relight.main(['--workdir={tmp_path / 'run'}', '--input={tmp_path}/photo.png',"
          f" '--target={tmp_path}/target.png', '--output={tmp_path}/relit.png'])\n"
          "assert status == 0, status\n"
          # and the bundled reference model, by a light label
          f"status = relight.main(['--input={tmp_path}/photo.png', '--light=W,3500',"
          f" '--output={tmp_path}/by_label.png'])\n"
          "assert status == 0, status\n"
          "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="1")
  imported = eval(_run([sys.executable, "-c", code], cwd=REPO, env=env).stdout.splitlines()[-1])
  owners = importlib.metadata.packages_distributions()
  core = importlib.metadata.distribution("relight_jax").metadata.get_all("Requires-Dist")
  allowed = _requirement_closure(core) | _requirement_closure(_OPTIONAL)
  outside = {module: owners[module] for module in imported if module in owners
             and module != "relight_jax"
             and not {_normalised(d) for d in owners[module]} & allowed}
  assert not outside, outside
  # and the training stack really is outside the core
  assert not {"tensorflow-datasets", "grain", "mitsuba", "tensorboard"} & allowed
