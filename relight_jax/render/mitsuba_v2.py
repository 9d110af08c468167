"""Mitsuba 3 scenes and renders of a v2 view (`locations_v2`): meshes, rooms, open scenes.

The light transport is v1's (`mitsuba_scene.py`): one main-light scene whose white point
light moves between the 8 directions, one fixed-light scene (ambient sky and the
location's fixed lights), composed per channel into the 40 images; same light distance,
elevation, intensity, exposure and sRGB encoding, so the 40-light convention of
`relight_jax.lights` is unchanged. Every object is a triangle mesh handed to Mitsuba from
its numpy arrays.

Fireflies. Glossy and metallic surfaces at one indirect bounce make caustic paths
(diffuse -> glossy -> light) that a few dozen samples per pixel resolve as isolated very
bright pixels. Two measures keep two sampler seeds >= 35 dB apart: roughness floors in
`locations_v2` (the peak of the GGX lobe is bounded), and `clamp_fireflies`, which caps a
pixel of each linear render at FIREFLY_RATIO times the median of its 3x3 neighbourhood
(plus FIREFLY_FLOOR). The clamp is applied to each linear render before composing, so it
is linear in the light's colour and the 5 temperatures of a direction stay exact scalings.

AOVs (geometry and material only): camera-space depth and normals as v1, the albedo
(diffuse reflectance; a metal's normal-incidence reflectance), and per direction the
*shading* of the main light on a white Lambertian copy of the scene (direct light only:
cosine falloff and cast shadows, no texture, no inter-reflection).
"""

import dataclasses

import numpy as np

from relight_jax.render import illumination
from relight_jax.render import locations
from relight_jax.render import locations_v2
from relight_jax.render import meshes
from relight_jax.render import mitsuba_scene

FIREFLY_RATIO = 4.0
FIREFLY_FLOOR = 0.02  # linear radiance: dark pixels may vary this much before clamping
_GROUND_HALF_SIZE = 20.0
_WALL_TILE = 4.5
TEXELS_AT_256 = 64
_SHADING_SAMPLES = 4  # point light, direct only: noise-free but for pixel anti-aliasing
WHITE = locations.Material("diffuse", (1.0, 1.0, 1.0))


def clamp_fireflies(image):
  """Caps outlier pixels of a linear render [S, S, 3] (see the module docstring)."""
  luminance = image @ np.array([0.2126, 0.7152, 0.0722], np.float32)
  padded = np.pad(luminance, 1, mode="edge")
  size = luminance.shape[0]
  windows = np.stack([padded[i:i + size, j:j + luminance.shape[1]]
                      for i in range(3) for j in range(3)])
  cap = FIREFLY_RATIO * np.median(windows, axis=0) + FIREFLY_FLOOR
  scale = np.where(luminance > cap, cap / np.maximum(luminance, 1e-12), 1.0)
  return (image * scale[..., None]).astype(np.float32)


def _prefiltered(material, image_size):
  """`material` with its texture box-filtered for renders of `image_size` px.

  Mitsuba's bitmap texture filters bilinearly, without mip-maps: a texture much finer
  than a pixel's footprint makes every sample see another texel, i.e. noise that no sample
  count at these budgets averages away. Averaging texels down to about a texel per pixel
  at a typical footprint (TEXELS_AT_256 texels per texture at 256 px) is what a mip-map
  would do.
  """
  texture = material.texture
  if texture is None:
    return material
  factor = 1
  while (texture.shape[0] // (2 * factor) >= TEXELS_AT_256 * image_size / 256
         and texture.shape[0] % (2 * factor) == 0):
    factor *= 2
  if factor == 1:
    return material
  size = texture.shape[0] // factor
  texture = texture.reshape(size, factor, size, factor, 3).mean((1, 3), dtype=np.float32)
  return dataclasses.replace(material, texture=texture)


def _albedo_material(material):
  """The diffuse stand-in of `material` whose reflectance is its albedo (AOV scenes)."""
  if material.kind == "metal":
    return locations.Material("diffuse", locations_v2.CONDUCTOR_F0[material.conductor])
  return dataclasses.replace(material, kind="diffuse")


def _mesh_shape(mi, mesh, name, bsdf):
  """A Mitsuba Mesh from numpy arrays, with smooth vertex normals and uvs."""
  props = mi.Properties()
  props["bsdf"] = mi.load_dict(bsdf)
  shape = mi.Mesh(name, len(mesh.vertices), len(mesh.faces), props=props,
                  has_vertex_normals=True, has_vertex_texcoords=True)
  params = mi.traverse(shape)
  params["vertex_positions"] = mesh.vertices.ravel()
  params["faces"] = mesh.faces.ravel()
  params["vertex_texcoords"] = mesh.uvs.ravel()
  params.update()
  shape.recompute_vertex_normals()
  return shape


