"""Relight your own photos with a trained model: Python API and command line.

Python (relighter.py: model(photo, light="W,3500") returns the photo's own type):
  import relight_jax
  from relight_jax import relight
  from relight_jax.inference import trained_model
  relighter = relight_jax.load_pretrained()   # or trained_model.load_workdir("runs/envmap")
  relit = relight.relight(relighter, "photo.jpg", "target.png")  # float32 [H, W, 3]
  relit = relight.relight(relighter, "photo.jpg", light="W,3500")  # by a light label
  relit = relight.relight(relighter, "photo.jpg", light="200,4200,x1.5")  # any light

Command line (one pair, or a folder of inputs x one or more targets or lights):
  python -m relight_jax.relight --input=a.jpg --light=W,3500 --output=out.png
  python -m relight_jax.relight --workdir=runs/envmap --input=a.jpg --target=b.jpg \
      --output=out.png
  python -m relight_jax.relight --exported=relighter.bin --input=photos/ \
      --target=t1.png --target=t2.png --output=relit/ [--size=128] [--side_by_side]
  python -m relight_jax.relight --input=a.jpg --sweep=azimuth --frames=24 --output=orbit.gif

Without --workdir or --exported the bundled reference model is used
(relight_jax/pretrained/MODEL_CARD.md). --light (repeatable: one output each) asks for a
light instead of a target photo, in the syntax of `lights.LIGHT_SYNTAX` (docs/lights.md):
W,3500 is one of the data's labels, which a model's spec turns into its light
(models/registry.ModelSpec.label_source); other azimuths and temperatures, intensities,
several lights and lights that keep part of the photo's own (W, 4200K, +800K) are mixed
from the labels' outputs in linear light (inference/light_mix.py: an approximation), or,
for a model that composes light itself (the transport model), composed exactly.
--sweep=azimuth|kelvin writes --frames frames of the light orbiting the scene or its
temperature running 2500 -> 6500 K as a GIF (or MP4, or a PNG strip; inference/sweep.py).

--side_by_side writes input | target | result as one image instead of the result alone (for
a light, the target is a picture of it: its generated envmap as the original code lays
envmaps out, whatever the model decodes: N (behind the scene) in the middle, a light from
the image's left left of it, from its right right of it, S at the edges; data/envmap.py);
--jpeg_quality (default 95) sets the quality of .jpg / .jpeg outputs.

--form=ratio (the default) keeps the photo's own colours, white balance and exposure and
applies only the change of light: in linear light, the input times relit / own, where
relit is the network's relighting to the target and own its relighting to the input's own
light (as the network estimates it; for a target image, the input itself as target).
A photo relit to its own light comes back unchanged. --form=direct gives the network's
image itself, which re-renders the photo as the synthetic training scenes looked: their
renderer's white is a 6500 K light, so a warm photo reads as lit by about 2500 K, and a
"warm" 3500 K target then cools it (pretrained/MODEL_CARD.md); its exposure is the renders'.
By a light, a model that composes light itself (the transport model) makes either form in
one composition of its predicted transport: ratio, the input times (L_new + e) / (L_own + e)
in linear light, L_own composed under its estimate of the input's light; direct, its
absolute form.

The network runs at a working resolution S (its training `data.image_size`, or `size`):
the input and the target are reduced to S x S (box filter; non-square photos are
squashed, see guided_upsample.py), the network relights, and the change is brought back
to the input's full resolution and aspect ratio by `guided_upsample` (the default) or
by a plain bicubic upscale (`upsample='bicubic'`, the baseline). Only the target's
illumination matters, so the target is used at S x S only.

Images go through `image_io` (EXIF orientation, ICC profiles, modes, size limits, clear
errors; common/photo.py keeps an input's bit depth, alpha, ICC profile and EXIF for its
output); outputs are written atomically and never over an input, and without --overwrite
never over a file another run wrote meanwhile (that output fails instead). An 8- or
16-bit input is relit without full-resolution float copies (guided_upsample.py); --size
is at most
`MAX_WORKING_SIZE`. In a batch, an input that cannot be read is reported in one line and
skipped; the others run, and the status is 1. The command checks every path before it
loads the model or writes anything (a --workdir that is a file, an --exported folder or
FIFO, an --output folder where one image is written, an output --overwrite could not
replace, an output format that cannot hold the result's size or RGB, ...) and exits with
status 1 and a one-line message naming the path and the fix.
"""

import argparse
import dataclasses
import os
import pathlib
import sys

