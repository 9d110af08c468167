"""Procedural locations of the v2 synthetic configs: rooms and open scenes of meshes.

v1 (`locations.py`) stands boxes, spheres, cylinders and panels on a textured floor. v2
builds every object as a numpy mesh (`meshes.py`): surfaces of revolution (vases, bowls,
bottles, columns), extrusions, tori and knots, displaced rocks, furniture from parts,
thin structures (railings, arches); materials are diffuse, glossy (rough plastic) or
metallic (six measured conductors) over a range of roughness, textured with photographs
that scikit-image ships or procedural patterns. A location is an indoor *room* (floor,
back and side walls, sometimes a ceiling) or an *open* scene (heightfield terrain under
the sky), with zero to two fixed lights of four kinds (window, lamp, ceiling panel, spot)
that stay the same under all 40 main lights, as in VIDIT.

What a location may contain is a `Content`: `TRAIN_CONTENT` for the train, validation and
test splits, `HELDOUT_CONTENT` for the held-out-content split, whose object families,
conductors, photographs and patterns never occur in the other (so a model's score on it
measures generalisation to unseen content). Materials and views are v1's
(`locations.Material`, `locations.View`); locations and fixed lights are `LocationV2` and
`FixedLightV2`, named apart from v1's `Location` and `FixedLight`, whose fields differ
(generators.py says why they are not one type). Plain data, deterministic from numpy
Generators; Mitsuba is not imported. World frame as in v1: y up, ground y = 0, objects
around the origin, cameras on the +z side.
"""

import dataclasses

import numpy as np

from relight_jax.render import locations
from relight_jax.render import meshes
from relight_jax.render import textures

TEXTURE_SIZE = 128
OBJECT_AREA_RADIUS = 2.0
TERRAIN_HALF_SIZE = 20.0
TERRAIN_FLAT_RADIUS = 2.8  # the terrain is flat where the objects stand
# Roughness (GGX alpha) ranges. The lower ends are floors: below them a point light's
# glints and the caustics of the one indirect bounce become fireflies at the shipped
# sample counts (mitsuba_v2.py also clamps what is left).
PLASTIC_ALPHA = (0.06, 0.5)
METAL_ALPHA = (0.1, 0.5)
# Normal-incidence reflectance (linear sRGB) of Mitsuba's measured conductors: the albedo
# AOV of a metal (Mitsuba's albedo AOV is not defined for conductors).
CONDUCTOR_F0 = {
    "Al": (0.913, 0.922, 0.924), "Ag": (0.972, 0.960, 0.915), "Cu": (0.955, 0.638, 0.538),
    "Au": (1.0, 0.766, 0.336), "Cr": (0.549, 0.556, 0.554), "Ni_palik": (0.660, 0.609, 0.526),
}


@dataclasses.dataclass(frozen=True)
class Content:
  """What locations may hold: object families, conductors, photographs, patterns."""
  name: str
  objects: tuple[str, ...]
  conductors: tuple[str, ...]
  photographs: tuple[str, ...]
  patterns: tuple[str, ...]


TRAIN_CONTENT = Content(
    "train",
    objects=("vase", "bowl", "column", "sphere", "box", "cylinder", "prism", "torus", "rock",
             "table", "chair", "railing"),
    conductors=("Al", "Cu", "Ag"),
    photographs=("brick", "grass", "gravel", "coffee", "motorcycle", "rocket", "hubble"),
    patterns=("tiles", "planks", "concrete", "checker", "bricks", "stripes", "wood_rings"))
HELDOUT_CONTENT = Content(
    "heldout",
    objects=("knot", "shelf", "arch", "bottle", "stool"),
    conductors=("Au", "Cr", "Ni_palik"),
    photographs=("chelsea", "astronaut", "retina", "immunohistochemistry"),
    patterns=("marble", "weave"))
CONTENTS = {content.name: content for content in (TRAIN_CONTENT, HELDOUT_CONTENT)}


@dataclasses.dataclass(frozen=True, eq=False)
class MeshObject:
  """One object: a mesh in its own frame, placed at (x, z) and turned by `yaw_deg`."""
  family: str
  mesh: meshes.Mesh
  position: tuple[float, float]
  yaw_deg: float
  material: locations.Material

  @property
  def footprint_radius(self):
    low, high = self.mesh.bounds()
    return 0.5 * float(np.hypot(high[0] - low[0], high[2] - low[2]))


