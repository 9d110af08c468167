"""Mitsuba 3 scenes of a synthetic view, and the path-traced renders of its 40 lights.

A `locations.View` becomes two Mitsuba scenes with the same geometry and materials:
  * the *main-light* scene: only the point light (white, unit colour), moved between the
    8 directions with `mi.traverse` (the scene is loaded once);
  * the *fixed* scene: only the lights that never change, the weak constant environment
    (ambient term) and the location's window or lamp.
Light transport is linear in the emitters and Mitsuba's RGB mode transports each channel
independently, so the image under temperature t and direction d is exactly
``rgb(t) * main[d] + fixed`` (per channel), up to Monte Carlo noise. That needs 9 renders
per scene instead of 40 (4.4x fewer samples at equal noise) and gives the 5 temperatures
of a direction identical noise. Moving the light with `mi.traverse` costs ~0.5 ms against
~0.27 s to reload a scene (measured at 256 px). Exposure, clipping and the sRGB curve
come after the sum.

Also the auxiliary maps (AOVs): camera-space depth and normals.

This is the v1 generator's renderer (`generators.py`). v2 (`mitsuba_v2.py`) builds on its
public pieces: `load_mitsuba`, `sensor`, `material_bsdf`, the main light's constants,
`compose`, `srgb_uint8`, `psnr_db` and `camera_frame`.
"""

import dataclasses
import logging
import sys

import numpy as np

from relight_jax.render import illumination
from relight_jax.render import locations

VARIANT = "scalar_rgb"  # llvm_ad_rgb crashed inside LLVM on the CPU machines we have
MAX_DEPTH = 3  # direct light plus one indirect bounce (inter-reflections, colour bleeding)
LIGHT_DISTANCE = 3.6  # main light to the camera's look-at point, scene units
LIGHT_ELEVATION_DEG = 35.0
LIGHT_INTENSITY = 36.0  # radiant intensity of the white main light (W/sr, linear units)
EXPOSURE = 1.0
SAMPLER = "multijitter"  # stratified: ~3 dB less noise than "independent" at equal spp
DEPTH_FAR = 20.0  # depth is camera z-distance / DEPTH_FAR, clipped to 1 (and 1 for sky)
_GROUND_HALF_SIZE = 20.0  # the ground, and the walls' length, span 40 units: no edge in view
_WALL_HEIGHT = 9.0
_WALL_TILE = 4.5


def loading_would_abort_at_exit():
  """True when importing Mitsuba now would crash this process at exit.

  Mitsuba 3.9 imported *after* TensorFlow 2.21 aborts the interpreter at exit with
  "free(): invalid pointer" (the other order is fine); checked on this project's stack.
  """
  return "tensorflow" in sys.modules and "mitsuba" not in sys.modules


def load_mitsuba():
  """Imports Mitsuba and selects VARIANT (at call time: no import-time side effects).

  Every renderer module gets Mitsuba through this, so that all of them render with the
  same variant and warn about the TensorFlow import order.

  Returns:
    the `mitsuba` module.
  """
  if loading_would_abort_at_exit():
    logging.warning("Importing Mitsuba after TensorFlow: this process may abort at exit "
                    "(free(): invalid pointer). Import mitsuba first, or render through "
                    "render_split, which then renders in a subprocess.")
  import mitsuba as mi  # noqa: PLC0415  (heavy, and set_variant is global state)
  if mi.variant() != VARIANT:
    mi.set_variant(VARIANT)
  return mi


def set_thread_count(threads):
  """Caps Mitsuba's render threads in this process (one worker per core in render_split).

  Args:
    threads: number of threads of Dr.Jit's pool, which Mitsuba's scalar renderer uses.
  """
  load_mitsuba()
  import drjit  # noqa: PLC0415  (imported with Mitsuba, at call time)
  drjit.set_thread_count(max(1, int(threads)))