import jax
import numpy as np
import tqdm
from PIL import Image

from relight_jax.common import animation
from relight_jax.common import host_memory
from relight_jax.common import image_io
from relight_jax.common import photo as photo_lib
from relight_jax.data import lights
from relight_jax.inference import guided_upsample as guided_upsample_lib
from relight_jax.inference import light_mix
from relight_jax.inference import sweep as sweep_lib
from relight_jax.inference import trained_model


class RelightError(ValueError):
  """Bad arguments to the relighting API or command line (message names the value)."""


@dataclasses.dataclass(frozen=True)
class Relit:
  """One relighting at full resolution, with the working-resolution images behind it."""

  relit: np.ndarray         # [H, W, 3], the result at the input's resolution
  input_image: np.ndarray   # [H, W, 3], the input as loaded
  input_low: np.ndarray     # [S, S, 3], what the network saw
  target_low: np.ndarray    # [S, S, 3]
  relit_low: np.ndarray     # [S, S, 3], the network's output


# The largest working resolution: the network's activations grow with its square, and
# past this a run exhausts memory (or aborts) before writing anything.
MAX_WORKING_SIZE = 2048


def _check_size_bound(size):
  if size is not None and not 0 < size <= MAX_WORKING_SIZE:
    raise RelightError(f"size={size}: expected a working resolution from 1 to "
                       f"{MAX_WORKING_SIZE} (the network's memory grows with its square; the "
                       "result is at the input's full resolution anyway)")


def _working_size(relighter, size):
  _check_size_bound(size)
  if size is None or size == relighter.image_size:
    return relighter.image_size
  if relighter.size_multiple == 0:
    raise RelightError(f"size={size}: this relighter only runs at its exported size "
                       f"{relighter.image_size}")
  if size < relighter.size_multiple or size % relighter.size_multiple:
    raise RelightError(f"size={size}: expected a positive multiple of "
                       f"{relighter.size_multiple} (the encoder's downsampling)")
  return int(size)


UPSAMPLERS = ("guided", "bicubic")
# What a relighting gives at the working resolution. 'ratio': the input times the
# network's change of light, relit / (the input relit to its own light, as the network
# estimates it: for a target image, the input itself as target), in linear light
# (guided_upsample.ratio_relit). 'direct': the network's output itself.
FORMS = ("ratio", "direct")


@dataclasses.dataclass(frozen=True)
class LightLabel:
  """A light asked for by label (--light=W,3500) instead of a target image."""

  temperature_k: int
  direction_index: int

  @property
  def stem(self):
    """Its name in batch output file names: 'W_3500'."""
    return f"{lights.DIRECTIONS[self.direction_index]}_{self.temperature_k}"

  @property
  def lighting(self):
    """The same light as a `lights.Lighting`."""
    return lights.parse_lighting(self.stem.replace("_", ","))

  def envmap_image(self, envmap_convention):
    """The generated envmap of this light, [16, 32, 3] in [0, 1] (a picture of the light).

    Args:
      envmap_convention: the model's (`InferenceModel.envmap_convention`): the picture is
        the map the model decodes.
    """
    # Imported here: relighting by a target image never draws a light.
    from relight_jax.data import envmap  # pylint: disable=g-import-not-at-top
    return np.asarray(envmap.envmap_rgb(self.temperature_k, self.direction_index,
                                        envmap_convention)) / envmap.ENVMAP_PEAK


def light_label(relighter, label):
  """A `LightLabel` from "DIRECTION,KELVIN" for this relighter; RelightError if it cannot.

  Args:
    relighter: a `trained_model.InferenceModel`.
    label: e.g. "W,3500" (lights.parse_light).
  """
  if relighter.relight_light_fn is None:
    raise RelightError(f"light {label!r}: {relighter.description} cannot relight by a light "
                       "label (an exported function takes two images); pass --target, or "
                       "use --workdir or the bundled model")
  try:
    return LightLabel(*lights.parse_light(
        label, any_temperature=relighter.any_label_temperature))
  except ValueError as error:
    raise RelightError(str(error)) from None


