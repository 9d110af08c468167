"""Relighting one 12 MP photo with the bundled model: the Python API warm, the command cold.

  python -m bench.photo_speed                          # 4000 x 3000, 5 API calls, 3 commands
  python -m bench.photo_speed --width=6000 --height=4000 --steps=3 --commands=2
  python -m bench.photo_speed --before=/path/to/an/older/checkout   # its command too

The photo is generated (smooth shading times fine texture, saved as a quality-92 JPEG with
EXIF), so that nothing is downloaded. Every row relights in the default (ratio) form.
Rows:

  * `api uint8`: `model(photo, light=...)` on the decoded uint8 array, after one warm-up
    call (the model loaded and compiled): what an interactive caller waits for.
  * `api float`: the same photo as float32 in [0, 1] through `relight.relight`, the path
    that makes full-resolution float copies of the photo.
  * `cli first` / `cli cached`: `python -m relight_jax.relight --input=photo.jpg
    --light=... --output=out.png` as a new process, first with an empty compilation cache
    and then with the cache the first run filled (the command's default: a second run
    does not recompile). Peak RSS is the largest of the command's processes.
  * `before ...`: with `--before=CHECKOUT`, the same command run from another checkout
    (imported through PYTHONPATH), interleaved with this one's, for a before/after in
    one run on one machine.
"""

import argparse
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench import common


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--width", type=int, default=4000)
  parser.add_argument("--height", type=int, default=3000)
  parser.add_argument("--light", default="W,3500")
  parser.add_argument("--steps", type=int, default=5, help="timed API calls per row")
  parser.add_argument("--commands", type=int, default=3,
                      help="command runs: the first with an empty cache, the rest cached")
  parser.add_argument("--before", default="",
                      help="another checkout whose command is timed alike")
  return parser.parse_args(argv)


def write_photo(path, width, height, seed=0):
  """A textured `width` x `height` JPEG with EXIF (camera and date) at `path`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
  cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
  shading = 0.25 + 0.6 * (rows * np.array([0.9, 0.5, 0.2], np.float32)
                          + cols * np.array([0.1, 0.4, 0.8], np.float32))
  texture = 0.7 + 0.3 * rng.random((height, width, 1), np.float32)
  exif = Image.Exif()
  exif[0x010F], exif[0x0132] = "bench camera", "2024:01:02 03:04:05"
  Image.fromarray(np.round(shading * texture * 255).astype(np.uint8)).save(
      path, quality=92, exif=exif.tobytes())


def _api_rows(photo_path, args):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  import relight_jax  # pylint: disable=g-import-not-at-top
  from relight_jax import relight  # pylint: disable=g-import-not-at-top
  model = relight_jax.load_pretrained()
  photo = np.asarray(Image.open(photo_path).convert("RGB"))
  calls = {"api uint8": lambda: model(photo, light=args.light),
           "api float": lambda: relight.relight(model, photo / np.float32(255),
                                                light=args.light)}
  rows = []
  for name, call in calls.items():
    walls, cpus = common.timed(call, args.steps, warmup=1)
    rows.append({"row": name, "latency": common.summarize(walls),
                 "median_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
                 "peak_rss_mib": common.peak_rss_mib()})
  return rows


def _command_rows(photo_path, folder, args, checkout=None, prefix=""):
  environment = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(folder / f"{prefix}jax_cache"))
  if checkout:
    environment["PYTHONPATH"] = str(checkout)
  command = [sys.executable, "-m", "relight_jax.relight", f"--input={photo_path}",
             f"--light={args.light}", f"--output={folder / 'relit.png'}", "--overwrite"]
  rows = []
  cached = []
  for index in range(args.commands):
    start = time.perf_counter()
    subprocess.run(command, env=environment, cwd=checkout or common.REPO, check=True,
                   capture_output=True)
    wall = time.perf_counter() - start
    if index == 0:
      rows.append({"row": f"{prefix}cli first", "median_s": wall})
    else:
      cached.append(wall)
  if cached:
    rows.append({"row": f"{prefix}cli cached", "latency": common.summarize(cached),
                 "median_s": statistics.median(cached)})
  # The children's peak so far (Linux: KiB): run before the older checkout's commands.
  peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
  for row in rows:
    row["peak_rss_mib"] = peak
  return rows


def main(argv=None):
  args = _parse_args(argv)
  with tempfile.TemporaryDirectory(prefix="photo_speed_") as scratch:
    folder = pathlib.Path(scratch)
    photo_path = folder / "photo.jpg"
    write_photo(photo_path, args.width, args.height)
    # The commands first: this process's own peak would otherwise include the API rows.
    rows = _command_rows(photo_path, folder, args)
    if args.before:
      rows += _command_rows(photo_path, folder, args, args.before, "before ")
    rows += _api_rows(photo_path, args)
  for row in rows:
    row["megapixels"] = args.width * args.height / 1e6
  columns = [("row", "run", None), ("megapixels", "MP", "{:.1f}"),
             ("median_s", "s (median)", "{:.2f}"), ("cpu_s", "CPU s", "{:.2f}"),
             ("peak_rss_mib", "peak RSS MiB", "{:.0f}")]
  common.emit("photo_speed", rows, columns, {"args": vars(args)})


if __name__ == "__main__":
  main()
