"""The renderer's generators: each one draws the locations and views of a split and renders them.

A generator is one generation of synthetic content and its renderer. `GENERATORS` maps the
name a `synthetic.SyntheticSpec` gives (`spec.generator`) to its `Generator`; the renderer
API (`synthetic.py`) and the TFDS builder (`relight_jax/datasets/vidit/`) know generators
only through that table and this interface:

* "v1": `locations` + `mitsuba_scene`: boxes, spheres, cylinders and standing panels on a
  textured floor before a back wall (and sometimes a side wall), one window or lamp;
  stores depth and normals. Its configs have the builder's own version (1.0.0).
* "v2": `locations_v2` + `meshes` + `mitsuba_v2`: mesh objects in rooms and open
  scenes, photographic textures, four kinds of fixed lights, adaptive samples, and a
  held-out content set for a `test_heldout` split; also stores albedo, per-direction
  shading and the linear light transport the images are composed from. Version 2.2.0;
  2.1.0 (the same records without the transport) still builds.

What the generations share lives in the v1 modules, public: `locations.Material`,
`locations.View` (a camera pose and the view's objects), `locations.place` / `relayout`,
`textures`, `illumination`, and from `mitsuba_scene` Mitsuba's loading, the camera, the
material BSDFs, the main light's placement and `compose` / `srgb_uint8` (the 40-light
convention of `relight_jax.data.lights`). Locations and fixed lights are *not* shared: a
v1 location has one wall layout and at most one fixed light placed in 2-D
(`locations.Location`, `locations.FixedLight`); a v2 location is a room or an open
terrain with up to two fixed lights of four kinds placed in 3-D
(`locations_v2.LocationV2`, `locations_v2.FixedLightV2`). One type holding both would
make every field optional and every renderer check which it got; distinct names make a
v1 location handed to the v2 renderer a plain attribute error.

Adding a generator: docs/data.md ("Adding a generator").
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from relight_jax.render import illumination
from relight_jax.render import locations
from relight_jax.render import locations_v2
from relight_jax.render import mitsuba_scene
from relight_jax.render import mitsuba_v2


@dataclasses.dataclass
class RenderedScene:
  """One scene under the 40 illuminations, with its geometry maps (AOVs)."""
  images: np.ndarray  # uint8 [40, S, S, 3], light-index order of relight_jax/data/lights.py
  depth: np.ndarray  # float32 [S, S], camera z-distance / mitsuba_scene.DEPTH_FAR, in [0, 1]
  normals: np.ndarray  # float32 [S, S, 3], unit vectors, camera space (+x right, +y up,
  #                      +z towards the camera)
  albedo: np.ndarray | None = None  # v2: float32 [S, S, 3] linear reflectance in [0, 1]
  shading: np.ndarray | None = None  # v2: float32 [8, S, S] white-scene direct light, [0, 1]
  # v2: the linear renders `images` are composed from (`mitsuba_scene.compose`'s `main` and
  # `fixed`, before EXPOSURE): float32 [8, S, S, 3] white main light per direction, and
  # float32 [S, S, 3] the fixed lights.
  transport: np.ndarray | None = None
  fixed_light: np.ndarray | None = None
  samples: np.ndarray | None = None  # v2: int [8] samples per pixel of each direction
  cpu_seconds: float | None = None  # set by render_split: CPU time of the scene's render


# Every generator stores these; `Generator.stored_aovs` names the fields beyond them.
BASE_FIELDS = ("images", "depth", "normals")


@dataclasses.dataclass(frozen=True)
class Generator:
  """One generation of synthetic scenes: how they are drawn, rendered and stored.

  Attributes:
    name: its key in `GENERATORS` (the `generator` of a `synthetic.SyntheticSpec`).
    contents: names of the content sets its locations may be drawn from (values of
      `SyntheticSpec.split_content`); the first is what splits not listed there use.
    sample_location: (seed, location id, content name) -> the location, plain data
      deterministic in its arguments.
    sample_view: (seed, location id, view index, location) -> its `locations.View`,
      deterministic in its arguments.
    render: (location, view, image_size, samples_per_pixel, sampler seed) -> a
      `RenderedScene` with the 40 images, depth, normals and every `stored_aovs` field.
    stored_aovs: `RenderedScene` fields stored as TFDS features of the same name beyond
      images, depth and normals (their features and encodings:
      `relight_jax.datasets.vidit.vidit_dataset_builder.AOV_FEATURES`).
    version: TFDS version of its configs; None: the builder's own VERSION, which the
      real configs share.
    release_notes: TFDS release notes by version (None when `version` is None).
    description: description of its configs, a format string of `size` (pixels),
      `scenes` (views per location) and `splits` (e.g. "train: 9 locations, ...").
    earlier_versions: earlier versions this generator still builds, each with the
      `stored_aovs` it had: versions whose records differ from the current one's only by
      AOVs added since (the renders themselves unchanged), so that data of that version
      can be rebuilt. Versions whose renders differ are not listed.
  """
  name: str
  contents: tuple[str, ...]
  sample_location: Callable[[int, int, str], Any]
  sample_view: Callable[[int, int, int, Any], locations.View]
  render: Callable[[Any, locations.View, int, int, int], RenderedScene]
  stored_aovs: tuple[str, ...]
  version: str | None
  release_notes: dict[str, str] | None
  description: str
  earlier_versions: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    for part in ("sample_location", "sample_view", "render"):
      if not callable(getattr(self, part)):
        raise ValueError(f"generator {self.name!r}: {part} is {getattr(self, part)!r}, "
                         "expected a function")
    if not self.contents or not all(isinstance(c, str) for c in self.contents):
      raise ValueError(f"generator {self.name!r}: contents {self.contents!r}, expected a "
                       "non-empty tuple of names")
    fields = [field.name for field in dataclasses.fields(RenderedScene)]
    optional = [name for name in fields if name not in BASE_FIELDS + ("cpu_seconds",)]
    for aov in self.stored_aovs:
      if aov not in optional:
        raise ValueError(f"generator {self.name!r}: stored AOV {aov!r} is not one of the "
                         f"RenderedScene fields {optional}")
    if (self.version is None) != (self.release_notes is None) or (
        self.version is not None and self.version not in self.release_notes):
      raise ValueError(f"generator {self.name!r}: version {self.version!r} needs release "
                       f"notes with that version (got {self.release_notes!r}), or neither")
    for version, aovs in self.earlier_versions.items():
      if (self.version is None or version not in self.release_notes
          or _version_key(version) >= _version_key(self.version)):
        raise ValueError(f"generator {self.name!r}: earlier version {version!r} must be "
                         f"below its version {self.version!r} and have release notes")
      if not set(aovs) <= set(self.stored_aovs):
        raise ValueError(f"generator {self.name!r}: version {version!r} stores {aovs!r}, "
                         f"not a subset of its stored AOVs {self.stored_aovs!r}")

  def stored_aovs_at(self, version=None):
    """The AOVs the records of `version` hold (None or the current version: `stored_aovs`).

    A generator without a version of its own (v1: the builder's VERSION) has one set.

    Raises:
      ValueError: a version this generator does not build; the message lists those it does.
    """
    if self.version is None or version in (None, self.version):
      return self.stored_aovs
    if version in self.earlier_versions:
      return self.earlier_versions[version]
    raise ValueError(f"generator {self.name!r} builds versions "
                     f"{[self.version, *self.earlier_versions]}, not {version!r}")


def _version_key(version):
  return tuple(int(part) for part in version.split("."))


def _v1_location(seed, location, content):
  del content  # v1 has one content set
  return locations.sample_location(np.random.default_rng([seed, location]))


def _v1_view(seed, location, view, described):
  return locations.sample_view(described, np.random.default_rng([seed, location, view, 1]))


def _v1_render(location, view, image_size, samples_per_pixel, seed):
  main, fixed = mitsuba_scene.render_transport(location, view, image_size, samples_per_pixel,
                                               seed)
  images = mitsuba_scene.compose(main, fixed, illumination.light_rgbs())
  depth, normals = mitsuba_scene.render_aovs(location, view, image_size, seed)
  return RenderedScene(images=images, depth=depth, normals=normals)


# v2 draws from streams of its own ("2" in the key), so it never replays v1's draws.
def _v2_location(seed, location, content):
  return locations_v2.sample_location(np.random.default_rng([seed, 2, location]),
                                      locations_v2.CONTENTS[content])


def _v2_view(seed, location, view, described):
  return locations_v2.sample_view(described,
                                  np.random.default_rng([seed, 2, location, view, 1]))


def _v2_render(location, view, image_size, samples_per_pixel, seed):
  main, fixed, samples = mitsuba_v2.adaptive_transport(location, view, image_size,
                                                       samples_per_pixel, seed)
  images = mitsuba_scene.compose(main, fixed, illumination.light_rgbs())
  depth, normals, albedo, shading = mitsuba_v2.render_aovs(location, view, image_size, seed)
  # The exact arrays `images` was composed from, so that they recompose it.
  return RenderedScene(images=images, depth=depth, normals=normals, albedo=albedo,
                       shading=shading, samples=samples, transport=main, fixed_light=fixed)


V1 = Generator(
    name="v1", contents=("train",), sample_location=_v1_location, sample_view=_v1_view,
    render=_v1_render, stored_aovs=(), version=None, release_notes=None,
    description=("Synthetic VIDIT-like scenes rendered with Mitsuba 3 at {size} px, {scenes} "
                 "scenes per location ({splits}); 40 illuminations per scene, depth and "
                 "normals."))

V2 = Generator(
    name="v2", contents=tuple(locations_v2.CONTENTS), sample_location=_v2_location,
    sample_view=_v2_view, render=_v2_render,
    stored_aovs=("albedo", "shading", "transport", "fixed_light"),
    version="2.2.0",
    # 2.2.0 added features only: 2.1.0's records are rebuilt from the same renders.
    earlier_versions={"2.1.0": ("albedo", "shading")},
    release_notes={
        "2.2.0": ("Adds transport and fixed_light: the linear renders each record's image is "
                  "composed from (the white main light of its direction, the fixed lights), "
                  "float16; images, depth, normals, albedo, shading byte-identical to 2.1.0."),
        "2.1.0": ("Adaptive samples: each render is two independent halves; directions "
                  "whose halves predict < 37.5 dB between two seeds get more samples (up to "
                  "8x), so every scene meets the 35 dB noise bound. Every image differs "
                  "from 2.0.0 (new sampler seeds); content, AOVs and splits are unchanged."),
        "2.0.0": ("Synthetic v2: mesh objects (revolution, extrusion, torus/knot, rocks, "
                  "furniture, thin structures), photographic and procedural textures, "
                  "diffuse/glossy/metallic materials, rooms and open scenes, wider cameras, "
                  "four kinds of fixed lights; albedo and per-direction shading stored; a "
                  "test_heldout split of unseen object families and materials."),
    },
    description=("Synthetic VIDIT-like scenes v2 (meshes, rooms and open scenes) rendered "
                 "with Mitsuba 3 at {size} px, {scenes} scenes per location ({splits}; "
                 "test_heldout: object families and materials train never has); 40 "
                 "illuminations per scene, depth, normals, albedo, shading, and the "
                 "linear light transport they are composed from."))

GENERATORS: dict[str, Generator] = {generator.name: generator for generator in (V1, V2)}


def get(name, owner="renderer"):
  """The `Generator` called `name`.

  Args:
    name: a key of `GENERATORS`.
    owner: what asks for it, for the error message (e.g. "synthetic spec 'synthetic'").

  Raises:
    ValueError: `name` is not a registered generator; the message lists those that are.
  """
  if name not in GENERATORS:
    raise ValueError(f"{owner}: generator {name!r} is not one of {sorted(GENERATORS)}")
  return GENERATORS[name]