def lighting_of(relighter, light):
  """A `lights.Lighting` from a light's text (lights.LIGHT_SYNTAX), a `Lighting` or a
  `LightLabel`; RelightError if it is malformed or this relighter cannot relight by lights."""
  if isinstance(light, LightLabel):
    light = light.lighting
  try:
    lighting = lights.parse_lighting(light)
  except ValueError as error:
    raise RelightError(str(error)) from None
  if relighter.relight_light_fn is None:
    raise RelightError(f"light {lighting.text!r}: {relighter.description or 'this model'} "
                       "cannot relight by "
                       "a light (an exported function takes two images); pass --target, or "
                       "use --workdir or the bundled model")
  if lighting.needs_estimate and relighter.estimate_light_fn is None:
    raise RelightError(f"light {lighting.text!r} keeps part of the photo's own light, which "
                       f"{relighter.description or 'this model'} cannot estimate; give a "
                       "direction and a "
                       "temperature such as W,3500")
  return lighting


def relight_detailed(relighter, input_image, target_image=None, *, light=None, size=None,
                     upsample="guided", form="ratio"):
  """Relights `input_image` under the illumination of `target_image` or of a light label.

  Args:
    relighter: a `trained_model.InferenceModel`.
    input_image: path, PIL image or array (see image_io.load_image), any size.
    target_image: path, PIL image or array whose illumination to transfer.
    light: instead of `target_image`, a light in the syntax of `lights.LIGHT_SYNTAX`
      ("W,3500", "200,4200,x1.5", "+800K", "90,3500;270,6500"), a `lights.Lighting` or a
      `LightLabel`; lights other than the labels are mixed from the labels' outputs
      (inference/light_mix.py), or composed exactly by a model that composes light.
    size: working resolution (default the relighter's training resolution).
    upsample: 'guided' (guided_upsample.py) or 'bicubic' (the baseline).
    form: 'ratio' (the default: the photo's own colours and exposure kept, only the
      change of light applied) or 'direct' (the network's image); see FORMS and the
      module docstring.

  Returns:
    A `Relit` with the full-resolution result and the working-resolution images (for a
    light, `target_low` is its generated envmap, or the mix of the labels' envmaps;
    `relit_low` is in `form`).

  Raises:
    image_io.ImageError: an image cannot be loaded.
    RelightError: bad `size`, `upsample`, `form` or `light`, or both or neither of
      `target_image` and `light`.
  """
  light = _checked_request(relighter, target_image, light, upsample, form)
  input_full = image_io.load_image(input_image, name=_name(input_image, "input"))
  return _relight_codes(relighter, input_full, target_image, light, size, upsample, form)


def _checked_request(relighter, target_image, light, upsample, form):
  """The `LightLabel` asked for (or None); RelightError for a request that cannot run."""
  if upsample not in UPSAMPLERS:
    raise RelightError(f"upsample={upsample!r}: expected one of {UPSAMPLERS}")
  if form not in FORMS:
    raise RelightError(f"form={form!r}: expected one of {FORMS}")
  if (target_image is None) == (light is None):
    raise RelightError("give exactly one of a target image and a light label")
  if light is not None:
    light = lighting_of(relighter, light)
  if light is not None and form == "ratio" and relighter.estimate_light_fn is None:
    raise RelightError(f"form='ratio': {relighter.description} cannot estimate the input's "
                       "own light; pass form='direct' (--form=direct)")
  return light


def _relight_codes(relighter, input_full, target_image, light, size, upsample, form):
  """relight_detailed on the input's codes [H, W, 3] (uint8, uint16 or float): the result
  has their dtype."""
  size = _working_size(relighter, size)
  height, width = input_full.shape[:2]
  input_low = _at_size(input_full, size)
  in_form = False  # relit_low is already in the ratio form
  if light is None:
    target_low = _at_size(
        image_io.load_image(target_image, name=_name(target_image, "target")), size)
    relit_low = relighter.relight_fn(input_low[None], target_low[None])
    relit_low = np.asarray(jax.device_get(relit_low))[0]  # [S, S, 3]
    if form == "ratio":
      own_low = relighter.relight_fn(input_low[None], input_low[None])
  else:
    # In the ratio form the input's own light is the model's estimate of its direction
    # in the renderer's white (a camera white-balanced it; the model, trained on renders,
    # reads a warm photo's colours as a warm light), made like the target light: the
    # ratio is then the model's change between two lights of one kind, and exactly 1
    # when the target is the input's own light. A model that composes light itself makes
    # the ratio form in its own composition, from its estimate of the input's light
    # (light_mix.LightMixer.composes): nothing is clipped before the division.
    mixer = light_mix.LightMixer(relighter, input_low, white=form == "ratio",
                                 ratio=form == "ratio")
    in_form = mixer.composes
    try:
      relit_low, target_low = mixer.relight(light)
      if form == "ratio" and not in_form:
        own_low = mixer.relight(mixer.own_lighting())[0][None]
    except ValueError as error:
      raise RelightError(str(error)) from None
  if form == "ratio" and not in_form:
    keep_colour = light is not None and all(
        term.temperature_k is None and not term.temperature_shift_k for term in light.terms)
    relit_low = guided_upsample_lib.ratio_relit(
        input_low, relit_low, np.asarray(jax.device_get(own_low))[0], keep_colour=keep_colour)
  if upsample == "guided":
    relit = guided_upsample_lib.guided_upsample(input_full, input_low, relit_low)
  else:
    relit = photo_lib.to_codes(
        guided_upsample_lib.bicubic_upsample(relit_low, height, width), input_full.dtype)
  return Relit(relit, input_full, input_low, target_low, relit_low)


