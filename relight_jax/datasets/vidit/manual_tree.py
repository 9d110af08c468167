"""A read-only view of a VIDIT `manual_dir`: plain folders and zip archives alike.

Users should not have to extract VIDIT's archives (tens of GB): `scan_manual_dir` walks the
folder tree and lists the members of every `.zip` it finds as if the archive were a
folder named after it (`train.zip` holding `Image000_2500_N.png` is seen as
`train/Image000_2500_N.png`), so that folder names such as `input/`, `guide/`,
`validation/` mean the same in both forms. `ManualTree.read` returns a file's bytes,
keeping archives open (15,600 member reads must not re-parse a zip's directory each
time). `real_layouts.py` parses the listed names; the builder reads the bytes.

Reads are bounded: a file or zip member larger than `MAX_FILE_BYTES` (VIDIT's largest,
a 1024 px depth map, is 8 MiB) is refused from its stated size before any byte is read,
so a small archive declaring a 3 GiB member cannot fill memory. Encrypted members and
compression methods Python cannot read (Deflate64, from Windows' zip tool) are refused
naming the member and what to do. Member names starting with `./` are read as written
without it; an archive without any data file is reported.
"""

import dataclasses
import os
import pathlib
import threading
import zipfile

from absl import logging

# Larger than any VIDIT file (1024 px PNGs of a few MB; depth maps of 8 MiB).
MAX_FILE_BYTES = 64 << 20
# Compression methods Python's zipfile reads.
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                     zipfile.ZIP_LZMA)
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
    # "./Image000_2500_N.png" (zip -r . from inside the folder) is that file, not junk.
    parts = [part for part in member.split("/") if part and part != "."]
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
  if not files:
    logging.warning("%s holds no %s file (%d members): nothing of it is used; is it the "
                    "right archive?", zip_path, " or ".join(DATA_EXTENSIONS), len(names))
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
    """Returns the bytes of `source`; ValueError naming it if it cannot be read.

    The size is checked against `MAX_FILE_BYTES` before reading (a zip member's from its
    directory entry: zipfile never returns more than that).
    """
    try:
      if source.member is None:
        _check_size(pathlib.Path(source.path).stat().st_size, source.origin)
        return pathlib.Path(source.path).read_bytes()
      with self._lock:
        archive = self._archives.get(source.path)
        if archive is None:
          archive = self._archives[source.path] = zipfile.ZipFile(source.path)
      info = archive.getinfo(source.member)
      _check_member(info, source.origin)
      # ZipFile serialises access to the shared file handle itself (Python >= 3.5).
      return archive.read(info)
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as err:
      raise ValueError(f"{source.origin}: cannot read file ({err})") from err
    except (RuntimeError, NotImplementedError) as err:  # what _check_member did not foresee
      raise ValueError(f"{source.origin}: cannot read this zip member ({err}); extract the "
                       "archive into the manual dir with unzip or 7z") from err

  def close(self):
    with self._lock:
      for archive in self._archives.values():
        archive.close()
      self._archives.clear()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


def _check_size(size, origin):
  if size > MAX_FILE_BYTES:
    raise ValueError(f"{origin}: {size:,} bytes, more than any VIDIT file ({MAX_FILE_BYTES:,}); "
                     "remove it from the manual dir or replace it with the released file")


def _check_member(info, origin):
  """Refuses a zip member zipfile cannot or must not read, before reading it."""
  if info.flag_bits & 0x1:
    raise ValueError(f"{origin}: encrypted zip member; extract the archive (with its password) "
                     "into the manual dir")
  if info.compress_type not in _READABLE_METHODS:
    method = "Deflate64" if info.compress_type == 9 else f"method {info.compress_type}"
    raise ValueError(f"{origin}: compressed with {method}, which Python cannot read; extract "
                     "the archive into the manual dir with unzip or 7z")
  _check_size(info.file_size, origin)
