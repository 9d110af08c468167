"""Tests of the v2 synthetic content (meshes, locations_v2, mitsuba_v2, photographs).

Checks that meshes are well formed and stand on the ground, that locations are
deterministic and that the held-out content never shares an object family, conductor,
photograph or pattern with the training content, that the firefly clamp removes outliers
only, and on rendered v2 scenes: the noise bound with glossy and metallic objects, the AOVs'
conventions (albedo of a known material, shading follows the light), fixed lights fixed,
and the stored light transport recomposes the images.
"""

import dataclasses
import functools

import numpy as np
import pytest

from relight_jax.data import lights
from relight_jax.render import illumination
from relight_jax.render import locations
from relight_jax.render import locations_v2
from relight_jax.render import meshes
from relight_jax.render import mitsuba_scene
from relight_jax.render import mitsuba_v2
from relight_jax.render import noise
from relight_jax.render import synthetic
from relight_jax.render import textures

V2_TINY = synthetic.SPECS["synthetic_v2_tiny"]
_ALL_FAMILIES = locations_v2.TRAIN_CONTENT.objects + locations_v2.HELDOUT_CONTENT.objects


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
  return 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("family", _ALL_FAMILIES)
def test_object_meshes_are_valid_and_stand_on_the_ground(family):
  mesh = locations_v2.object_mesh(np.random.default_rng(3), family)
  assert mesh.faces.shape[1] == 3 and mesh.faces.max() < len(mesh.vertices)
  assert np.all(np.isfinite(mesh.vertices)) and np.all(np.isfinite(mesh.uvs))
  low, high = mesh.bounds()
  assert -0.06 < low[1] < 1e-3, low  # on y = 0 (tube ends may sink by their radius)
  assert 0.1 < high[1] < 2.0 and np.all(high[[0, 2]] - low[[0, 2]] < 2.5)
  corners = mesh.vertices[mesh.faces]
  area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                       corners[:, 2] - corners[:, 0]), axis=1)
  assert area.sum() > 0.05 and np.mean(area > 1e-9) > 0.95
  again = locations_v2.object_mesh(np.random.default_rng(3), family)
  assert again.vertices.tobytes() == mesh.vertices.tobytes()


def test_mesh_helpers():
  cube = meshes.box((2.0, 1.0, 4.0))
  assert cube.vertices.shape == (24, 3) and cube.faces.shape == (12, 3)
  np.testing.assert_allclose(cube.bounds()[1], [1.0, 0.5, 2.0])
  turned = meshes.transformed(cube, yaw_deg=90.0, translate=(1.0, 0.0, 0.0))
  np.testing.assert_allclose(turned.bounds()[1], [3.0, 0.5, 1.0], atol=1e-6)
  # A unit sphere of revolution: every vertex at radius 1 from its centre.
  angle = np.linspace(-np.pi / 2, np.pi / 2, 17)
  sphere = meshes.revolution(np.cos(angle), 1 + np.sin(angle), segments=32)
  np.testing.assert_allclose(np.linalg.norm(sphere.vertices - [0, 1, 0], axis=1), 1.0,
                             atol=1e-6)
  ring = meshes.torus(1.0, 0.2)
  radial = np.hypot(ring.vertices[:, 0], ring.vertices[:, 2])
  assert radial.min() == pytest.approx(0.8, abs=1e-3)
  assert radial.max() == pytest.approx(1.2, abs=1e-3)
  terrain = meshes.heightfield(np.zeros((5, 5)), 2.0)
  assert terrain.faces.shape == (32, 3)
  with pytest.raises(ValueError, match="uvs"):
    meshes.Mesh(cube.vertices, cube.faces, cube.uvs[:3])


def test_held_out_content_is_disjoint_from_training_content():
  train, heldout = locations_v2.TRAIN_CONTENT, locations_v2.HELDOUT_CONTENT
  for field in ("objects", "conductors", "photographs", "patterns"):
    assert not set(getattr(train, field)) & set(getattr(heldout, field)), field
  # The splits of a v2 spec draw from the content they are declared with.
  spec = synthetic.SPECS["synthetic_v2_small"]
  assert spec.content_of("test_heldout") == "heldout" and spec.content_of("train") == "train"
  for split, content in (("train", train), ("test", train), ("test_heldout", heldout)):
    for ref in synthetic.split_scenes(spec, split)[::spec.scenes_per_location]:
      location, view = synthetic.scene_description(spec, ref)
      assert location.content == content.name
      assert {o.family for o in view.objects} <= set(content.objects)
      conductors = {o.material.conductor for o in view.objects if o.material.kind == "metal"}
      assert conductors <= set(content.conductors)