@dataclasses.dataclass(frozen=True)
class FixedLightV2:
  """A light that is the same in all 40 illuminations of a location.

  kind 'window': emissive rectangle on the back wall centred at `position` (x, y, z),
  `size` (width, height). 'lamp': emissive sphere of radius size[0] at `position` on a post
  of height position[1]. 'panel': downward-facing emissive rectangle at `position`, `size`
  (width, depth). 'spot': Mitsuba spot light at `position` aimed at `target`, `size`
  (cutoff angle, beam width) in degrees, `radiance` its intensity.
  """
  kind: str
  position: tuple[float, float, float]
  size: tuple[float, float]
  radiance: tuple[float, float, float]
  target: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class LocationV2:
  """Everything shared by the scenes of one v2 location."""
  kind: str  # 'room' or 'open'
  content: str  # key of CONTENTS
  ground: locations.Material
  ground_scale: float
  terrain: meshes.Mesh | None  # open scenes: the ground is this heightfield
  walls: tuple[tuple[str, locations.Material], ...]  # ('back' | 'left' | 'right' | 'ceiling', m)
  room_size: tuple[float, float, float]  # back wall distance, half width, ceiling height
  objects: tuple[MeshObject, ...]
  fixed_lights: tuple[FixedLightV2, ...]
  ambient: float


def _pattern(rng, name, colour, other):
  size = TEXTURE_SIZE
  if name == "tiles":
    return textures.tiles(rng, size, colour, other, count=int(rng.integers(3, 7)))
  if name == "planks":
    return textures.planks(rng, size, colour, count=int(rng.integers(5, 10)))
  if name == "concrete":
    return textures.concrete(rng, size, colour)
  if name == "checker":
    return textures.checker(rng, size, colour, other, count=int(rng.integers(3, 7)))
  if name == "bricks":
    return textures.bricks(rng, size, colour, other, rows=int(rng.integers(10, 20)))
  if name == "stripes":
    return textures.stripes(rng, size, colour, other, count=int(rng.integers(4, 9)))
  if name == "wood_rings":
    return textures.wood_rings(rng, size, colour)
  if name == "marble":
    return textures.marble(rng, size, colour, other)
  if name == "weave":
    return textures.weave(rng, size, colour, other, count=int(rng.integers(8, 20)))
  raise ValueError(f"unknown texture pattern {name!r}")


def _texture(rng, content, colour, other, photo_fraction=0.4):
  """A photograph (tinted when grey) or a procedural pattern of `content`."""
  if rng.random() < photo_fraction:
    name = content.photographs[rng.integers(len(content.photographs))]
    grey = name in ("brick", "grass", "gravel", "hubble")
    return textures.photograph(rng, TEXTURE_SIZE, name, tint=colour if grey else None,
                               mean_albedo=float(rng.uniform(0.25, 0.55)))
  return _pattern(rng, content.patterns[rng.integers(len(content.patterns))], colour, other)


def _material(rng, content, palette, textured_fraction=0.35):
  colour = palette[rng.integers(len(palette))]
  other = palette[rng.integers(len(palette))]
  draw = rng.random()
  if draw < 0.25:  # metal, its tint the conductor's own
    conductor = content.conductors[rng.integers(len(content.conductors))]
    return locations.Material("metal", CONDUCTOR_F0[conductor],
                              roughness=float(rng.uniform(*METAL_ALPHA)), conductor=conductor)
  texture = (_texture(rng, content, colour, other) if rng.random() < textured_fraction
             else None)
  kind = "plastic" if draw < 0.6 else "diffuse"
  return locations.Material(kind, colour, texture,
                            roughness=float(rng.uniform(*PLASTIC_ALPHA)),
                            texture_scale=float(rng.uniform(1.0, 3.0)))


def _profile(rng, family):
  """(radii, heights) of a surface of revolution of `family`."""
  height = rng.uniform(0.4, 1.3)
  t = np.linspace(0.0, 1.0, 24)
  if family == "vase":
    base, belly, neck = rng.uniform(0.12, 0.25), rng.uniform(0.2, 0.4), rng.uniform(0.06, 0.15)
    radii = base + (belly - base) * np.sin(np.pi * t * 0.8) ** 2 * (1 - t) + neck * t
  elif family == "bowl":
    height = rng.uniform(0.15, 0.35)
    radii = rng.uniform(0.25, 0.5) * np.sqrt(np.clip(t, 0.02, 1.0))
  elif family == "bottle":
    body, neck = rng.uniform(0.1, 0.2), rng.uniform(0.03, 0.06)
    radii = np.where(t < 0.6, body, neck + (body - neck) * np.clip((0.8 - t) / 0.2, 0, 1))
  elif family == "column":
    radii = rng.uniform(0.1, 0.22) * (1 + 0.25 * (np.abs(t - 0.5) > 0.45)) * np.ones_like(t)
  elif family == "cylinder":
    radii = rng.uniform(0.15, 0.4) * np.ones_like(t)
  else:  # sphere
    radius = rng.uniform(0.22, 0.55)
    angle = np.linspace(-np.pi / 2, np.pi / 2, 24)
    return np.maximum(radius * np.cos(angle), 1e-3), radius * (1 + np.sin(angle))
  # Closed: the profile starts and ends (almost) on the axis; a zero radius would leave
  # degenerate triangles, whose vertices get no normal.
  radii = np.concatenate([[1e-3], radii, [1e-3]])
  heights = np.concatenate([[0.0], t * height, [height]])
  return radii, heights