def relight_photo(relighter, photo, target_image=None, *, light=None, size=None,
                  upsample="guided", form="ratio"):
  """Relights a `photo.Photo`, returning it relit as its file held it.

  The colour is relit in the photo's own codes (uint8 stays uint8, 16-bit stays 16-bit,
  without a full-resolution float copy); alpha, ICC profile and EXIF are carried through
  unchanged. Arguments and errors as `relight_detailed`.
  """
  return _relit_photo(relighter, photo, target_image, light=light, size=size,
                      upsample=upsample, form=form)[0]


def _relit_photo(relighter, photo, target_image=None, *, light=None, size=None,
                 upsample="guided", form="ratio"):
  """(`relight_photo`'s result, the `Relit` behind it)."""
  light = _checked_request(relighter, target_image, light, upsample, form)
  result = _relight_codes(relighter, photo.rgb, target_image, light, size, upsample, form)
  return photo.with_rgb(result.relit), result


def relight(relighter, input_image, target_image=None, *, light=None, size=None,
            upsample="guided", form="ratio"):
  """Like `relight_detailed`, returning only the relit image float32 [H, W, 3] in [0, 1]."""
  return relight_detailed(relighter, input_image, target_image, light=light, size=size,
                          upsample=upsample, form=form).relit


def sweep(relighter, input_image, kind, frames, light=None, *, size=None):
  """Frames of `input_image` relit by a sweep (inference/sweep.py): uint8 [h, w, 3] each.

  Args:
    relighter: a `trained_model.InferenceModel`.
    input_image: path, PIL image or array (see image_io.load_image).
    kind: "azimuth" (the light orbits the scene) or "kelvin" (2500 -> 6500 K).
    frames: how many.
    light: the frames' other fields (lights.LIGHT_SYNTAX); default the photo's own light.
    size: working resolution.

  Raises:
    image_io.ImageError: the image cannot be loaded.
    RelightError: a bad kind, frame count, light or size, or a model that cannot relight
      by lights.
  """
  try:
    lightings = sweep_lib.lightings(kind, frames, light)
  except ValueError as error:
    raise RelightError(f"sweep: {error}") from None
  lighting_of(relighter, lightings[0][0])
  size = _working_size(relighter, size)
  input_full = image_io.load_image(input_image, name=_name(input_image, "input"))
  try:
    return sweep_lib.sweep_frames(relighter, input_full, _at_size(input_full, size), kind,
                                  frames, light)
  except ValueError as error:
    raise RelightError(str(error)) from None


def side_by_side(input_image, target_image, relit):
  """input | target | result in one image, at the input's resolution.

  The target is resized to the input's height keeping its aspect ratio: undistorted, its
  light and shadows read as in the photo the user chose. The result is at the input's
  size already.

  Args:
    input_image: path, PIL image or array (see image_io.load_image).
    target_image: path, PIL image or array.
    relit: the result, [H, W, 3] like the input.

  Returns:
    float32 [H, W + target width at height H + W, 3] in [0, 1].

  Raises:
    image_io.ImageError: an image cannot be loaded.
    RelightError: `relit` is not the input's size.
  """
  input_image = image_io.load_image(input_image, name=_name(input_image, "input"))
  target_image = image_io.load_image(target_image, name=_name(target_image, "target"))
  relit = image_io.load_image(relit, name="relit")
  height, width = input_image.shape[:2]
  if relit.shape != input_image.shape:
    raise RelightError(f"relit image of shape {relit.shape}; expected the input's shape "
                       f"{input_image.shape}")
  target_height, target_width = target_image.shape[:2]
  target_width = max(1, round(target_width * height / target_height))
  # Box filter to reduce (no aliasing), bicubic to enlarge.
  method = "area" if target_height >= height else "bicubic"
  target_image = np.clip(
      guided_upsample_lib.resize(target_image, height, target_width, method), 0.0, 1.0)
  return np.concatenate([input_image, target_image, relit], axis=1)


