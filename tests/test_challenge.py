"""Tests of relight_jax/challenge.py and challenge_pairs.py on fake NTIRE 2021 / AIM 2020 trees."""

import io
import json
import pathlib

import numpy as np
import PIL.Image
import pytest
import vidit_fakes as fakes
from conftest import checkpointed_workdir
from skimage.metrics import structural_similarity

from relight_jax import challenge
from relight_jax.common import atomic
from relight_jax.evaluation import challenge_pairs
from relight_jax.evaluation import metrics

SIZE = 64  # LPIPS-AlexNet needs >= 32 px; the smoke model works at 32 px
NTIRE = challenge_pairs.BENCHMARKS["ntire21_track2"]
AIM = challenge_pairs.BENCHMARKS["aim20_track3"]


def _texture(seed, size=SIZE):
  """A uint8 'render': smooth shading times a random texture, distinct per seed."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:size, 0:size] / size
  shading = 0.2 + 0.7 * np.stack([rows, cols, 1 - rows * cols], axis=-1) * rng.random(3)
  texture = 0.6 + 0.4 * rng.random((size, size, 3))
  return np.round(shading * texture * 255).astype(np.uint8)


def _png(image):
  buffer = io.BytesIO()
  PIL.Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _pair_tree(folder, pairs, ground_truth=True):
  """{relative path: PNG bytes} of a split: input/, guide/ and flat ground truth."""
  files = {}
  for pair in pairs:
    for role, prefix in ((0, "input/"), (1, "guide/"), (2, "")):
      if role < 2 or ground_truth:
        files[f"{folder}/{prefix}Pair{pair:03d}.png"] = _png(_texture(10 * pair + role))
  return files


def _read(path):
  return np.asarray(PIL.Image.open(path).convert("RGB"))


@pytest.fixture()
def ntire_tree(tmp_path):
  """manual_dir/ntire21_track2/ with 4 validation pairs (and their depth files, which
  our models do not use), 2 test pairs (no ground truth) and the train release's scene
  files (not pairs: ignored)."""
  root = tmp_path / "manual" / "ntire21_track2"
  fakes.write_tree(root, _pair_tree("track2_validation", range(4)))
  fakes.write_tree(root, {f"track2_validation/{role}/Pair{pair:03d}.npy":
                          fakes.depth_npy_bytes(fakes.depth_map(pair, SIZE))
                          for pair in range(4) for role in ("input", "guide")})
  fakes.write_tree(root, _pair_tree("track2_test", range(2), ground_truth=False))
  fakes.write_tree(root / "track2_train", fakes.scene_files([0]))
  return tmp_path / "manual"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp("workdir")
  checkpointed_workdir(path, 7)
  return path


def _run(capsys, *argv):
  status = challenge.main([str(arg) for arg in argv])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


# ---------------------------------------------------------------- pairs and file names


def test_pairs_are_matched_by_name_from_the_layout_sub_folder(ntire_tree):
  root, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  assert root == ntire_tree / "ntire21_track2"
  assert [pair.pair for pair in pairs] == [0, 1, 2, 3]
  for pair in pairs:
    name = f"Pair{pair.pair:03d}.png"
    assert pair.input_image.relpath == f"track2_validation/input/{name}"
    assert pair.target_image.relpath == f"track2_validation/guide/{name}"
    assert pair.ground_truth.relpath == f"track2_validation/{name}"
    assert challenge_pairs.submission_name(pair) == name
  assert challenge_pairs.ground_truth_status(pairs)
  _, test_pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "test")
  assert not challenge_pairs.ground_truth_status(test_pairs)


@pytest.mark.parametrize("change, named", [
    ("remove guide", "Pair002.png"),            # an input without its guide
    ("extra ground truth", "Pair009.png"),      # a ground truth of no pair
    ("bad name", "pair_3.png"),                 # not the release's naming
])
def test_a_missing_or_extra_release_file_is_an_error_naming_it(ntire_tree, change, named):
  split = ntire_tree / "ntire21_track2" / "track2_validation"
  if change == "remove guide":
    (split / "guide" / "Pair002.png").unlink()
  elif change == "extra ground truth":
    (split / "Pair009.png").write_bytes(_png(_texture(99)))
  else:
    (split / "input" / "pair_3.png").write_bytes(_png(_texture(98)))
  with pytest.raises(challenge_pairs.ChallengeError, match=named):
    challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")


def test_a_pair_without_ground_truth_among_scored_ones_is_named(ntire_tree):
  (ntire_tree / "ntire21_track2" / "track2_validation" / "Pair001.png").unlink()
  _, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  with pytest.raises(challenge_pairs.ChallengeError, match="1 of 4 pairs have no ground truth: "
                     "Pair001.png"):
    challenge_pairs.ground_truth_status(pairs)


def test_a_missing_split_or_manual_dir_says_what_was_found(ntire_tree, tmp_path):
  with pytest.raises(challenge_pairs.ChallengeError, match="no such folder"):
    challenge_pairs.load_pairs(tmp_path / "nowhere", NTIRE, "validation")
  (ntire_tree / "ntire21_track2" / "track2_test" / "input" / "Pair000.png").unlink()
  (ntire_tree / "ntire21_track2" / "track2_test" / "input" / "Pair001.png").unlink()
  with pytest.raises(challenge_pairs.ChallengeError, match="lack their input"):
    challenge_pairs.load_pairs(ntire_tree, NTIRE, "test")


def test_submission_folder_must_hold_exactly_one_file_per_pair(ntire_tree, tmp_path):
  _, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  folder = tmp_path / "submission"
  folder.mkdir()
  for pair in (0, 1, 2, 3):
    (folder / f"Pair{pair:03d}.png").write_bytes(_png(_texture(pair)))
  (folder / "readme.txt").write_text("runtime per image [s] : 1\n")  # the challenges' readme
  found = challenge_pairs.match_predictions(folder, pairs)
  assert found == {pair: folder / f"Pair{pair:03d}.png" for pair in range(4)}
  (folder / "Pair003.png").unlink()
  (folder / "Pair099.png").write_bytes(_png(_texture(5)))
  (folder / "notes.txt").write_text("")
  with pytest.raises(challenge_pairs.ChallengeError) as raised:
    challenge_pairs.match_predictions(folder, pairs)
  message = str(raised.value)
  assert "no prediction for 1 pair(s): Pair003.png" in message
  assert "2 file(s) that match no pair: Pair099.png, notes.txt" in message


# ---------------------------------------------------------------- scores


def test_a_perfect_prediction_scores_the_bounds(ntire_tree):
  _, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  root = ntire_tree / "ntire21_track2"
  perfect = lambda pair, input_image, guide: _read(root / pair.ground_truth.relpath)
  per_example, side = challenge_pairs.run_pairs(pairs, perfect, nominal_size=NTIRE.resolution)
  assert side == SIZE
  np.testing.assert_array_equal(per_example["mse"], 0.0)
  # metrics.psnr bounds the MSE at 1e-12: a perfect prediction scores 120 dB, not inf.
  np.testing.assert_allclose(per_example["psnr"], 120.0)
  np.testing.assert_allclose(per_example["ssim"], 1.0, atol=1e-5)
  np.testing.assert_allclose(per_example["lpips"], 0.0, atol=1e-6)
  np.testing.assert_allclose(per_example["mps"], 1.0, atol=1e-5)


def test_the_identity_scores_what_independent_metrics_give(ntire_tree):
  _, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  root = ntire_tree / "ntire21_track2"
  identity = lambda pair, input_image, guide: _read(root / pair.input_image.relpath)
  per_example, _ = challenge_pairs.run_pairs(pairs, identity, nominal_size=NTIRE.resolution)
  for index, pair in enumerate(pairs):
    input_image = _read(root / pair.input_image.relpath) / 255.0
    ground_truth = _read(root / pair.ground_truth.relpath) / 255.0
    mse = np.mean((input_image - ground_truth) ** 2)
    ssim = structural_similarity(input_image, ground_truth, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    lpips = float(metrics.lpips(input_image[None].astype(np.float32),
                                ground_truth[None].astype(np.float32))[0])
    assert lpips > 0.01  # the pairs differ: not a vacuous comparison
    for prefix in ("", "identity/"):  # the prediction is the input: both rows agree
      np.testing.assert_allclose(per_example[prefix + "mse"][index], mse, rtol=1e-5)
      np.testing.assert_allclose(per_example[prefix + "psnr"][index], -10 * np.log10(mse),
                                 rtol=1e-5)
      np.testing.assert_allclose(per_example[prefix + "ssim"][index], ssim, atol=1e-4)
      np.testing.assert_allclose(per_example[prefix + "lpips"][index], lpips, atol=1e-5)
      np.testing.assert_allclose(per_example[prefix + "mps"][index],
                                 0.5 * (ssim + 1 - lpips), atol=1e-4)


def test_a_prediction_of_another_size_is_refused(ntire_tree):
  _, pairs = challenge_pairs.load_pairs(ntire_tree, NTIRE, "validation")
  small = lambda pair, input_image, guide: np.zeros((32, 32, 3), np.uint8)
  with pytest.raises(challenge_pairs.ChallengeError, match=r"Pair000.png is uint8 \(32, 32, 3\); "
                     r"expected uint8 \(64, 64, 3\)"):
    challenge_pairs.run_pairs(pairs, small, nominal_size=NTIRE.resolution)


# ---------------------------------------------------------------- the command


def test_cli_scores_a_model_and_writes_the_submission_it_scored(ntire_tree, workdir, tmp_path,
                                                                capsys):
  submission = tmp_path / "out" / "submission"
  status, table, err = _run(capsys, "--workdir", workdir, "--benchmark", "ntire21_track2",
                            "--split", "validation", "--manual_dir", ntire_tree,
                            "--write_predictions", submission, "--bootstrap_samples", 200)
  assert status == 0, err
  assert "### NTIRE 2021 depth guided relighting, track 2 (any-to-any), validation (4 pairs)" \
      in table
  assert f"scored at {SIZE} px" in table and "200 bootstrap replicates over pairs" in table
  assert f"| Metric | Identity (G_hat = I) | {workdir.name} |" in table
  for row in ("MPS = (SSIM + 1 - LPIPS) / 2", "PSNR (dB)", "SSIM", "LPIPS", "Score"):
    assert f"| {row} |" in table
  # The submission layout: the ground truth's names, the readme, nothing half-written.
  listing = sorted(path.name for path in submission.iterdir())
  assert listing == ["Pair000.png", "Pair001.png", "Pair002.png", "Pair003.png",
                     "readme.txt"]
  assert [path.name for path in submission.parent.iterdir()] == ["submission"]
  assert all(_read(submission / name).shape == (SIZE, SIZE, 3) for name in listing[:4])
  readme = (submission / "readme.txt").read_text().splitlines()
  assert readme[0].startswith("runtime per image [s] : ")
  assert readme[1:3] == ["CPU[1] / GPU[0] : 1", "Extra Data [1] / No Extra Data [0] : 1"]
  assert readme[3].startswith("Other description : relight_jax envmap")
  assert readme[3].endswith("trained on vidit/synthetic_tiny")
  record = json.loads((workdir / "challenge_ntire21_track2_validation" / "metrics.json")
                      .read_text())
  assert record["meta"]["image_size"] == SIZE and record["meta"]["working_size"] == 32
  scores = record["subsets"]["ntire21_track2"]["metrics"]
  # Scoring the written folder gives the same numbers: what is scored is what is submitted.
  status, _, err = _run(capsys, "--predictions", submission, "--benchmark", "ntire21_track2",
                        "--split", "validation", "--manual_dir", ntire_tree,
                        "--output", tmp_path / "folder.md", "--bootstrap_samples", 200)
  assert status == 0, err
  folder_table = (tmp_path / "folder.md").read_text()
  assert f"- **submission**: predictions read from `{submission}`" in folder_table
  model_rows = [line for line in table.splitlines() if line.startswith("| MPS")]
  assert model_rows == [line for line in folder_table.splitlines()
                        if line.startswith("| MPS")]
  assert scores["mps"]["ci95"][0] <= scores["mps"]["mean"] <= scores["mps"]["ci95"][1]


def test_cli_test_split_writes_a_submission_and_scores_nothing(ntire_tree, workdir, tmp_path,
                                                               capsys):
  common = ("--workdir", workdir, "--benchmark", "ntire21_track2", "--split", "test",
            "--manual_dir", ntire_tree)
  status, _, err = _run(capsys, *common)
  assert status == 1
  assert "have no ground truth (the challenge kept it private)" in err
  assert "--write_predictions" in err
  submission = tmp_path / "test_submission"
  status, out, err = _run(capsys, *common, "--write_predictions", submission)
  assert status == 0, err
  assert "wrote 2 predictions" in out and "nothing scored" in out
  assert sorted(path.name for path in submission.iterdir()) == [
      "Pair000.png", "Pair001.png", "readme.txt"]
  # An existing submission is only replaced with --overwrite, before the model loads.
  status, _, err = _run(capsys, *common, "--write_predictions", submission)
  assert status == 1 and "pass --overwrite" in err
  status, _, err = _run(capsys, *common, "--write_predictions", submission, "--overwrite")
  assert status == 0, err


def test_cli_scores_an_aim_submission_folder_from_a_zip(tmp_path, capsys):
  """AIM 2020 track 3 validation pairs inside a zip; the identity submitted as a folder."""
  files = _pair_tree("AIM2020_track3_validation", range(3))
  fakes.write_zip(tmp_path / "manual" / "aim.zip", files)
  identity = tmp_path / "identity"
  identity.mkdir()
  for pair in range(3):
    name = f"Pair{pair:03d}.png"
    (identity / name).write_bytes(files[f"AIM2020_track3_validation/input/{name}"])
  status, table, err = _run(capsys, "--predictions", identity, "--benchmark", "aim20_track3",
                            "--split", "validation", "--manual_dir", tmp_path / "manual")
  assert status == 0, err
  assert "### AIM 2020 scene relighting, track 3 (any-to-any), validation (3 pairs)" in table
  score_row = next(line for line in table.splitlines() if line.startswith("| Score"))
  assert score_row == "| Score | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] |"
  mps_row = next(line for line in table.splitlines() if line.startswith("| MPS"))
  cells = [cell.strip() for cell in mps_row.strip("|").split("|")]
  assert cells[1] == cells[2]  # the identity submitted scores as the identity row


def test_cli_refuses_bad_arguments_in_one_line(ntire_tree, workdir, tmp_path, capsys):
  base = ("--benchmark", "ntire21_track2", "--split", "validation", "--manual_dir")
  status, _, err = _run(capsys, "--workdir", tmp_path / "none", *base, ntire_tree)
  assert status == 1 and "--workdir" in err and "no such folder" in err
  status, _, err = _run(capsys, "--predictions", tmp_path / "none", *base, ntire_tree)
  assert status == 1 and "--predictions" in err
  status, _, err = _run(capsys, "--workdir", workdir, *base, tmp_path / "none")
  assert status == 1 and "--manual_dir" in err
  assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("data, benchmark, extra", [
    ("vidit/ntire21_track2_256", NTIRE, False), ("vidit/aim20_track3_512", AIM, False),
    ("vidit/ntire21_track2_256", AIM, True), ("vidit/full_256", NTIRE, True),
    ("vidit/synthetic_small", NTIRE, True)])
def test_only_the_tracks_own_release_is_no_extra_data(data, benchmark, extra):
  assert challenge.uses_extra_data(data, benchmark) == extra


# ---------------------------------------------------------------- atomic folders


def test_a_failed_submission_leaves_no_folder_and_keeps_the_previous_one(tmp_path):
  destination = tmp_path / "submission"

  def fill_and_fail():
    with atomic.replacing_folder(destination, overwrite=True) as staging:
      (staging / "Pair000.png").write_bytes(b"half")
      raise RuntimeError("interrupted")

  with pytest.raises(RuntimeError):
    fill_and_fail()
  assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary
  with atomic.replacing_folder(destination) as staging:
    (staging / "Pair000.png").write_bytes(b"first")
    assert not destination.exists()  # not under its name until complete
  with pytest.raises(RuntimeError):
    fill_and_fail()
  assert [path.name for path in tmp_path.iterdir()] == ["submission"]
  assert (destination / "Pair000.png").read_bytes() == b"first"
  with pytest.raises(FileExistsError, match="pass overwrite"):
    with atomic.replacing_folder(destination):
      pass
  with atomic.replacing_folder(destination, overwrite=True) as staging:
    (staging / "Pair001.png").write_bytes(b"second")
  assert sorted(path.name for path in tmp_path.iterdir()) == ["submission"]
  assert [path.name for path in destination.iterdir()] == ["Pair001.png"]
  assert oct(pathlib.Path(destination).stat().st_mode & 0o777) == "0o755"
