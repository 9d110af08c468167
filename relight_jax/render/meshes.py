"""Triangle meshes generated in numpy for the v2 synthetic locations.

VIDIT's Unreal scenes hold curved, thin and composite objects (vases, furniture, rocks,
railings, terrain), not only boxes and spheres; how light meets such geometry (self
shadowing, thin cast shadows, concave inter-reflections) is what a relighting model has to
learn. Every generator here returns a `Mesh` in its own object frame (y up, standing on
y = 0, centred on the y axis), deterministic from its arguments (and a numpy Generator
where there is randomness); `mitsuba_v2.py` turns a mesh into a Mitsuba `Mesh` from the
arrays directly (no file is written).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays
class Mesh:
  """Vertices float32 [V, 3], triangles uint32 [F, 3] (any winding), uvs float32 [V, 2]."""
  vertices: np.ndarray
  faces: np.ndarray
  uvs: np.ndarray

  def __post_init__(self):
    if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
      raise ValueError(f"mesh vertices must be [V, 3], got {self.vertices.shape}")
    if self.uvs.shape != (self.vertices.shape[0], 2):
      raise ValueError(f"mesh uvs must be [{self.vertices.shape[0]}, 2], got {self.uvs.shape}")
    if self.faces.size and (self.faces.max() >= len(self.vertices) or self.faces.min() < 0):
      raise ValueError(f"mesh faces index {int(self.faces.max())} but there are only "
                       f"{len(self.vertices)} vertices")

  def bounds(self):
    """(min [3], max [3]) of the vertices."""
    return self.vertices.min(0), self.vertices.max(0)


def _mesh(vertices, faces, uvs):
  return Mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32),
              np.asarray(uvs, np.float32))


def _grid_faces(rows, columns):
  """Two triangles per cell of a (rows x columns) vertex grid stored row-major."""
  r, c = np.meshgrid(np.arange(rows - 1), np.arange(columns - 1), indexing="ij")
  a = (r * columns + c).ravel()
  b, d = a + 1, a + columns
  return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, d + 1], 1)])


def merge(meshes):
  """One mesh holding all of `meshes` (faces re-indexed)."""
  offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
  return _mesh(np.concatenate([m.vertices for m in meshes]),
               np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
               np.concatenate([m.uvs for m in meshes]))


def transformed(mesh, scale=(1.0, 1.0, 1.0), yaw_deg=0.0, translate=(0.0, 0.0, 0.0)):
  """`mesh` scaled per axis, turned about +y by `yaw_deg`, then moved by `translate`."""
  angle = np.deg2rad(yaw_deg)
  rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                       [-np.sin(angle), 0, np.cos(angle)]])
  vertices = (mesh.vertices * np.asarray(scale)) @ rotation.T + np.asarray(translate)
  return _mesh(vertices, mesh.faces, mesh.uvs)


def box(size, centre=(0.0, 0.0, 0.0)):
  """An axis-aligned box; 4 vertices per face so that smooth normals stay flat."""
  half = np.asarray(size, np.float64) / 2
  vertices, faces, uvs = [], [], []
  for axis in range(3):
    for sign in (-1.0, 1.0):
      u_axis, v_axis = [a for a in range(3) if a != axis]
      corners = []
      for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        point = np.zeros(3)
        point[axis], point[u_axis], point[v_axis] = sign * half[axis], du * half[u_axis], \
            dv * half[v_axis]
        corners.append(point + np.asarray(centre))
      base = len(vertices)
      vertices += corners
      uvs += [(0, 0), (1, 0), (1, 1), (0, 1)]
      faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
  return _mesh(vertices, faces, uvs)


def revolution(radii, heights, segments=48):
  """Surface of revolution of a profile (vases, bottles, bowls, lamp shades, columns).

  Args:
    radii: [P] distances from the y axis along the profile (0 closes the surface).
    heights: [P] heights of the profile points, increasing or not.
    segments: vertices around the axis.
  """
  radii, heights = np.asarray(radii, np.float64), np.asarray(heights, np.float64)
  theta = np.linspace(0.0, 2 * np.pi, segments + 1)  # seam vertices duplicated (uv wrap)
  x = radii[:, None] * np.cos(theta)[None]
  z = radii[:, None] * np.sin(theta)[None]
  y = np.broadcast_to(heights[:, None], x.shape)
  vertices = np.stack([x, y, z], -1).reshape(-1, 3)
  arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(radii), np.diff(heights)))])
  u, v = np.meshgrid(theta / (2 * np.pi), arc / max(arc[-1], 1e-9), indexing="xy")
  return _mesh(vertices, _grid_faces(len(radii), segments + 1),
               np.stack([u.ravel(), v.ravel()], -1))


def extrusion(polygon, height):
  """A closed prism: `polygon` [N, 2] (x, z) extruded from y = 0 to `height`, capped."""
  polygon = np.asarray(polygon, np.float64)
  count = len(polygon)
  ring = np.concatenate([polygon, polygon[:1]])  # duplicated seam for the uvs
  perimeter = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ring, axis=0), axis=1))])
  side_vertices = [np.column_stack([ring[:, 0], np.full(count + 1, y), ring[:, 1]])
                   for y in (0.0, height)]
  side = _mesh(np.concatenate(side_vertices),
               _grid_faces(2, count + 1),
               np.column_stack([np.tile(perimeter / perimeter[-1], 2),
                                np.repeat([0.0, 1.0], count + 1)]))
  # Caps fanned from the centroid: right for the star-shaped outlines drawn here.
  caps = []
  centroid = polygon.mean(0)
  span = np.ptp(polygon, axis=0).max()
  for y in (0.0, height):
    vertices = np.column_stack([np.concatenate([polygon[:, 0], [centroid[0]]]),
                                np.full(count + 1, y),
                                np.concatenate([polygon[:, 1], [centroid[1]]])])
    faces = [(i, (i + 1) % count, count) for i in range(count)]
    uvs = (vertices[:, [0, 2]] - polygon.min(0)) / span
    caps.append(_mesh(vertices, faces, uvs))
  return merge([side] + caps)


def tube(curve, radius, sides=12, closed=False):
  """A tube of `radius` around a 3-D polyline `curve` [N, 3] (knots, rods, pipes, arches)."""
  curve = np.asarray(curve, np.float64)
  if closed:
    curve = np.concatenate([curve, curve[:1]])
  tangent = np.gradient(curve, axis=0)
  if closed:
    tangent[0] = tangent[-1] = curve[1] - curve[-2]
  tangent /= np.linalg.norm(tangent, axis=1, keepdims=True).clip(1e-12)
  # Parallel transport of a normal along the curve: no twisting seams.
  reference = np.array([0.0, 1.0, 0.0]) if abs(tangent[0, 1]) < 0.9 else np.array([1.0, 0, 0])
  normal = np.cross(tangent[0], reference)
  normal /= np.linalg.norm(normal)
  normals = []
  for t in tangent:
    normal = normal - t * (normal @ t)
    normal /= max(np.linalg.norm(normal), 1e-12)
    normals.append(normal)
  normals = np.asarray(normals)
  binormals = np.cross(tangent, normals)
  phi = np.linspace(0.0, 2 * np.pi, sides + 1)
  ring = (np.cos(phi)[None, :, None] * normals[:, None] +
          np.sin(phi)[None, :, None] * binormals[:, None])  # [N, sides + 1, 3]
  vertices = (curve[:, None] + radius * ring).reshape(-1, 3)
  arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
  u, v = np.meshgrid(phi / (2 * np.pi), arc / max(2 * np.pi * radius, 1e-9), indexing="xy")
  return _mesh(vertices, _grid_faces(len(curve), sides + 1), np.stack([u.ravel(), v.ravel()], -1))


def torus(major_radius, minor_radius, segments=48, sides=16):
  """A torus lying on the ground (its axis vertical), resting on y = 0."""
  theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
  circle = np.stack([major_radius * np.cos(theta), np.full_like(theta, minor_radius),
                     major_radius * np.sin(theta)], -1)
  return tube(circle, minor_radius, sides, closed=True)


def torus_knot(p, q, radius, tube_radius, segments=160, sides=12):
  """A (p, q) torus knot standing upright, its lowest point on y = 0."""
  t = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
  r = radius * (0.6 + 0.4 * np.cos(q * t))
  curve = np.stack([r * np.cos(p * t), radius * 0.4 * np.sin(q * t), r * np.sin(p * t)], -1)
  curve = curve[:, [0, 2, 1]]  # knot plane vertical: it shows its crossings to the camera
  curve[:, 1] -= curve[:, 1].min() - tube_radius
  return tube(curve, tube_radius, sides, closed=True)


def rock(rng, radius, detail=24, roughness=0.25):
  """A displaced sphere (a rock, a boulder), flattened at the bottom and set on y = 0."""
  theta = np.linspace(0.0, np.pi, detail + 1)
  phi = np.linspace(0.0, 2 * np.pi, 2 * detail + 1)
  t, p = np.meshgrid(theta, phi, indexing="ij")
  direction = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1)
  # Low-frequency bumps from a few random spherical waves, continuous across the seam.
  offset = np.zeros(t.shape)
  for octave in range(4):
    waves = rng.normal(size=(3, 3))
    amplitude = roughness / (1.6 ** octave)
    for wave in waves:
      offset += amplitude * np.sin((2 + 2 * octave) * direction @ (wave / np.linalg.norm(wave))
                                   + rng.uniform(0, 2 * np.pi)) / len(waves)
  points = direction * (radius * (1.0 + offset))[..., None]
  points[..., 1] *= rng.uniform(0.55, 0.9)  # rocks are wider than tall
  points[..., 1] = np.maximum(points[..., 1], points[..., 1].min() * 0.7)  # a flat base
  points[..., 1] -= points[..., 1].min()
  u, v = np.meshgrid(phi / (2 * np.pi), theta / np.pi, indexing="xy")
  return _mesh(points.reshape(-1, 3), _grid_faces(detail + 1, 2 * detail + 1),
               np.stack([u.ravel(), v.ravel()], -1))


def heightfield(heights, half_size):
  """A terrain grid over [-half_size, half_size]^2 with `heights` [R, R] (y of each vertex)."""
  rows = heights.shape[0]
  coords = np.linspace(-half_size, half_size, rows)
  x, z = np.meshgrid(coords, coords, indexing="xy")
  vertices = np.stack([x, heights, z], -1).reshape(-1, 3)
  uvs = np.stack([(x + half_size) / (2 * half_size), (z + half_size) / (2 * half_size)], -1)
  return _mesh(vertices, _grid_faces(rows, rows), uvs.reshape(-1, 2))


def table(width, depth, height, top=0.05, leg=0.06):
  """A table: a top on four legs."""
  legs = [box((leg, height - top, leg), (sx * (width / 2 - leg), (height - top) / 2,
                                         sz * (depth / 2 - leg)))
          for sx in (-1, 1) for sz in (-1, 1)]
  return merge([box((width, top, depth), (0.0, height - top / 2, 0.0))] + legs)


def chair(width, seat_height, back_height, leg=0.045):
  """A chair: a seat on four legs and a back rest of two posts and a board."""
  seat = table(width, width, seat_height, top=0.05, leg=leg)
  posts = [box((leg, back_height, leg), (sx * (width / 2 - leg / 2), seat_height +
                                         back_height / 2, -width / 2 + leg / 2))
           for sx in (-1, 1)]
  board = box((width, back_height * 0.4, 0.03),
              (0.0, seat_height + back_height * 0.75, -width / 2 + leg / 2))
  return merge([seat, board] + posts)


def shelf(width, depth, height, boards, side=0.04):
  """An open shelf: two sides and `boards` horizontal boards (a book case without books)."""
  parts = [box((side, height, depth), (sx * (width / 2 - side / 2), height / 2, 0.0))
           for sx in (-1, 1)]
  for level in np.linspace(0.03, height - 0.03, boards):
    parts.append(box((width - 2 * side, 0.03, depth), (0.0, float(level), 0.0)))
  parts.append(box((width, height, 0.015), (0.0, height / 2, -depth / 2)))  # back panel
  return merge(parts)


def railing(length, height, bars, radius=0.02):
  """A thin fence: a top rail on `bars` vertical rods (thin cast shadows)."""
  xs = np.linspace(-length / 2, length / 2, bars)
  rods = [tube(np.array([[x, 0.0, 0.0], [x, height, 0.0]]), radius, 8) for x in xs]
  rail = tube(np.array([[-length / 2, height, 0.0], [length / 2, height, 0.0]]), radius * 1.5, 8)
  return merge(rods + [rail])


def arch(width, height, radius=0.05, segments=40):
  """A thin arch (a hoop standing on the ground): a half-ellipse tube."""
  t = np.linspace(0.0, np.pi, segments)
  curve = np.stack([width / 2 * np.cos(t), height * np.sin(t), np.zeros_like(t)], -1)
  return tube(curve, radius, 10)