def _geometry(mi, location, view, material_of):
  """Shapes of the ground or terrain, walls and objects, materials mapped by `material_of`."""
  transform = mi.ScalarTransform4f
  bsdf = lambda material, uv=(1.0, 1.0): mitsuba_scene._bsdf(  # noqa: SLF001
      mi, material_of(material), uv)
  ground = dataclasses.replace(location.ground, texture_scale=location.ground_scale)
  shapes = {}
  if location.terrain is not None:
    shapes["ground"] = _mesh_shape(mi, location.terrain, "ground", bsdf(ground))
  else:
    shapes["ground"] = {"type": "rectangle", "bsdf": bsdf(ground),
                        "to_world": transform().rotate([1, 0, 0], -90).scale(_GROUND_HALF_SIZE)}
  back, half_width, ceiling = location.room_size
  height = ceiling or 9.0
  for name, material in location.walls:
    if name == "ceiling":
      uv = (2 * _GROUND_HALF_SIZE / _WALL_TILE,) * 2
      to_world = transform().translate([0, ceiling, 0]).rotate([1, 0, 0], 90).scale(
          _GROUND_HALF_SIZE)
    elif name == "back":
      uv = (2 * _GROUND_HALF_SIZE / _WALL_TILE, height / _WALL_TILE)
      to_world = transform().translate([0, height / 2, -back]).scale(
          [_GROUND_HALF_SIZE, height / 2, 1])
    else:
      sign = -1.0 if name == "left" else 1.0
      uv = (2 * _GROUND_HALF_SIZE / _WALL_TILE, height / _WALL_TILE)
      to_world = transform().translate([sign * half_width, height / 2, 0]).rotate(
          [0, 1, 0], -90 * sign).scale([_GROUND_HALF_SIZE, height / 2, 1])
    shapes[f"wall_{name}"] = {"type": "rectangle", "bsdf": bsdf(material, uv),
                              "to_world": to_world}
  for i, obj in enumerate(view.objects):
    placed = meshes.transformed(obj.mesh, yaw_deg=obj.yaw_deg,
                                translate=(obj.position[0], 0.0, obj.position[1]))
    shapes[f"object{i}"] = _mesh_shape(mi, placed, f"object{i}", bsdf(obj.material))
  return shapes


def _fixed_light_shapes(mi, location, emitting, material_of):
  """Windows, lamps, panels (emitting in the fixed scene, black geometry otherwise); spots."""
  transform = mi.ScalarTransform4f
  # Emitting surfaces reflect nothing, so they look the same under all 40 main lights.
  black = mitsuba_scene._bsdf(mi, locations.Material("diffuse", (0.0, 0.0, 0.0)))  # noqa: SLF001
  shapes = {}
  for i, light in enumerate(location.fixed_lights):
    emitter = {"type": "area", "radiance": {"type": "rgb", "value": list(light.radiance)}}
    x, y, z = light.position
    if light.kind == "window":
      shape = {"type": "rectangle", "bsdf": black, "to_world": transform().translate(
          [x, y, z]).scale([light.size[0] / 2, light.size[1] / 2, 1])}
    elif light.kind == "panel":
      shape = {"type": "rectangle", "bsdf": black, "to_world": transform().translate(
          [x, y, z]).rotate([1, 0, 0], 90).scale([light.size[0] / 2, light.size[1] / 2, 1])}
    elif light.kind == "lamp":
      shape = {"type": "sphere", "center": [x, y + light.size[0], z],
               "radius": light.size[0], "bsdf": black}
      post = locations.Material("diffuse", (0.05, 0.05, 0.05))
      shapes[f"fixed{i}_post"] = {"type": "cylinder", "radius": 0.025, "p0": [x, 0, z],
                                  "p1": [x, y, z], "bsdf": mitsuba_scene._bsdf(  # noqa: SLF001
                                      mi, material_of(post))}
    elif light.kind == "spot":
      if emitting:
        shapes[f"fixed{i}"] = {
            "type": "spot", "cutoff_angle": light.size[0], "beam_width": light.size[1],
            "intensity": {"type": "rgb", "value": list(light.radiance)},
            "to_world": transform().look_at(origin=list(light.position),
                                            target=list(light.target), up=[0, 1, 0])}
      continue
    else:
      raise ValueError(f"unknown fixed light kind {light.kind!r}; expected window, lamp, "
                       "panel or spot")
    if emitting:
      shape["emitter"] = emitter
    shapes[f"fixed{i}"] = shape
  return shapes


def _scene(mi, location, view, image_size, kind, material_of=None, integrator=None):
  """kind 'main' (the point light only) or 'fixed' (ambient sky and fixed lights)."""
  if material_of is None:
    material_of = lambda material: _prefiltered(material, image_size)
  scene = {"type": "scene", "sensor": mitsuba_scene.sensor(mi, view, image_size),
           "integrator": integrator or {"type": "path", "max_depth": mitsuba_scene.MAX_DEPTH},
           **_geometry(mi, location, view, material_of),
           **_fixed_light_shapes(mi, location, kind == "fixed", material_of)}
  if kind == "main":
    scene["main_light"] = {"type": "point", "position": [0.0, 5.0, 0.0],
                           "intensity": {"type": "rgb",
                                         "value": [mitsuba_scene.LIGHT_INTENSITY] * 3}}
  else:
    scene["ambient"] = {"type": "constant",
                        "radiance": {"type": "rgb", "value": [location.ambient] * 3}}
  return mi.load_dict(scene)


