"""Transport model (ours, beyond the report): the renderer's light transport as the output.

A U-Net predicts from I alone its scene's linear light transport, the white main light from
each of the 8 directions M̂_d and the fixed lights F̂, and a light head estimates each
image's light (8 direction weights and a linear colour); Ĝ is composed from them under T's
estimated light (relight_jax/models/transport.py, docs/transport_model.md). Losses: the
reconstruction L1 on Ĝ, L1 on log transport and log fixed light against the v2 datasets'
stored ones, L1 on the 40 images of I's scene composed from the prediction and from the
stored transport (sRGB), and cross-entropy (direction) and L1 (colour) on the light
estimates of I and T.

Launch (needs a v2 dataset of version 2.2.0 or later:
python -m relight_jax.datasets.build vidit/synthetic_v2_small):
  python -m relight_jax.main --config=configs/transport.py:preset=cpu \
      --workdir=runs/transport
Variants (config string after the path, see relight_jax/config/defaults.py):
  configs/transport.py:smoke                seconds, tiny v2 data (tests)
  configs/transport.py:preset=paper,bf16    256 px, full width, on a GPU
"""

from relight_jax.config import config_utils
from relight_jax.config import defaults


def get_config(arg=None):
  config = defaults.base_config()
  config.model = defaults.model_section("transport")
  # The form of "relit" (models/transport.FORMS): 'absolute' composes Ĝ from the predicted
  # transport (exact on renders: training and evaluation); 'ratio' applies the change of
  # light to I's own pixels (photos; relight.py's --form=ratio does it on top of either).
  config.model.transport_form = "absolute"
  # The light head's MLP: the light is 11 numbers read from the mean of the latent.
  config.model.predictor_hidden = (64,)
  # I's stored light transport (scene_images.AOVS), what the transport losses compare with.
  config.data.aovs = ("transport",)
  config.loss = defaults.loss_section("l1")
  # Its own terms (training/loss_terms.transport_terms): log transport and log fixed light
  # of I's scene, the 40 images of I's scene (sRGB), and the light estimates of I and T.
  config.loss.transport_weight = 1.0
  config.loss.fixed_light_weight = 1.0
  config.loss.all_lights_weight = 1.0
  config.loss.light_direction_weight = 1.0
  config.loss.light_colour_weight = 1.0
  # The light transport is stored by v2 datasets only: the preset's v2 dataset by default.
  return config_utils.finalize(config, config_utils.with_v2_data(arg), REPORT)


# Not the report's model: trained as its Envmap model, for comparison.
REPORT = defaults.ReportTraining(batch_size=25, num_steps=120_000,
                                 pairing=defaults.REPORT_RULE)