def _name(image, role):
  """Error-message name of an image: None lets image_io use the path or PIL filename."""
  return None if isinstance(image, (str, os.PathLike, Image.Image)) else role


def _at_size(image, size):
  """[H, W, 3] codes or floats -> float32 [size, size, 3] in [0, 1] with the box filter."""
  return np.clip(guided_upsample_lib.reduce_area(image, size, size), 0.0, 1.0)


def _check_preview(preview):
  if preview is not None and preview < image_io.MIN_SIDE:
    raise RelightError(f"--preview={preview}: expected a longest side of at least "
                       f"{image_io.MIN_SIDE} pixels")


def _preview(photo, longest_side):
  """`photo` reduced (box filter) to `longest_side` pixels on its longer side, if larger."""
  height, width = photo.rgb.shape[:2]
  if longest_side is None or max(height, width) <= longest_side:
    return photo
  scale = longest_side / max(height, width)
  size = (max(1, round(height * scale)), max(1, round(width * scale)))
  reduce = lambda codes: photo_lib.to_codes(
      guided_upsample_lib.reduce_area(codes, *size), codes.dtype)
  alpha = None if photo.alpha is None else reduce(photo.alpha[..., None])[..., 0]
  return dataclasses.replace(photo, rgb=reduce(photo.rgb), alpha=alpha)


def _image_files(folder):
  return sorted(path for path in folder.iterdir()
                if path.is_file() and image_io.has_image_extension(path)
                and not path.name.startswith("."))


def _expand(paths, role):
  """Files of a list of files and folders; RelightError on a missing path or empty folder."""
  files = []
  for path in map(pathlib.Path, paths):
    if path.is_dir():
      found = _image_files(path)
      if not found:
        raise RelightError(f"{role} folder {path} holds no image files")
      files.extend(found)
    elif path.is_file():
      files.append(path)
    elif path.exists():
      raise RelightError(f"{role} {path} is not a regular file (a FIFO, socket or device); "
                         "expected an image file or a folder of them")
    else:
      raise RelightError(f"{role} {path}: no such file or folder")
  return files


def plan_outputs(input_paths, target_paths, output, *, batch):
  """The (input, target, output) triplets of a CLI run.

  Args:
    input_paths: input files.
    target_paths: target files.
    output: the output file (single pair) or folder (batch).
    batch: whether to name outputs '<input>__<target>.png' inside the folder `output`.

  Returns:
    A list of (input_path, target_path, output_path).
  """
  output = pathlib.Path(output)
  if not batch:
    return [(input_paths[0], target_paths[0], output)]
  plan = []
  for input_path in input_paths:
    for target_path in target_paths:
      plan.append((input_path, target_path,
                   output / f"{input_path.stem}__{target_path.stem}.png"))
  names = [item[2] for item in plan]
  if len(set(names)) != len(names):
    raise RelightError("two input/target pairs map to the same output name; rename the "
                       "files so that their stems differ")
  return plan


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="relight",
      description="Relight photos with a trained relight_jax model.",
      epilog="lights (--light):\n" + lights.LIGHT_SYNTAX,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group()
  source.add_argument("--workdir", help="training workdir (config.json + checkpoints); "
                      "default: the bundled reference model")
  source.add_argument("--exported", help="file written by python -m relight_jax.export")
  parser.add_argument("--input", required=True, help="input image or folder of images")
  lighting = parser.add_mutually_exclusive_group()
  lighting.add_argument("--target", action="append",
                        help="target image or folder (repeat for several)")
  lighting.add_argument("--light", action="append",
                        help="a light instead of a target, such as W,3500 or 200,4200,x1.5 "
                        "(syntax below; repeat for several outputs)")
  parser.add_argument("--sweep", choices=sweep_lib.KINDS, default=None,
                      help="write an animation of the light orbiting the scene (azimuth) or "
                      "its temperature running 2500 -> 6500 K (kelvin), under --light's "
                      "other fields; --output .gif, .mp4 (with imageio-ffmpeg) or an image "
                      "(a strip of the frames)")
  parser.add_argument("--frames", type=int, default=24, help="frames of a --sweep")
  parser.add_argument("--fps", type=int, default=12, help="frames per second of a --sweep")
  parser.add_argument("--output", required=True,
                      help="output image (one pair) or folder (several)")
  parser.add_argument("--size", type=int, default=None,
                      help="working resolution (default: the training resolution)")
  parser.add_argument("--preview", type=int, default=None, metavar="PIXELS",
                      help="relight a copy of each input reduced to this longest side "
                      "(e.g. 1024): a quick look before the full-resolution run")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step")
  parser.add_argument("--upsample", choices=UPSAMPLERS, default="guided")
  parser.add_argument("--form", choices=FORMS, default="ratio",
                      help="ratio: the photo times the network's change of light, its own "
                      "colours kept (default); direct: the network's image")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing outputs (never an input)")
  parser.add_argument("--side_by_side", action="store_true",
                      help="write input | target | result as one image")
  # A string, checked in main: a bad value then fails in one line like every other.
  parser.add_argument("--jpeg_quality", default=str(image_io.JPEG_QUALITY),
                      help=f"quality of .jpg / .jpeg outputs, 1-100 (default "
                      f"{image_io.JPEG_QUALITY})")
  return parser.parse_args(argv)


