"""Keep freed memory in the process heap while training on the CPU (glibc's allocator).

A training step on the CPU allocates and frees the same large buffers every step: activations kept for the
backward pass, their gradients, the teacher's activations (128 crops of 120x120: tens to hundreds of MB
each). glibc serves every block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed, and it gives the top of the heap back to the system once more than
128 kB is free there. The next step then touches brand-new pages, and the kernel zeroes each one on its
first write: 140-170 thousand page faults per step of ``mfirrn-mb05`` with its teacher at batch 128, and
steps 1.18x slower on the 2-core machine of ``docs/experiments/training.md`` (``benchmarks/train_heap.py``).

:func:`keep_freed_memory` turns both off for the process (``mallopt(M_MMAP_MAX, 0)``: every block comes
from the heap; ``mallopt(M_TRIM_THRESHOLD, 1 GB)``: freed memory stays there), so from the second step on
the buffers are reused as they are. The arithmetic is unchanged; the process keeps its peak memory until
:func:`restore_heap_defaults` (the trainer calls it when it returns) gives glibc its defaults back and returns
the free memory to the system. It does nothing where the C library is not glibc, or where the user tuned
glibc's allocator already (``MALLOC_MMAP_MAX_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_`` or a ``glibc.malloc`` entry of ``GLIBC_TUNABLES``), or preloads another allocator
(jemalloc, tcmalloc or mimalloc through ``LD_PRELOAD``).

>>> keep_freed_memory(environ={"MALLOC_MMAP_MAX_": "65536"})
False
>>> restore_heap_defaults(environ={"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"})
False
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Mapping, Optional

# mallopt parameters (glibc <malloc.h>)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_MMAP_MAX = 65536  # glibc's defaults
DEFAULT_TRIM_THRESHOLD = 128 * 1024

TRIM_THRESHOLD_BYTES = 1 << 30  # mallopt takes a C int: 1 GB is more than a step frees at the heap's top

_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def user_tuned(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` already tunes or replaces glibc's allocator (then it is left alone)."""
    if any(environ.get(k) for k in _USER_SETTINGS):
        return True
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return True
    return any(lib in environ.get("LD_PRELOAD", "") for lib in ("jemalloc", "tcmalloc", "mimalloc"))


def _mallopt():
    """glibc's ``mallopt`` and ``malloc_trim``, or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return mallopt, trim


def keep_freed_memory(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Keep freed blocks of this process in its heap instead of returning them to the system (glibc only).

    Returns True when the settings were applied, False when they were left alone (not glibc, or the
    user's own allocator settings in ``environ``, default ``os.environ``). Idempotent."""
    env = os.environ if environ is None else environ
    fns = None if user_tuned(env) else _mallopt()
    if fns is None:
        return False
    mallopt, _ = fns
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def restore_heap_defaults(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Undo :func:`keep_freed_memory`: glibc's default mmap count and trim threshold, and the free memory of
    the heap returned to the system (``malloc_trim``). Same conditions; returns True when applied."""
    env = os.environ if environ is None else environ
    fns = None if user_tuned(env) else _mallopt()
    if fns is None:
        return False
    mallopt, trim = fns
    ok = bool(mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD))
    trim(0)
    return ok
