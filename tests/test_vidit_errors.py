"""Bad real-VIDIT input: each case gets a clear error naming the path, and no dataset.

Covers a missing manual_dir, bad names, corrupt PNGs, duplicates, sizes, missing
illuminations, incomplete pairs, a depth pickle that would run code, and depth pickles
that declare huge arrays or states numpy would act on unsafely.
After every failure the data dir must hold no finished-looking dataset.
"""

import codecs
import io
import os
import pickle

import numpy as np
import pytest
import vidit_fakes as fakes

from relight_jax.common import image_io
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


class _Reduces:
  """Pickles as `func(*args)`, then BUILD with `state` when given: crafts a stream by hand."""

  def __init__(self, func, args, state=None):
    self.func, self.args, self.state = func, args, state

  def __reduce__(self):
    return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_HUGE = (32768, 32768)  # 2**30 elements: 1 GiB as uint8, 4 GiB once cast to float32.


def _object_npy(payload_pickle: bytes) -> bytes:
  """An object-dtype .npy header followed by `payload_pickle`, as np.save lays it out."""
  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(
      buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
  return buffer.getvalue() + payload_pickle


def _depth_pickle(depth, protocol=3) -> bytes:
  return pickle.dumps({"normalized_depth": depth, "ref_center_dis": 2.5}, protocol=protocol)


def test_small_pickle_declaring_a_huge_depth_map_is_refused_before_allocating(tmp_path):
  data = _object_npy(_depth_pickle(_Reduces(_RECONSTRUCT, (np.ndarray, _HUGE, b"B"))))
  assert len(data) < 300  # The whole file is tiny; the array it declares is 1 GiB.
  files = fakes.scene_files([0])
  files["Image000.npy"] = data
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual", fakes.small_config("ntire21_track2"),
                         safe_pickle.ArrayTooLargeError)
  assert "\n" not in message
  assert "Image000.npy" in message and "(32768, 32768)" in message
  assert f"{safe_pickle.MAX_ARRAY_ELEMENTS:,} elements" in message


def test_array_limit_is_the_image_pixel_limit():
  assert safe_pickle.MAX_ARRAY_ELEMENTS == image_io.MAX_PIXELS
  side = int(image_io.MAX_PIXELS**0.5)
  safe_pickle.check_array_size((side, side), np.float64, "ok.npy")  # The largest photo's depth.
  with pytest.raises(safe_pickle.ArrayTooLargeError, match="ok.npy"):
    safe_pickle.check_array_size((side + 1, side + 1), np.float64, "ok.npy")


@pytest.mark.parametrize("case", [
    "reconstruct", "state", "frombuffer", "itemsize", "subarray_dtype", "many_arrays",
    "npy_header"])
def test_every_way_to_declare_a_huge_array_is_refused(case):
  frombuffer = np.zeros((1,)).__reduce_ex__(5)[0]
  blank = (np.ndarray, (0,), b"b")
  payloads = {
      "reconstruct": _Reduces(_RECONSTRUCT, (np.ndarray, _HUGE, b"B")),
      # The state's buffer is checked by numpy only after it has allocated the shape.
      "state": _Reduces(_RECONSTRUCT, blank, (1, _HUGE, np.dtype(np.uint8), False, b"")),
      "frombuffer": _Reduces(frombuffer, (b"", np.dtype(np.uint8), _HUGE, "C")),
      # One element, but 2**30 bytes per element.
      "itemsize": _Reduces(_RECONSTRUCT, (np.ndarray, (1,), b"V1073741824")),
      "subarray_dtype": _Reduces(_RECONSTRUCT, (np.ndarray, (4,), ("f4", (16384, 16384)))),
      # Each under the per-array limit, together over the per-file one.
      "many_arrays": [_Reduces(_RECONSTRUCT, (np.ndarray, (60_000_000,), b"f8"))
                      for _ in range(2)],
  }
  if case == "npy_header":
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": _HUGE})
    data = buffer.getvalue()
  else:
    data = pickle.dumps(payloads[case], protocol=3)
  assert len(data) < 400
  with pytest.raises(safe_pickle.ArrayTooLargeError) as raised:
    safe_pickle.read_vidit_depth(data, "d.npy")
  message = str(raised.value)
  assert message.startswith("d.npy: refusing an array of shape (") and "\n" not in message
  if case == "many_arrays":
    assert "MB of other arrays" in message


