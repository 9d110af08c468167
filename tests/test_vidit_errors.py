"""Bad real-VIDIT input: each case gets a clear error naming the path, and no dataset.

Covers a missing manual_dir, bad names, corrupt PNGs, duplicates, sizes, missing
illuminations, incomplete pairs and a depth pickle that would run code.
After every failure the data dir must hold no finished-looking dataset.
"""

import io
import os

import numpy as np
import pytest
import vidit_fakes as fakes

from relight_jax.datasets.vidit import safe_pickle


def _build_fails(tmp_path, manual, config=None, error=ValueError, match=None):
  config = config or fakes.small_config("full")
  data_dir = tmp_path / "data"
  with pytest.raises(error, match=match) as raised:
    fakes.build(config, manual, data_dir)
  assert fakes.finished_datasets(data_dir) == []
  return str(raised.value)


@pytest.mark.parametrize("make_dir", [False, True])
def test_missing_or_empty_manual_dir_says_what_to_download(tmp_path, make_dir):
  manual = tmp_path / "nowhere"
  if make_dir:
    manual.mkdir()
  message = _build_fails(tmp_path, manual, "ntire21_track2_256", FileNotFoundError)
  assert str(manual) in message and "does not exist or is empty" in message
  assert "vidit/ntire21_track2_256" in message
  assert "https://github.com/majedelhelou/VIDIT" in message
  assert "ImageNNN.npy" in message and "--manual_dir" in message


def test_badly_named_files_are_listed_with_the_expected_pattern(tmp_path):
  files = fakes.scene_files([0])
  bad = ["Image000_2500_North.png", "image_001.png", "Image999_2500_N.png",
         "Image000_3000_N.png", "Image00_2500_N.png", "photo.png", "Image001.NPY.npy"]
  for name in bad:
    files[name] = fakes.png_bytes((1, 2, 3))
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual")
  assert "7 file(s)" in message and "ImageNNN_TTTT_D.png" in message
  assert "and 2 more" in message  # Only the first few are listed.
  assert str(tmp_path / "manual" / "Image000_2500_North.png") in message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "jpeg"])
def test_corrupt_png_is_named_and_nothing_is_left_behind(tmp_path, damage):
  files = fakes.scene_files([0, 1])
  name = fakes.light_name(1, 20)
  if damage == "truncated":
    files[name] = files[name][: len(files[name]) // 2]
  elif damage == "garbage":
    files[name] = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
  else:
    import PIL.Image  # noqa: PLC0415
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    files[name] = buffer.getvalue()
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual")
  assert name in message
  assert ("corrupt or truncated PNG" in message) or ("expected a PNG" in message)


def test_duplicate_scene_in_folder_and_zip(tmp_path):
  files = fakes.scene_files([4])
  fakes.write_tree(tmp_path / "manual" / "train", files)
  fakes.write_zip(tmp_path / "manual" / "train.zip", files)
  message = _build_fails(tmp_path, tmp_path / "manual", match="duplicate image of scene 004")
  assert "train.zip!Image004_2500_E.png" in message
  assert str(tmp_path / "manual" / "train" / "Image004_2500_E.png") in message


@pytest.mark.parametrize("size, expected", [((20, 20), "expected 16x16"),
                                            ((16, 12), "expected a square image")])
def test_image_of_unexpected_size(tmp_path, size, expected):
  import PIL.Image  # noqa: PLC0415
  files = fakes.scene_files([0])
  buffer = io.BytesIO()
  PIL.Image.new("RGB", size).save(buffer, format="PNG")
  files[fakes.light_name(0, 30)] = buffer.getvalue()
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual", match=expected)
  assert fakes.light_name(0, 30) in message


def test_only_incomplete_scenes_is_an_error_that_counts_them(tmp_path):
  fakes.write_tree(tmp_path / "manual", fakes.scene_files([3], skip={(3, 0), (3, 1)}))
  _build_fails(tmp_path, tmp_path / "manual", match="1 incomplete scene")


def test_unreadable_zip_is_named(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "train.zip").write_bytes(b"PK\x03\x04 not really a zip")
  _build_fails(tmp_path, tmp_path / "manual", match="train.zip: not a readable zip")


def test_malicious_depth_pickle_is_refused_and_its_code_never_runs(tmp_path):
  marker = tmp_path / "pwned"
  files = fakes.scene_files([0])
  files["Image000.npy"] = fakes.malicious_npy_bytes(marker)
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual", fakes.small_config("ntire21_track2"),
                         safe_pickle.UnsafePickleError)
  assert "Image000.npy" in message and "builtins.exec" in message
  assert not marker.exists()
  # Control: the payload is live, naive loading *does* run it (so the check above means
  # something).
  np.load(io.BytesIO(files["Image000.npy"]), allow_pickle=True)
  assert marker.exists()


def test_pair_without_guide_and_pair_outside_a_split_folder(tmp_path):
  files = fakes.pair_files("validation", [0, 1])
  del files["validation/guide/Pair001.png"]
  fakes.write_tree(tmp_path / "m1", files)
  config = fakes.small_config("ntire21_track2", "pairs")
  message = _build_fails(tmp_path, tmp_path / "m1", config, match="lack their input")
  assert "Pair001.png" in message
  fakes.write_tree(tmp_path / "m2", fakes.pair_files("pairs", [0]))
  message = _build_fails(tmp_path, tmp_path / "m2", config, match="do not follow")
  assert "'val' or 'test'" in message
