"""host_memory.tune(): what it reports per RELIGHT_JAX_MALLOC setting, and that, applied,
glibc serves large blocks from its heap and keeps them when freed. The page faults this
saves are measured by bench/host_memory.py, not here."""

import json
import os
import subprocess
import sys

import pytest

from relight_jax.common import host_memory

# In a fresh interpreter (the allocator settings are process-wide and must precede any
# thread's first allocation): tune(), then a 64 MiB block, twice glibc's largest mmap
# threshold, so that with its defaults it is a fresh mapping, far above the heap's break.
_PROBE = """
import ctypes, json
from relight_jax.common import host_memory
applied = host_memory.tune()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
size = 64 << 20
block = libc.malloc(size)
in_heap = block + size <= libc.sbrk(0)
libc.free(block)
kept = block + size <= libc.sbrk(0)
print(json.dumps({"applied": applied, "in_heap": in_heap, "kept": kept}))
"""

_GLIBC = host_memory._glibc() is not None  # pylint: disable=protected-access


def _probe(setting):
  env = dict(os.environ)
  env.pop(host_memory.ENV_VARIABLE, None)
  if setting is not None:
    env[host_memory.ENV_VARIABLE] = setting
  result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=60)
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
@pytest.mark.parametrize("setting", ["reuse", None])  # None: unset, the default
def test_tuned_allocator_serves_and_keeps_large_blocks_in_its_heap(setting):
  assert _probe(setting) == {"applied": True, "in_heap": True, "kept": True}


@pytest.mark.skipif(not _GLIBC, reason="glibc's mmap threshold")
def test_system_setting_keeps_glibc_defaults():
  assert _probe("system") == {"applied": False, "in_heap": False, "kept": False}


def test_bad_setting_names_the_variable(monkeypatch):
  monkeypatch.setenv(host_memory.ENV_VARIABLE, "jemalloc")
  with pytest.raises(ValueError, match="RELIGHT_JAX_MALLOC='jemalloc': expected 'reuse'"):
    host_memory.tune()


def test_system_setting_leaves_the_allocator(monkeypatch):
  monkeypatch.setenv(host_memory.ENV_VARIABLE, "system")
  assert host_memory.tune() is False