@pytest.mark.parametrize("case, expected", [
    # numpy would read past the end of the list (a crash, or memory disclosed).
    ("short_object_list", "lists 2 items, expected 3"),
    # numpy would accept a field outside the item and read out of bounds.
    ("field_offset", "structured or subarray dtype"),
    # numpy would divide by the alignment.
    ("zero_alignment", "does not describe"),
    # numpy would take the raw bytes of a void item for object pointers.
    ("object_flags", "does not describe"),
    ("ndarray_call", "refusing to call numpy.ndarray"),
    # Chained, other codecs double the data at every step.
    ("hex_codec", "codec 'hex'"),
    ("build_other", "refusing to set the state of set"),
])
def test_array_and_dtype_states_numpy_would_act_on_unsafely_are_refused(case, expected):
  blank = (np.ndarray, (0,), b"b")
  payloads = {
      "short_object_list": _Reduces(_RECONSTRUCT, blank, (1, (3,), np.dtype(object), False,
                                                          [1, 2])),
      "field_offset": _Reduces(np.dtype, ("V1", False, True),
                               (3, "|", None, ("a",), {"a": (np.dtype("f8"), 4096)}, 1, 1, 16)),
      "zero_alignment": _Reduces(np.dtype, ("V8", False, True),
                                 (3, "|", None, None, None, 8, 0, 0)),
      "object_flags": _Reduces(np.dtype, ("V8", False, True),
                               (3, "|", None, None, None, 8, 1, np.dtype(object).flags)),
      "ndarray_call": _Reduces(np.ndarray, (_HUGE, "u1")),
      "hex_codec": _Reduces(codecs.encode, (b"ab", "hex")),
      "build_other": _Reduces(set, ([],), {"a": 1}),
  }
  data = pickle.dumps(payloads[case], protocol=2)
  with pytest.raises(safe_pickle.UnsafePickleError, match=expected) as raised:
    safe_pickle.restricted_loads(data, "d.npy")
  message = str(raised.value)
  assert message.startswith("d.npy: ") and "NOT loaded" in message and "\n" not in message


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<f2"])
def test_ordinary_depth_pickles_still_load(protocol, dtype):
  depth = fakes.depth_map(2).astype(dtype)
  for data in (_depth_pickle(depth, protocol), _object_npy(_depth_pickle(depth, protocol))):
    np.testing.assert_array_equal(safe_pickle.read_vidit_depth(data, "d.npy"), depth)
  # The NTIRE 2021 layout: a 0-d object array holding the dict (what np.save writes).
  np.testing.assert_array_equal(
      safe_pickle.read_vidit_depth(fakes.depth_npy_bytes(depth), "d.npy"), depth)


def _patch_zip_field(data: bytes, local_offset: int, central_offset: int, value: int) -> bytes:
  """Sets a 2-byte field of every local header and central-directory entry of a zip."""
  data = bytearray(data)
  for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
    start = data.find(signature)
    while start >= 0:
      data[start + offset:start + offset + 2] = value.to_bytes(2, "little")
      start = data.find(signature, start + 4)
  return bytes(data)


@pytest.mark.parametrize("kind, expected", [
    ("encrypted", "encrypted zip member; extract the archive"),
    ("deflate64", "compressed with Deflate64, which Python cannot read")])