def _jpeg_quality(value):
  """The --jpeg_quality value as an int; RelightError unless it is 1-100."""
  try:
    return image_io.check_jpeg_quality(int(value))
  except ValueError:
    raise RelightError(f"--jpeg_quality={value}: expected an integer from 1 to 100"
                       ) from None


def _fail(message):
  print(f"relight: error: {message}", file=sys.stderr)
  return 1


_MAKES_WORKDIRS = "the --workdir of python -m relight_jax.main"
_MAKES_EXPORTED = "the file written by python -m relight_jax.export"


def _check_model_source(workdir, exported):
  """Refuses a --workdir or --exported of the wrong kind before anything is read."""
  if workdir is None and exported is None:
    return  # the bundled model
  if workdir is not None:
    path = pathlib.Path(workdir)
    if path.exists() and not path.is_dir():
      raise RelightError(f"--workdir {path} is a file; expected a training workdir folder "
                         f"({_MAKES_WORKDIRS}); if it is an exported model, pass --exported={path}")
    if not path.exists():
      raise RelightError(f"--workdir {path}: no such folder; expected a training workdir "
                         f"({_MAKES_WORKDIRS})")
  else:
    path = pathlib.Path(exported)
    if path.is_dir():
      raise RelightError(f"--exported {path} is a folder; expected {_MAKES_EXPORTED}; if it is "
                         f"a training workdir, pass --workdir={path}")
    if not path.exists():
      raise RelightError(f"--exported {path}: no such file; expected {_MAKES_EXPORTED}")
    if not path.is_file():
      raise RelightError(f"--exported {path} is not a regular file (a FIFO, socket or "
                         f"device); expected {_MAKES_EXPORTED}")


def _nearest_existing(path):
  """`path` or its closest ancestor that exists."""
  for candidate in (path, *path.parents):
    if candidate.exists():
      return candidate
  return pathlib.Path(".")


def _check_output_folder(output, output_arg, batch, input_paths, target_paths):
  """Checks that --output is the kind of path the run writes: a file, or a folder."""
  if not batch:
    if output.is_dir() or output_arg.endswith(("/", os.sep)):
      example = output / f"{input_paths[0].stem}__{target_paths[0].stem}.png"
      raise RelightError(f"--output {output_arg} names a folder, but one input and one "
                         f"target make one image: name the file, e.g. --output={example}")
    return
  if output.exists() and not output.is_dir():
    raise RelightError(f"--output {output}: several outputs need a folder, not a file; "
                       "name a folder (it is created if missing)")
  existing = _nearest_existing(output)
  if not existing.is_dir():
    raise RelightError(f"--output {output}: cannot create the folder, {existing} is a file; "
                       "choose another --output")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise RelightError(f"--output {output}: folder {existing} is not writable; choose "
                       "another --output")


