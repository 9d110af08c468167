"""Mitsuba 3 scenes and renders of a v2 view (`locations_v2`): meshes, rooms, open scenes.

The v2 generator's renderer (`generators.py`).

The light transport is v1's (`mitsuba_scene.py`): one main-light scene whose white point
light moves between the 8 directions, one fixed-light scene (ambient sky and the
location's fixed lights), composed per channel into the 40 images; same light distance,
elevation, intensity, exposure and sRGB encoding, so the 40-light convention of
`relight_jax.data.lights` is unchanged. Every object is a triangle mesh handed to Mitsuba from
its numpy arrays.

Fireflies. Glossy and metallic surfaces at one indirect bounce make caustic paths
(diffuse -> glossy -> light) that a few dozen samples per pixel resolve as isolated very
bright pixels. Two measures keep two sampler seeds >= 35 dB apart: roughness floors in
`locations_v2` (the peak of the GGX lobe is bounded), and `clamp_fireflies`, which caps a
pixel of each linear render at FIREFLY_RATIO times the median of its 3x3 neighbourhood
(plus FIREFLY_FLOOR). The clamp is applied to each linear render before composing, so it
is linear in the light's colour and the 5 temperatures of a direction stay exact scalings.

Adaptive samples. Some views stay noisy without fireflies (a near-mirror metal close to
the camera reflecting the room's indirect light). Every render is made as two independent
halves of the samples; the PSNR between the 40 images composed from each half predicts
the PSNR between two whole renders of different seeds (the difference of two halves has
twice the variance of the difference of two wholes: + 10 log10 2 dB). Directions whose
prediction is below NOISE_TARGET_DB get as many samples again, in both halves, until it
is met or MAX_SAMPLE_FACTOR times the spec's samples are spent; the fixed-light render,
which is in all 40 images (a lamp inside a room makes it as noisy as a direction), is
refined the same way until the images that differ in it alone predict FIXED_MARGIN_DB
better (a quarter of the noise). The result is the average of both halves. Scenes that
meet the target at once cost what a single render would. The prediction is about 1 dB
optimistic (half renders are clamped a little more), hence the target above 35 dB.

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
NOISE_TARGET_DB = 37.5  # predicted seed-to-seed PSNR; the shipped bound is 35 dB
FIXED_MARGIN_DB = 6.0  # the fixed render's own prediction must be this much better
MAX_SAMPLE_FACTOR = 8
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


def clamp_fireflies_all(images):
  """`clamp_fireflies` of each image of a stack [N, S, S, 3]."""
  return np.stack([clamp_fireflies(image) for image in images])


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
  bsdf = lambda material, uv=(1.0, 1.0): mitsuba_scene.material_bsdf(
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
  black = mitsuba_scene.material_bsdf(mi, locations.Material("diffuse", (0.0, 0.0, 0.0)))
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
                                  "p1": [x, y, z], "bsdf": mitsuba_scene.material_bsdf(
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


def _main_light_renders(mi, scene, view, spp, seed, directions=range(8), seeds=None):
  """Renders `scene` with its point light at each of `directions`: [len, S, S, 3].

  `seeds` (one per direction) replaces the default per-direction seeds.
  """
  params = mi.traverse(scene)
  renders = []
  for i, direction in enumerate(directions):
    params["main_light.position"] = illumination.light_position(
        view.origin, view.target, direction, mitsuba_scene.LIGHT_DISTANCE,
        mitsuba_scene.LIGHT_ELEVATION_DEG).tolist()
    params.update()
    render_seed = (seed * 16 + direction) % 2**32 if seeds is None else seeds[i]
    renders.append(np.array(mi.render(scene, spp=spp, seed=render_seed), dtype=np.float32))
  return np.stack(renders)


def _render_seed(seed, round_, half, render):
  """A Mitsuba seed per (scene seed, refinement round, half, render): no two coincide."""
  return int(np.random.SeedSequence([seed, round_, half, render]).generate_state(1)[0])


def multijitter_count(samples, down=False):
  """A sample count Mitsuba's multijitter sampler renders as asked, near `samples`.

  It stratifies into an x by y grid, x = ceil(sqrt(n)), y = ceil(n / x), and renders x * y
  (with a warning when that differs): asking for exactly that keeps the averaging weights
  true and the log quiet. `down`: the largest such count <= `samples` instead.
  """
  def rendered(n):
    x = int(np.ceil(np.sqrt(n)))
    return x * int(np.ceil(n / x))
  if not down:
    return rendered(samples)
  return max(n for n in range(1, samples + 1) if rendered(n) == n)


def predicted_psnr_db(main_halves, fixed_halves):
  """Per direction, the predicted PSNR (dB) of two whole renders of different seeds.

  Args:
    main_halves: float32 [2, 8, S, S, 3], the main-light renders of each half.
    fixed_halves: float32 [2, S, S, 3], the fixed-light render of each half.

  Returns:
    float64 [8]: over a direction's 5 temperatures, the minimum PSNR (peak 1) between the
    uint8 images composed from each (clamped) half, + 10 log10 2.
  """
  images = [mitsuba_scene.compose(clamp_fireflies_all(main), clamp_fireflies(fixed),
                                  illumination.light_rgbs())
            for main, fixed in zip(main_halves, fixed_halves, strict=True)]
  psnr = mitsuba_scene.psnr_db(*images).reshape(5, 8)  # temperature, direction
  return psnr.min(0) + 10 * np.log10(2.0)


def fixed_psnr_db(main_halves, fixed_halves):
  """The predicted PSNR (dB) of two whole renders that differ in the fixed render only.

  As `predicted_psnr_db`, minimum over the 40 images, both halves composed with the first
  half's main-light renders.
  """
  main = clamp_fireflies_all(main_halves[0])
  images = [mitsuba_scene.compose(main, clamp_fireflies(fixed), illumination.light_rgbs())
            for fixed in fixed_halves]
  return float(mitsuba_scene.psnr_db(*images).min() + 10 * np.log10(2.0))


def adaptive_transport(location, view, image_size, samples_per_pixel, seed):
  """Linear renders with as many samples as the noise target needs (module docstring).

  Returns:
    (main, fixed, samples): float32 [8, S, S, 3] and [S, S, 3] as `render_transport`, and
    int [8] the samples per pixel each direction's main-light render received.
  """
  mi = mitsuba_scene.load_mitsuba()
  main_scene = _scene(mi, location, view, image_size, "main")
  fixed_scene = _scene(mi, location, view, image_size, "fixed")
  half = multijitter_count(max(1, samples_per_pixel // 2), down=True)

  def render(round_, spp, fixed_spp, directions):
    main = fixed = None
    if directions:
      main = np.stack([_main_light_renders(
          mi, main_scene, view, spp, seed, directions,
          [_render_seed(seed, round_, h, d) for d in directions]) for h in range(2)])
    if fixed_spp:
      fixed = np.stack([np.array(mi.render(fixed_scene, spp=fixed_spp,
                                           seed=_render_seed(seed, round_, h, 8)), np.float32)
                        for h in range(2)])
    return main, fixed

  main, fixed = render(0, half, half, list(range(8)))
  samples = np.full(8, half)
  fixed_samples = half
  round_ = 0
  while True:
    # The fixed render is in all 40 images: it may take a quarter of the noise budget.
    fixed_noisy = (fixed_psnr_db(main, fixed) < NOISE_TARGET_DB + FIXED_MARGIN_DB
                   and fixed_samples < MAX_SAMPLE_FACTOR * half)
    noisy = [d for d, db in enumerate(predicted_psnr_db(main, fixed))
             if db < NOISE_TARGET_DB and samples[d] < MAX_SAMPLE_FACTOR * half]
    if not noisy and not fixed_noisy:
      break
    round_ += 1
    # As many samples again for the noisy directions (and the fixed render if noisy).
    spp = multijitter_count(int(samples[noisy].max())) if noisy else 0
    more_fixed_samples = multijitter_count(fixed_samples) if fixed_noisy else 0
    more_main, more_fixed = render(round_, spp, more_fixed_samples, noisy)
    for i, d in enumerate(noisy):
      main[:, d] = (main[:, d] * samples[d] + more_main[:, i] * spp) / (samples[d] + spp)
      samples[d] += spp
    if fixed_noisy:
      fixed = ((fixed * fixed_samples + more_fixed * more_fixed_samples)
               / (fixed_samples + more_fixed_samples))
      fixed_samples += more_fixed_samples
  return (clamp_fireflies_all(main.mean(0)), clamp_fireflies(fixed.mean(0)), 2 * samples)


def render_transport(location, view, image_size, samples_per_pixel, seed):
  """Linear renders (main light per direction, fixed lights), fireflies clamped.

  `samples_per_pixel` is the least each render receives (see `adaptive_transport`).

  Returns:
    (main, fixed): float32 [8, S, S, 3] and [S, S, 3], as `mitsuba_scene.render_transport`.
  """
  main, fixed, _ = adaptive_transport(location, view, image_size, samples_per_pixel, seed)
  return main, fixed


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
  mi = mitsuba_scene.load_mitsuba()
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
