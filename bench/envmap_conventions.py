"""The envmap conventions side by side: their light colours and Le at initialisation.

For each of data/envmap.CONVENTIONS: the HSV colour of every VIDIT temperature (0..255
units), then the Envmap model's Le (Le_I + Le_T, report eq. 2) and its ratio to the L1
reconstruction at initialisation, on the images and lights of bench/envmap_loss_scale.py
(whose PyTorch measurement of the original gives the ratio the original started from,
`ORIGINAL_RATIO`). BatchNorm in training mode, as in a first training step.

  python -m bench.envmap_conventions [--preset=smoke|cpu] [--seeds=3]
"""

import argparse
import statistics

import jax
import jax.numpy as jnp

from bench import envmap_loss_scale
from relight_jax.config import config_utils
from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.models import registry
from relight_jax.training import objectives


def le_at_initialisation(preset, convention, seeds):
  """[(Le_I + Le_T, L1)] of a freshly initialised Envmap model per seed."""
  config = config_utils.config_from_file(f"envmap.py:{preset}")
  config.model.envmap_convention = convention
  size = config.data.image_size
  model = registry.create_model(config.model)
  images = [jnp.asarray(envmap_loss_scale.fixed_images(seed, size=size)) for seed in (1, 2, 3)]
  batch = {"ground_truth": images[2]}
  for role, light_list in (("input", envmap_loss_scale.INPUT_LIGHTS),
                           ("target", envmap_loss_scale.TARGET_LIGHTS)):
    temperatures, directions = zip(*light_list, strict=True)
    batch[f"{role}_envmap"] = jnp.asarray(
        envmap.batch_envmaps(temperatures, directions, convention)[0])
  results = []
  for seed in range(seeds):
    variables = model.init(jax.random.key(seed), images[0][:1], images[1][:1], train=False)
    outputs, _ = model.apply(variables, images[0], images[1], train=True,
                             mutable=["batch_stats"])
    _, terms = objectives.compute_losses("envmap", outputs, batch, config.loss)
    results.append((float(terms["envmap"]), float(terms["reconstruction"])))
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="cpu", choices=("smoke", "cpu"))
  parser.add_argument("--seeds", type=int, default=3)
  args = parser.parse_args()
  print("HSV (hue, saturation) of each temperature, 0..255 units:")
  for temperature in lights.TEMPERATURES_K:
    hue_saturation = {name: envmap.envmap_hsv(temperature, 0, name)[:2]
                      for name in sorted(envmap.CONVENTIONS)}
    row = "  ".join(f"{name} ({hs[0]:.1f}, {hs[1]:.1f})" for name, hs in hue_saturation.items())
    print(f"  {temperature} K: {row}")
  print(f"Envmap model at initialisation, preset {args.preset}, {args.seeds} seeds "
        f"(the original's ratio: {envmap_loss_scale.ORIGINAL_RATIO}):")
  for name in sorted(envmap.CONVENTIONS):
    results = le_at_initialisation(args.preset, name, args.seeds)
    le = [value for value, _ in results]
    ratio = [value / l1 for value, l1 in results]
    print(f"  {name}: Le_I + Le_T = {[round(v, 3) for v in le]} (median "
          f"{statistics.median(le):.3f}), / L1 median {statistics.median(ratio):.2f}")


if __name__ == "__main__":
  main()