def material_bsdf(mi, material, uv_scale=(1.0, 1.0)):
  """The Mitsuba BSDF dict of a `locations.Material` (v1 and v2 scenes).

  Args:
    mi: the `mitsuba` module (`load_mitsuba`).
    material: a `locations.Material`.
    uv_scale: (u, v) repeats of its texture on top of `material.texture_scale`.

  Returns:
    a two-sided diffuse, rough plastic or rough conductor BSDF dict.
  """
  if material.texture is not None:
    reflectance = {"type": "bitmap", "bitmap": mi.Bitmap(material.texture),
                   "raw": True,  # the albedo maps are already linear
                   "to_uv": mi.ScalarTransform4f().scale(
                       [material.texture_scale * uv_scale[0],
                        material.texture_scale * uv_scale[1], 1.0])}
  else:
    reflectance = {"type": "rgb", "value": list(material.colour)}
  if material.kind == "diffuse":
    bsdf = {"type": "diffuse", "reflectance": reflectance}
  elif material.kind == "plastic":
    bsdf = {"type": "roughplastic", "distribution": "ggx", "alpha": material.roughness,
            "diffuse_reflectance": reflectance}
  elif material.kind == "metal":
    bsdf = {"type": "roughconductor", "material": material.conductor, "distribution": "ggx",
            "alpha": material.roughness, "specular_reflectance": reflectance}
  else:
    raise ValueError(f"unknown material kind {material.kind!r}; expected diffuse, "
                     "plastic or metal")
  # Two-sided, so thin panels and walls seen from behind are not black.
  return {"type": "twosided", "material": bsdf}


def _object_shapes(mi, obj, name):
  """Mitsuba shapes of one object (a dict of name -> shape dict)."""
  transform = mi.ScalarTransform4f
  x, z = obj.position
  width, height, depth = obj.size
  bsdf = material_bsdf(mi, obj.material)
  place = transform().translate([x, 0.0, z]).rotate([0, 1, 0], obj.yaw_deg)
  if obj.shape == "sphere":
    return {name: {"type": "sphere", "to_world": place.translate([0, height / 2, 0])
                   .scale(height / 2), "bsdf": bsdf}}
  if obj.shape in ("box", "panel"):
    return {name: {"type": "cube", "to_world": place.translate([0, height / 2, 0])
                   .scale([width / 2, height / 2, depth / 2]), "bsdf": bsdf}}
  if obj.shape == "cylinder":
    # Mitsuba's cylinder is an open tube along +z: stand it up and close its top.
    radius = width / 2
    return {
        name: {"type": "cylinder", "radius": radius, "p0": [0, 0, 0], "p1": [0, 0, height],
               "to_world": place.rotate([1, 0, 0], -90), "bsdf": bsdf},
        name + "_cap": {"type": "disk", "to_world": place.translate([0, height, 0])
                        .rotate([1, 0, 0], -90).scale(radius), "bsdf": bsdf},
    }
  raise ValueError(f"unknown object shape {obj.shape!r}; expected sphere, box, panel "
                   "or cylinder")


def _geometry(mi, location, view):
  transform = mi.ScalarTransform4f
  ground = dataclasses.replace(location.ground, texture_scale=location.ground_scale)
  # Wall textures repeat every _WALL_TILE units, whatever the wall's aspect ratio.
  wall_uv = (2 * _GROUND_HALF_SIZE / _WALL_TILE, _WALL_HEIGHT / _WALL_TILE)
  shapes = {
      "ground": {"type": "rectangle", "bsdf": material_bsdf(mi, ground),
                 "to_world": transform().rotate([1, 0, 0], -90).scale(_GROUND_HALF_SIZE)},
      "back_wall": {"type": "rectangle", "bsdf": material_bsdf(
                        mi, location.back_wall, wall_uv),
                    "to_world": transform().translate(
                        [0, _WALL_HEIGHT / 2, -location.back_wall_distance])
                    .scale([_GROUND_HALF_SIZE, _WALL_HEIGHT / 2, 1])},
  }
  if location.side_wall is not None:
    sign = np.sign(location.side_wall_x)
    shapes["side_wall"] = {
        "type": "rectangle", "bsdf": material_bsdf(mi, location.side_wall, wall_uv),
        "to_world": transform().translate([location.side_wall_x, _WALL_HEIGHT / 2, 0])
        .rotate([0, 1, 0], -90 * sign).scale([_GROUND_HALF_SIZE, _WALL_HEIGHT / 2, 1])}
  for i, obj in enumerate(view.objects):
    shapes.update(_object_shapes(mi, obj, f"object{i}"))
  return shapes


