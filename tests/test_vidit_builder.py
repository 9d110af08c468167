"""The `vidit` builder on the tiny synthetic config, the build CLI's function and preview.

One tiny build (the session's `tiny_data_dir`, built once per test run through
`relight_jax.datasets.build.build`, the build CLI's function) is checked against the
renderer's own `split_scenes` / `render_scene` and `relight_jax.data.lights`' index arithmetic.
The v2 tiny build (`v2_tiny_data_dir`) is checked the same way, with its AOVs and the
light transport its images recompose from, and against a build of its earlier version.
"""

import functools
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from relight_jax.data import lights
from relight_jax.datasets import build
from relight_jax.datasets import preview
from relight_jax.datasets import scene_images
from relight_jax.datasets import vidit as vidit_package
from relight_jax.datasets.vidit import configs
from relight_jax.render import generators
from relight_jax.render import illumination
from relight_jax.render import mitsuba_scene
from relight_jax.render import synthetic

_SPEC = synthetic.SPECS["synthetic_tiny"]


def _sources(spec, data_dir):
  """{split: tfds data source} of a built synthetic config."""
  return {split: tfds.data_source(f"vidit/{spec.name}", split=split, data_dir=os.fspath(data_dir))
          for split, _ in spec.split_locations}


@pytest.fixture(scope="module")
def tiny_build(tiny_data_dir):
  # The session's tiny build (conftest): made by build.build, whose result it kept.
  data_dir = pathlib.Path(tiny_data_dir)
  result = json.loads((data_dir / "build.json").read_text())
  return data_dir, result, _sources(_SPEC, data_dir)


def test_registration_and_configs():
  assert tfds.builder_cls("vidit") is vidit_package.Vidit
  names = [config.name for config in vidit_package.Vidit.BUILDER_CONFIGS]
  assert set(synthetic.SPECS) <= set(names)
  assert vidit_package.Vidit.DEFAULT_BUILDER_CONFIG_NAME == "synthetic"
  for name in ("full_256", "full_512", "full_1024", "ntire21_track2_256",
               "ntire21_track2_pairs_1024", "aim20_track3_512", "aim20_track3_pairs_256"):
    assert name in names
  assert "aim20_track3_1024" not in names  # AIM 2020 images are 512 px.
  assert configs.parse_dataset_name("vidit/full_512") == "full_512"
  with pytest.raises(ValueError, match="one of"):
    configs.parse_dataset_name("vidit/full_300")
  with pytest.raises(ValueError, match="layout"):
    configs.ViditConfig(name="x", source="lights", layout="nope")


def test_build_result_and_reuse(tiny_build):
  data_dir, result, _ = tiny_build
  num_scenes = sum(count for _, count in _SPEC.split_locations) * _SPEC.scenes_per_location
  assert set(result) == {"seconds", "images", "images_per_second", "path", "reused"}
  assert result["images"] == num_scenes * lights.NUM_LIGHTS and not result["reused"]
  built = pathlib.Path(result["path"])
  assert built.is_relative_to(data_dir) and built.is_dir()
  stored = {path: path.stat().st_mtime_ns for path in built.rglob("*")}
  again = build.build("synthetic_tiny", os.fspath(data_dir), render_workers=1)
  assert again["reused"] and again["images"] == result["images"]
  assert again["path"] == result["path"]
  # A reused build reads the prepared dataset: it neither adds nor rewrites a file.
  assert {path: path.stat().st_mtime_ns for path in built.rglob("*")} == stored


def test_records_are_scene_major_with_the_renderer_labels(tiny_build):
  _, _, sources = tiny_build
  assert set(sources) == {split for split, _ in _SPEC.split_locations}
  locations_per_split = []
  for split, source in sources.items():
    refs = synthetic.split_scenes(_SPEC, split)
    assert len(source) == len(refs) * lights.NUM_LIGHTS
    for record_index in range(len(source)):
      record = source[record_index]
      position, light = lights.split_record_index(record_index)
      ref = refs[int(position)]
      assert int(record["scene"]) == ref.scene and int(record["location"]) == ref.location
      assert int(record["light"]) == light
      assert int(record["color_temperature"]) == lights.temperature_of(light)
      assert int(record["direction"]) == lights.direction_of(light)
      assert record["image"].shape == (_SPEC.image_size,) * 2 + (3,)
      assert bool(record["has_depth"]) and bool(record["has_normals"])
    locations_per_split.append({ref.location for ref in refs})
  # Splits are by location: no location in two splits.
  assert sum(map(len, locations_per_split)) == len(set().union(*locations_per_split))


_V2_SPEC = synthetic.SPECS["synthetic_v2_tiny"]