def _prism_outline(rng):
  """A star, a rounded polygon or an L, as (x, z) points around the origin."""
  kind = rng.integers(3)
  if kind == 0:
    points = int(rng.integers(4, 8))
    angle = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.4, 0.7))
  elif kind == 1:
    angle = np.linspace(0, 2 * np.pi, int(rng.integers(5, 9)), endpoint=False)
    radius = np.ones_like(angle)
  else:
    return 0.4 * np.array([[-1, -1], [1, -1], [1, -0.3], [-0.3, -0.3], [-0.3, 1], [-1, 1]],
                          np.float64)
  size = rng.uniform(0.2, 0.45)
  return size * np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)


def object_mesh(rng, family):
  """A mesh of one object family (a name in a `Content`'s objects), in its own frame."""
  if family in ("vase", "bowl", "bottle", "column", "cylinder", "sphere"):
    return meshes.revolution(*_profile(rng, family))
  if family == "box":
    size = rng.uniform(0.3, 0.9, size=3)
    return meshes.box(size, centre=(0.0, size[1] / 2, 0.0))
  if family == "prism":
    return meshes.extrusion(_prism_outline(rng), rng.uniform(0.2, 1.0))
  if family == "torus":
    major = rng.uniform(0.25, 0.45)
    return meshes.torus(major, major * rng.uniform(0.2, 0.4))
  if family == "knot":
    p, q = ((2, 3), (3, 2), (2, 5), (3, 4))[rng.integers(4)]
    return meshes.torus_knot(p, q, rng.uniform(0.35, 0.5), rng.uniform(0.04, 0.07))
  if family == "rock":
    return meshes.rock(rng, rng.uniform(0.25, 0.6))
  if family == "table":
    return meshes.table(rng.uniform(0.7, 1.3), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.8))
  if family == "chair":
    return meshes.chair(rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.6))
  if family == "stool":
    return meshes.table(*(rng.uniform(0.3, 0.45),) * 2, rng.uniform(0.4, 0.7), leg=0.04)
  if family == "shelf":
    return meshes.shelf(rng.uniform(0.6, 1.1), rng.uniform(0.25, 0.4), rng.uniform(0.8, 1.6),
                        int(rng.integers(3, 6)))
  if family == "railing":
    return meshes.railing(rng.uniform(0.8, 1.6), rng.uniform(0.5, 0.9), int(rng.integers(5, 11)))
  if family == "arch":
    return meshes.arch(rng.uniform(0.6, 1.2), rng.uniform(0.5, 1.2), rng.uniform(0.03, 0.07))
  raise ValueError(f"unknown object family {family!r}")


def _terrain(rng):
  """Rolling hills that rise away from a flat disc where the objects stand."""
  rows = 97
  noise = textures.fractal_noise(rng, rows, base_cells=3, octaves=4)
  coords = np.linspace(-TERRAIN_HALF_SIZE, TERRAIN_HALF_SIZE, rows)
  distance = np.hypot(coords[None, :], coords[:, None])
  rise = np.clip((distance - TERRAIN_FLAT_RADIUS) / 10.0, 0.0, 1.0) ** 2
  heights = rng.uniform(1.0, 3.5) * (noise - 0.3) * rise
  return meshes.heightfield(heights, TERRAIN_HALF_SIZE)


def _fixed_lights(rng, kind, room_size):
  back, half_width, ceiling = room_size
  count = int(rng.choice([0, 1, 1, 2]))
  kinds = ("window", "lamp", "panel", "spot") if kind == "room" else ("lamp", "spot")
  if kind == "room" and not ceiling:
    kinds = ("window", "lamp", "spot")
  out = []
  for _ in range(count):
    light = kinds[rng.integers(len(kinds))]
    # Tints of their own, never one of the main light's temperatures.
    tint = locations.hsv(rng.uniform(0.0, 1.0), rng.uniform(0.1, 0.6), 1.0)
    side = 1 if rng.random() < 0.5 else -1
    if light == "window":
      out.append(FixedLightV2("window", (float(rng.uniform(-2.5, 2.5)),
                                         float(rng.uniform(1.4, 2.4)), -back + 0.01),
                              (float(rng.uniform(1.0, 2.2)), float(rng.uniform(0.8, 1.4))),
                              tuple(float(rng.uniform(1.5, 3.0)) * c for c in tint)))
    elif light == "lamp":
      out.append(FixedLightV2("lamp", (float(side * rng.uniform(2.0, 3.0)),
                                       float(rng.uniform(0.9, 1.6)),
                                       float(rng.uniform(-2.6, -1.0))),
                              (float(rng.uniform(0.08, 0.14)), 0.0),
                              tuple(float(rng.uniform(60, 150)) * c for c in tint)))
    elif light == "panel":
      out.append(FixedLightV2("panel", (float(rng.uniform(-1.5, 1.5)), float(ceiling - 0.02),
                                        float(rng.uniform(-2.0, 0.5))),
                              (float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4))),
                              tuple(float(rng.uniform(1.0, 2.5)) * c for c in tint)))
    else:
      position = (float(side * rng.uniform(2.5, 3.5)), float(rng.uniform(2.5, 3.0)),
                  float(rng.uniform(-2.5, 1.5)))
      target = (float(rng.uniform(-1.0, 1.0)), 0.0, float(rng.uniform(-1.0, 1.0)))
      out.append(FixedLightV2("spot", position, (float(rng.uniform(20, 35)), 15.0),
                              tuple(float(rng.uniform(8, 20)) * c for c in tint), target))
  return tuple(out)


