"""Input pipeline throughput (triplets/s) against what the train step consumes.

Iterates `relight_jax.data.input_pipeline.train_dataset` (grain, seeded pair sampling,
triplet composition, labels and envmaps, batching) and optionally the host-to-device
put of each batch. Two image sources:

  * `tfds`: `scene_images.SceneImages` over a built `vidit` dataset (array_record via
    `tfds.data_source`), with the in-memory decode cache on (the default config) or off
    (PNG decode + resize per image). Build one first, e.g.
      python -m relight_jax.datasets.build vidit/synthetic_tiny --data_dir=/tmp/bench_tfds
    (32 px images: SceneImages resizes them to --sizes, as it would for any dataset
    whose stored size differs from data.image_size).
  * `standin`: an in-memory object with `.num_scenes` and `.image(scene, light)`
    returning random uint8 arrays: the composition cost alone, no decoding.

  python -m bench.input_pipeline                                   # stand-in, 64 + 256 px
  python -m bench.input_pipeline --source=tfds --data_dir=/tmp/bench_tfds
  python -m bench.input_pipeline --train_jsonl=/tmp/bench_out/ratio256.jsonl  # ratio

The "x step" column is pipeline triplets/s divided by the train step's pairs/s at the
same resolution (from a `bench.train_step --json_out` file, best model row); the
target is >= 5x at 256 px, so that data never starves the step.
"""

import argparse
import json
import pathlib
import time

import numpy as np

from bench import common


class StandInImages:
  """Random uint8 images addressed like `SceneImages` (composition cost alone)."""

  def __init__(self, num_scenes, image_size, seed=0):
    rng = np.random.default_rng(seed)
    self.num_scenes = num_scenes
    self.image_size = image_size
    self._images = rng.integers(0, 256, (num_scenes * 40, image_size, image_size, 3), np.uint8)

  def image(self, scene, light):
    return self._images[int(scene) * 40 + int(light)]


def _parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--source", default="standin", help="standin | tfds | both")
  parser.add_argument("--data_dir", default="/tmp/bench_tfds")
  parser.add_argument("--dataset", default="vidit/synthetic_tiny")
  parser.add_argument("--split", default="train")
  parser.add_argument("--sizes", default="64,256")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--batches", type=int, default=20, help="timed batches per row")
  parser.add_argument("--threads", type=int, default=2, help="grain read threads")
  parser.add_argument("--no_cache", action="store_true", help="tfds: also without the cache")
  parser.add_argument("--put", action="store_true", help="also time placement.put_batch")
  parser.add_argument("--train_jsonl", default="", help="bench.train_step --json_out file")
  return parser.parse_args(argv)


def _train_rates(path):
  """{size: best train-step pairs/s} from a bench.train_step JSON-lines file."""
  rates = {}
  if not path:
    return rates
  for line in pathlib.Path(path).read_text().splitlines():
    for row in json.loads(line)["rows"]:
      rates[row["size"]] = max(rates.get(row["size"], 0.0), row["pairs_per_s"])
  return rates


def measure(images, label, size, args, placement=None):
  """Triplets/s of the training stream over `images` (first batch untimed)."""
  from relight_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  rules = input_pipeline.parse_rule("different_scene,different_direction")
  iterator = iter(input_pipeline.train_dataset(images, rules, seed=0, global_batch=args.batch,
                                               read_threads=args.threads))
  next(iterator)
  start = time.perf_counter()
  for _ in range(args.batches):
    batch = next(iterator)
  elapsed = time.perf_counter() - start
  row = {"source": label, "size": size, "batch": args.batch, "threads": args.threads,
         "triplets_per_s": args.batches * args.batch / elapsed,
         "peak_rss_mib": common.peak_rss_mib()}
  if placement is not None:
    import jax  # pylint: disable=g-import-not-at-top
    times, _ = common.timed(lambda: jax.block_until_ready(placement.put_batch(batch)), 5)
    row["put_batch_ms"] = 1e3 * common.summarize(times)["median_s"]
  return row


def main(argv=None):
  args = _parse_args(argv)
  placement = None
  if args.put:
    from relight_jax.training import parallel  # pylint: disable=g-import-not-at-top
    placement = parallel.create_placement()
  rates = _train_rates(args.train_jsonl)
  rows = []
  for size in (int(s) for s in args.sizes.split(",")):
    if args.source in ("standin", "both"):
      rows.append(measure(StandInImages(20, size), "standin", size, args, placement))
    if args.source in ("tfds", "both"):
      from relight_jax.datasets import scene_images  # pylint: disable=g-import-not-at-top
      for cache_mib in ((2048, 0) if args.no_cache else (2048,)):
        images = scene_images.SceneImages(args.dataset, args.split, args.data_dir, size,
                                            cache_mib)
        label = f"tfds {args.dataset}" + (" cached" if cache_mib else " no cache")
        rows.append(measure(images, label, size, args, placement))
  for row in rows:
    step_rate = rates.get(row["size"])
    row["train_pairs_per_s"] = step_rate
    row["x_step"] = None if not step_rate else row["triplets_per_s"] / step_rate
  columns = [("source", "source", None), ("size", "px", None), ("batch", "batch", None),
             ("triplets_per_s", "triplets/s", "{:.0f}"), ("put_batch_ms", "put ms", "{:.1f}"),
             ("train_pairs_per_s", "step pairs/s", "{:.2f}"), ("x_step", "x step", "{:.0f}"),
             ("peak_rss_mib", "peak RSS MiB", "{:.0f}")]
  common.emit("input_pipeline", rows, columns, {"args": vars(args)})


if __name__ == "__main__":
  main()
