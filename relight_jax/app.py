"""A local web app for relighting photos: relight-jax-app (Gradio, the `app` extra).

  relight-jax-app                       # the bundled model, on http://127.0.0.1:7860
  relight-jax-app --workdir=runs/envmap --port=8080
  relight-jax-app --exported=relighter.bin   # relights by target photos only

Upload a photo, then either set the light (azimuth, temperature, intensity, the photo's own
direction or colour, more lights in the syntax of docs/lights.md) or pick a target photo;
the page shows the photo and the result side by side under a slider and offers the result at
full resolution as a PNG. A sweep makes an animation of the light orbiting the scene or
running through the temperatures. The handlers are `Relighter` methods, plain functions
of file paths (tests call them without a server); `build_app` wires them to the page, whose
events are also an HTTP API (gradio_client: /relight, /relight_by_target, /sweep).

The app binds 127.0.0.1: only this machine reaches it. --host=0.0.0.0 serves the network,
with no authentication (a warning says so).
"""

import argparse
import ipaddress
import logging
import os
import pathlib
import sys
import tempfile

from relight_jax import relight
from relight_jax.common import animation
from relight_jax.common import image_io
from relight_jax.data import lights
from relight_jax.inference import sweep
from relight_jax.inference import trained_model

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# The page's fonts are the system's: a page that fetched web fonts would wait on a network
# an offline machine does not have.
_SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
_MONO_FONTS = ("ui-monospace", "monospace")


def light_text(azimuth, kelvin, intensity=1.0, keep_direction=False, keep_colour=False,
               more_lights=""):
  """The light of the page's controls in the syntax of lights.LIGHT_SYNTAX.

  Args:
    azimuth, kelvin, intensity: the sliders.
    keep_direction, keep_colour: use the photo's own (the model's estimate) instead.
    more_lights: further lights in the syntax, joined with ';' (may be empty).
  """
  fields = []
  if not keep_direction:
    fields.append(f"{float(azimuth):g}")
  if not keep_colour:
    fields.append(f"{float(kelvin):g}K")
  if float(intensity) != 1.0 or not fields:
    fields.append(f"x{float(intensity):g}")
  text = ",".join(fields)
  more = (more_lights or "").strip().strip(";")
  return f"{text};{more}" if more else text


class Relighter:
  """The page's handlers around one model; results are written under `output_dir`."""

  def __init__(self, model, output_dir, *, size=None):
    self.model = model
    self.output_dir = pathlib.Path(output_dir)
    self.size = size

  def _new_file(self, photo, name):
    # A folder per result: two results never share a name, and the download keeps the
    # photo's name.
    folder = pathlib.Path(tempfile.mkdtemp(dir=self.output_dir))
    return folder / f"{pathlib.Path(photo).stem}__{name}"

  def _check_photo(self, photo):
    if not photo:
      raise relight.RelightError("upload a photo first")
    return photo

  def relight_by_light(self, photo, azimuth, kelvin, intensity, keep_direction, keep_colour,
                       more_lights):
    """Returns ((photo, result) for the slider, result PNG path, the light's text)."""
    photo = self._check_photo(photo)
    text = light_text(azimuth, kelvin, intensity, keep_direction, keep_colour, more_lights)
    lighting = lights.parse_lighting(text)
    relit = relight.relight(self.model, photo, light=lighting, size=self.size)
    path = self._new_file(photo, f"{lighting.stem}.png")
    image_io.save_image(path, relit)
    return (photo, str(path)), str(path), lighting.text

  def relight_by_target(self, photo, target):
    """Returns ((photo, result) for the slider, result PNG path)."""
    photo = self._check_photo(photo)
    if not target:
      raise relight.RelightError("upload a target photo whose light to take")
    relit = relight.relight(self.model, photo, target, size=self.size)
    path = self._new_file(photo, f"{pathlib.Path(target).stem}.png")
    image_io.save_image(path, relit)
    return (photo, str(path)), str(path)

  def sweep(self, photo, kind, frames, azimuth, kelvin, intensity, keep_direction,
            keep_colour, more_lights):
    """Returns the sweep's GIF path (twice: to show and to download)."""
    photo = self._check_photo(photo)
    base = light_text(azimuth, kelvin, intensity, keep_direction, keep_colour, more_lights)
    frames = relight.sweep(self.model, photo, kind, int(frames), base, size=self.size)
    path = self._new_file(photo, f"{kind}.gif")
    animation.write_animation(path, frames)
    return str(path), str(path)


