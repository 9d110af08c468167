"""Geometry Envmap model (ours, beyond the report): Envmap + predicted geometry + shading.

The Envmap model (report §3.4, Fig. 11) with a geometry head that predicts the normals and
depth of I and T, supervised by the renderer's maps during training, and a decoder that
also sees the Lambertian shading of I's predicted normals under T's and I's envmaps
(relight_jax/models/geometry.py). Inference needs RGB only. Losses: the Envmap model's
(L1 + Le on I and T) + 1 - cos on normals + L1 on depth, averaged over I and T.

Launch (the comparison with the Envmap model at the reproduction's budget):
  python -m relight_jax.main \
      --config=configs/geometry_envmap.py:preset=cpu,recipe=report,steps=2560 \
      --workdir=runs/geometry_envmap
Variants (config string after the path, see relight_jax/config/defaults.py):
  configs/geometry_envmap.py:smoke                seconds, tiny data (tests)
  configs/geometry_envmap.py:cpu                  64 px, width 0.25, recipe 'ours'
  configs/geometry_envmap.py:preset=paper,bf16    256 px, full width, on a GPU
Needs a dataset with depth and normals (the synthetic `vidit` configs).
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("geometry_envmap")
  # The renderer's per-scene maps the geometry losses compare with (scene_images.AOVS).
  config.data.aovs = ("depth", "normals")
  # The Envmap model's losses, unchanged, plus the auxiliary geometry terms.
  config.loss = defaults.loss_section("l1", envmap_weight=1.0, normals_weight=1.0,
                                      depth_weight=1.0)
  return config_utils.finalize(config, arg, REPORT)


# Not the report's model: trained as its Envmap model, for comparison.
REPORT = defaults.ReportTraining(batch_size=25, num_steps=120_000,
                                 pairing=defaults.REPORT_RULE)
