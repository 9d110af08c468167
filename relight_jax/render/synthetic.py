"""The synthetic VIDIT-like dataset: sizes, splits by location, and rendering of scenes.

This is the renderer's public API; the TFDS builder (`relight_jax/datasets/`) codes against
it. A `SyntheticSpec` names a dataset size. Locations are numbered globally across splits
in the order of `split_locations` (train first), so splits have disjoint locations as in
the report (§3.1: 9 train / 3 validation locations); scene id = location *
scenes_per_location + view. Each scene is rendered under all 40 illuminations in the order
of `relight_jax.data.lights` (light = temperature_index * 8 + direction_index), plus depth and
normals. Everything is deterministic given the spec's seed (and the sampler seed).

Shipped render settings (path tracing, multi-jittered sampler, max_depth 3; see
mitsuba_scene.py), measured on the 2-core CPU machine with `python -m bench.render_speed
--noise`: two renders with different sampler seeds agree to >= 35 dB PSNR on the uint8
sRGB images (minimum over the 40 lights of one scene: tiny 37.2 dB, small 40.7 dB,
synthetic 39.3 dB). CPU seconds per scene (40 images): tiny 0.8, small 2.0, synthetic
23.3, i.e. about 1.2 min (small, 72 scenes) and 35 min (synthetic, 180 scenes) for the
whole dataset on an idle 2-core machine. Those figures are v1's (`generator="v1"`); the
v2 specs (`synthetic_v2*`, richer content, more AOVs, a held-out-content split) and their
noise and timings are described in docs/data.md.

What a scene holds and how it is rendered is its spec's *generator* (`generators.py`:
v1, v2); this module only numbers, seeds, schedules and caches the scenes, the same for
every generator.
"""

import dataclasses
import logging
import multiprocessing
import os
import pathlib
import resource
from collections.abc import Iterator

import numpy as np

from relight_jax.common import atomic
from relight_jax.render import generators
from relight_jax.render import mitsuba_scene

# What `render_scene` returns (defined with the generators, which make it).
RenderedScene = generators.RenderedScene


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """Size and seed of one synthetic dataset."""
  name: str
  image_size: int  # output pixels per side
  samples_per_pixel: int
  split_locations: tuple[tuple[str, int], ...]  # (("train", 9), ("validation", 3), ...)
  scenes_per_location: int
  seed: int
  generator: str = "v1"  # a key of generators.GENERATORS
  # (split, content) pairs, content one of the generator's `contents`; splits not listed
  # use its first.
  split_content: tuple[tuple[str, str], ...] = ()

  def content_of(self, split):
    """The name of the content set the locations of `split` are drawn from.

    Raises:
      ValueError: the spec gives the split a content its generator does not have.
    """
    contents = generator_of(self).contents
    content = dict(self.split_content).get(split, contents[0])
    if content not in contents:
      raise ValueError(f"synthetic spec {self.name!r}: split {split!r} has content "
                       f"{content!r}, which generator {self.generator!r} does not have; "
                       f"expected one of {list(contents)}")
    return content


SPECS: dict[str, SyntheticSpec] = {
    # Unit tests: seconds on one core.
    "synthetic_tiny": SyntheticSpec(
        "synthetic_tiny", image_size=32, samples_per_pixel=64,
        split_locations=(("train", 1), ("validation", 1), ("test", 1)),
        scenes_per_location=2, seed=0),
    # `make demo`: about 2 minutes on 2 cores, enough locations to generalise.
    "synthetic_small": SyntheticSpec(
        "synthetic_small", image_size=64, samples_per_pixel=49,
        split_locations=(("train", 12), ("validation", 3), ("test", 3)),
        scenes_per_location=4, seed=0),
    # The default: 256 px and the report's 9/3 location split (plus 3 test locations).
    "synthetic": SyntheticSpec(
        "synthetic", image_size=256, samples_per_pixel=36,
        split_locations=(("train", 9), ("validation", 3), ("test", 3)),
        scenes_per_location=12, seed=0),
    # v2: richer content (meshes, photographic textures, rooms and open scenes) and a
    # held-out-content test split whose object families and materials train never has.
    "synthetic_v2_tiny": SyntheticSpec(
        "synthetic_v2_tiny", image_size=32, samples_per_pixel=100,
        split_locations=(("train", 1), ("validation", 1), ("test", 1), ("test_heldout", 1)),
        scenes_per_location=2, seed=0, generator="v2",
        split_content=(("test_heldout", "heldout"),)),
    "synthetic_v2_small": SyntheticSpec(
        "synthetic_v2_small", image_size=64, samples_per_pixel=100,
        split_locations=(("train", 12), ("validation", 3), ("test", 3), ("test_heldout", 3)),
        scenes_per_location=4, seed=0, generator="v2",
        split_content=(("test_heldout", "heldout"),)),
    "synthetic_v2": SyntheticSpec(
        "synthetic_v2", image_size=256, samples_per_pixel=100,
        split_locations=(("train", 9), ("validation", 3), ("test", 3), ("test_heldout", 3)),
        scenes_per_location=12, seed=0, generator="v2",
        split_content=(("test_heldout", "heldout"),)),
    # Test sets for headline tables at 64 px: 24 locations each, two views per location.
    # Three test locations (the sets above) are an effective sample of about three for an
    # interval that resamples locations; 24 give intervals worth quoting. Seed 1 draws
    # rooms none of the seed-0 datasets has; `test_heldout` has the held-out content.
    "synthetic_v2_eval": SyntheticSpec(
        "synthetic_v2_eval", image_size=64, samples_per_pixel=100,
        split_locations=(("test", 24), ("test_heldout", 24)),
        scenes_per_location=2, seed=1, generator="v2",
        split_content=(("test_heldout", "heldout"),)),
}


