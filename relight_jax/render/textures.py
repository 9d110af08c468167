"""Procedural albedo textures (numpy) for the synthetic VIDIT-like locations.

VIDIT's Unreal scenes are textured (tiled floors, wooden planks, concrete, bricks); texture
is part of what makes relighting hard (the model must separate albedo from shading), so
every synthetic location gets a textured ground and, often, textured walls and objects.
Each texture is an albedo map in linear sRGB, float32 [size, size, 3] in [0.02, 0.9], made
deterministically from a numpy Generator; `locations.py` picks them, `mitsuba_scene.py`
hands them to Mitsuba as bitmap textures. The v2 configs add photographs that
scikit-image ships (`photograph`) and more procedural patterns (marble, wood rings, weave).
"""

import functools
import os

import numpy as np


def _value_noise(rng, size, cells):
  """Smooth value noise in [0, 1]: a random `cells` x `cells` grid, bilinearly upsampled."""
  grid = rng.random((cells + 1, cells + 1))
  coords = np.linspace(0.0, cells, size, endpoint=False)
  i = coords.astype(int)
  f = coords - i
  f = f * f * (3.0 - 2.0 * f)  # smoothstep, hides the grid's creases
  rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]  # [size, cells + 1]
  return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]  # [size, size]


def fractal_noise(rng, size, base_cells=4, octaves=4):
  """Sum of value-noise octaves (1/f spectrum) normalised to [0, 1]."""
  total = np.zeros((size, size))
  weight = 1.0
  for octave in range(octaves):
    total += weight * _value_noise(rng, size, base_cells * 2**octave)
    weight *= 0.5
  total -= total.min()
  return total / max(total.max(), 1e-8)


def _finish(albedo):
  return np.clip(albedo, 0.02, 0.9).astype(np.float32)


def tiles(rng, size, colour, grout_colour, count):
  """Square floor tiles with grout lines and per-tile brightness jitter."""
  u = np.arange(size) * count / size
  tile_u = u.astype(int)
  jitter = 1.0 + 0.25 * (rng.random((count, count)) - 0.5)
  shade = jitter[tile_u[:, None], tile_u[None, :]]  # [size, size]
  frac = u - tile_u
  grout = (frac < 0.06)[:, None] | (frac < 0.06)[None, :]
  noise = 0.85 + 0.3 * fractal_noise(rng, size, base_cells=8, octaves=3)
  albedo = np.asarray(colour)[None, None] * (shade * noise)[..., None]
  albedo = np.where(grout[..., None], np.asarray(grout_colour)[None, None], albedo)
  return _finish(albedo)


