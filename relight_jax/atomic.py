"""Files replaced in one step: a reader (or a crash) sees the old file or the new one.

Every file the project writes for a user (images, tables, metrics, config.json,
checkpoint manifests, exported models) goes through `replacing`: the bytes go to a
temporary file beside the destination, which `os.replace` then puts in its place; a
failure (disk full, interrupt, a bad image) removes the temporary and leaves the
destination as it was. The temporary's name is unique, so concurrent writers of one
file never share it.
"""

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def replacing(path, *, binary=True):
  """A stream that replaces `path` with what was written to it, if the block succeeds.

  Args:
    path: the destination; its folder must exist.
    binary: a bytes stream (else UTF-8 text).

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
    os.chmod(temporary, 0o644)  # mkstemp creates 0600: give the usual permissions
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def write_text(path, text):
  """Writes `text` (UTF-8) to `path` in one step, creating its folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with replacing(path, binary=False) as stream:
    stream.write(text)