def test_an_unreadable_zip_member_is_a_value_error_naming_it(tmp_path, kind, expected):
  fakes.write_zip(tmp_path / "manual" / "train.zip", fakes.scene_files([0]))
  archive = tmp_path / "manual" / "train.zip"
  data = archive.read_bytes()
  # Flags at offsets 6 / 8 (bit 0: encrypted); method at 8 / 10 (9: Deflate64).
  archive.write_bytes(_patch_zip_field(data, 6, 8, 1) if kind == "encrypted"
                      else _patch_zip_field(data, 8, 10, 9))
  message = _build_fails(tmp_path, tmp_path / "manual", match=expected)
  assert f"{archive}!Image000_" in message


def test_a_zip_member_larger_than_any_vidit_file_is_refused_before_reading(tmp_path,
                                                                          monkeypatch):
  from relight_jax.datasets.vidit import manual_tree  # noqa: PLC0415
  files = fakes.scene_files([0])
  name = fakes.light_name(0, 7)
  files[name] = b"\0" * (2 << 20)  # a few KB compressed, 2 MiB stated
  fakes.write_zip(tmp_path / "manual" / "train.zip", files)
  monkeypatch.setattr(manual_tree, "MAX_FILE_BYTES", 1 << 20)
  reads = []
  original = manual_tree.zipfile.ZipFile.read
  monkeypatch.setattr(manual_tree.zipfile.ZipFile, "read",
                      lambda self, member, *args: reads.append(getattr(member, "filename", member))
                      or original(self, member, *args))
  message = _build_fails(tmp_path, tmp_path / "manual", match="more than any VIDIT file")
  assert f"train.zip!{name}: 2,097,152 bytes" in message and name not in reads


def test_a_png_header_larger_than_any_vidit_image_is_refused_before_decoding(tmp_path):
  import PIL.Image  # noqa: PLC0415
  files = fakes.scene_files([0])
  buffer = io.BytesIO()
  PIL.Image.new("L", (5000, 8)).save(buffer, format="PNG")
  files[fakes.light_name(0, 3)] = buffer.getvalue()
  fakes.write_tree(tmp_path / "manual", files)
  message = _build_fails(tmp_path, tmp_path / "manual", match="larger than any VIDIT image")
  assert fakes.light_name(0, 3) in message and "5000x8" in message


def test_zip_members_named_with_a_leading_dot_slash_are_listed(tmp_path, caplog):
  import zipfile  # noqa: PLC0415

  from relight_jax.datasets.vidit import manual_tree  # noqa: PLC0415
  (tmp_path / "manual").mkdir()
  with zipfile.ZipFile(tmp_path / "manual" / "train.zip", "w") as archive:
    for name, data in fakes.scene_files([0]).items():
      archive.writestr(f"./{name}", data)
  with zipfile.ZipFile(tmp_path / "manual" / "readme.zip", "w") as archive:
    archive.writestr("README.txt", "hello")
  listed = manual_tree.scan_manual_dir(tmp_path / "manual")
  assert len(listed) == 40 and all(f.relpath.startswith("train/Image000_") for f in listed)
  assert "readme.zip holds no .png or .npy file" in caplog.text


def test_capitalised_role_folders_pair_and_a_stray_folder_is_named(tmp_path):
  from relight_jax.datasets.vidit import manual_tree  # noqa: PLC0415
  from relight_jax.datasets.vidit import real_layouts  # noqa: PLC0415
  files = {path.replace("/input/", "/Input/").replace("/guide/", "/GUIDE/"): data
           for path, data in fakes.pair_files("validation", [0, 1]).items()}
  fakes.write_tree(tmp_path / "m1", files)
  pairs = real_layouts.group_eval_pairs(manual_tree.scan_manual_dir(tmp_path / "m1"), "m1")
  assert [pair.pair for pair in pairs["validation"]] == [0, 1]
  files["validation/extra/Pair000.png"] = fakes.png_bytes((1, 2, 3))
  fakes.write_tree(tmp_path / "m2", files)
  with pytest.raises(ValueError, match="do not follow the VIDIT naming") as raised:
    real_layouts.group_eval_pairs(manual_tree.scan_manual_dir(tmp_path / "m2"), "m2")
  assert "validation/extra/Pair000.png" in str(raised.value)
  assert "duplicate" not in str(raised.value)