def _check_output_file(path, protected, overwrite, folder_pending):
  """Checks that the image `path` can be written, before the model is loaded.

  The advice to pass --overwrite is only given where it would make the write succeed.

  Args:
    path: the output image.
    protected: the run's inputs and targets.
    overwrite: whether --overwrite was given.
    folder_pending: `path`'s folder is a batch run's --output, created after the checks.
  """
  if any(image_io.same_file(path, other) for other in protected):
    raise RelightError(f"output {path} is one of the inputs; refusing to overwrite it: "
                       "choose another --output")
  if path.is_dir():
    raise RelightError(f"output {path} is a folder; an image cannot replace it, even with "
                       "--overwrite: move the folder or choose another --output")
  if folder_pending:
    return  # Nothing exists there yet, and batch output names end in .png.
  image_io.check_output_path(path)  # A known image extension, in an existing folder.
  if not os.access(path.parent, os.W_OK | os.X_OK):
    raise RelightError(f"output {path}: folder {path.parent} is not writable, even with "
                       "--overwrite; choose another --output")
  if path.exists() and not overwrite:
    raise RelightError(f"output {path} exists; pass --overwrite to replace it")


def _output_size(input_size, target, side_by_side):
  """(width, height) of what a run writes for an input of `input_size` ((width, height)).

  The side-by-side image adds the target at the input's height (side_by_side) and the
  result; a light's picture is a 2:1 envmap.
  """
  width, height = input_size
  if not side_by_side:
    return width, height
  if isinstance(target, (LightLabel, lights.Lighting)):
    target_width, target_height = 32, 16
  else:
    target_width, target_height = image_io.image_size(target)
  return width + max(1, round(target_width * height / target_height)) + width, height


def main(argv=None):
  """Command-line entry point; returns the exit status.

  Every argument is checked before anything is written or the model is loaded: a bad one
  ends the run with one line on stderr naming the path and the fix, and status 1.
  """
  args = _parse_args(argv)
  try:
    jpeg_quality = _jpeg_quality(args.jpeg_quality)
    _check_size_bound(args.size)
    _check_model_source(args.workdir, args.exported)
    if args.sweep is not None:
      return _sweep(args)
    if not args.target and not args.light:
      raise RelightError("give --target (an image), --light (such as W,3500) or --sweep")
    input_paths = _expand([args.input], "input")
    if args.light:
      # The light's form is checked now; what this model accepts, once it is loaded.
      target_paths = [lights.parse_lighting(label) for label in args.light]
      image_targets = []
    else:
      target_paths = image_targets = _expand(args.target, "target")
    batch = pathlib.Path(args.input).is_dir() or len(target_paths) > 1
    output = pathlib.Path(args.output)
    _check_output_folder(output, args.output, batch, input_paths, target_paths)
    plan = plan_outputs(input_paths, target_paths, output, batch=batch)
    protected = input_paths + image_targets
    folder_pending = batch and not output.exists()
    for _, _, output_path in plan:
      _check_output_file(output_path, protected, args.overwrite, folder_pending)
    # Load the images first: a bad one fails before the model is loaded (in batch mode
    # a bad input is reported and skipped below, the others still run).
    targets = {path: image_io.load_image(path) for path in image_targets}
    _check_preview(args.preview)
    current_input, input_photo = None, None
    if not batch:
      current_input = input_paths[0]
      input_photo = _preview(photo_lib.load_photo(input_paths[0]), args.preview)
      # The format's limits, before the model runs (batch outputs are PNG: no limit).
      height, width = input_photo.rgb.shape[:2]
      image_io.check_output_size(
          output, *_output_size((width, height), target_paths[0], args.side_by_side))
    relighter = load_relighter(args.workdir, args.exported, step=args.step)
    size = _working_size(relighter, args.size)
    if size > relighter.image_size:
      print(f"relight: warning: --size={size}: the model was trained at "
            f"{relighter.image_size} px; larger working sizes are outside its training "
            "distribution and usually look worse", file=sys.stderr)
    if args.light:
      for lighting in target_paths:
        lighting_of(relighter, lighting)  # RelightError if this model cannot take it
    # The side-by-side images show the targets as given (a light: its envmap).
    full_targets = targets if args.side_by_side else {}
    # Only the target's illumination matters: reduce each target once.
    targets = {path: _at_size(image, size) for path, image in targets.items()}
    if batch:
      # Last, so that a run refused above leaves no empty folder behind.
      output.mkdir(parents=True, exist_ok=True)
  except (RelightError, image_io.ImageError, OSError, ValueError) as error:
    return _fail(error)
  failures = written = 0
  for input_path, target_path, output_path in tqdm.tqdm(
      plan, desc="relight", unit="image", disable=not batch):
    try:
      if input_path != current_input:
        current_input = input_path
        input_photo = _preview(photo_lib.load_photo(input_path), args.preview)
      is_light = isinstance(target_path, lights.Lighting)
      target = dict(light=target_path) if is_light else dict(
          target_image=targets[target_path])
      relit, result = _relit_photo(relighter, input_photo, **target, size=size,
                                   upsample=args.upsample, form=args.form)
      if is_light:
        full_targets[target_path] = result.target_low  # the light as mixed for this input
      if args.side_by_side:
        relit = side_by_side(input_photo.float_rgb(), full_targets[target_path],
                             relit.float_rgb())
      # Without --overwrite, a file another run wrote there meanwhile is not replaced.
      photo_lib.save_photo(output_path, relit, protected=protected, jpeg_quality=jpeg_quality,
                           exclusive=not args.overwrite)
      written += 1
      if not batch:
        print(f"relight: wrote {output_path}")
    except (ValueError, OSError) as error:  # image_io.ImageError and RelightError among them
      failures += 1
      current_input = None
      tqdm.tqdm.write(f"relight: error: {error}", file=sys.stderr)
  if batch:
    print(f"relight: wrote {written} of {len(plan)} images to {output}")
  if failures:
    return _fail(f"{failures} of {len(plan)} outputs failed (see above)")
  return 0


