r"""Render noise of a synthetic config: two sampler seeds, PSNR over the 40 lights.

Render noise must stay below what a model is graded on: two renders of a scene that differ
only in the sampler seed should agree to >= 35 dB PSNR (uint8 sRGB images, every one of the
40 lights). This renders `--scenes` scenes spread over all splits of a config (the first
view of every k-th location, so rooms, open scenes, glossy and metallic objects and the
held-out content all count) and prints per scene the minimum and mean PSNR over the 40
lights and the CPU seconds of one render.

  python -m relight_jax.render.noise --config=synthetic_v2_small --scenes=8
"""

import argparse
import time

import numpy as np

from relight_jax.render import mitsuba_scene
from relight_jax.render import synthetic


def spread_scenes(spec, count):
  """`count` scenes spread over the locations of every split (first view of each)."""
  refs = [ref for split, _ in spec.split_locations for ref in synthetic.split_scenes(spec, split)
          if ref.view == 0]
  picks = np.unique(np.round(np.linspace(0, len(refs) - 1, min(count, len(refs)))).astype(int))
  return [refs[i] for i in picks]  # first and last included: train and the last split


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help=f"one of {sorted(synthetic.SPECS)}")
  parser.add_argument("--scenes", type=int, default=4)
  args = parser.parse_args()
  if args.config not in synthetic.SPECS:
    parser.error(f"--config={args.config!r} is not one of {sorted(synthetic.SPECS)}")
  spec = synthetic.SPECS[args.config]
  minimums = []
  for ref in spread_scenes(spec, args.scenes):
    cpu, wall = synthetic.cpu_seconds(), time.perf_counter()
    first = synthetic.render_scene(spec, ref, sampler_seed=0)
    cpu, wall = synthetic.cpu_seconds() - cpu, time.perf_counter() - wall
    second = synthetic.render_scene(spec, ref, sampler_seed=1)
    psnr = mitsuba_scene.psnr_db(first.images, second.images)
    minimums.append(float(psnr.min()))
    location, view = synthetic.scene_description(spec, ref)
    kind = getattr(location, "kind", "v1")
    materials = sorted({obj.material.kind for obj in view.objects})
    samples = ("" if first.samples is None else
               f"; samples per pixel {first.samples.min()}-{first.samples.max()}")
    print(f"{spec.name} scene {ref.scene} ({kind}, {'/'.join(materials)}): PSNR min "
          f"{psnr.min():.1f} dB, mean {psnr.mean():.1f} dB; one render {cpu:.1f} CPU s, "
          f"{wall:.1f} s wall{samples}", flush=True)
  print(f"{spec.name}: minimum over {len(minimums)} scenes and 40 lights: "
        f"{min(minimums):.1f} dB")


if __name__ == "__main__":
  main()