def test_locations_are_deterministic_and_varied():
  refs = synthetic.split_scenes(synthetic.SPECS["synthetic_v2_small"], "train")
  spec = synthetic.SPECS["synthetic_v2_small"]
  first, view = synthetic.scene_description(spec, refs[0])
  again, view_again = synthetic.scene_description(spec, refs[0])
  assert view.origin == view_again.origin and first.kind == again.kind
  assert first.ground.texture.tobytes() == again.ground.texture.tobytes()
  described = [synthetic.scene_description(spec, ref) for ref in refs[::4]]
  assert {location.kind for location, _ in described} == {"room", "open"}
  heights = [view.origin[1] for _, view in described]
  fovs = [view.fov_deg for _, view in described]
  assert max(heights) - min(heights) > 1.0 and max(fovs) - min(fovs) > 10.0
  kinds = {light.kind for location, _ in described for light in location.fixed_lights}
  assert len(kinds) >= 2, kinds


def test_photographic_textures():
  rng = np.random.default_rng(0)
  texture = textures.photograph(rng, 64, "coffee", mean_albedo=0.4)
  assert texture.shape == (64, 64, 3) and texture.dtype == np.float32
  assert 0.02 <= texture.min() and texture.max() <= 0.9
  assert 0.25 < texture.mean() <= 0.42  # scaled to 0.4, less what the 0.9 ceiling clips
  assert texture.std() > 0.02  # a photograph, not a flat colour
  tinted = textures.photograph(np.random.default_rng(0), 64, "gravel", tint=(0.8, 0.4, 0.2))
  assert np.all(tinted[..., 0] >= tinted[..., 2])
  with pytest.raises(ValueError, match="unknown photograph"):
    textures.photograph(rng, 64, "mona_lisa")


def test_clamp_fireflies_removes_outliers_only():
  rng = np.random.default_rng(0)
  smooth = (0.2 + 0.05 * rng.random((16, 16, 3))).astype(np.float32)
  np.testing.assert_array_equal(mitsuba_v2.clamp_fireflies(smooth), smooth)
  hot = smooth.copy()
  hot[5, 7] = 50.0
  clamped = mitsuba_v2.clamp_fireflies(hot)
  assert clamped[5, 7].max() < 1.5
  others = np.ones((16, 16), bool)
  others[5, 7] = False
  np.testing.assert_array_equal(clamped[others], hot[others])


def _glossy_room(fixed_kind="window"):
  """A room with a metal torus, a glossy sphere and a textured floor; camera on +z."""
  grey = locations.Material("diffuse", (0.5, 0.5, 0.5))
  floor = locations.Material("diffuse", (0.4, 0.3, 0.2), textures.concrete(
      np.random.default_rng(0), 64, (0.4, 0.3, 0.2)))
  metal = locations.Material("metal", locations_v2.CONDUCTOR_F0["Cu"], roughness=0.1,
                             conductor="Cu")
  glossy = locations.Material("plastic", (0.6, 0.1, 0.1), roughness=0.06)
  angle = np.linspace(-np.pi / 2, np.pi / 2, 16)
  objects = (
      locations_v2.MeshObject("torus", meshes.torus(0.4, 0.12), (-0.6, 0.0), 0.0, metal),
      locations_v2.MeshObject("sphere", meshes.revolution(
          np.maximum(0.4 * np.cos(angle), 1e-3), 0.4 * (1 + np.sin(angle))), (0.6, 0.2), 0.0,
          glossy),
  )
  fixed = {"window": locations_v2.FixedLightV2("window", (0.0, 2.4, -3.99), (1.4, 0.8),
                                               (0.3, 0.5, 0.8)),
           "panel": locations_v2.FixedLightV2("panel", (0.0, 4.18, -0.5), (2.4, 2.0),
                                              (0.8, 0.6, 0.3))}[fixed_kind]
  location = locations_v2.LocationV2(
      kind="room", content="train", ground=floor, ground_scale=4.0, terrain=None,
      walls=(("back", grey), ("left", grey), ("right", grey), ("ceiling", grey)),
      room_size=(4.0, 4.0, 4.2), objects=objects, fixed_lights=(fixed,), ambient=0.05)
  # The panel hangs under the ceiling: look up at it.
  target = (0.0, 1.2 if fixed_kind == "panel" else 0.4, 0.0)
  view = locations.View(origin=(0.0, 1.4, 4.5), target=target, fov_deg=60.0,
                        objects=objects)
  return location, view


