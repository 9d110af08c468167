"""A read-only view of a VIDIT `manual_dir`: plain folders and zip archives alike.

Users should not have to extract VIDIT's archives (tens of GB): `scan_manual_dir` walks the
folder tree and lists the members of every `.zip` it finds as if the archive were a
folder named after it (`train.zip` holding `Image000_2500_N.png` is seen as
`train/Image000_2500_N.png`), so that folder names such as `input/`, `guide/`,
`validation/` mean the same in both forms. `ManualTree.read` returns a file's bytes,
keeping archives open (15,600 member reads must not re-parse a zip's directory each
time). `real_layouts.py` parses the listed names; the builder reads the bytes.
"""

import dataclasses
import os
import pathlib
import threading
import zipfile

from absl import logging

# Extensions the VIDIT layouts use; other files (READMEs, licences) are ignored.
DATA_EXTENSIONS = (".png", ".npy")
# Archive tools add these; they are never data.
_JUNK_DIRS = ("__MACOSX",)


@dataclasses.dataclass(frozen=True)
class SourceFile:
  """One data file of the manual directory.

  Attributes:
    relpath: posix path relative to the manual dir, a zip counting as a folder of its
      name without `.zip` (used to recognise names, roles and splits).
    origin: what error messages show: `/abs/path.png` or `/abs/archive.zip!member`.
    path: the file on disk (the archive for zip members).
    member: the member name inside the archive, or None for plain files.
  """
  relpath: str
  origin: str
  path: str
  member: str | None = None

  @property
  def name(self) -> str:
    return self.relpath.rsplit("/", 1)[-1]

  @property
  def parent_name(self) -> str:
    parts = self.relpath.split("/")
    return parts[-2] if len(parts) > 1 else ""


def _is_junk(parts) -> bool:
  return any(part.startswith(".") or part in _JUNK_DIRS for part in parts)


def _zip_members(zip_path: str, rel_prefix: str) -> list[SourceFile]:
  try:
    with zipfile.ZipFile(zip_path) as archive:
      names = archive.namelist()
  except (zipfile.BadZipFile, OSError) as err:
    raise ValueError(
        f"{zip_path}: not a readable zip archive ({err}); re-download it or extract it "
        "into the manual dir") from err
  files = []
  for member in names:
    parts = [part for part in member.split("/") if part]
    if member.endswith("/") or not parts or _is_junk(parts):
      continue
    if member.lower().endswith(".zip"):
      logging.warning("%s!%s: zip inside a zip is not read; extract it.", zip_path, member)
      continue
    if not member.lower().endswith(DATA_EXTENSIONS):
      continue
    relpath = "/".join([rel_prefix, *parts]) if rel_prefix else "/".join(parts)
    files.append(SourceFile(relpath=relpath, origin=f"{zip_path}!{member}", path=zip_path,
                            member=member))
  return files


def scan_manual_dir(manual_dir: os.PathLike | str) -> list[SourceFile]:
  """Lists the `.png`/`.npy` files under `manual_dir`, inside zip archives included.

  Args:
    manual_dir: the folder the user put VIDIT in.

  Returns:
    Files sorted by relpath then origin (deterministic on every file system).
  """
  root = pathlib.Path(manual_dir)
  files = []
  # Symlinked folders are followed: users often link a shared VIDIT copy into manual_dir.
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    dirnames[:] = sorted(d for d in dirnames if not _is_junk([d]))
    rel_dir = pathlib.Path(dirpath).relative_to(root).as_posix()
    rel_dir = "" if rel_dir == "." else rel_dir
    for filename in sorted(filenames):
      if _is_junk([filename]):
        continue
      full = os.path.join(dirpath, filename)
      relpath = f"{rel_dir}/{filename}" if rel_dir else filename
      if filename.lower().endswith(".zip"):
        files.extend(_zip_members(full, relpath[:-len(".zip")]))
      elif filename.lower().endswith(DATA_EXTENSIONS):
        files.append(SourceFile(relpath=relpath, origin=full, path=full))
  return sorted(files, key=lambda f: (f.relpath, f.origin))


class ManualTree:
  """Reads `SourceFile` bytes, keeping one open handle per archive (thread-safe).

  Use as a context manager so archives are closed after the build.
  """

  def __init__(self):
    self._archives: dict[str, zipfile.ZipFile] = {}
    self._lock = threading.Lock()

  def read(self, source: SourceFile) -> bytes:
    """Returns the bytes of `source`; ValueError naming it if it cannot be read."""
    try:
      if source.member is None:
        return pathlib.Path(source.path).read_bytes()
      with self._lock:
        archive = self._archives.get(source.path)
        if archive is None:
          archive = self._archives[source.path] = zipfile.ZipFile(source.path)
      # ZipFile serialises access to the shared file handle itself (Python >= 3.5).
      return archive.read(source.member)
    except (OSError, zipfile.BadZipFile, EOFError) as err:
      raise ValueError(f"{source.origin}: cannot read file ({err})") from err

  def close(self):
    with self._lock:
      for archive in self._archives.values():
        archive.close()
      self._archives.clear()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()
