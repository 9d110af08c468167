"""`google.colab.files`: upload() hands out FAKE_COLAB_UPLOADS' files one call at a time
(in name order, each once); download() copies into FAKE_COLAB_DOWNLOADS."""

import os
import pathlib
import shutil


def upload():
  folder = pathlib.Path(os.environ["FAKE_COLAB_UPLOADS"])
  taken = folder / ".taken"
  done = set(taken.read_text().split()) if taken.exists() else set()
  path = next(p for p in sorted(folder.iterdir()) if p.name != ".taken" and p.name not in done)
  taken.write_text(" ".join(sorted(done | {path.name})))
  return {path.name: path.read_bytes()}


def download(filename):
  folder = pathlib.Path(os.environ["FAKE_COLAB_DOWNLOADS"])
  folder.mkdir(parents=True, exist_ok=True)
  shutil.copy(filename, folder)