@functools.cache
def _glossy_render(seed, fixed_kind="window"):
  location, view = _glossy_room(fixed_kind)
  main, fixed = mitsuba_v2.render_transport(location, view, 32, V2_TINY.samples_per_pixel,
                                            seed)
  return main, fixed, mitsuba_scene.compose(main, fixed, illumination.light_rgbs())


def test_glossy_and_metallic_noise_is_below_35db():
  _, _, first = _glossy_render(1)
  _, _, second = _glossy_render(2)
  assert first.tobytes() != second.tobytes()
  psnrs = [_psnr(a, b) for a, b in zip(first, second, strict=True)]
  assert min(psnrs) >= 35.0, psnrs


def test_multijitter_counts_are_rendered_as_asked():
  assert [mitsuba_v2.multijitter_count(n) for n in (49, 50, 98, 100)] == [49, 56, 100, 100]
  assert [mitsuba_v2.multijitter_count(n, down=True) for n in (50, 56, 99)] == [49, 56, 90]


def test_adaptive_sampling_refines_the_noisy_directions_only(monkeypatch):
  location, view = _glossy_room()
  predictions = iter([np.array([40, 40, 30, 40, 40, 36, 40, 40.0]),
                      np.array([40, 40, 36, 40, 40, 40, 40, 40.0]),
                      np.full(8, 40.0)])
  monkeypatch.setattr(mitsuba_v2, "predicted_psnr_db", lambda main, fixed: next(predictions))
  fixed_predictions = iter([30.0, 50.0, 50.0])  # the fixed render: refined once
  monkeypatch.setattr(mitsuba_v2, "fixed_psnr_db", lambda main, fixed: next(fixed_predictions))
  main, fixed, samples = mitsuba_v2.adaptive_transport(location, view, 16, 8, seed=3)
  # Two halves of 4, then as many again for directions 2 and 5, then again for 2 only
  # (9 a half: the multijitter count next above 8).
  np.testing.assert_array_equal(samples, [8, 8, 34, 8, 8, 16, 8, 8])
  assert main.shape == (8, 16, 16, 3) and fixed.shape == (16, 16, 3)
  # Stopped once every direction and the fixed render met the target.
  assert next(predictions, None) is None and next(fixed_predictions, None) is None
  # The refinement ends at MAX_SAMPLE_FACTOR times the samples, met or not.
  monkeypatch.setattr(mitsuba_v2, "predicted_psnr_db", lambda main, fixed: np.zeros(8))
  monkeypatch.setattr(mitsuba_v2, "fixed_psnr_db", lambda main, fixed: 0.0)
  _, _, samples = mitsuba_v2.adaptive_transport(location, view, 16, 8, seed=3)
  assert len(set(samples)) == 1
  assert 8 * mitsuba_v2.MAX_SAMPLE_FACTOR <= samples[0] < 16 * mitsuba_v2.MAX_SAMPLE_FACTOR


def test_predicted_noise_is_that_of_two_whole_renders():
  rng = np.random.default_rng(0)
  clean = np.full((8, 16, 16, 3), 0.2, np.float32)
  halves = clean + rng.normal(0.0, 0.004, (2, 8, 16, 16, 3)).astype(np.float32)
  wholes = clean + rng.normal(0.0, 0.004 / np.sqrt(2), (2, 8, 16, 16, 3)).astype(np.float32)
  fixed = np.zeros((2, 16, 16, 3), np.float32)
  predicted = mitsuba_v2.predicted_psnr_db(halves, fixed)
  images = [mitsuba_scene.compose(w, f, illumination.light_rgbs())
            for w, f in zip(wholes, fixed, strict=True)]
  measured = mitsuba_scene.psnr_db(*images).reshape(5, 8).min(0)
  np.testing.assert_allclose(predicted, measured, atol=1.0)


@pytest.mark.parametrize("fixed_kind", ["window", "panel"])
def test_fixed_lights_are_the_same_under_all_40_lights(fixed_kind):
  main, fixed, images = _glossy_render(1, fixed_kind)
  emitter = (fixed.mean(-1) > 0.25) & np.all(main.max(-1) == 0.0, axis=0)  # [S, S]
  assert emitter.sum() >= 4, fixed_kind
  pixels = images[:, emitter].astype(int)
  assert np.all(pixels == pixels[:1])


