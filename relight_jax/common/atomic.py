"""Files replaced in one step: a reader (or a crash) sees the old file or the new one.

Every file the project writes for a user (images, tables, metrics, config.json,
checkpoint manifests, exported models) goes through `replacing`: the bytes go to a
temporary file beside the destination, which `os.replace` then puts in its place; a
failure (disk full, interrupt, a bad image) removes the temporary and leaves the
destination as it was. The temporary's name is unique, so concurrent writers of one
file never share it. A folder that is only meaningful whole (a challenge submission) is
filled under a hidden temporary name and renamed into place once complete
(`replacing_folder`), so a half-written one never carries the destination's name.

Files and folders get the permissions `open` and `mkdir` would give them under the
process's umask (0644 / 0755 under the usual 022, 0600 / 0700 under 077), not the
private ones of `mkstemp` / `mkdtemp` nor a fixed mode.
"""

import contextlib
import os
import pathlib
import shutil
import tempfile


def current_umask():
  """The process's umask, read without changing it where Linux allows (/proc).

  Elsewhere it is set and put back at once (`os.umask` only reads by writing).
  """
  try:
    with open("/proc/self/status", encoding="ascii") as status:
      for line in status:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def replacing(path, *, binary=True, exclusive=False):
  """A stream that replaces `path` with what was written to it, if the block succeeds.

  Args:
    path: the destination; its folder must exist.
    binary: a bytes stream (else UTF-8 text).
    exclusive: only create `path`: if a file appeared there meanwhile (another run writing
      the same output), raise FileExistsError and leave it as it is, instead of silently
      replacing it.

  Yields:
    The open stream of the temporary file.
  """
  path = pathlib.Path(path)
  descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                           suffix=".tmp")
  try:
    with os.fdopen(descriptor, "wb" if binary else "w",
                   encoding=None if binary else "utf-8") as stream:
      yield stream
    # mkstemp creates 0600: give what open() would have under the user's umask.
    os.chmod(temporary, 0o666 & ~current_umask())
    if exclusive:
      _publish_new(temporary, path)
    else:
      os.replace(temporary, path)
  except BaseException:
    if os.path.lexists(temporary):
      os.unlink(temporary)
    raise


def _publish_new(temporary, path):
  """Gives `temporary` the name `path` only if nothing has it (a hard link refuses)."""
  try:
    os.link(temporary, path)
  except FileExistsError:
    raise FileExistsError(f"{path} appeared while it was being written (another run writing "
                          "the same output?); it was left as it is: choose another output or "
                          "rerun") from None
  except OSError:
    # A filesystem without hard links: the check and the rename are two steps.
    if os.path.lexists(path):
      raise FileExistsError(f"{path} appeared while it was being written (another run "
                            "writing the same output?); it was left as it is: choose another "
                            "output or rerun") from None
    os.replace(temporary, path)
    return
  os.unlink(temporary)


def write_text(path, text):
  """Writes `text` (UTF-8) to `path` in one step, creating its folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with replacing(path, binary=False) as stream:
    stream.write(text)


@contextlib.contextmanager
def replacing_folder(path, *, overwrite=False):
  """A temporary folder that becomes `path` when the block succeeds.

  The folder is created beside `path` under a hidden name (`.<name>.<random>.partial`);
  on success it is renamed to `path` (an existing `path` is first moved aside, then
  deleted, when `overwrite`); on failure it is deleted and `path` is left as it was.
  Readers thus see the previous folder, no folder, or the complete new one.

  Args:
    path: the destination folder; its parent is created if missing.
    overwrite: replace an existing `path` (else FileExistsError).

  Yields:
    pathlib.Path of the temporary folder to fill.
  """
  path = pathlib.Path(path)
  if path.exists() and not (overwrite and path.is_dir()):
    raise FileExistsError(f"{path} exists; " + ("it is not a folder" if overwrite else
                                                "pass overwrite to replace it"))
  path.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                          suffix=".partial"))
  try:
    yield staging
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp creates 0700: as mkdir would
    if path.exists():
      previous = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                               suffix=".old"))
      os.replace(path, previous)  # onto the empty folder just made: POSIX allows it
      os.replace(staging, path)
      shutil.rmtree(previous)
    else:
      os.replace(staging, path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