def _shown(handler):
  """The handler with its one-line errors shown on the page (gr.Error) instead of a trace."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  def wrapped(*args):
    try:
      return handler(*args)
    except (ValueError, OSError) as error:  # RelightError, ImageError, LightMixError
      raise gr.Error(str(error)) from None

  return wrapped


def build_app(relighter, title="relight_jax", model_name=None):
  """The page (a gradio.Blocks) of a `Relighter`; `model_name` (default the model's
  description) says which model it runs."""
  import gradio as gr  # pylint: disable=g-import-not-at-top
  with gr.Blocks(title=title) as page:
    gr.Markdown(f"## {title}\nRelight a photo by a light or by the light of another photo. "
                f"Model: {model_name or relighter.model.description}.")
    with gr.Row():
      with gr.Column():
        photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"],
                         height=320)
        with gr.Tabs():
          with gr.Tab("By a light"):
            azimuth = gr.Slider(0, 360, value=270, step=1, label="Azimuth (deg): 0 behind "
                                "the scene, 90 the image's right, 270 its left")
            kelvin = gr.Slider(*lights.LABEL_TEMPERATURE_RANGE_K, value=3500, step=50,
                               label="Temperature (K)")
            intensity = gr.Slider(0.1, 3.0, value=1.0, step=0.1, label="Intensity")
            with gr.Row():
              keep_direction = gr.Checkbox(label="keep the photo's direction")
              keep_colour = gr.Checkbox(label="keep the photo's colour")
            more_lights = gr.Textbox(label="More lights (optional)",
                                     placeholder="90,6500;x0.5,200,2500")
            light = gr.Textbox(label="Light", interactive=False)
            relight_button = gr.Button("Relight", variant="primary")
          with gr.Tab("By a target photo"):
            target = gr.Image(label="Target photo (its light)", type="filepath",
                              sources=["upload", "clipboard"], height=240)
            target_button = gr.Button("Relight by the target", variant="primary")
          with gr.Tab("Sweep"):
            kind = gr.Radio(list(sweep.KINDS), value="azimuth", label="Sweep")
            frames = gr.Slider(sweep.MIN_FRAMES, 72, value=24, step=1, label="Frames")
            sweep_button = gr.Button("Make the animation", variant="primary")
      with gr.Column():
        compare = gr.ImageSlider(label="Before / after", type="filepath", height=420)
        result = gr.File(label="Result at full resolution (PNG)")
        animated = gr.Image(label="Animation", type="filepath")
        animation_file = gr.File(label="Animation (GIF)")
    light_controls = [azimuth, kelvin, intensity, keep_direction, keep_colour, more_lights]
    relight_button.click(_shown(relighter.relight_by_light), [photo, *light_controls],
                         [compare, result, light], api_name="relight", concurrency_limit=1)
    target_button.click(_shown(relighter.relight_by_target), [photo, target],
                        [compare, result], api_name="relight_by_target", concurrency_limit=1)
    sweep_button.click(_shown(relighter.sweep), [photo, kind, frames, *light_controls],
                       [animated, animation_file], api_name="sweep", concurrency_limit=1)
  return page


def theme():
  """The page's theme: Gradio's default with the system's fonts (no web fonts)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top
  return gr.themes.Default(font=list(_SYSTEM_FONTS), font_mono=list(_MONO_FONTS))


def is_loopback(host):
  """Whether `host` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="relight-jax-app",
      description="A local web app for relighting photos with a relight_jax model.",
      epilog="lights (the 'More lights' box):\n" + lights.LIGHT_SYNTAX,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group()
  source.add_argument("--workdir", help="training workdir; default: the bundled model")
  source.add_argument("--exported", help="file written by python -m relight_jax.export "
                      "(relights by target photos only)")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step")
  parser.add_argument("--size", type=int, default=None,
                      help="working resolution (default: the training resolution)")
  parser.add_argument("--host", default=DEFAULT_HOST,
                      help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
  parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind")
  return parser.parse_args(argv)


_NEEDS_EXTRA = ("relight-jax-app needs Gradio, the `app` extra: pip install -c "
                "constraints-app.txt 'relight_jax[app]' (make test-app installs it)")


def main(argv=None):
  """Command-line entry point: serves the app until interrupted; returns the exit status."""
  args = _parse_args(argv)
  try:
    import gradio  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print(f"relight-jax-app: error: {_NEEDS_EXTRA}", file=sys.stderr)
    return 1
  try:
    relight._check_size_bound(args.size)  # pylint: disable=protected-access
    relight._check_model_source(args.workdir, args.exported)  # pylint: disable=protected-access
    if not 0 < args.port < 65536:
      raise relight.RelightError(f"--port={args.port}: expected 1 to 65535")
    model = relight.load_relighter(args.workdir, args.exported, step=args.step)
    relight._working_size(model, args.size)  # pylint: disable=protected-access
  except (ValueError, OSError) as error:
    print(f"relight-jax-app: error: {error}", file=sys.stderr)
    return 1
  if not is_loopback(args.host):
    logging.warning("--host=%s: the app is reachable from other machines, and it has no "
                    "authentication: anyone who reaches it can run the model and upload "
                    "files", args.host)
  with tempfile.TemporaryDirectory(prefix="relight_jax_app.") as output_dir:
    model_name = model.description
    if args.workdir is None and args.exported is None:
      # The package's folder means nothing to a visitor of the page.
      model_name = model_name.replace(str(trained_model.bundle_folder()), "the bundled model")
    page = build_app(Relighter(model, output_dir, size=args.size), model_name=model_name)
    page.queue().launch(server_name=args.host, server_port=args.port, share=False,
                        show_error=True, allowed_paths=[output_dir], theme=theme(),
                        footer_links=["api"])
  return 0


def run_command():
  """The `relight-jax-app` console script."""
  # Gradio's usage statistics would call home; a local app has no business doing so.
  os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  sys.exit(main())


if __name__ == "__main__":
  run_command()