def generator_of(spec):
  """The `generators.Generator` of a spec (ValueError listing the known ones if unknown)."""
  return generators.get(spec.generator, f"synthetic spec {spec.name!r}")


@dataclasses.dataclass(frozen=True)
class SceneRef:
  """Identifies one scene of a synthetic dataset."""
  scene: int  # global scene id (unique across splits)
  location: int  # global location id (splits have disjoint locations)
  view: int  # index of the scene within its location


def split_scenes(spec, split):
  """Scenes of one split in a deterministic order (by location, then view).

  Args:
    spec: the `SyntheticSpec`.
    split: one of the names in `spec.split_locations`.

  Returns:
    list of `SceneRef`.
  """
  first_location = 0
  for name, count in spec.split_locations:
    if name == split:
      return [SceneRef(scene=location * spec.scenes_per_location + view,
                       location=location, view=view)
              for location in range(first_location, first_location + count)
              for view in range(spec.scenes_per_location)]
    first_location += count
  raise ValueError(f"unknown split {split!r} for synthetic spec {spec.name!r}; expected one "
                   f"of {[name for name, _ in spec.split_locations]}")


def _split_of(spec, ref):
  first_location = 0
  for name, count in spec.split_locations:
    if first_location <= ref.location < first_location + count:
      return name
    first_location += count
  raise ValueError(f"location {ref.location} is in no split of {spec.name!r}")


def scene_description(spec, ref):
  """The procedural location and view of a scene (deterministic from spec.seed and ids).

  Returns:
    (location, view): the generator's location type and a `locations.View`.
  """
  generator = generator_of(spec)
  location = generator.sample_location(spec.seed, ref.location,
                                       spec.content_of(_split_of(spec, ref)))
  return location, generator.sample_view(spec.seed, ref.location, ref.view, location)


def render_scene(spec, ref, sampler_seed=0):
  """Renders one scene under all 40 illuminations, plus its geometry maps (AOVs).

  The unit of work of a dataset build: a pure function of (spec, ref, sampler_seed), so
  any scheduler (processes here, a pipeline runner elsewhere) can map it over scenes.

  Args:
    spec: the `SyntheticSpec` (image size, samples per pixel, seed, generator).
    ref: which scene (`SceneRef` from `split_scenes`).
    sampler_seed: Monte Carlo seed; different seeds give different noise only.

  Returns:
    a `RenderedScene` with the fields its generator fills (v2 also albedo, shading and
    the linear transport the images are composed from).
  """
  generator = generator_of(spec)
  location, view = scene_description(spec, ref)
  seed = (sampler_seed * 1_000_003 + ref.scene) % 2**27
  return generator.render(location, view, spec.image_size, spec.samples_per_pixel, seed)


def cpu_seconds():
  """CPU seconds (user + system) this process has used, its threads included."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _render_job(job):
  spec, ref, threads = job
  if threads is not None:
    mitsuba_scene.set_thread_count(threads)
  start = cpu_seconds()
  rendered = render_scene(spec, ref)
  return ref, dataclasses.replace(rendered, cpu_seconds=cpu_seconds() - start)


# Every array field of RenderedScene, so that a generator's new AOV is cached as well.
_CACHED_FIELDS = tuple(field.name for field in dataclasses.fields(RenderedScene)
                       if field.name != "cpu_seconds")


def _cache_file(cache_dir, ref):
  return pathlib.Path(cache_dir) / f"scene{ref.scene:05d}.npz"


def save_rendered(path, rendered):
  """Writes one rendered scene (with the CPU seconds it took) to `path`, atomically.

  Compressed (zlib): a third smaller (render noise compresses poorly), for well under a
  second per 256 px scene against a minute of rendering; a 1024 px scene's arrays are
  about 190 MB.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = {name: getattr(rendered, name) for name in _CACHED_FIELDS
            if getattr(rendered, name) is not None}
  with atomic.replacing(path) as stream:
    np.savez_compressed(stream, cpu_seconds=np.float64(rendered.cpu_seconds or 0.0), **arrays)