def test_aovs_follow_their_conventions():
  location, view = _glossy_room()
  depth, normals, albedo, shading = mitsuba_v2.render_aovs(location, view, 32, seed=0)
  assert depth.shape == (32, 32) and albedo.shape == (32, 32, 3) and shading.shape == (8, 32, 32)
  np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-4)
  assert np.all(normals[..., 2] >= -1e-6)  # turned towards the camera
  assert 0.0 <= shading.min() and shading.max() <= 1.0
  # The walls' albedo is their grey, exactly (the AOV is noise-free on flat colour).
  np.testing.assert_allclose(albedo[0, 0], 0.5, atol=1e-3)
  # The metal torus (left) has copper's normal-incidence reflectance as albedo.
  copper = np.asarray(locations_v2.CONDUCTOR_F0["Cu"])
  assert np.any(np.all(np.abs(albedo - copper) < 1e-3, axis=-1))
  # Shading follows the light: E lights the right half, W the left.
  east, west = shading[lights.direction_index_of("E")], shading[lights.direction_index_of("W")]
  assert east[:, 16:].mean() > 1.2 * east[:, :16].mean()
  assert west[:, :16].mean() > 1.2 * west[:, 16:].mean()


def test_v2_tiny_scene_renders_with_aovs_deterministically():
  ref = synthetic.split_scenes(V2_TINY, "test_heldout")[0]
  rendered = synthetic.render_scene(V2_TINY, ref)
  again = synthetic.render_scene(V2_TINY, ref)
  size = V2_TINY.image_size
  assert rendered.images.shape == (40, size, size, 3)
  assert rendered.albedo.shape == (size, size, 3) and rendered.albedo.dtype == np.float32
  assert rendered.shading.shape == (8, size, size) and rendered.shading.dtype == np.float32
  for field in ("images", "depth", "normals", "albedo", "shading", "transport", "fixed_light"):
    assert getattr(rendered, field).tobytes() == getattr(again, field).tobytes(), field
  # The stored transport is what the images were composed from, exactly.
  assert rendered.transport.shape == (8, size, size, 3) and rendered.transport.dtype == np.float32
  assert rendered.fixed_light.shape == (size, size, 3)
  recomposed = mitsuba_scene.compose(rendered.transport, rendered.fixed_light,
                                     illumination.light_rgbs())
  assert recomposed.tobytes() == rendered.images.tobytes()
  assert len({image.tobytes() for image in rendered.images}) == 40
  other_seed = synthetic.render_scene(V2_TINY, ref, sampler_seed=1)
  psnrs = [_psnr(a, b) for a, b in zip(rendered.images, other_seed.images, strict=True)]
  assert min(psnrs) >= 35.0, psnrs
  with pytest.raises(ValueError, match="generator"):
    synthetic.render_scene(dataclasses.replace(V2_TINY, generator="v3"), ref)


def test_noise_tool_measures_scenes_of_every_split():
  spec = synthetic.SPECS["synthetic_v2_small"]
  refs = noise.spread_scenes(spec, 8)
  assert len(refs) == 8 and all(ref.view == 0 for ref in refs)
  split_of = {ref.location: split for split, _ in spec.split_locations
              for ref in synthetic.split_scenes(spec, split)}
  assert {split_of[ref.location] for ref in refs} == {"train", "validation", "test",
                                                       "test_heldout"}
  images = np.zeros((2, 4, 4, 3), np.uint8)
  other = images.copy()
  other[1, 0, 0, 0] = 255  # one pixel of 16 off by the full range: MSE 1/48
  np.testing.assert_allclose(mitsuba_scene.psnr_db(images, other)[1], 10 * np.log10(48.0))


def test_the_headline_test_sets_have_many_locations_of_their_own():
  # Intervals resample locations: 24 per set, two views each, drawn from another seed than
  # the training datasets' so that no room repeats.
  spec = synthetic.SPECS["synthetic_v2_eval"]
  for split in ("test", "test_heldout"):
    scenes = synthetic.split_scenes(spec, split)
    assert len({ref.location for ref in scenes}) == 24 and len(scenes) == 48
  assert spec.image_size == 64 and spec.content_of("test_heldout") == "heldout"
  assert all(other.seed != spec.seed for name, other in synthetic.SPECS.items()
             if "train" in dict(other.split_locations))