def sample_location(rng, content=TRAIN_CONTENT):
  """Draws a v2 location from a Generator, using only what `content` allows."""
  base = rng.random()
  palette = [locations.hsv(base + rng.choice([0.0, 0.5, 0.2]) + 0.05 * rng.standard_normal(),
                  rng.uniform(0.15, 0.85), rng.uniform(0.3, 0.85)) for _ in range(6)]
  kind = "room" if rng.random() < 0.6 else "open"
  ground_colour = locations.hsv(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.7))
  ground_other = locations.hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.15, 0.6))
  ground = locations.Material(
      "plastic" if rng.random() < 0.3 else "diffuse", ground_colour,
      _texture(rng, content, ground_colour, ground_other),
      roughness=float(rng.uniform(0.15, 0.45)))
  walls = ()
  terrain = None
  room_size = (float(rng.uniform(4.5, 7.0)), float(rng.uniform(4.0, 6.5)), 0.0)
  if kind == "room":
    if rng.random() < 0.5:
      # High enough that the main light (at most ~3 units up) stays >= 1.8 units below
      # it: a hot spot closer to the light makes the one indirect bounce noisy (32 dB
      # between sampler seeds at 100 spp with a 3.7-unit ceiling, 40 dB at 5.2).
      room_size = room_size[:2] + (float(rng.uniform(4.8, 5.6)),)
    names = ["back", "left", "right"] + (["ceiling"] if room_size[2] else [])
    walls = []
    for name in names:
      colour = locations.hsv(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.4, 0.8))
      texture = (_texture(rng, content, colour, locations.hsv(0, 0, rng.uniform(0.4, 0.7)))
                 if rng.random() < 0.6 and name != "ceiling" else None)
      walls.append((name, locations.Material("diffuse", colour, texture)))
    walls = tuple(walls)
  else:
    terrain = _terrain(rng)
  objects = []
  for _ in range(rng.integers(3, 7)):
    family = content.objects[rng.integers(len(content.objects))]
    obj = MeshObject(family, object_mesh(rng, family), (0.0, 0.0),
                     float(rng.uniform(0, 360)), _material(rng, content, palette))
    objects.append(locations.place(rng, obj, objects, OBJECT_AREA_RADIUS, 0.1))
  return LocationV2(
      kind=kind, content=content.name, ground=ground,
      ground_scale=float(rng.uniform(3.0, 8.0)), terrain=terrain, walls=walls,
      room_size=room_size, objects=tuple(objects),
      fixed_lights=_fixed_lights(rng, kind, room_size),
      ambient=float(rng.uniform(0.03, 0.08) if kind == "room" else rng.uniform(0.05, 0.12)))


def sample_view(location, rng):
  """Draws one scene of `location`: camera pose (wide range) and a partly re-placed layout."""
  azimuth = np.deg2rad(rng.uniform(-60, 60))
  distance = rng.uniform(3.5, 7.0)
  if location.kind == "room":  # inside the side walls
    distance = min(distance, (location.room_size[1] - 1.0) / max(abs(np.sin(azimuth)), 0.1))
  ceiling = location.room_size[2]
  height = rng.uniform(0.5, min(3.5, ceiling - 0.4) if ceiling else 3.5)
  target = (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.2, 0.9)),
            float(rng.uniform(-0.5, 0.5)))
  origin = (float(target[0] + distance * np.sin(azimuth)), float(height),
            float(target[2] + distance * np.cos(azimuth)))
  objects = locations.relayout(rng, location.objects, area_radius=OBJECT_AREA_RADIUS,
                              min_gap=0.1)
  return locations.View(origin, target, float(rng.uniform(30, 65)), tuple(objects))
