"""Builder configs of the `vidit` dataset: synthetic sizes, real releases, resolutions.

Three kinds of config (`ViditConfig.source`):

* "synthetic": rendered offline from `relight_jax.render.synthetic.SPECS`
  (`synthetic_tiny`, `synthetic_small`, `synthetic`, the default; and the v2 content
  `synthetic_v2_tiny`, `synthetic_v2_small`, `synthetic_v2`, and `synthetic_v2_eval`, two
  test sets of 24 locations), splits by location. Their
  version, release notes and description are their generator's
  (`relight_jax.render.generators`); the earlier versions their generator still builds
  are `supported_versions`, each built from a config of its own (`at_version`).
* "lights": a real release's 40-illumination scenes read from `manual_dir`
  (`full_*`, `ntire21_track2_*`, `aim20_track3_*`), splits by scene number.
* "pairs": a real release's fixed evaluation pairs (`*_pairs_*`).

Real configs exist at 256 px (the report's resolution, §3.1), 512 and, for the 1024 px
releases, 1024. `vidit_dataset_builder.Vidit` reads these; the dataset README lists them.
"""

import dataclasses
import functools

import tensorflow_datasets as tfds

from relight_jax.datasets.vidit import real_layouts
from relight_jax.render import synthetic

SOURCES = ("synthetic", "lights", "pairs")
REAL_RESOLUTIONS = (256, 512, 1024)


@dataclasses.dataclass(eq=False, kw_only=True)
class ViditConfig(tfds.core.BuilderConfig):
  """A `vidit` builder config.

  Attributes:
    source: "synthetic", "lights" or "pairs" (see module docstring).
    image_size: side in pixels of the stored images.
    synthetic_spec: key of `synthetic.SPECS` (synthetic configs only).
    layout: key of `real_layouts.LAYOUTS` (real configs only).
  """
  source: str = "synthetic"
  image_size: int = 256
  synthetic_spec: str | None = None
  layout: str | None = None

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(f"vidit config {self.name!r}: source {self.source!r} is not one of "
                       f"{SOURCES}")
    if self.source == "synthetic" and self.synthetic_spec not in synthetic.SPECS:
      raise ValueError(f"vidit config {self.name!r}: synthetic_spec {self.synthetic_spec!r} "
                       f"is not one of {sorted(synthetic.SPECS)}")
    if self.source != "synthetic" and self.layout not in real_layouts.LAYOUTS:
      raise ValueError(f"vidit config {self.name!r}: layout {self.layout!r} is not one of "
                       f"{sorted(real_layouts.LAYOUTS)}")
    if self.image_size < 1:
      raise ValueError(f"vidit config {self.name!r}: image_size must be positive")


def _synthetic_configs():
  configs = []
  for name, spec in synthetic.SPECS.items():
    generator = synthetic.generator_of(spec)
    splits = ", ".join(f"{split}: {count} locations" for split, count in spec.split_locations)
    # A generator with a version of its own keeps it apart from the builder's VERSION, so
    # the other generators' configs rebuild record for record as before.
    configs.append(ViditConfig(
        name=name, source="synthetic", synthetic_spec=name, image_size=spec.image_size,
        version=generator.version, release_notes=generator.release_notes,
        supported_versions=list(generator.earlier_versions),
        description=generator.description.format(
            size=spec.image_size, scenes=spec.scenes_per_location, splits=splits)))
  return configs


def _real_configs():
  configs = []
  for layout in real_layouts.LAYOUTS.values():
    for resolution in REAL_RESOLUTIONS:
      if resolution > layout.nominal_size:
        continue  # Upsampling a 512 px release to 1024 adds nothing.
      configs.append(ViditConfig(
          name=f"{layout.name}_{resolution}", source="lights", layout=layout.name,
          image_size=resolution,
          description=(f"{layout.title}: 40-illumination scenes (ImageNNN_TTTT_D.png) "
                       f"resized to {resolution} px; splits by scene number 000-299 / "
                       "300-344 / 345-389, or 000-239 / 240-269 / 270-299 when only "
                       "the train release is present.")))
      if layout.name != "full":  # The full release has no fixed evaluation pairs.
        configs.append(ViditConfig(
            name=f"{layout.name}_pairs_{resolution}", source="pairs", layout=layout.name,
            image_size=resolution,
            description=(f"{layout.title}: fixed evaluation pairs (input/, guide/, ground "
                         f"truth PairNNN.png) resized to {resolution} px.")))
  return configs


CONFIGS = {config.name: config for config in _synthetic_configs() + _real_configs()}
DEFAULT_CONFIG = "synthetic"


def at_version(name, version):
  """Synthetic config `name` at an earlier version its generator still builds, or None.

  TFDS prepares only a config's own version (an older one, it assumes, needs older
  code); a generator lists the earlier versions its current renders still reproduce
  (`Generator.earlier_versions`), and this config of that version builds their records.

  Args:
    name: a config name.
    version: a version (str or `tfds.core.Version`), or None.

  Returns:
    the config with `version` as its own, or None when `version` is None, the config's
    current version, or not one of the config's `supported_versions`.
  """
  config = CONFIGS.get(name)
  if (config is None or version is None
      or str(version) not in map(str, config.supported_versions)):
    return None
  return _config_at(name, str(version))


@functools.cache  # one object per version: TFDS refuses two config objects of one name
def _config_at(name, version):
  return dataclasses.replace(CONFIGS[name], version=version, supported_versions=[])


def parse_dataset_name(name: str) -> str:
  """Checks a `vidit/<config>` command-line argument and returns the config name.

  Args:
    name: e.g. "vidit/synthetic_small".

  Returns:
    the config name.

  Raises:
    ValueError: not of the form vidit/<config> with a known config.
  """
  dataset, _, config = name.partition("/")
  if dataset != "vidit" or config not in CONFIGS:
    raise ValueError(f"expected vidit/<config> with <config> one of {sorted(CONFIGS)}, got "
                     f"{name!r}")
  return config
