"""Every real VIDIT layout built from fake trees (folders and zips), record arithmetic checked.

The trees are generated here (tests/vidit_fakes.py): tiny constant-colour PNGs with the
releases' real names, so each record's pixels tell which file it came from.
"""

import io
import logging
import os

import numpy as np
import pytest
import vidit_fakes as fakes

from relight_jax.data import lights
from relight_jax.datasets.vidit import images
from relight_jax.datasets.vidit import real_layouts
from relight_jax.datasets.vidit import safe_pickle


def _check_scene_records(source, scenes):
  """Record position*40+light holds that scene's file for that light (lights.py)."""
  assert len(source) == len(scenes) * lights.NUM_LIGHTS
  for position, scene in enumerate(scenes):
    for light in (0, 9, 22, 39):
      record = source[int(lights.record_index(position, light))]
      assert int(record["scene"]) == scene
      assert int(record["light"]) == light
      assert int(record["color_temperature"]) == lights.TEMPERATURES_K[light // 8]
      assert int(record["direction"]) == light % 8
      assert int(record["location"]) == -1
      np.testing.assert_array_equal(record["image"][3, 5], fakes.scene_colour(scene, light))
      assert record["filename"].decode().endswith(fakes.light_name(scene, light))


def test_full_release_folder_splits_rgba_palette_and_incomplete(tmp_path, caplog):
  manual = tmp_path / "manual"
  files = fakes.scene_files([0, 1, 300, 345], modes={(0, 3): "RGBA", (1, 17): "P"})
  files.update(fakes.scene_files([2], skip={(2, 5)}))  # 39 of 40 lights.
  fakes.write_tree(manual / "train", files)
  with caplog.at_level(logging.WARNING):
    sources = fakes.build(fakes.small_config("full"), manual, tmp_path / "data")
  assert set(sources) == {"train", "validation", "test"}
  _check_scene_records(sources["train"], [0, 1])
  _check_scene_records(sources["validation"], [300])
  _check_scene_records(sources["test"], [345])
  # RGBA (alpha 128, dropped not blended) and palette files decode to their RGB colour.
  np.testing.assert_array_equal(sources["train"][3]["image"][0, 0], fakes.scene_colour(0, 3))
  np.testing.assert_array_equal(sources["train"][40 + 17]["image"][8, 8],
                                fakes.scene_colour(1, 17))
  assert "Excluding 1 scene(s)" in caplog.text and "Image002 (39/40" in caplog.text
  assert "2500_SW" in caplog.text  # The missing illumination is named.


def test_train_release_alone_holds_out_validation_and_test_scenes(tmp_path, caplog):
  # Only the public train release (000-299): data=full_256 must still train, validate
  # and test, on disjoint scenes.
  manual = tmp_path / "manual"
  fakes.write_tree(manual, fakes.scene_files([0, 239, 240, 269, 270, 299]))
  with caplog.at_level(logging.WARNING):
    sources = fakes.build(fakes.small_config("full"), manual, tmp_path / "data")
  assert set(sources) == {"train", "validation", "test"}
  _check_scene_records(sources["train"], [0, 239])
  _check_scene_records(sources["validation"], [240, 269])
  _check_scene_records(sources["test"], [270, 299])
  assert "holding out 240-269 (validation), 270-299 (test)" in caplog.text


def test_full_release_zip_matches_folder_and_names_the_archive(tmp_path):
  files = fakes.scene_files([5, 301])
  fakes.write_tree(tmp_path / "folder", files)
  zipped = {f"train/{name}": data for name, data in files.items()}
  # macOS archive junk must be skipped, not reported as badly named files.
  zipped["__MACOSX/train/._Image005_2500_N.png"] = b"\x00\x05\x16\x07"
  fakes.write_zip(tmp_path / "zipped" / "VIDIT_train.zip", zipped)
  (tmp_path / "linked").mkdir()
  os.symlink(tmp_path / "folder", tmp_path / "linked" / "full")  # Symlinks are followed.
  from_folder = fakes.build(fakes.small_config("full"), tmp_path / "folder", tmp_path / "d1")
  from_zip = fakes.build(fakes.small_config("full"), tmp_path / "zipped", tmp_path / "d2")
  from_link = fakes.build(fakes.small_config("full"), tmp_path / "linked", tmp_path / "d3")
  for split in ("train", "validation"):
    assert len(from_zip[split]) == len(from_folder[split]) == len(from_link[split]) == 40
    for index in (0, 17, 39):
      np.testing.assert_array_equal(from_zip[split][index]["image"],
                                    from_folder[split][index]["image"])
      np.testing.assert_array_equal(from_link[split][index]["image"],
                                    from_folder[split][index]["image"])
  assert from_zip["train"][0]["filename"] == b"VIDIT_train.zip!train/Image005_2500_N.png"


def test_ntire21_track2_depth_is_read_safely_and_resized(tmp_path):
  manual = tmp_path / "manual" / "ntire21_track2"  # The per-layout sub-folder is used.
  files = fakes.scene_files([7, 8], size=32)
  files["Image007.npy"] = fakes.depth_npy_bytes(fakes.depth_map(7, size=32))
  fakes.write_tree(manual, files)
  (tmp_path / "manual" / "README.txt").write_text("not data")  # Ignored.
  source = fakes.build(fakes.small_config("ntire21_track2"), tmp_path / "manual",
                       tmp_path / "data")["train"]
  _check_scene_records(source, [7, 8])
  expected = images.resize_depth(fakes.depth_map(7, size=32), 16)  # Area averaging.
  for light in (0, 39):
    record = source[light]
    assert bool(record["has_depth"]) and record["depth"].dtype == np.float16
    np.testing.assert_allclose(record["depth"], expected, atol=1e-3)
  assert not bool(source[40]["has_depth"])
  np.testing.assert_array_equal(source[40]["depth"], 0)
  # Independent check of the area average: 2x2 block means of the 32 px ramp.
  blocks = fakes.depth_map(7, size=32).reshape(16, 2, 16, 2).mean(axis=(1, 3))
  np.testing.assert_allclose(expected, blocks, atol=1e-5)


def test_ntire21_track2_pairs_folders_and_zip(tmp_path):
  manual = tmp_path / "manual"
  fakes.write_tree(manual, fakes.pair_files("track2_validation", [0, 3], depth=True))
  test_files = fakes.pair_files("test", [1], ground_truth=False)
  fakes.write_zip(manual / "track2_test.zip",
                  {name.removeprefix("test/"): data for name, data in test_files.items()})
  fakes.write_tree(manual, fakes.scene_files([0]))  # Scene files are not pairs: ignored.
  sources = fakes.build(fakes.small_config("ntire21_track2", "pairs"), manual,
                        tmp_path / "data")
  assert {split: len(source) for split, source in sources.items()} == {
      "validation": 2, "test": 1}
  for position, pair in enumerate([0, 3]):
    record = sources["validation"][position]
    assert int(record["pair"]) == pair
    for feature, role in (("input_image", 0), ("target_image", 1), ("ground_truth", 2)):
      np.testing.assert_array_equal(record[feature][4, 4], fakes.pair_colour(pair, role))
    assert bool(record["has_ground_truth"])
    assert bool(record["has_input_depth"]) and bool(record["has_target_depth"])
    np.testing.assert_allclose(record["input_depth"], fakes.depth_map(pair), atol=1e-3)
    np.testing.assert_allclose(record["target_depth"], fakes.depth_map(pair + 100), atol=1e-3)
    assert record["input_filename"] == f"track2_validation/input/Pair{pair:03d}.png".encode()
  test_record = sources["test"][0]
  assert int(test_record["pair"]) == 1 and not bool(test_record["has_ground_truth"])
  assert test_record["target_filename"] == b"track2_test.zip!guide/Pair001.png"
  np.testing.assert_array_equal(test_record["ground_truth"], 0)


def test_aim20_track3_scenes_and_validation_pairs(tmp_path):
  manual = tmp_path / "manual"
  fakes.write_zip(manual / "aim_train.zip", fakes.scene_files([12]))
  fakes.write_tree(manual, fakes.pair_files("validation", [4]))
  scenes = fakes.build(fakes.small_config("aim20_track3"), manual, tmp_path / "d1")
  _check_scene_records(scenes["train"], [12])
  pairs = fakes.build(fakes.small_config("aim20_track3", "pairs"), manual, tmp_path / "d2")
  assert len(pairs["validation"]) == 1 and int(pairs["validation"][0]["pair"]) == 4


@pytest.mark.parametrize("config, tree", [
    ("full_256", "scenes"), ("ntire21_track2_256", "scenes"),
    ("ntire21_track2_pairs_256", "pairs"), ("aim20_track3_256", "scenes"),
    ("aim20_track3_pairs_256", "pairs")])
def test_registered_real_configs_build_at_256(tmp_path, config, tree):
  files = (fakes.scene_files([300], size=32) if tree == "scenes"
           else fakes.pair_files("val", [2], size=32))
  fakes.write_zip(tmp_path / "manual" / "release.zip", files)
  sources = fakes.build(config, tmp_path / "manual", tmp_path / "data")
  source = sources["validation"]
  record = source[0]
  image = record["image" if tree == "scenes" else "input_image"]
  assert image.shape == (256, 256, 3) and image.dtype == np.uint8
  expected = fakes.scene_colour(300, 0) if tree == "scenes" else fakes.pair_colour(2, 0)
  # LANCZOS upsampling of a constant image stays constant (up to fixed-point rounding).
  np.testing.assert_allclose(image.reshape(-1, 3).astype(int), np.tile(expected, (256**2, 1)),
                             atol=1)
  assert len(source) == (40 if tree == "scenes" else 1)


def test_shipped_dummy_data_builds_full_config(tmp_path):
  """dummy_data/ (the TFDS dataset-folder convention) is a valid full-release tree."""
  dummy = real_layouts.__file__.rsplit("/", 1)[0] + "/dummy_data"
  sources = fakes.build(fakes.small_config("full", size=8), dummy, tmp_path / "data")
  _check_scene_records(sources["train"], [0])
  _check_scene_records(sources["validation"], [300])


def test_npy_depth_roundtrip_through_pickle_protocols():
  depth = fakes.depth_map(3)
  buffer = io.BytesIO()
  np.save(buffer, depth)  # A plain numeric .npy is accepted too.
  np.testing.assert_array_equal(safe_pickle.read_vidit_depth(buffer.getvalue(), "a.npy"), depth)
  np.testing.assert_array_equal(
      safe_pickle.read_vidit_depth(fakes.depth_npy_bytes(depth), "b.npy"), depth)
