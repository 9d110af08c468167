"""Procedural locations and camera views of the synthetic VIDIT-like dataset.

VIDIT (report §3.1) has 390 scenes taken in a smaller number of *locations*; its splits are
by location. Here a `Location` is a ground (material + texture), a backdrop (a back wall and
sometimes a side wall), a set of objects (spheres, boxes, cylinders, standing panels) in a
palette, and optionally a fixed non-main light (an emissive window or a small lamp) whose
colour never changes with the main light, as in VIDIT. A `View` is one *scene* of a location:
a camera pose, plus a few objects moved to new spots (same objects, changed layout).

These are the v1 generator's locations (`generators.py`). `Material`, `View`, `place`,
`relayout` and `hsv` are shared with v2 (`locations_v2.py`), whose locations and fixed
lights have types of their own (`LocationV2`, `FixedLightV2`; generators.py says why).
Everything here is plain data made deterministically from numpy Generators; Mitsuba is not
imported. World frame: y is up, the ground is y = 0, objects stand around the origin, the
back wall is on the -z side and cameras look at the objects from the +z half.
"""

import colorsys
import dataclasses

import numpy as np

from relight_jax.render import textures

TEXTURE_SIZE = 128  # texels per side; enough for <= 256 px renders at this scale
OBJECT_AREA_RADIUS = 1.7  # objects' centres lie in this disc around the origin


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: the texture is an array
class Material:
  """A surface: `kind` is 'diffuse', 'plastic' (rough dielectric coat) or 'metal'."""
  kind: str
  colour: tuple[float, float, float]  # linear sRGB albedo (or metal tint)
  texture: np.ndarray | None = None  # float32 [T, T, 3] albedo map replacing `colour`
  roughness: float = 0.3
  texture_scale: float = 1.0  # texture repeats per unit of the shape's uv
  conductor: str = "Al"  # Mitsuba's measured conductor of a 'metal' (its IOR data)


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One object standing on the ground; `size` is (x, y, z) extents before the yaw."""
  shape: str  # 'sphere', 'box', 'cylinder' or 'panel'
  position: tuple[float, float]  # (x, z) of the footprint's centre
  size: tuple[float, float, float]
  yaw_deg: float
  material: Material

  @property
  def footprint_radius(self):
    return 0.5 * float(np.hypot(self.size[0], self.size[2]))


@dataclasses.dataclass(frozen=True)
class FixedLight:
  """A non-main light that is the same in all 40 illuminations of a location.

  kind 'window': an emissive rectangle on the back wall, `position` is its centre (x, y),
  `size` its (width, height). kind 'lamp': a small emissive sphere on a post, `position`
  is its (x, z) on the ground, `size` its (bulb radius, post height).
  """
  kind: str
  position: tuple[float, float]
  size: tuple[float, float]
  radiance: tuple[float, float, float]  # linear sRGB emitted radiance


@dataclasses.dataclass(frozen=True)
class Location:
  """Everything shared by the scenes of one location."""
  ground: Material
  ground_scale: float  # texture repeats over the ground's width
  back_wall: Material
  back_wall_distance: float  # the back wall is the plane z = -back_wall_distance
  side_wall: Material | None
  side_wall_x: float  # signed x of the side wall plane (ignored when side_wall is None)
  objects: tuple[SceneObject, ...]
  fixed_light: FixedLight | None
  ambient: float  # radiance of the constant environment (weak ambient term)


@dataclasses.dataclass(frozen=True)
class View:
  """One scene of a location: camera pose and the (partly re-placed) objects.

  Shared by the generators: v1 views hold `SceneObject`s, v2 views
  `locations_v2.MeshObject`s; the camera is the same for both (`mitsuba_scene.sensor`).
  """
  origin: tuple[float, float, float]
  target: tuple[float, float, float]
  fov_deg: float
  objects: tuple  # SceneObject (v1) or locations_v2.MeshObject (v2)


def hsv(hue, saturation, value):
  """An RGB tuple of floats from hue (wrapped to [0, 1)), saturation and value."""
  return tuple(float(c) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _palette(rng):
  """Object colours around one or two base hues (a location has a colour scheme)."""
  base = rng.random()
  hues = [base, base + 0.5 + 0.15 * rng.standard_normal(), base + rng.uniform(0.1, 0.3)]
  return [hsv(hues[i % 3] + 0.04 * rng.standard_normal(), rng.uniform(0.25, 0.85),
               rng.uniform(0.35, 0.85)) for i in range(6)]


def _ground_material(rng):
  kind = rng.integers(4)
  if kind == 0:
    colour = hsv(rng.uniform(0.05, 0.12), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.6))
    texture = textures.planks(rng, TEXTURE_SIZE, colour, count=8)
  elif kind == 1:
    colour = hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.45, 0.8))
    grout = hsv(0.0, 0.0, rng.uniform(0.15, 0.35))
    texture = textures.tiles(rng, TEXTURE_SIZE, colour, grout, count=4)
  elif kind == 2:
    colour = hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.2), rng.uniform(0.35, 0.6))
    texture = textures.concrete(rng, TEXTURE_SIZE, colour)
  else:
    colour_a = hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.5, 0.8))
    colour_b = hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.15, 0.4))
    texture = textures.checker(rng, TEXTURE_SIZE, colour_a, colour_b, count=4)
    colour = colour_a
  kind_name = "plastic" if rng.random() < 0.3 else "diffuse"
  return Material(kind_name, colour, texture, roughness=rng.uniform(0.2, 0.4))


def _wall_material(rng):
  colour = hsv(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.4, 0.8))
  choice = rng.integers(3)
  if choice == 0:
    return Material("diffuse", colour)
  if choice == 1:
    return Material("diffuse", colour, textures.concrete(rng, TEXTURE_SIZE, colour))
  mortar = hsv(0.0, 0.0, rng.uniform(0.5, 0.75))
  brick = hsv(rng.uniform(0.0, 0.08), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.55))
  return Material("diffuse", brick, textures.bricks(rng, TEXTURE_SIZE, brick, mortar, rows=16))


def _object_material(rng, palette):
  colour = palette[rng.integers(len(palette))]
  draw = rng.random()
  if draw < 0.15:
    other = palette[rng.integers(len(palette))]
    pattern = textures.stripes if rng.random() < 0.5 else textures.checker
    texture = pattern(rng, 64, colour, tuple(0.5 * c + 0.4 for c in other), count=6)
    return Material("diffuse", colour, texture)
  if draw < 0.55:
    return Material("diffuse", colour)
  if draw < 0.9:
    return Material("plastic", colour, roughness=float(rng.uniform(0.05, 0.35)))
  return Material("metal", tuple(0.5 + 0.5 * c for c in colour),
                  roughness=float(rng.uniform(0.1, 0.35)))


def _object(rng, material):
  shape = ("sphere", "box", "box", "cylinder", "panel")[rng.integers(5)]
  if shape == "sphere":
    diameter = rng.uniform(0.45, 1.1)
    size = (diameter, diameter, diameter)
  elif shape == "box":
    size = tuple(float(s) for s in rng.uniform(0.35, 0.95, size=3))
  elif shape == "cylinder":
    diameter = rng.uniform(0.3, 0.8)
    size = (diameter, rng.uniform(0.4, 1.4), diameter)
  else:  # a thin rectangle standing up (a board, a sign)
    size = (rng.uniform(0.6, 1.2), rng.uniform(0.8, 1.5), 0.06)
  return SceneObject(shape, (0.0, 0.0), tuple(float(s) for s in size),
                     float(rng.uniform(0, 360)), material)


def place(rng, obj, placed, area_radius=OBJECT_AREA_RADIUS, min_gap=0.12):
  """Moves `obj` to a random free spot of the object disc (best of 60 tries).

  Args:
    rng: numpy Generator.
    obj: a dataclass with `position` (x, z) and `footprint_radius` (v1 or v2 objects).
    placed: objects already standing.
    area_radius: radius of the disc around the origin where objects stand.
    min_gap: clearance between footprints accepted at once.
  """
  best, best_gap = None, -np.inf
  for _ in range(60):
    radius = area_radius * np.sqrt(rng.random())
    angle = rng.uniform(0, 2 * np.pi)
    xz = (float(radius * np.cos(angle)), float(radius * np.sin(angle)))
    gap = min((np.hypot(xz[0] - o.position[0], xz[1] - o.position[1])
               - o.footprint_radius - obj.footprint_radius for o in placed), default=np.inf)
    if gap > min_gap:
      return dataclasses.replace(obj, position=xz)
    if gap > best_gap:
      best, best_gap = xz, gap
  return dataclasses.replace(obj, position=best)


def sample_location(rng):
  """Draws a location (ground, walls, objects, palette, fixed light) from a Generator."""
  palette = _palette(rng)
  ground = _ground_material(rng)
  back_wall = _wall_material(rng)
  side_wall = _wall_material(rng) if rng.random() < 0.5 else None
  objects = []
  for _ in range(rng.integers(4, 8)):
    objects.append(place(rng, _object(rng, _object_material(rng, palette)), objects))
  back_wall_distance = float(rng.uniform(5.5, 7.0))
  fixed_light = None
  draw = rng.random()
  # Fixed colours of their own (not one of the main light's temperatures): a cool window,
  # a warm or coloured lamp.
  if draw < 0.35:
    width, height = rng.uniform(1.0, 2.2), rng.uniform(0.8, 1.4)
    tint = hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), 1.0)
    fixed_light = FixedLight("window", (float(rng.uniform(-2.5, 2.5)),
                                        float(rng.uniform(1.4, 2.4))),
                             (float(width), float(height)),
                             tuple(float(rng.uniform(1.5, 3.0)) * c for c in tint))
  elif draw < 0.65:
    # Beside and behind the objects, where the camera sees it from every view.
    xz = (float(rng.uniform(1.8, 2.8) * (1 if rng.random() < 0.5 else -1)),
          float(rng.uniform(-2.6, -1.2)))
    tint = hsv(rng.uniform(0.0, 1.0), rng.uniform(0.3, 0.8), 1.0)
    fixed_light = FixedLight("lamp", xz, (0.09, float(rng.uniform(0.9, 1.5))),
                             tuple(float(rng.uniform(150, 300)) * c for c in tint))
  return Location(
      ground=ground,
      ground_scale=float(rng.uniform(6.0, 12.0)),
      back_wall=back_wall,
      back_wall_distance=back_wall_distance,
      side_wall=side_wall,
      side_wall_x=float(rng.uniform(6.0, 7.5) * (1 if rng.random() < 0.5 else -1)),
      objects=tuple(objects),
      fixed_light=fixed_light,
      ambient=float(rng.uniform(0.03, 0.08)),
  )


def sample_view(location, rng):
  """Draws one scene of `location`: a camera pose and a partly re-placed object layout."""
  azimuth = np.deg2rad(rng.uniform(-50, 50))  # around the +z axis, away from the back wall
  distance = rng.uniform(4.6, 6.0)
  height = rng.uniform(1.3, 2.6)
  target = (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0.3, 0.6)),
            float(rng.uniform(-0.4, 0.4)))
  origin = (float(target[0] + distance * np.sin(azimuth)), float(height),
            float(target[2] + distance * np.cos(azimuth)))
  objects = relayout(rng, location.objects)
  return View(origin, target, float(rng.uniform(38, 50)), tuple(objects))


def relayout(rng, objects, **place_args):
  """A view's layout change: the same objects, each turned and moved with chance 0.3.

  `place_args` go to `place` (v2 uses its own area and gap).
  """
  objects = list(objects)
  for i in range(len(objects)):
    if rng.random() < 0.3:
      moved = dataclasses.replace(objects[i], yaw_deg=float(rng.uniform(0, 360)))
      objects[i] = place(rng, moved, objects[:i] + objects[i + 1:], **place_args)
  return objects
