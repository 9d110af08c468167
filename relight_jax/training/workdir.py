"""One training process per workdir: an exclusive lock on `<workdir>/.lock`.

Two runs writing the same workdir would interleave checkpoints, config.json and
TensorBoard events. `lock(path)` holds `fcntl.flock(LOCK_EX | LOCK_NB)` on the lock file
while training; the kernel drops a flock when its process dies, however it dies, so a
lock file that nobody holds is stale by construction and is taken over. The file itself
only says who holds it (host, pid, since when), for the refusal message; it is emptied,
not deleted, on release (deleting it would let two processes lock two different files).
"""

import contextlib
import datetime
import json
import logging
import os
import pathlib
import socket

try:
  import fcntl
except ImportError:  # Windows
  fcntl = None

LOCK_FILE = ".lock"


class WorkdirBusyError(RuntimeError):
  """Another process holds the workdir's lock."""


class BadWorkdirError(ValueError):
  """The workdir path cannot be a directory (a file is in the way)."""


def prepare(path):
  """Creates the workdir directory `path` (and its parents) if needed.

  Returns:
    `path` as a `pathlib.Path`.

  Raises:
    BadWorkdirError: `path`, or one of its parents, exists and is not a directory.
  """
  path = pathlib.Path(path)
  try:
    path.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError):
    blocker = next((parent for parent in (path, *path.parents)
                    if parent.exists() and not parent.is_dir()), path)
    where = "is a file" if blocker == path else f"lies under the file {blocker}"
    raise BadWorkdirError(
        f"--workdir {path} {where}, not a directory: name a directory (created if "
        "missing)") from None
  return path


def _describe(holder):
  """'pid 12 on host-a since 2024-05-01T10:00:00+00:00' from the lock file's record."""
  if not holder:
    return "an unknown process (it has not written its name yet)"
  if "pid" not in holder:
    return f"an unknown process (its lock file reads {holder.get('raw')!r})"
  return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
          f"since {holder.get('since', '?')}")


def _read_holder(handle):
  handle.seek(0)
  text = handle.read().strip()
  if not text:
    return None
  try:
    holder = json.loads(text)
  except json.JSONDecodeError:
    holder = None
  return holder if isinstance(holder, dict) else {"raw": text[:200]}


def _holder_is_gone(holder):
  """True when the holder ran on this host and its pid no longer exists.

  The flock is still held then: a process it forked (sharing the open file) holds it.
  """
  if not holder or holder.get("host") != socket.gethostname():
    return False
  try:
    os.kill(int(holder["pid"]), 0)
  except ProcessLookupError:
    return True
  except (PermissionError, KeyError, TypeError, ValueError, OverflowError):
    return False
  return False


@contextlib.contextmanager
def lock(path, *, primary=True):
  """Holds the exclusive lock of workdir `path` for the duration of the `with` block.

  Creates the directory first. Not re-entrant: a second `lock` on the same workdir
  refuses even in the same process (flocks belong to open files, not processes).

  Args:
    path: the workdir.
    primary: False on the processes other than 0 of a multi-process run, which write
      the workdir together with process 0: they only create the directory.

  Yields:
    The workdir as a `pathlib.Path`.

  Raises:
    BadWorkdirError: `path` is, or lies under, a file.
    WorkdirBusyError: another process (or another `lock` here) holds the lock.
  """
  path = prepare(path)
  if not primary:
    yield path
    return
  if fcntl is None:
    logging.warning("No fcntl on this platform: %s is not locked against a second run", path)
    yield path
    return
  lock_path = path / LOCK_FILE
  # "a+" creates the file without truncating it: the holder's record must survive a
  # refused attempt.
  with open(lock_path, "a+") as handle:
    if not _try_lock(handle, path):
      yield path
      return
    previous = _read_holder(handle)
    if previous is not None:
      logging.warning("Taking over the stale lock %s of %s, which ended without releasing it",
                      lock_path, _describe(previous))
    record = {"host": socket.gethostname(), "pid": os.getpid(),
              "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    try:
      yield path
    finally:
      # Emptied while still held: a record left behind then always means a crash.
      handle.seek(0)
      handle.truncate()
      handle.flush()
      fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_lock(handle, path):
  """Takes the flock of the open lock file `handle`.

  Returns:
    True when held; False when this filesystem cannot lock (warned).

  Raises:
    WorkdirBusyError: another open file holds it.
  """
  try:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _read_holder(handle)
    gone = (" (that pid has exited; a process it started still holds the lock)"
            if _holder_is_gone(holder) else "")
    raise WorkdirBusyError(
        f"workdir {path} is in use by {_describe(holder)}{gone}: wait for that run to "
        "finish, or use another --workdir") from None
  except OSError as error:  # e.g. ENOLCK: a network filesystem without locks
    logging.warning("Cannot lock %s (%s): it is not locked against a second run",
                    handle.name, error)
    return False
  return True
