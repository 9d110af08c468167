"""The public VIDIT layouts: file naming, split rules and validation.

Three releases exist (the full release, NTIRE 2021 track 2, AIM 2020 track 3);
`LAYOUTS` describes each. Their files come in two shapes, parsed here from a
`manual_tree.scan_manual_dir` listing:

* 40-illumination scenes, flat `ImageNNN_TTTT_D.png` (+ optional depth `ImageNNN.npy`):
  `group_light_scenes` groups them per scene in `lights.py` light-index order and assigns
  the split from the scene number (`SCENE_SPLITS`: 000-299 train, 300-344 validation,
  345-389 test; the public release has no location labels, so the report's location
  split cannot be reproduced). A tree with only the public train release (no scene
  past 299) is split by `HOLDOUT_SPLITS` instead: 000-239 train, 240-269 validation,
  270-299 test, so that it trains, validates and tests on disjoint scenes.
* Fixed evaluation pairs `input/PairNNN.png` + `guide/PairNNN.png` (+ `.npy` depth) with
  flat ground truth `PairNNN.png`: `group_eval_pairs` assigns the split from a folder or
  archive name containing "val" or "test".

Every problem is reported with the offending paths and what was expected; scenes that
lack some of their 40 illuminations are *excluded* with a warning that counts them
(the input pipeline's index arithmetic needs all 40), everything else is an error.
"""

import collections
import dataclasses
import re

from absl import logging

from relight_jax.data import lights
from relight_jax.datasets.vidit import manual_tree


@dataclasses.dataclass(frozen=True)
class Layout:
  """One public VIDIT release.

  Attributes:
    name: key in LAYOUTS, also the optional sub-folder of manual_dir holding it.
    title: human name of the release.
    nominal_size: side in pixels of the released images (a different size only warns).
  """
  name: str
  title: str
  nominal_size: int


LAYOUTS = {
    "full": Layout("full", "VIDIT full release (train/validation/test)", 1024),
    "ntire21_track2": Layout("ntire21_track2", "NTIRE 2021 track 2 (any-to-any, depth)", 1024),
    "aim20_track3": Layout("aim20_track3", "AIM 2020 track 3 (any-to-any)", 512),
}

NUM_VIDIT_SCENES = 390
# Inclusive scene-number ranges of the full release (VIDIT README; 345-389 were the
# NTIRE 2021 test scenes).
SCENE_SPLITS = (("train", 0, 299), ("validation", 300, 344), ("test", 345, 389))
# The split when only the public train release (000-299) is present: its last 60 scenes
# are held out, so that validation (periodic evaluation, choices) and test (tables) exist.
HOLDOUT_SPLITS = (("train", 0, 239), ("validation", 240, 269), ("test", 270, 299))

_DIRECTION_ALTERNATION = "|".join(sorted(lights.DIRECTIONS, key=len, reverse=True))
LIGHT_FILE_RE = re.compile(rf"^Image(\d{{3}})_(\d{{4}})_({_DIRECTION_ALTERNATION})\.png$")
SCENE_DEPTH_RE = re.compile(r"^Image(\d{3})\.npy$")
PAIR_FILE_RE = re.compile(r"^Pair(\d{3})\.(png|npy)$")

LIGHT_PATTERN_HELP = ("ImageNNN_TTTT_D.png (NNN = scene 000-389, TTTT in "
                      f"{lights.TEMPERATURES_K}, D in {lights.DIRECTIONS}) or depth "
                      "ImageNNN.npy")
PAIR_PATTERN_HELP = ("<split>/input/PairNNN.png, <split>/guide/PairNNN.png (+ .npy depth) "
                     "and ground truth <split>/PairNNN.png, <split> a folder or zip whose "
                     "name contains 'val' or 'test'")
_MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class LightScene:
  """A real VIDIT scene with all its illuminations.

  Attributes:
    scene: global scene number (NNN of ImageNNN).
    split: "train", "validation" or "test".
    images: the 40 image files in light-index order (lights.py).
    depth: the scene's depth file, or None.
  """
  scene: int
  split: str
  images: tuple[manual_tree.SourceFile, ...]
  depth: manual_tree.SourceFile | None


