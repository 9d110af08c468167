"""Envmap model (report §3.4, Fig. 11): the whole latent is the light latent.

The encoder's latent is turned into a 16x32 RGB environment map by weighted pooling; the
decoder gets the target's envmap (tiled, conv to the latent width) and the input's skip
links. Losses: L1 reconstruction + Le (log-L2 on envmaps, eq. 2).

Launch:
  python -m relight_jax.main --config=configs/envmap.py --workdir=runs/envmap
Variants (config string after the path, see relight_jax/config/defaults.py):
  configs/envmap.py:smoke                 seconds, tiny data (tests)
  configs/envmap.py:cpu                   the demo preset (default): 64 px, width 0.25
  configs/envmap.py:preset=paper,bf16     report sizes at 256 px on a GPU, bfloat16 compute
  configs/envmap.py:preset=cpu,gan=True   with the PatchGAN discriminator
  configs/envmap.py:data=synthetic        another `vidit` TFDS config
Any key can also be overridden: --config.train.learning_rate=1e-4
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("envmap")
  # Report: L1 reconstruction (eq. 3) + Le on the envmaps of I and T (eq. 2).
  config.loss = defaults.loss_section("l1", envmap_weight=1.0)
  return config_utils.finalize(config, arg, REPORT)


# The original's training (trainWithGeneratedEnvmaps.py): batch 25, 30 epochs of
# 100,000 sampled pairs (120,000 steps), the report's pairing rule.
REPORT = defaults.ReportTraining(batch_size=25, num_steps=120_000,
                                 pairing=defaults.REPORT_RULE)
