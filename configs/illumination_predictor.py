"""IlluminationPredicter model (report §3.4, Fig. 10): light/scene split + an MLP.

The latent splits into a 3-channel light part and a scene part; an MLP 20-10-2 on the
flattened light latent predicts the light's direction and colour temperature. Losses:
L2 reconstruction + Lc + Ld, the latter two averaged over I, T and G (original code).

Launch:
  python -m relight_jax.main --config=configs/illumination_predictor.py --workdir=runs/ip
Variants: smoke | cpu (default) | preset=paper[,bf16][,gan=True] | data=<vidit config>
(see configs/envmap.py and relight_jax/config/config_utils.py).
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("illumination_predictor")
  config.loss = defaults.loss_section(
      "l2", temperature_weight=1.0, direction_weight=1.0)
  return config_utils.finalize(config, arg, REPORT)


# The original's training (train.py with default_config.txt): 60,000 batches of 8 drawn
# from all pairs (no pairing restriction).
REPORT = defaults.ReportTraining(batch_size=8, num_steps=60_000, pairing="")