@dataclasses.dataclass(frozen=True)
class EvalPair:
  """A fixed evaluation pair (input image I, guide/target image T, ground truth G)."""
  pair: int
  split: str
  input_image: manual_tree.SourceFile
  target_image: manual_tree.SourceFile
  ground_truth: manual_tree.SourceFile | None
  input_depth: manual_tree.SourceFile | None
  target_depth: manual_tree.SourceFile | None


def _listing(files, limit=_MAX_LISTED) -> str:
  shown = [f"  {f.origin}" for f in files[:limit]]
  if len(files) > limit:
    shown.append(f"  ... and {len(files) - limit} more")
  return "\n".join(shown)


def _bad_names_error(bad, expected: str, root) -> ValueError:
  return ValueError(
      f"{len(bad)} file(s) under {root} do not follow the VIDIT naming; expected "
      f"{expected}:\n{_listing(bad)}")


def scene_split(scene: int, rule=SCENE_SPLITS) -> str:
  """Split of a real VIDIT scene number under `rule` (SCENE_SPLITS or HOLDOUT_SPLITS)."""
  for split, first, last in rule:
    if first <= scene <= last:
      return split
  raise ValueError(f"scene {scene} is outside VIDIT's 000-{NUM_VIDIT_SCENES - 1}")


def _check_duplicate(seen: dict, key, source, what: str):
  if key in seen:
    raise ValueError(
        f"duplicate {what}: {seen[key].origin} and {source.origin} (e.g. the same scene "
        "both extracted and inside a zip, or in two releases); keep one copy in manual_dir")
  seen[key] = source


def group_light_scenes(files, root) -> dict[str, list[LightScene]]:
  """Groups flat `ImageNNN_TTTT_D.png` files into complete 40-illumination scenes.

  Args:
    files: `SourceFile`s from `manual_tree.scan_manual_dir`.
    root: the manual dir (for messages).

  Returns:
    {split: scenes sorted by scene number}; splits without scenes are left out.

  Raises:
    ValueError: badly named files, out-of-range scenes, duplicates, or no scene at all.
  """
  images, depths, bad = {}, {}, []
  for source in files:
    match = LIGHT_FILE_RE.match(source.name)
    if match:
      scene = int(match.group(1))
      temperature, direction = int(match.group(2)), match.group(3)
      if scene >= NUM_VIDIT_SCENES or temperature not in lights.TEMPERATURES_K:
        bad.append(source)
        continue
      light = int(lights.light_index(lights.temperature_index_of(temperature),
                                     lights.direction_index_of(direction)))
      _check_duplicate(images, (scene, light), source, f"image of scene {scene:03d}")
    elif match := SCENE_DEPTH_RE.match(source.name):
      scene = int(match.group(1))
      if scene >= NUM_VIDIT_SCENES:
        bad.append(source)
        continue
      _check_duplicate(depths, scene, source, f"depth of scene {scene:03d}")
    elif not PAIR_FILE_RE.match(source.name):  # Pair files belong to the *_pairs configs.
      bad.append(source)
  if bad:
    raise _bad_names_error(bad, LIGHT_PATTERN_HELP, root)
  by_scene = collections.defaultdict(dict)
  for (scene, light), source in images.items():
    by_scene[scene][light] = source
  incomplete = {scene: found for scene, found in by_scene.items()
                if len(found) != lights.NUM_LIGHTS}
  if incomplete:
    details = []
    for scene, found in sorted(incomplete.items())[:_MAX_LISTED]:
      missing = [f"{lights.temperature_of(light)}_{lights.DIRECTIONS[lights.direction_of(light)]}"
                 for light in range(lights.NUM_LIGHTS) if light not in found]
      details.append(f"Image{scene:03d} ({len(found)}/40; missing {', '.join(missing[:4])}"
                     f"{', ...' if len(missing) > 4 else ''})")
    logging.warning(
        "Excluding %d scene(s) under %s that lack some of the 40 illuminations (the "
        "dataset's record arithmetic needs all 40): %s", len(incomplete), root,
        "; ".join(details))
  orphan_depths = sorted(set(depths) - set(by_scene))
  if orphan_depths:
    logging.warning("Ignoring %d depth file(s) without images, e.g. %s",
                    len(orphan_depths), depths[orphan_depths[0]].origin)
  complete = sorted(set(by_scene) - set(incomplete))
  rule = SCENE_SPLITS
  if complete and max(complete) <= SCENE_SPLITS[0][2]:
    rule = HOLDOUT_SPLITS
    logging.warning("Only train-release scenes (000-%03d) under %s: holding out %s for "
                    "validation and test", SCENE_SPLITS[0][2], root,
                    ", ".join(f"{first:03d}-{last:03d} ({split})"
                              for split, first, last in HOLDOUT_SPLITS[1:]))
  splits = collections.defaultdict(list)
  for scene in complete:
    found, split = by_scene[scene], scene_split(scene, rule)
    splits[split].append(LightScene(
        scene=scene, split=split,
        images=tuple(found[light] for light in range(lights.NUM_LIGHTS)),
        depth=depths.get(scene)))
  if not splits:
    raise ValueError(
        f"no complete VIDIT scene (all 40 ImageNNN_TTTT_D.png files of a scene) found "
        f"under {root}"
        + (f"; {len(incomplete)} incomplete scene(s) were excluded" if incomplete else ""))
  return dict(splits)