def _main_light_renders(mi, scene, view, spp, seed):
  """Renders `scene` with its point light at each of the 8 directions: [8, S, S, 3]."""
  params = mi.traverse(scene)
  renders = []
  for direction in range(8):
    params["main_light.position"] = illumination.light_position(
        view.origin, view.target, direction, mitsuba_scene.LIGHT_DISTANCE,
        mitsuba_scene.LIGHT_ELEVATION_DEG).tolist()
    params.update()
    renders.append(np.array(mi.render(scene, spp=spp, seed=(seed * 16 + direction) % 2**32),
                            dtype=np.float32))
  return np.stack(renders)


def render_transport(location, view, image_size, samples_per_pixel, seed):
  """Linear renders (main light per direction, fixed lights), fireflies clamped.

  Returns:
    (main, fixed): float32 [8, S, S, 3] and [S, S, 3], as `mitsuba_scene.render_transport`.
  """
  mi = mitsuba_scene._mitsuba()  # noqa: SLF001
  main_scene = _scene(mi, location, view, image_size, "main")
  main = _main_light_renders(mi, main_scene, view, samples_per_pixel, seed)
  fixed_scene = _scene(mi, location, view, image_size, "fixed")
  # Unlike v1's, the fixed render is the quiet part here (the main light's indirect
  # bounce inside rooms dominates the noise): half the samples.
  fixed = np.array(mi.render(fixed_scene, spp=max(16, samples_per_pixel // 2),
                             seed=(seed * 16 + 8) % 2**32), dtype=np.float32)
  return np.stack([clamp_fireflies(image) for image in main]), clamp_fireflies(fixed)


def render_aovs(location, view, image_size, seed, samples=4):
  """Depth, normals, albedo and per-direction shading of a view.

  Returns:
    depth: float32 [S, S], camera z-distance / mitsuba_scene.DEPTH_FAR in [0, 1] (sky 1).
    normals: float32 [S, S, 3] unit camera-space shading normals (+x right, +y up, +z
      towards the camera), turned to face the camera; sky (0, 0, 1).
    albedo: float32 [S, S, 3] linear diffuse reflectance in [0, 1] (metals: their
      normal-incidence reflectance; fixed lights' emitting surfaces 0; sky 0).
    shading: float32 [8, S, S] per direction N..NW, the linear radiance of a white
      Lambertian copy of the scene lit by the main light alone (direct light only), times
      mitsuba_scene.EXPOSURE, clipped to [0, 1]: 0 in cast and attached shadows.
  """
  mi = mitsuba_scene._mitsuba()  # noqa: SLF001
  aov = {"type": "aov", "aovs": "p:position,n:sh_normal,a:albedo"}
  scene = _scene(mi, location, view, image_size, "fixed",
                 lambda material: _albedo_material(_prefiltered(material, image_size)),
                 integrator=aov)
  origin, forward, right, up = mitsuba_scene.camera_frame(view)
  to_camera = np.stack([right, up, -forward], 1)
  depth_sum = np.zeros((image_size, image_size))
  normal_sum = np.zeros((image_size, image_size, 3))
  albedo_sum = np.zeros((image_size, image_size, 3))
  hits = np.zeros((image_size, image_size))
  for i in range(samples):
    out = np.array(mi.render(scene, spp=1, seed=(seed * 16 + i) % 2**32))
    position, normal, albedo = out[..., 0:3], out[..., 3:6], out[..., 6:9]
    hit = np.linalg.norm(normal, axis=-1) > 0.5
    camera_normal = normal @ to_camera
    camera_normal *= np.where(camera_normal[..., 2:] < 0, -1.0, 1.0)  # two-sided surfaces
    depth_sum += np.where(hit, (position - origin) @ forward, 0.0)
    normal_sum += np.where(hit[..., None], camera_normal, 0.0)
    albedo_sum += np.where(hit[..., None], albedo, 0.0)
    hits += hit
  depth = np.where(hits > 0, depth_sum / np.maximum(hits, 1) / mitsuba_scene.DEPTH_FAR, 1.0)
  normal_sum += np.where(hits[..., None] < samples, [0.0, 0.0, 1.0], 0.0) * (
      samples - hits)[..., None]
  normals = normal_sum / np.linalg.norm(normal_sum, axis=-1, keepdims=True).clip(1e-8)
  albedo = albedo_sum / samples
  white = _scene(mi, location, view, image_size, "main", lambda material: WHITE,
                 integrator={"type": "path", "max_depth": 2})
  shading = _main_light_renders(mi, white, view, _SHADING_SAMPLES, seed + 7).mean(-1)
  return (np.clip(depth, 0.0, 1.0).astype(np.float32), normals.astype(np.float32),
          np.clip(albedo, 0.0, 1.0).astype(np.float32),
          np.clip(mitsuba_scene.EXPOSURE * shading, 0.0, 1.0).astype(np.float32))