# Where the command keeps compiled models between runs (JAX's persistent compilation
# cache), under $XDG_CACHE_HOME (default ~/.cache); JAX_COMPILATION_CACHE_DIR overrides it.
CACHE_SUBDIR = pathlib.Path("relight_jax", "jax")


def compilation_cache_dir():
  """The command's compilation cache folder (CACHE_SUBDIR)."""
  override = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if override:
    return pathlib.Path(override)
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / CACHE_SUBDIR


def _use_compilation_cache():
  """Compiles each model once per machine instead of once per run (process-wide)."""
  folder = compilation_cache_dir()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError:
    return  # an unwritable home: the run compiles, as without a cache
  jax.config.update("jax_compilation_cache_dir", str(folder))
  # The relighter's functions compile in about a second each: cache them all.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _sweep(args):
  """--sweep: one input, an animation of its relightings (checked like the other runs)."""
  if args.target:
    raise RelightError("--sweep relights by lights; give --light for the sweep's other "
                       "fields (such as 4500K or W), not --target")
  if args.light and len(args.light) > 1:
    raise RelightError(f"--sweep takes one --light (its other fields), got {len(args.light)}; "
                       "join several lights with ';'")
  base = args.light[0] if args.light else None
  try:
    sweep_lib.lightings(args.sweep, args.frames, base)  # the form, before the model loads
  except ValueError as error:
    raise RelightError(f"--sweep: {error}") from None
  if not 0 < args.fps <= 100:
    raise RelightError(f"--fps={args.fps}: expected 1 to 100")
  input_path = pathlib.Path(args.input)
  if input_path.is_dir():
    raise RelightError(f"--input {input_path} is a folder; --sweep animates one image")
  input_path = _expand([args.input], "input")[0]
  output = pathlib.Path(args.output)
  try:
    animation.check_animation_path(output)
  except ValueError as error:
    raise RelightError(f"--output {error}") from None
  if image_io.same_file(output, input_path):
    raise RelightError(f"output {output} is the input; refusing to overwrite it: choose "
                       "another --output")
  if output.is_dir() or not output.parent.is_dir():
    raise RelightError(f"--output {output}: expected a file in an existing folder")
  if not os.access(output.parent, os.W_OK | os.X_OK):
    raise RelightError(f"--output {output}: folder {output.parent} is not writable; "
                       "choose another --output")
  if output.exists() and not args.overwrite:
    raise RelightError(f"output {output} exists; pass --overwrite to replace it")
  input_image = image_io.load_image(input_path)
  relighter = load_relighter(args.workdir, args.exported, step=args.step)
  frames = sweep(relighter, input_image, args.sweep, args.frames, base, size=args.size)
  animation.write_animation(output, frames, fps=args.fps, exclusive=not args.overwrite)
  return 0


def load_relighter(workdir=None, exported=None, *, step=None):
  """The model of a --workdir, an --exported file, or the bundled one (neither given)."""
  if workdir is not None:
    return trained_model.load_workdir(workdir, step=step)
  if exported is not None:
    return trained_model.load_exported(exported)
  return trained_model.load_pretrained()


def run_command():
  """The `relight` console script (same as python -m relight_jax.relight)."""
  # Process-wide settings: only for the command line, not for callers of main().
  host_memory.tune()
  _use_compilation_cache()
  sys.exit(main())


if __name__ == "__main__":
  run_command()