def planks(rng, size, colour, count):
  """Wooden planks: stripes of varying tone with a stretched grain along each plank."""
  rows = np.arange(size) * count / size
  plank = rows.astype(int)
  tone = 1.0 + 0.35 * (rng.random(count) - 0.5)
  # Grain lines run along the plank: fast variation across rows, slow along columns.
  across = _value_noise(rng, size, size // 4)[:, 0]  # [size]
  along = _value_noise(rng, size, 3)[0]  # [size]
  grain = 0.75 + 0.35 * across[:, None] + 0.2 * along[None, :]
  seam = (rows - plank) < 0.05
  albedo = np.asarray(colour)[None, None] * (tone[plank][:, None] * grain)[..., None]
  albedo = np.where(seam[:, None, None], albedo * 0.45, albedo)
  return _finish(albedo)


def concrete(rng, size, colour):
  """Blotchy concrete / plaster: fractal noise modulating a base colour."""
  noise = fractal_noise(rng, size, base_cells=4, octaves=5)
  speckle = rng.random((size, size)) * 0.12
  albedo = np.asarray(colour)[None, None] * (0.7 + 0.5 * noise + speckle)[..., None]
  return _finish(albedo)


def checker(rng, size, colour_a, colour_b, count):
  """Two-colour checkerboard with a little noise (rugs, painted floors, boxes)."""
  u = (np.arange(size) * count / size).astype(int)
  mask = (u[:, None] + u[None, :]) % 2 == 0
  albedo = np.where(mask[..., None], np.asarray(colour_a), np.asarray(colour_b))
  noise = 0.9 + 0.2 * fractal_noise(rng, size, base_cells=8, octaves=2)
  return _finish(albedo * noise[..., None])


def bricks(rng, size, colour, mortar_colour, rows):
  """Running-bond bricks (every other row offset by half a brick) with mortar."""
  v = np.arange(size) * rows / size
  row = v.astype(int)
  u = np.arange(size) * (rows / 2) / size  # bricks twice as wide as tall
  u_shift = u[None, :] + 0.5 * (row[:, None] % 2)
  brick = u_shift.astype(int)
  tone = 1.0 + 0.3 * (rng.random((rows, rows + 2)) - 0.5)
  shade = tone[row[:, None], brick]
  mortar = ((v - row) < 0.1)[:, None] | ((u_shift - brick) < 0.05)
  noise = 0.85 + 0.3 * fractal_noise(rng, size, base_cells=8, octaves=3)
  albedo = np.asarray(colour)[None, None] * (shade * noise)[..., None]
  albedo = np.where(mortar[..., None], np.asarray(mortar_colour)[None, None], albedo)
  return _finish(albedo)


def stripes(rng, size, colour_a, colour_b, count):
  """Painted stripes (objects): alternating bands along the texture's u axis."""
  u = (np.arange(size) * count / size).astype(int)
  mask = np.broadcast_to((u % 2 == 0)[None, :], (size, size))
  albedo = np.where(mask[..., None], np.asarray(colour_a), np.asarray(colour_b))
  noise = 0.92 + 0.16 * fractal_noise(rng, size, base_cells=4, octaves=2)
  return _finish(albedo * noise[..., None])


# Photographs that scikit-image ships inside its package (no download): real albedo
# statistics (fur, foliage, gravel, fabric, metal) that no procedural pattern has. The grey
# ones are tinted. Keys are the names the v2 content lists use.
PHOTOGRAPHS = {
    "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
    "coffee": "coffee.png", "chelsea": "chelsea.png", "astronaut": "astronaut.png",
    "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png", "retina": "retina.jpg",
    "hubble": "hubble_deep_field.jpg", "immunohistochemistry": "ihc.png",
}


def _photograph_folder():
  import importlib.util  # noqa: PLC0415  (only the v2 photographic textures need it)
  spec = importlib.util.find_spec("skimage")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("photographic textures of the v2 synthetic configs need scikit-image "
                      "(its data images): pip install scikit-image")
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


@functools.cache
def _photograph_linear(name):
  """The photograph `name` as linear sRGB float32 [H, W, 3] in [0, 1] (cached per process)."""
  import PIL.Image  # noqa: PLC0415
  if name not in PHOTOGRAPHS:
    raise ValueError(f"unknown photograph {name!r}; expected one of {sorted(PHOTOGRAPHS)}")
  path = os.path.join(_photograph_folder(), PHOTOGRAPHS[name])
  try:
    with PIL.Image.open(path) as image:
      srgb = np.asarray(image.convert("RGB"), np.float64) / 255.0
  except OSError as error:
    raise OSError(f"{path}: cannot read scikit-image's data image {name!r}: {error}") from None
  linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
  return linear.astype(np.float32)


def photograph(rng, size, name, tint=None, mean_albedo=0.4):
  """A random square crop of a shipped photograph, resized to `size`, as an albedo map.

  Args:
    rng: numpy Generator (picks the crop).
    size: texels per side.
    name: key of PHOTOGRAPHS.
    tint: optional linear RGB multiplying the crop (grey photographs get a colour).
    mean_albedo: the map is scaled to this mean luminance (photographs are exposed for
      display, not reflectance).
  """
  import PIL.Image  # noqa: PLC0415
  linear = _photograph_linear(name)
  height, width = linear.shape[:2]
  side = int(min(height, width) * rng.uniform(0.4, 0.9))
  top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
  crop = linear[top:top + side, left:left + side]
  channels = [np.asarray(PIL.Image.fromarray(crop[..., c]).resize(
      (size, size), PIL.Image.Resampling.BOX)) for c in range(3)]
  albedo = np.stack(channels, -1).astype(np.float64)
  if tint is not None:
    albedo = albedo.mean(-1, keepdims=True) * np.asarray(tint)[None, None]
  albedo *= mean_albedo / max(float(albedo.mean()), 1e-3)
  return _finish(albedo)


def marble(rng, size, colour, vein_colour):
  """Marble: sine veins warped by fractal noise."""
  noise = fractal_noise(rng, size, base_cells=4, octaves=5)
  x = np.arange(size)[None, :] / size
  angle = rng.uniform(0, np.pi)
  phase = (np.cos(angle) * x + np.sin(angle) * x.T) * rng.uniform(3, 8) + 4.0 * noise
  vein = np.abs(np.sin(np.pi * phase)) ** 0.25  # 0 on the veins
  albedo = (np.asarray(colour)[None, None] * vein[..., None]
            + np.asarray(vein_colour)[None, None] * (1 - vein[..., None]))
  return _finish(albedo)


def wood_rings(rng, size, colour):
  """End-grain wood: growth rings around an off-centre pith, warped by noise."""
  coords = np.arange(size) / size
  centre = rng.uniform(-0.5, 1.5, size=2)
  radius = np.hypot(coords[None, :] - centre[0], coords[:, None] - centre[1])
  noise = fractal_noise(rng, size, base_cells=4, octaves=3)
  rings = 0.5 + 0.5 * np.sin(2 * np.pi * (radius * rng.uniform(10, 25) + 0.8 * noise))
  albedo = np.asarray(colour)[None, None] * (0.65 + 0.45 * rings)[..., None]
  return _finish(albedo)


def weave(rng, size, colour_a, colour_b, count):
  """Woven fabric: alternating over/under threads of two colours with shading."""
  u = np.arange(size) * count / size
  cell = u.astype(int)
  frac = u - cell
  over = (cell[:, None] + cell[None, :]) % 2 == 0
  thread = np.where(over, np.sin(np.pi * frac)[None, :], np.sin(np.pi * frac)[:, None])
  albedo = np.where(over[..., None], np.asarray(colour_a), np.asarray(colour_b))
  noise = 0.9 + 0.2 * fractal_noise(rng, size, base_cells=8, octaves=2)
  return _finish(albedo * (0.6 + 0.4 * thread * noise)[..., None])