def load_rendered(path, spec):
  """The RenderedScene saved by `save_rendered`, or None if `path` is unusable.

  A missing file is None; an unreadable one, or one whose images are not the spec's 40
  [S, S, 3] uint8 images, is None with a warning (the scene is rendered again).
  """
  path = pathlib.Path(path)
  if not path.exists():
    return None
  size = spec.image_size
  try:
    with np.load(path, allow_pickle=False) as stored:
      fields = {name: stored[name] for name in _CACHED_FIELDS if name in stored}
      seconds = float(stored["cpu_seconds"])
    images = fields["images"]
    if images.shape != (40, size, size, 3) or images.dtype != np.uint8:
      raise ValueError(f"images {images.shape} {images.dtype}, expected (40, {size}, {size}, "
                       "3) uint8")
  except (OSError, ValueError, KeyError) as err:  # zipfile.BadZipFile is an OSError
    logging.warning("render cache %s is unusable (%s): rendering the scene again", path, err)
    return None
  return RenderedScene(**fields, cpu_seconds=seconds)


def render_split(spec, split, workers=None, progress=True, cache_dir=None) -> Iterator[
    tuple[SceneRef, RenderedScene]]:
  """Renders every scene of a split, in `split_scenes` order, in parallel over scenes.

  Args:
    spec: the `SyntheticSpec`.
    split: split name.
    workers: worker processes (default: all cores; 1 renders in this process). Mitsuba
      and JAX are not fork-safe, so workers are started with 'spawn': a script calling
      this with workers > 1 needs the usual `if __name__ == "__main__":` guard.
    progress: show a tqdm progress bar.
    cache_dir: if given, every rendered scene is saved there (`sceneNNNNN.npz`) and
      scenes already there are read instead of rendered, so an interrupted build resumes
      where it stopped. The folder must be specific to the spec and its version.

  Yields:
    (SceneRef, RenderedScene) pairs.
  """
  refs = split_scenes(spec, split)
  # Checked whole now (an unusable file is rendered again), read again when its turn
  # comes: a 256 px split does not fit in memory at once.
  cached = set() if cache_dir is None else {
      ref for ref in refs if load_rendered(_cache_file(cache_dir, ref), spec) is not None}
  to_render = [ref for ref in refs if ref not in cached]
  workers = (os.cpu_count() or 1) if workers is None else workers
  workers = max(1, min(workers, len(to_render)))
  # In-process rendering would load Mitsuba next to TensorFlow and abort at exit: use one
  # spawned worker instead.
  in_process = workers == 1 and not mitsuba_scene.loading_would_abort_at_exit()
  bar = None
  if progress:
    import tqdm  # noqa: PLC0415  (optional dependency of the progress bar only)
    bar = tqdm.tqdm(total=len(refs), initial=len(cached), unit="scene",
                    desc=f"render {spec.name}/{split}" + (f" ({len(cached)} from cache)"
                                                         if cached else ""))

  def rendered_in_order(results):
    results = iter(results)
    for ref in refs:
      if ref in cached:
        rendered = load_rendered(_cache_file(cache_dir, ref), spec)
        if rendered is None:
          raise RuntimeError(f"render cache {_cache_file(cache_dir, ref)} changed during "
                             "the build; run it again")
        yield ref, rendered
        continue
      done, rendered = next(results)  # in to_render order, which is refs' without cached
      if cache_dir is not None:
        save_rendered(_cache_file(cache_dir, done), rendered)
      if bar is not None:
        bar.update()
      yield done, rendered

  try:
    if in_process or not to_render:
      yield from rendered_in_order(_render_job((spec, ref, None)) for ref in to_render)
    else:
      # Processes, not threads, share the cores: the per-scene Python work (procedural
      # textures, scene loading, composing) then overlaps with rendering.
      threads = max(1, (os.cpu_count() or 1) // workers)
      context = multiprocessing.get_context("spawn")
      with context.Pool(workers) as pool:
        yield from rendered_in_order(
            pool.imap(_render_job, [(spec, ref, threads) for ref in to_render]))
  finally:
    if bar is not None:
      bar.close()

