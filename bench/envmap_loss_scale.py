"""The original's Le / reconstruction ratio at initialisation, measured on its own model.

The Envmap model's training loss is L1 + Le(I) + Le(T) (report eqs. 2-3; the original's
`trainWithGeneratedEnvmaps.py` sums the two envmap terms). How much Le weighs against the
reconstruction depends on the envmaps' units, so `tests/test_losses.py` checks that ours
starts within 2x of the original's ratio on the same images. This script measures the
original's ratio with the PyTorch re-creation of its model (`bench/torch_original.py`,
PyTorch's default initialisation, BatchNorm in training mode) and its envmap formula:
0..255 units, brightness exp(-r / (2 sigma^2)) with sigma = 1.6 px centred on pixel
(8, 16) and rolled by the direction, colour from its HSV table.

  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python -m bench.envmap_loss_scale

`ORIGINAL_RATIO` records what it printed (median over initialisation seeds).
"""

import colorsys
import statistics

import numpy as np

# Median over 5 initialisation seeds printed by this script (PyTorch 2.13.0, CPU).
ORIGINAL_RATIO = 42.26
IMAGE_SIZE = 256
BATCH = 4
# (temperature K, direction index N=0..NW=7) of the input and target images.
INPUT_LIGHTS = ((2500, 0), (3500, 2), (4500, 4), (6500, 6))
TARGET_LIGHTS = ((5500, 3), (2500, 5), (6500, 1), (3500, 7))
# The original's light colours, (hue, saturation, value) in 0..255 units.
_ORIGINAL_HSV = {2500: (14, 231, 255), 3500: (19, 192, 255), 4500: (22, 132, 255),
                 5500: (24, 65, 255), 6500: (54, 0, 255)}


def fixed_images(seed, batch=BATCH, size=IMAGE_SIZE):
  """Smooth deterministic RGB images in [0, 1], float32 [batch, size, size, 3] (NHWC)."""
  rng = np.random.default_rng(seed)
  coords = np.linspace(0.0, 1.0, size)
  y, x = np.meshgrid(coords, coords, indexing="ij")
  images = np.zeros((batch, size, size, 3))
  for b in range(batch):
    for channel in range(3):
      field = rng.uniform(0.2, 0.6) + np.zeros((size, size))
      for _ in range(4):
        fy, fx = rng.integers(0, 5, size=2)
        field += rng.uniform(-0.15, 0.15) * np.cos(2 * np.pi * (fy * y + fx * x)
                                                   + rng.uniform(0, 2 * np.pi))
      images[b, ..., channel] = field
  return np.clip(images, 0.0, 1.0).astype(np.float32)


def original_envmap(temperature_k, direction_index, height=16, width=32):
  """The original's RGB envmap formula, float32 [3, height, width] in 0..255 units."""
  hue, saturation, value = (c / 255.0 for c in _ORIGINAL_HSV[temperature_k])
  sigma = min(height, width) / 10.0
  yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  distance = np.sqrt((yy - height / 2) ** 2 + (xx - width / 2) ** 2)
  brightness = np.floor(np.exp(-distance / (2 * sigma**2)) * 255.0 * value) / 255.0
  # Its rotation: N stays centred, each 45 deg rolls the map by width / 8 columns.
  shift = (direction_index * width // 8) % width
  brightness = np.roll(brightness, shift, axis=1)
  rgb = np.stack([np.asarray(colorsys.hsv_to_rgb(hue, saturation, v)) for v in
                  brightness.reshape(-1)]).T.reshape(3, height, width)
  return (255.0 * rgb).astype(np.float32)


def original_ratio(seed):
  """(Le_I + Le_T) / L1 of the original Envmap model at initialisation (PyTorch)."""
  import torch  # PyTorch is only in the measuring virtualenv, not a dependency.

  from bench import torch_original

  torch.manual_seed(seed)
  model = torch_original.Relighter("envmap").train()
  to_torch = lambda images: torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  input_image, target_image, ground_truth = (to_torch(fixed_images(s)) for s in (1, 2, 3))
  envmaps = {role: torch.from_numpy(np.stack([original_envmap(*light) for light in lights]))
             for role, lights in (("input", INPUT_LIGHTS), ("target", TARGET_LIGHTS))}
  with torch.no_grad():
    outputs = model(input_image, target_image, None)
    reconstruction = torch.nn.functional.l1_loss(outputs["relit"], ground_truth)
    envmap_loss = sum(torch_original.log_l2(outputs[role]["envmap"].flatten(1),
                                            envmaps[role].flatten(1))
                      for role in ("input", "target"))
  return float(envmap_loss / reconstruction)


def main():
  ratios = [original_ratio(seed) for seed in range(5)]
  print("original (Le_I + Le_T) / L1 at init, per seed:", [round(r, 3) for r in ratios])
  print("median:", round(statistics.median(ratios), 3))


if __name__ == "__main__":
  main()
