"""Envmap + scene model (report §3.4, Fig. 12): the latent splits into scene and light.

1024 scene channels stay unguided; 2 x 514 light channels are pooled into (hue,
saturation, 512 brightness values) of the envmap. The decoder gets I's scene latent and
T's light latent. Losses: LPIPS reconstruction + cosine hue + MSE saturation + Le on values.

Launch:
  python -m relight_jax.main --config=configs/envmap_scene.py --workdir=runs/envmap_scene
Variants: smoke | cpu (default) | preset=paper[,bf16][,gan=True] | data=<vidit config>
(see configs/envmap.py and relight_jax/config/config_utils.py).
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("envmap_scene")
  config.loss = defaults.loss_section(
      "lpips", hue_weight=1.0, saturation_weight=1.0, value_weight=1.0)
  return config_utils.finalize(config, arg, REPORT)


# The original's training (trainWithGeneratedEnvmaps.py): batch 25, 20 epochs of
# 400,000 sampled pairs (320,000 steps), the report's pairing rule.
REPORT = defaults.ReportTraining(batch_size=25, num_steps=320_000,
                                 pairing=defaults.REPORT_RULE)
