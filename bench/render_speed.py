"""Rendering speed of the synthetic VIDIT configs (images/s), and their render noise.

For each config of `relight_jax.render.synthetic.SPECS` this renders a few scenes in this
process (Mitsuba uses all cores itself) and reports

  * wall seconds per scene and images/s (40 images per scene);
  * CPU seconds per scene (user + system of this process, all Mitsuba threads): on a
    shared machine wall time depends on the load, CPU time much less, so the estimate of
    the whole dataset's render time on an idle machine is CPU time / cores;
  * optionally (--noise) the PSNR between two renders of the first scene with different
    sampler seeds (min and mean over the 40 lights; the shipped settings need >= 35 dB).

  python -m bench.render_speed                       # all configs, 2 scenes each
  python -m bench.render_speed --configs=synthetic --scenes=3 --noise
"""

import argparse
import os
import resource
import time

import numpy as np

from bench import common
from relight_jax.data import lights
from relight_jax.render import synthetic


def _cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _psnr_db(a, b):
  mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2,
                axis=(1, 2, 3))  # [40]
  return 10 * np.log10(1.0 / mse)


def measure(spec, scenes, noise):
  """Renders `scenes` train scenes of `spec`; returns a row of timings (and noise)."""
  refs = synthetic.split_scenes(spec, "train")[:scenes]
  walls, cpus = [], []
  first = None
  for ref in refs:
    wall, cpu = time.perf_counter(), _cpu_seconds()
    rendered = synthetic.render_scene(spec, ref)
    walls.append(time.perf_counter() - wall)
    cpus.append(_cpu_seconds() - cpu)
    first = first or rendered
  total_scenes = sum(count for _, count in spec.split_locations) * spec.scenes_per_location
  cores = os.cpu_count() or 1
  cpu_per_scene = float(np.median(cpus))
  row = {
      "config": spec.name, "image_size": spec.image_size, "spp": spec.samples_per_pixel,
      "scenes_timed": len(refs), "wall_s_per_scene": float(np.median(walls)),
      "images_per_s": lights.NUM_LIGHTS / float(np.median(walls)),
      "cpu_s_per_scene": cpu_per_scene,
      "images_per_cpu_s": lights.NUM_LIGHTS / cpu_per_scene,
      "dataset_scenes": total_scenes,
      "dataset_images": total_scenes * lights.NUM_LIGHTS,
      # Idle machine, all cores busy (render_split runs one process per core).
      "estimated_dataset_min": total_scenes * cpu_per_scene / cores / 60,
  }
  if noise:
    other = synthetic.render_scene(spec, refs[0], sampler_seed=1)
    psnr = _psnr_db(first.images, other.images)
    row.update(noise_psnr_min_db=float(psnr.min()), noise_psnr_mean_db=float(psnr.mean()))
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default=",".join(synthetic.SPECS),
                      help="comma-separated keys of synthetic.SPECS")
  parser.add_argument("--scenes", type=int, default=2, help="scenes timed per config")
  parser.add_argument("--noise", action="store_true",
                      help="also render the first scene with another sampler seed")
  args = parser.parse_args()
  rows = []
  for name in args.configs.split(","):
    if name not in synthetic.SPECS:
      raise SystemExit(f"unknown config {name!r}; expected one of {list(synthetic.SPECS)}")
    rows.append(measure(synthetic.SPECS[name], args.scenes, args.noise))
  common.emit("render_speed", rows, [
      ("config", "config", None), ("image_size", "px", None), ("spp", "spp", None),
      ("wall_s_per_scene", "wall s/scene", "{:.2f}"), ("images_per_s", "img/s", "{:.1f}"),
      ("cpu_s_per_scene", "cpu s/scene", "{:.2f}"),
      ("images_per_cpu_s", "img/cpu-s", "{:.1f}"),
      ("dataset_images", "dataset images", None),
      ("estimated_dataset_min", "est. idle min", "{:.1f}"),
      ("noise_psnr_min_db", "noise PSNR min dB", "{:.1f}"),
  ])


if __name__ == "__main__":
  main()
