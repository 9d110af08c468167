"""Host allocator settings that keep XLA:CPU from re-faulting its buffers every step.

XLA:CPU takes each step's outputs and temporaries from `malloc`. With glibc's defaults
a block over the (at most 32 MiB) mmap threshold is a fresh anonymous mapping, freed
with `munmap`, and XLA's worker threads allocate from their own arenas, which glibc
also trims back to the kernel. A train step that needs a few GB of buffers then
touches every page of them anew, each step: at 256 px, batch 4, the Envmap step took
~850,000 minor page faults and 1.6 s of system time per 7.1 s step; a jitted `x + 1`
on a 134 MB array took 41 ms instead of 9 ms.

`tune()` asks glibc (mallopt) to serve every allocation from one arena that grows with
brk and is never trimmed: the buffers freed by step n are reused by step n + 1 without a
page fault (`python -m bench.host_memory` counts them; the Envmap step at 256 px is
1.2-1.7x faster for it, docs/benchmark_history.md, section 1). The cost: the process
keeps its peak heap until it exits (the peak itself does not grow).

Entry points (`main.py`, the demo, the relight CLI, the benchmarks) call `tune()` before
their first computation: glibc reads the arena limit when a thread first needs an arena,
so it must come before XLA's threads allocate. It does nothing on a C library other
than glibc, or when the environment variable RELIGHT_JAX_MALLOC is "system".
"""

import ctypes
import ctypes.util
import logging
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

ENV_VARIABLE = "RELIGHT_JAX_MALLOC"


def _glibc():
  """The process's C library when it is glibc (it has mallopt and gnu_get_libc_version)."""
  name = ctypes.util.find_library("c")
  if name is None:
    return None
  try:
    libc = ctypes.CDLL(name)
  except OSError:
    return None
  if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
    return None
  return libc


def tune():
  """Keeps freed heap memory in the process for reuse (see the module docstring).

  Returns:
    True when the settings were applied, False when skipped (not glibc, or
    RELIGHT_JAX_MALLOC=system) or refused by glibc.
  """
  setting = os.environ.get(ENV_VARIABLE, "reuse")
  if setting == "system":
    return False
  if setting != "reuse":
    raise ValueError(f"{ENV_VARIABLE}={setting!r}: expected 'reuse' (the default: keep freed "
                     "memory for the next step) or 'system' (the C library's defaults)")
  libc = _glibc()
  if libc is None:
    logging.info("host_memory: not glibc; allocator left at its defaults")
    return False
  # One arena (XLA's threads then share the brk heap), no mmap'ed blocks, no trimming.
  applied = all(libc.mallopt(parameter, value) == 1 for parameter, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
  if not applied:
    logging.warning("host_memory: glibc refused a mallopt setting; allocator partly at defaults")
  return applied
