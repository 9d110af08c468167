"""Sweeps: one photo relit under a light that orbits the scene or runs through temperatures.

`lightings` makes the frames' lights from a base light (lights.LIGHT_SYNTAX; the photo's
own light by default): an azimuth sweep sets every light's azimuth to 0, 360/N, ... deg
(N first, clockwise seen from above), a kelvin sweep sets every light's temperature from
2500 to 6500 K; the base's other fields stay. `sweep_frames` relights the photo under
each (light_mix.LightMixer: each label's output is computed once, so an orbit at one
temperature costs 8 network calls; a model that composes light itself composes each frame
exactly, one call each) and captions the frames; common/animation.py writes them.
"""

import dataclasses

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from relight_jax.common import image_io
from relight_jax.data import lights
from relight_jax.inference import guided_upsample
from relight_jax.inference import light_mix

KINDS = ("azimuth", "kelvin")
MIN_FRAMES, MAX_FRAMES = 2, 360
# An animation's frames have at most this longest side: a GIF of full-resolution photos
# would be hundreds of megabytes.
FRAME_SIDE = 512


def check_sweep(kind, frames):
  """ValueError naming the value unless `kind` is one of KINDS and `frames` in range."""
  if kind not in KINDS:
    raise ValueError(f"sweep {kind!r}: expected one of {', '.join(KINDS)}")
  if not MIN_FRAMES <= int(frames) <= MAX_FRAMES:
    raise ValueError(f"frames={frames}: expected {MIN_FRAMES} to {MAX_FRAMES}")


def lightings(kind, frames, base=None):
  """The frames' lights and captions: [(lights.Lighting, caption)].

  Args:
    kind: "azimuth" (frame i at 360 i / frames deg) or "kelvin" (2500 to 6500 K).
    frames: how many.
    base: a light (lights.LIGHT_SYNTAX) whose other fields the frames keep; default the
      photo's own light.
  """
  check_sweep(kind, frames)
  base = lights.parse_lighting(base if base else "x1")
  result = []
  for index in range(frames):
    if kind == "azimuth":
      azimuth = 360.0 * index / frames
      terms = tuple(dataclasses.replace(term, azimuth_deg=azimuth, direction_name="")
                    for term in base.terms)
      caption = f"{azimuth:.0f} deg"
    else:
      low, high = lights.LABEL_TEMPERATURE_RANGE_K
      kelvin = low + (high - low) * index / (frames - 1)
      terms = tuple(dataclasses.replace(term, temperature_k=kelvin, temperature_shift_k=0.0)
                    for term in base.terms)
      caption = f"{kelvin:.0f} K"
    result.append((lights.Lighting(terms), caption))
  return result


def frame_input(input_full, side=FRAME_SIDE):
  """The photo at the frames' size: longest side at most `side` (box filter)."""
  height, width = input_full.shape[:2]
  scale = min(1.0, side / max(height, width))
  if scale == 1.0:
    return np.asarray(input_full, np.float32)
  size = max(1, round(height * scale)), max(1, round(width * scale))
  return np.clip(guided_upsample.resize(input_full, *size, "area"), 0.0, 1.0)


def caption(frame, text):
  """The frame (uint8 [H, W, 3]) with `text` in a dark box at its bottom-left corner."""
  image = Image.fromarray(frame, "RGB")
  draw = ImageDraw.Draw(image, "RGBA")
  font_size = max(10, image.height // 16)
  try:
    font = ImageFont.load_default(size=font_size)
  except (TypeError, OSError):  # a Pillow without FreeType: the small bitmap font
    font = ImageFont.load_default()
  margin = max(2, font_size // 4)
  left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
  box = (0, image.height - (bottom - top) - 2 * margin, right - left + 2 * margin,
         image.height)
  draw.rectangle(box, fill=(0, 0, 0, 140))
  draw.text((box[0] + margin - left, box[1] + margin - top), text, font=font,
            fill=(255, 255, 255, 255))
  return np.asarray(image)


def sweep_frames(relighter, input_full, input_low, kind, frames, base=None, *,
                 captions=True, side=FRAME_SIDE):
  """The photo relit under each light of a sweep, at most `side` px on its longest side.

  Args:
    relighter: a `trained_model.InferenceModel` that relights by lights.
    input_full: float32 [H, W, 3], the photo.
    input_low: float32 [S, S, 3], the photo at the working resolution.
    kind, frames, base: as `lightings`.
    captions: write each frame's azimuth or temperature in a corner.
    side: the frames' longest side.

  Returns:
    A list of uint8 [h, w, 3] frames.

  Raises:
    light_mix.LightMixError: a light this model cannot make.
    ValueError: a bad kind, frame count or base light.
  """
  mixer = light_mix.LightMixer(relighter, input_low)
  small = frame_input(input_full, side)
  result = []
  for lighting, text in lightings(kind, frames, base):
    relit_low, _ = mixer.relight(lighting)
    frame = image_io.to_uint8(guided_upsample.guided_upsample(small, input_low, relit_low))
    result.append(caption(frame, text) if captions else frame)
  return result