def _records_sha256(sources, spec):
  digest = hashlib.sha256()
  for split, _ in spec.split_locations:
    source = sources[split]
    for index in range(len(source)):
      record = source[index]
      for key in sorted(record):
        digest.update(key.encode())
        digest.update(np.asarray(record[key]).tobytes())
  return digest.hexdigest()


def test_the_tiny_build_is_version_1(tiny_build):
  # Its records are pinned by tests/test_render_generators.py.
  _, result, _ = tiny_build
  assert result["path"].endswith(os.path.join("synthetic_tiny", "1.0.0"))


def test_an_interrupted_build_resumes_from_its_rendered_scenes(tiny_build, tmp_path,
                                                               monkeypatch):
  render_scene = synthetic.render_scene
  rendered = []

  def render_then_interrupt(spec, ref, sampler_seed=0):
    if len(rendered) == 2:  # the train split's 2 scenes are done
      raise KeyboardInterrupt
    rendered.append(ref.scene)
    return render_scene(spec, ref, sampler_seed)

  monkeypatch.setattr(synthetic, "render_scene", render_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    build.build("synthetic_tiny", os.fspath(tmp_path), render_workers=1)
  cache = tmp_path / "downloads" / "renders" / "synthetic_tiny-1.0.0"
  assert sorted(path.name for path in cache.iterdir()) == ["scene00000.npz", "scene00001.npz"]
  (cache / "scene00001.npz").write_bytes(b"cut off")  # a file the interrupt truncated

  rendered.clear()
  monkeypatch.setattr(synthetic, "render_scene", lambda *args: (
      rendered.append(args[1].scene), render_scene(*args))[1])
  result = build.build("synthetic_tiny", os.fspath(tmp_path), render_workers=1)
  assert rendered == [1, 2, 3, 4, 5]  # scene 0 read from the cache, the truncated 1 again
  assert not cache.exists()  # removed once the build is complete
  assert result["images"] == 6 * lights.NUM_LIGHTS
  # As a clean build on this machine (the session's).
  assert (_records_sha256(_sources(_SPEC, tmp_path), _SPEC)
          == _records_sha256(tiny_build[2], _SPEC))


@pytest.fixture(scope="module")
def v2_tiny_build(v2_tiny_data_dir):
  # The session's v2 tiny build (conftest), read back through the build CLI's function.
  result = build.build("synthetic_v2_tiny", v2_tiny_data_dir, render_workers=1)
  return result, _sources(_V2_SPEC, v2_tiny_data_dir)


# The scene the v2 tests render again (a few seconds): test_heldout's second.
_V2_POSITION = 1


@functools.cache
def _v2_rendered():
  ref = synthetic.split_scenes(_V2_SPEC, "test_heldout")[_V2_POSITION]
  return ref, synthetic.render_scene(_V2_SPEC, ref)


def test_v2_build_has_its_version_splits_and_aovs(v2_tiny_build):
  result, sources = v2_tiny_build
  assert result["path"].endswith(os.path.join("synthetic_v2_tiny", generators.V2.version))
  assert set(sources) == {"train", "validation", "test", "test_heldout"}
  size = _V2_SPEC.image_size
  position = _V2_POSITION
  ref, rendered = _v2_rendered()
  for light in (0, 13, 39):
    record = sources["test_heldout"][int(lights.record_index(position, light))]
    assert int(record["scene"]) == ref.scene and int(record["light"]) == light
    np.testing.assert_array_equal(record["image"], rendered.images[light])
    assert record["albedo"].shape == (size, size, 3) and record["albedo"].dtype == np.uint8
    assert record["shading"].shape == (size, size, 1) and record["shading"].dtype == np.uint8
    # albedo: sRGB-encoded linear reflectance; shading: linear x 255 of the record's direction.
    decoded_albedo = record["albedo"].astype(np.float64) / 255.0
    decoded_albedo = np.where(decoded_albedo <= 0.04045, decoded_albedo / 12.92,
                              ((decoded_albedo + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(decoded_albedo, rendered.albedo, atol=0.01)
    direction = int(lights.direction_of(light))
    np.testing.assert_allclose(record["shading"][..., 0] / 255.0, rendered.shading[direction],
                               atol=0.5 / 255 + 1e-6)
    # transport and fixed_light: the renders the images are composed from, as float16.
    for name in ("transport", "fixed_light"):
      assert record[name].shape == (size, size, 3) and record[name].dtype == np.float16
    np.testing.assert_array_equal(record["transport"],
                                  rendered.transport[direction].astype(np.float16))
    np.testing.assert_array_equal(record["fixed_light"],
                                  rendered.fixed_light.astype(np.float16))
  # The train split's records carry other shading per direction, one albedo per scene.
  train = sources["train"]
  assert not np.array_equal(train[2]["shading"], train[6]["shading"])
  np.testing.assert_array_equal(train[2]["albedo"], train[6 + 8]["albedo"])


def test_v2_images_recompose_from_the_stored_transport(v2_tiny_build):
  # image(t, d) = srgb_uint8(EXPOSURE * (c_t * M_d + F)) for every record of every split,
  # up to the float16 rounding of M_d and F.
  _, sources = v2_tiny_build
  rgbs = np.asarray(illumination.light_rgbs(), np.float32)  # [5, 3]
  differences = []
  for split, source in sources.items():
    for scene in range(len(source) // lights.NUM_LIGHTS):
      records = [source[int(lights.record_index(scene, light))]
                 for light in range(lights.NUM_LIGHTS)]
      fixed = records[0]["fixed_light"]
      for light, record in enumerate(records):
        temperature, direction = lights.split_light_index(light)
        # The fixed lights in all 40 records, a direction's transport in its 5.
        np.testing.assert_array_equal(record["fixed_light"], fixed)
        np.testing.assert_array_equal(record["transport"], records[direction]["transport"])
        linear = (rgbs[temperature] * record["transport"].astype(np.float32)
                  + record["fixed_light"].astype(np.float32))
        image = mitsuba_scene.srgb_uint8(mitsuba_scene.EXPOSURE * linear)
        differences.append(np.abs(image.astype(int) - record["image"].astype(int)))
      assert np.all(np.isfinite(fixed.astype(np.float32))), (split, scene)
  differences = np.stack(differences)
  assert differences.max() <= 1
  assert np.mean(differences) < 0.02  # 0.7% of the values on the machine that wrote this


def test_scene_images_read_the_transport(v2_tiny_build, v2_tiny_data_dir):
  _, sources = v2_tiny_build
  images = scene_images.SceneImages("vidit/synthetic_v2_tiny", "train", v2_tiny_data_dir,
                                    _V2_SPEC.image_size)
  record = sources["train"][int(lights.record_index(1, 2))]
  transport = images.transport(1, 2)
  assert transport.dtype == np.float32 and transport.shape == (32, 32, 3)
  np.testing.assert_array_equal(transport, record["transport"].astype(np.float32))
  np.testing.assert_array_equal(images.fixed_light(1), record["fixed_light"].astype(np.float32))
  with pytest.raises(ValueError, match="direction 8"):
    images.transport(1, 8)
  # A smaller data.image_size averages the linear values, like the other maps.
  half = scene_images.SceneImages("vidit/synthetic_v2_tiny", "train", v2_tiny_data_dir, 16)
  np.testing.assert_allclose(half.transport(1, 2),
                             transport.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3)), rtol=1e-6)


def test_v2_versions_have_their_own_features(tmp_path):
  config = configs.CONFIGS["synthetic_v2_tiny"]
  assert str(config.version) == generators.V2.version == "2.2.0"
  assert config.supported_versions == ["2.1.0"]
  assert "byte-identical to 2.1.0" in config.release_notes["2.2.0"]
  older = {"albedo", "shading"}
  newer = older | {"transport", "fixed_light"}
  for version, aovs in ((None, newer), ("2.2.0", newer), ("2.1.0", older)):
    builder = vidit_package.Vidit(config="synthetic_v2_tiny", version=version,
                                  data_dir=os.fspath(tmp_path))
    features = set(builder.info.features.keys())
    assert str(builder.version) == (version or "2.2.0")
    assert features & newer == aovs and "image" in features, version
  # 2.0.0's renders differ from today's: it is not built any more.
  with pytest.raises(ValueError, match=r"builds versions \['2.2.0', '2.1.0'\], not '2.0.0'"):
    build.build("synthetic_v2_tiny", os.fspath(tmp_path), version="2.0.0")
  assert generators.V1.stored_aovs_at("1.0.0") == ()
  with pytest.raises(ValueError, match="not '2.0.0'"):
    generators.V2.stored_aovs_at("2.0.0")


def test_the_earlier_version_builds_the_same_records_without_the_transport(
    v2_tiny_build, tmp_path, monkeypatch):
  # 2.1.0 built now: every scene the one rendered scene (rendering each is the 2.2.0
  # build's job), whose records must equal the 2.2.0 build's on 2.1.0's features.
  _, sources = v2_tiny_build
  ref, rendered = _v2_rendered()
  monkeypatch.setattr(synthetic, "render_scene", lambda *args, **kwargs: rendered)
  result = build.build("synthetic_v2_tiny", os.fspath(tmp_path), render_workers=1,
                       version="2.1.0")
  assert result["path"].endswith(os.path.join("synthetic_v2_tiny", "2.1.0"))
  # The features.json 2.1.0's builds stored (tests/test_render_generators.py pinned it).
  stored = pathlib.Path(result["path"], "features.json").read_bytes()
  assert hashlib.sha256(stored).hexdigest() == (
      "86da3052e62fe4f715f6b7989ba1ee7d6b052e37c3e6d29c6d3fdb77befed501")
  older = tfds.data_source("vidit/synthetic_v2_tiny:2.1.0", split="test_heldout",
                           data_dir=os.fspath(tmp_path))
  for light in range(lights.NUM_LIGHTS):
    index = int(lights.record_index(_V2_POSITION, light))
    old, new = older[index], sources["test_heldout"][index]
    assert set(new) - set(old) == {"transport", "fixed_light"}
    for key in old:
      assert np.asarray(old[key]).tobytes() == np.asarray(new[key]).tobytes(), (light, key)
  assert int(old["scene"]) == ref.scene
  # Asked for the transport, data without it says which data it is and what has it.
  images = scene_images.SceneImages("vidit/synthetic_v2_tiny:2.1.0", "test_heldout",
                                    os.fspath(tmp_path), _V2_SPEC.image_size)
  with pytest.raises(ValueError, match=r"vidit/synthetic_v2_tiny:2.1.0 version 2.1.0 split "
                     r"'test_heldout' has no transport.*from version 2.2.0 on.*build "
                     r"vidit/synthetic_v2_tiny "):
    images.transport(0, 0)
  with pytest.raises(ValueError, match="has no fixed_light"):
    images.fixed_light(0)


def test_pixels_depth_normals_match_an_independent_render(tiny_build):
  _, _, sources = tiny_build
  ref = synthetic.split_scenes(_SPEC, "validation")[1]
  rendered = synthetic.render_scene(_SPEC, ref)
  for light in (0, 13, 39):
    record = sources["validation"][int(lights.record_index(1, light))]
    np.testing.assert_array_equal(record["image"], rendered.images[light])
    np.testing.assert_allclose(record["depth"].astype(np.float32), rendered.depth,
                               rtol=1e-3, atol=1e-3)
    decoded_normals = record["normals"].astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(decoded_normals, rendered.normals, atol=1 / 127.5 + 1e-6)
  name = f"synthetic/synthetic_tiny/scene{ref.scene:05d}_6500_NW"
  assert sources["validation"][int(lights.record_index(1, 39))]["filename"] == name.encode()


def test_contact_sheet_layout(tiny_build, tmp_path):
  _, _, sources = tiny_build
  ref = synthetic.split_scenes(_SPEC, "train")[1]
  records = preview.load_scene(sources["train"], ref.scene)
  sheet = preview.contact_sheet(records, "title")
  size = _SPEC.image_size
  scale = -(-96 // size)
  tile = size * scale
  assert sheet.size == (56 + 8 * tile, 36 + 5 * tile)
  # Row 3 (5500 K), column 6 (W) is light 3 * 8 + 6, upscaled by nearest neighbour.
  crop = np.asarray(sheet.crop((56 + 6 * tile, 36 + 3 * tile, 56 + 7 * tile, 36 + 4 * tile)))
  expected = np.repeat(np.repeat(records[30]["image"], scale, 0), scale, 1)
  np.testing.assert_array_equal(crop, expected)
  with pytest.raises(ValueError, match="not in this split"):
    preview.load_scene(sources["train"], 999)
  output = tmp_path / "sheet.png"
  preview.write_png_atomic(sheet, os.fspath(output))
  assert PIL.Image.open(output).size == sheet.size
  assert os.listdir(tmp_path) == ["sheet.png"]  # No temporary file left behind.


def test_preview_cli(tiny_build, tmp_path):
  data_dir, _, _ = tiny_build
  scene = synthetic.split_scenes(_SPEC, "test")[0].scene
  output = tmp_path / "cli.png"
  command = [sys.executable, "-m", "relight_jax.datasets.preview", "vidit/synthetic_tiny",
             f"--data_dir={data_dir}", "--split=test", f"--output={output}"]
  done = subprocess.run(command + [f"--scene={scene}"], capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr
  sheet = np.asarray(PIL.Image.open(output))
  assert sheet.shape[1] > 8 * _SPEC.image_size
  # The first tile (2500 K, N) is the scene's light-0 record (position 0 of "test").
  scale = -(-96 // _SPEC.image_size)  # preview upscales tiles to >= 96 px.
  tile = _SPEC.image_size * scale
  first_tile = sheet[36:36 + tile:scale, 56:56 + tile:scale]
  np.testing.assert_array_equal(first_tile, sources_image(data_dir, "test", 0))


def sources_image(data_dir, split, record_index):
  source = tfds.data_source("vidit/synthetic_tiny", split=split, data_dir=os.fspath(data_dir))
  return source[record_index]["image"]