def pair_split(source: manual_tree.SourceFile) -> str | None:
  """"validation"/"test" from the folders/archives in a pair file's path, else None."""
  folders = [part.lower() for part in source.relpath.split("/")[:-1]]
  found = set()
  for part in folders:
    if "val" in part:
      found.add("validation")
    if "test" in part:
      found.add("test")
  return found.pop() if len(found) == 1 else None


def group_eval_pairs(files, root) -> dict[str, list[EvalPair]]:
  """Groups `input/`, `guide/` and ground-truth `PairNNN` files into evaluation pairs.

  Args:
    files: `SourceFile`s from `manual_tree.scan_manual_dir`.
    root: the manual dir (for messages).

  Returns:
    {split: pairs sorted by pair number}.

  Raises:
    ValueError: badly named or unplaceable files, duplicates, pairs lacking their input
      or guide image, or no pair at all.
  """
  roles, bad = {}, []
  for source in files:
    match = PAIR_FILE_RE.match(source.name)
    if not match:
      if not (LIGHT_FILE_RE.match(source.name) or SCENE_DEPTH_RE.match(source.name)):
        bad.append(source)
      continue
    split = pair_split(source)
    if split is None:
      bad.append(source)
      continue
    # Folder names as users write them (Input/, GUIDE/); ground truth lies in the split's
    # own folder, so a file in any other folder is misplaced, not a second ground truth.
    parent = source.parent_name.lower()
    if parent in ("input", "guide"):
      role = parent
    elif "val" in parent or "test" in parent:
      role = "ground_truth"
    else:
      bad.append(source)
      continue
    kind = "depth" if match.group(2) == "npy" else "image"
    key = (split, int(match.group(1)))
    _check_duplicate(roles, (*key, role, kind), source,
                     f"{role} {kind} of {split} pair {key[1]:03d}")
  if bad:
    raise _bad_names_error(bad, PAIR_PATTERN_HELP, root)
  pair_keys = sorted({(split, pair) for split, pair, _, _ in roles})
  splits = collections.defaultdict(list)
  incomplete, without_ground_truth = [], []
  for split, pair in pair_keys:
    get = lambda role, kind, split=split, pair=pair: roles.get((split, pair, role, kind))
    if get("input", "image") is None or get("guide", "image") is None:
      incomplete.append(next(source for key, source in roles.items()
                             if key[:2] == (split, pair)))
      continue
    if get("ground_truth", "image") is None:
      without_ground_truth.append(get("input", "image"))
    splits[split].append(EvalPair(
        pair=pair, split=split, input_image=get("input", "image"),
        target_image=get("guide", "image"), ground_truth=get("ground_truth", "image"),
        input_depth=get("input", "depth"), target_depth=get("guide", "depth")))
  if incomplete:
    raise ValueError(
        f"{len(incomplete)} pair(s) under {root} lack their input/PairNNN.png or "
        f"guide/PairNNN.png (expected {PAIR_PATTERN_HELP}):\n{_listing(incomplete)}")
  if without_ground_truth:
    logging.warning("%d pair(s) have no ground-truth PairNNN.png (stored with "
                    "has_ground_truth=False), e.g. %s", len(without_ground_truth),
                    without_ground_truth[0].origin)
  if not splits:
    raise ValueError(f"no evaluation pair ({PAIR_PATTERN_HELP}) found under {root}")
  return dict(splits)
