"""A trained relighter you call on a photo: `relight_jax.load_pretrained()`, `relight_jax.load()`.

  import relight_jax
  model = relight_jax.load_pretrained()           # or relight_jax.load("runs/envmap")
  relit = model(photo, light="W,3500")            # or model(photo, target=other_photo)

`photo` is a numpy array (uint8, uint16 or float in [0, 1]; [H, W], [H, W, 3] or
[H, W, 4] with alpha), a PIL image or a path, at any size; the result is of the same
kind: uint8 in gives uint8 out, float gives float32 in [0, 1], an alpha channel comes
back unchanged, a PIL image (or a path) gives a PIL image carrying the file's ICC profile
and EXIF in its `info`. The work is `relight.relight_photo`'s (common/photo.py says what
a photo keeps); a `Relighter` is also an `InferenceModel`, so `relight.relight(model, ...)`
and everything else that takes one still does.
"""

import dataclasses
import os
import pathlib

import numpy as np
from PIL import Image

from relight_jax import relight
from relight_jax.common import photo as photo_lib
from relight_jax.inference import trained_model


@dataclasses.dataclass(frozen=True)
class Relighter(trained_model.InferenceModel):
  """An `InferenceModel` that relights a photo when called (module docstring)."""

  def __call__(self, image, target=None, *, light=None, size=None, upsample="guided",
               form="ratio"):
    """Relights `image` under the light of `target` or of a label such as "W,3500".

    Args:
      image: the photo: array, PIL image or path, any size.
      target: a photo (array, PIL image or path) whose illumination to take.
      light: instead of `target`, "DIRECTION,KELVIN" (N, NE, ..., NW; 2500-6500 K).
      size: the network's working resolution (default: the one it was trained at).
      upsample: 'guided' (the change carried to full resolution along the photo's edges)
        or 'bicubic'.
      form: 'ratio' (the photo's own colours and exposure, only the change of light
        applied) or 'direct' (the network's image); relight.FORMS.

    Returns:
      The relit photo, of `image`'s kind and size (module docstring).

    Raises:
      image_io.ImageError: an image cannot be read (the message names it).
      relight.RelightError: bad `size`, `upsample`, `form` or `light`, or both or neither of
        `target` and `light`.
    """
    name = None if isinstance(image, (str, os.PathLike, Image.Image)) else "image"
    photo = photo_lib.load_photo(image, name=name)
    relit = relight.relight_photo(self, photo, target, light=light, size=size,
                                  upsample=upsample, form=form)
    if isinstance(image, (str, os.PathLike, Image.Image)):
      return _pil_image(relit)
    return _like(relit, np.asarray(image))


def _like(photo, array):
  """The relit photo as an array of `array`'s dtype, with its alpha channel if it had one."""
  rgb = photo.rgb
  if array.dtype not in (np.uint8, np.uint16):
    rgb = rgb.astype(np.float32)
  if photo.alpha is None:
    return rgb
  return np.concatenate([rgb, photo.alpha.astype(rgb.dtype)[..., None]], axis=-1)


def _pil_image(photo):
  """An 8-bit RGB(A) PIL image (PIL has no 16-bit colour mode) with the ICC and EXIF."""
  rgb = photo.rgb if photo.rgb.dtype == np.uint8 else photo_lib.to_codes(
      photo.float_rgb(), np.uint8)
  if photo.alpha is not None:
    alpha = photo_lib.to_codes(photo.alpha / np.float32(photo.max_code), np.uint8)
    image = Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=-1), "RGBA")
  else:
    image = Image.fromarray(rgb, "RGB")
  if photo.icc_profile:
    image.info["icc_profile"] = photo.icc_profile
  if photo.exif:
    image.info["exif"] = photo.exif
  return image


def _relighter(model):
  return Relighter(**{field.name: getattr(model, field.name)
                      for field in dataclasses.fields(trained_model.InferenceModel)})


def load_pretrained(folder=None):
  """The bundled reference model (relight_jax/pretrained/MODEL_CARD.md), or the bundle in
  `folder` (`python -m relight_jax.pretrained` writes one), as a callable `Relighter`."""
  return _relighter(trained_model.load_pretrained(folder))


def load(source, *, step=None):
  """A callable `Relighter` from a training workdir, a model bundle or an exported file.

  Args:
    source: a training workdir (config.json + checkpoints), a bundle folder (bundle.json)
      or a file written by `python -m relight_jax.export`.
    step: a workdir's checkpoint step; default the latest.

  Raises:
    FileNotFoundError: `source` does not exist, or a folder holds neither a workdir nor
      a bundle.
    ValueError: a damaged or foreign file (the message names it).
  """
  path = pathlib.Path(source)
  if path.is_dir():
    if (path / trained_model.BUNDLE_MANIFEST).is_file():
      return load_pretrained(path)
    return _relighter(trained_model.load_workdir(path, step=step))
  if path.exists():
    return _relighter(trained_model.load_exported(path))
  raise FileNotFoundError(f"{path}: no such file or folder; expected a training workdir, "
                          "a model bundle folder or a file written by "
                          "python -m relight_jax.export")
