"""`google.colab.drive`: mount() makes the mount point's MyDrive folder."""

import pathlib


def mount(mountpoint, force_remount=False):
  del force_remount
  (pathlib.Path(mountpoint) / "MyDrive").mkdir(parents=True, exist_ok=True)
