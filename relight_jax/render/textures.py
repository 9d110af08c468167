"""Procedural albedo textures (numpy) for the synthetic VIDIT-like locations.

VIDIT's Unreal scenes are textured (tiled floors, wooden planks, concrete, bricks); texture
is part of what makes relighting hard (the model must separate albedo from shading), so
every synthetic location gets a textured ground and, often, textured walls and objects.
Each texture is an albedo map in linear sRGB, float32 [size, size, 3] in [0.02, 0.9], made
deterministically from a numpy Generator; `locations.py` picks them, `mitsuba_scene.py`
hands them to Mitsuba as bitmap textures.
"""

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


def _fractal_noise(rng, size, base_cells=4, octaves=4):
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
  noise = 0.85 + 0.3 * _fractal_noise(rng, size, base_cells=8, octaves=3)
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
  noise = _fractal_noise(rng, size, base_cells=4, octaves=5)
  speckle = rng.random((size, size)) * 0.12
  albedo = np.asarray(colour)[None, None] * (0.7 + 0.5 * noise + speckle)[..., None]
  return _finish(albedo)


def checker(rng, size, colour_a, colour_b, count):
  """Two-colour checkerboard with a little noise (rugs, painted floors, boxes)."""
  u = (np.arange(size) * count / size).astype(int)
  mask = (u[:, None] + u[None, :]) % 2 == 0
  albedo = np.where(mask[..., None], np.asarray(colour_a), np.asarray(colour_b))
  noise = 0.9 + 0.2 * _fractal_noise(rng, size, base_cells=8, octaves=2)
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
  noise = 0.85 + 0.3 * _fractal_noise(rng, size, base_cells=8, octaves=3)
  albedo = np.asarray(colour)[None, None] * (shade * noise)[..., None]
  albedo = np.where(mortar[..., None], np.asarray(mortar_colour)[None, None], albedo)
  return _finish(albedo)


def stripes(rng, size, colour_a, colour_b, count):
  """Painted stripes (objects): alternating bands along the texture's u axis."""
  u = (np.arange(size) * count / size).astype(int)
  mask = np.broadcast_to((u % 2 == 0)[None, :], (size, size))
  albedo = np.where(mask[..., None], np.asarray(colour_a), np.asarray(colour_b))
  noise = 0.92 + 0.16 * _fractal_noise(rng, size, base_cells=4, octaves=2)
  return _finish(albedo * noise[..., None])
