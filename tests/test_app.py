"""The web app (relight_jax/app.py): its handlers in process, then the real app.

The `app` tests start relight-jax-app with the bundled model on a free port of 127.0.0.1
and drive it over HTTP with gradio_client, and load its page in Debian's Chromium, headless
(`make test-app` installs both; without them they skip, saying which is missing).
"""

import importlib.util
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from relight_jax import app
from relight_jax import relight
from relight_jax.data import lights
from relight_jax.inference import trained_model

_REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
_NO_GRADIO = importlib.util.find_spec("gradio_client") is None
_NEEDS_GRADIO = pytest.mark.skipif(
    _NO_GRADIO, reason="gradio is not installed: make test-app installs the `app` extra")


@pytest.mark.parametrize("controls, text", [
    ((200, 4200, 1.0, False, False, ""), "200,4200K"),
    ((200, 4200, 1.5, False, False, " 90,6500; "), "200,4200K,x1.5;90,6500"),
    ((200, 4200, 1.0, True, False, ""), "4200K"),
    ((200, 4200, 1.0, False, True, ""), "200"),
    ((200, 4200, 1.0, True, True, ""), "x1"),
])
def test_the_pages_controls_make_a_light_of_the_syntax(controls, text):
  assert app.light_text(*controls) == text
  lights.parse_lighting(text)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True),
                                            ("::1", True), ("0.0.0.0", False),
                                            ("192.168.1.5", False), ("example.org", False)])
def test_only_loopback_hosts_pass_without_a_warning(host, loopback):
  assert app.is_loopback(host) == loopback


def _fake_model():
  def relight_light_fn(input_image, kelvin, direction):
    return np.full(np.shape(input_image), 0.1 * direction + 0.05, np.float32)

  def relight_fn(input_image, target_image):
    return np.asarray(target_image)

  return trained_model.InferenceModel(
      relight_fn=relight_fn, image_size=16, size_multiple=8, description="fake",
      relight_light_fn=relight_light_fn, any_label_temperature=True,
      envmap_convention="original",
      estimate_light_fn=lambda image, white=False: (np.full(len(image), 90.0),
                                                   np.full(len(image), 4000.0)))


def test_the_handlers_write_full_resolution_results(tmp_path):
  photo = tmp_path / "photo.png"
  Image.fromarray(np.full((30, 50, 3), 128, np.uint8)).save(photo)
  handlers = app.Relighter(_fake_model(), tmp_path)
  (before, after), download, text = handlers.relight_by_light(
      str(photo), 90, 3500, 1.0, False, False, "")
  assert before == str(photo) and after == download and text == "90,3500"
  assert Image.open(download).size == (50, 30)
  assert pathlib.Path(download).name == "photo__90_3500.png"
  (_, after), _ = handlers.relight_by_target(str(photo), str(photo))
  assert Image.open(after).size == (50, 30)
  gif, _ = handlers.sweep(str(photo), "azimuth", 4, 0, 3500, 1.0, False, False, "")
  assert Image.open(gif).n_frames == 4
  with pytest.raises(relight.RelightError, match="upload a photo first"):
    handlers.relight_by_light(None, 90, 3500, 1.0, False, False, "")
  with pytest.raises(ValueError, match="direction 'Q'"):
    handlers.relight_by_light(str(photo), 90, 3500, 1.0, False, False, "Q")


def test_the_app_constraints_differ_from_the_projects_in_pillow_only():
  def pins(name):
    return {line for line in (_REPO / name).read_text().splitlines()
            if line and not line.startswith("#")}
  assert {line.split("==")[0] for line in pins("constraints.txt") ^ pins(
      "constraints-app.txt")} == {"pillow"}


def _free_port():
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
  """The URL of relight-jax-app (the bundled model) running in a subprocess."""
  if _NO_GRADIO:
    pytest.skip("gradio is not installed: make test-app installs the `app` extra")
  port = _free_port()
  log = tmp_path_factory.mktemp("app") / "app.log"
  env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(_REPO))
  with open(log, "wb") as stream:
    process = subprocess.Popen([sys.executable, "-m", "relight_jax.app", f"--port={port}"],
                               stdout=stream, stderr=subprocess.STDOUT, env=env)
  url = f"http://127.0.0.1:{port}/"
  try:
    deadline = time.monotonic() + 180
    while True:
      try:
        with urllib.request.urlopen(url, timeout=5) as response:
          if response.status == 200:
            break
      except OSError:
        pass
      if process.poll() is not None or time.monotonic() > deadline:
        raise AssertionError(f"the app did not start: {log.read_text()[-2000:]}")
      time.sleep(1)
    yield url
  finally:
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.app
@_NEEDS_GRADIO
def test_the_app_relights_over_http(served_app, tmp_path):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top
  photo = tmp_path / "photo.png"
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).save(photo)
  client = Client(served_app, verbose=False)
  (_, after), download, text = client.predict(
      handle_file(str(photo)), 200, 4200, 1.5, False, False, "", api_name="/relight")
  assert text == "200,4200,x1.5"
  relit = np.asarray(Image.open(download).convert("RGB"))
  assert relit.shape == (48, 72, 3)  # the photo's full resolution
  assert np.abs(relit.astype(int) - np.asarray(Image.open(photo)).astype(int)).mean() > 1
  gif, _ = client.predict(handle_file(str(photo)), "kelvin", 3, 270, 3500, 1.0, False, False,
                          "", api_name="/sweep")
  assert Image.open(gif).n_frames == 3
  with pytest.raises(Exception, match="direction 'Q' is not one of"):
    client.predict(handle_file(str(photo)), 200, 4200, 1.0, False, False, "Q",
                   api_name="/relight")


@pytest.mark.app
@_NEEDS_GRADIO
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"no {CHROMIUM}: apt-get install chromium (make test-app does)")
def test_the_page_draws_in_a_headless_browser(served_app, tmp_path):
  screenshot = tmp_path / "app.png"
  command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900",
             "--virtual-time-budget=15000", f"--screenshot={screenshot}", served_app]
  subprocess.run(command, check=True, capture_output=True, timeout=120)
  page = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.float32)
  assert page.shape == (900, 1280, 3)
  assert page.std() > 10  # not a blank page
  # Gradio's orange sliders and primary buttons: the app's controls were drawn.
  orange = (page[..., 0] > 200) & (page[..., 1] > 80) & (page[..., 1] < 160) & (
      page[..., 2] < 80)
  assert orange.sum() > 500
  if os.environ.get("RELIGHT_JAX_APP_SCREENSHOT"):
    shutil.copyfile(screenshot, os.environ["RELIGHT_JAX_APP_SCREENSHOT"])
