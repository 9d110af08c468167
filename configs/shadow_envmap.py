"""Shadow Envmap model (ours, beyond the report): the geometry Envmap model taught shadows.

`configs/geometry_envmap.py` (normals and depth heads, Lambertian shading of the predicted
normals under T's envmap) plus, from the v2 datasets' per-direction shading maps:

* a shading head that predicts the shading of I's scene under T's light direction (the
  renderer's direct light on a white copy of the scene, cast shadows included), fed to the
  decoder next to the geometry maps, with an L1 loss against the dataset's map;
* the geometry head also predicts each image's own shading (where its light falls, where
  its shadows are), L1 against the dataset's map.

Inference needs RGB only (relight_jax/models/geometry.py, docs/geometry_model.md).

Launch (needs a v2 dataset: python -m relight_jax.datasets.build vidit/synthetic_v2_small):
  python -m relight_jax.main --config=configs/shadow_envmap.py:preset=cpu \
      --workdir=runs/shadow_envmap
Variants (config string after the path, see relight_jax/config/defaults.py):
  configs/shadow_envmap.py:smoke                seconds, tiny v2 data (tests)
  configs/shadow_envmap.py:preset=paper,bf16    256 px, full width, on a GPU
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("geometry_envmap")
  config.model.geometry_maps = ("normals", "depth", "shading")
  config.model.relit_shading = True
  config.data.aovs = ("depth", "normals", "shading")
  config.loss = defaults.loss_section("l1", envmap_weight=1.0, normals_weight=1.0,
                                      depth_weight=1.0, shading_weight=1.0,
                                      relit_shading_weight=1.0)
  # The shading maps are v2's: the preset's v2 dataset by default.
  return config_utils.finalize(config, config_utils.with_v2_data(arg), REPORT)


# Not the report's model: trained as its Envmap model, for comparison.
REPORT = defaults.ReportTraining(batch_size=25, num_steps=120_000,
                                 pairing=defaults.REPORT_RULE)