def _fixed_light_shapes(mi, location, emitting):
  """The window or lamp; an area emitter in the fixed scene, plain geometry otherwise."""
  light = location.fixed_light
  if light is None:
    return {}
  transform = mi.ScalarTransform4f
  # Emitting surfaces reflect nothing (glass, a bulb), so the window and the lamp look
  # exactly the same under all 40 main lights, as VIDIT's fixed lights do.
  black = locations.Material("diffuse", (0.0, 0.0, 0.0))
  emitter = {"type": "area", "radiance": {"type": "rgb", "value": list(light.radiance)}}
  if light.kind == "window":
    (x, y), (width, height) = light.position, light.size
    shape = {"type": "rectangle", "bsdf": material_bsdf(mi, black),
             "to_world": transform().translate([x, y, -location.back_wall_distance + 0.01])
             .scale([width / 2, height / 2, 1])}
    if emitting:
      shape["emitter"] = emitter
    return {"window": shape}
  if light.kind == "lamp":
    (x, z), (radius, post_height) = light.position, light.size
    bulb = {"type": "sphere", "center": [x, post_height + radius, z], "radius": radius,
            "bsdf": material_bsdf(mi, black)}
    if emitting:
      bulb["emitter"] = emitter
    post = locations.Material("diffuse", (0.05, 0.05, 0.05))
    return {"lamp_bulb": bulb,
            "lamp_post": {"type": "cylinder", "radius": 0.025, "p0": [x, 0, z],
                          "p1": [x, post_height, z], "bsdf": material_bsdf(mi, post)}}
  raise ValueError(f"unknown fixed light kind {light.kind!r}; expected window or lamp")


def sensor(mi, view, image_size):
  """The camera of a view (v1 and v2): perspective, box-filtered square film, SAMPLER."""
  return {
      "type": "perspective", "fov": view.fov_deg,
      "to_world": mi.ScalarTransform4f().look_at(origin=list(view.origin),
                                                 target=list(view.target), up=[0, 1, 0]),
      "film": {"type": "hdrfilm", "width": image_size, "height": image_size,
               "rfilter": {"type": "box"}, "pixel_format": "rgb"},
      "sampler": {"type": SAMPLER},
  }


def _scene(mi, location, view, image_size, kind):
  scene = {"type": "scene", "sensor": sensor(mi, view, image_size),
           "integrator": {"type": "path", "max_depth": MAX_DEPTH},
           **_geometry(mi, location, view),
           **_fixed_light_shapes(mi, location, emitting=kind == "fixed")}
  if kind == "main":
    scene["main_light"] = {"type": "point", "position": [0.0, 5.0, 0.0],
                           "intensity": {"type": "rgb", "value": [LIGHT_INTENSITY] * 3}}
  else:
    scene["ambient"] = {"type": "constant",
                        "radiance": {"type": "rgb", "value": [location.ambient] * 3}}
  return mi.load_dict(scene)


def render_transport(location, view, image_size, samples_per_pixel, seed):
  """Linear renders of a view: the main light alone per direction, and the fixed lights.

  Args:
    location: the view's `locations.Location`.
    view: the `locations.View` to render.
    image_size: pixels per side.
    samples_per_pixel: samples per pixel of each main-light render; the fixed-light render
      (one per view) takes twice as many (its area lights are the noisier part).
    seed: sampler seed; each render derives its own from it.

  Returns:
    (main, fixed): float32 [8, S, S, 3] renders under a white main light of intensity
    LIGHT_INTENSITY at directions N..NW, and float32 [S, S, 3] of the fixed lights.
  """
  mi = load_mitsuba()
  main_scene = _scene(mi, location, view, image_size, "main")
  params = mi.traverse(main_scene)
  main = []
  for direction in range(8):
    params["main_light.position"] = illumination.light_position(
        view.origin, view.target, direction, LIGHT_DISTANCE, LIGHT_ELEVATION_DEG).tolist()
    params.update()
    image = mi.render(main_scene, spp=samples_per_pixel,
                      seed=(seed * 16 + direction) % 2**32)
    main.append(np.array(image, dtype=np.float32))  # [S, S, 3]
  fixed_scene = _scene(mi, location, view, image_size, "fixed")
  fixed = np.array(mi.render(fixed_scene, spp=samples_per_pixel,
                             seed=(seed * 16 + 8) % 2**32), dtype=np.float32)
  return np.stack(main), fixed


def compose(main, fixed, temperature_rgbs):
  """Images of all 40 lights from the linear renders, in `relight_jax.data.lights` order.

  Args:
    main: float32 [8, S, S, 3] white main-light renders per direction.
    fixed: float32 [S, S, 3] render of the fixed lights.
    temperature_rgbs: [5, 3] linear colours of the temperatures (luminance 1).

  Returns:
    uint8 [40, S, S, 3] sRGB images; light index = temperature_index * 8 + direction.
  """
  linear = (np.asarray(temperature_rgbs, np.float32)[:, None, None, None, :]
            * main[None] + fixed[None, None])  # [5, 8, S, S, 3]
  images = srgb_uint8(EXPOSURE * linear)
  return images.reshape((40,) + images.shape[2:])


def srgb_uint8(linear):
  """Linear values (clipped to [0, 1]) -> uint8 sRGB (IEC 61966-2-1), as images are stored."""
  linear = np.clip(linear, 0.0, 1.0)
  srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
  return np.round(srgb * 255.0).astype(np.uint8)


def psnr_db(first, second):
  """PSNR (peak 1) per image between two uint8 stacks [N, S, S, 3]: float64 [N]."""
  mse = np.mean((first.astype(np.float64) / 255 - second.astype(np.float64) / 255) ** 2,
                axis=(1, 2, 3))
  return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def camera_frame(view):
  """(origin, forward, right, up) of a view's camera, world space, float64 unit vectors."""
  origin = np.asarray(view.origin)
  forward = np.asarray(view.target) - origin
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 1.0, 0.0])
  right /= np.linalg.norm(right)
  up = np.cross(right, forward)
  return origin, forward, right, up


def render_aovs(location, view, image_size, seed, samples=4):
  """Depth and normal maps of a view (geometry only; no lights involved).

  Args:
    location: the view's `locations.Location`.
    view: the `locations.View`.
    image_size: pixels per side.
    seed: sampler seed.
    samples: jittered 1-sample renders averaged per pixel (anti-aliasing).

  Returns:
    depth: float32 [S, S], camera-space z-distance (along the optical axis) divided by
      DEPTH_FAR and clipped to [0, 1]; pixels that see the sky are 1.
    normals: float32 [S, S, 3] unit shading normals in *camera space*, OpenGL style:
      +x to the image's right, +y up in the image, +z towards the camera; sky is (0, 0, 1).
  """
  mi = load_mitsuba()
  scene = _scene(mi, location, view, image_size, "fixed")
  aov = mi.load_dict({"type": "aov", "aovs": "p:position,n:sh_normal"})
  origin, forward, right, up = camera_frame(view)
  depth_sum = np.zeros((image_size, image_size))
  normal_sum = np.zeros((image_size, image_size, 3))
  hits = np.zeros((image_size, image_size))
  for i in range(samples):
    out = np.array(mi.render(scene, integrator=aov, spp=1, seed=(seed * 16 + i) % 2**32))
    position, normal = out[..., 0:3], out[..., 3:6]  # [S, S, 3] world space
    hit = np.linalg.norm(normal, axis=-1) > 0.5
    z = (position - origin) @ forward
    depth_sum += np.where(hit, z, 0.0)
    normal_sum += np.where(hit[..., None], normal @ np.stack([right, up, -forward], 1), 0.0)
    hits += hit
  depth = np.where(hits > 0, depth_sum / np.maximum(hits, 1) / DEPTH_FAR, 1.0)
  normal_sum += np.where(hits[..., None] < samples, [0.0, 0.0, 1.0], 0.0) * (
      samples - hits)[..., None]
  normals = normal_sum / np.linalg.norm(normal_sum, axis=-1, keepdims=True).clip(1e-8)
  return np.clip(depth, 0.0, 1.0).astype(np.float32), normals.astype(np.float32)
