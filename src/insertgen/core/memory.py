"""Giving the memory an evaluation freed back to the system, so that a long run's resident size shows
what it holds.

An evaluation samples its whole batch at once (500 maze plans, 1,000 molecules): hundreds of MiB of
activations that are freed when it ends. glibc's allocator returns freed memory to the system only from
the top of its heap (and for blocks it mapped on their own, above its dynamic mmap threshold); the pages
freed between blocks still in use stay resident. So a training run's resident set (RSS) rose in steps
at each evaluation with a larger peak than any before it and never came down, which the soak benchmark
(benchmarks/soak.py) cannot tell from a leak. Measured on FlexMDM's braided-medium maze weights, one
process evaluating 300 plans twice (``benchmarks/evaluation_memory.py``): 959 / 948 MiB resident after each
evaluation, 287 MiB after each ``malloc_trim(0)`` and after each evaluation that releases (docs/results.md,
"long runs that hold steady").

:func:`release_freed_memory` calls ``malloc_trim(0)``, which hands every wholly free page of the heap
back (``madvise(MADV_DONTNEED)``), where the C library is glibc; elsewhere (musl, macOS, Windows) it does
nothing. It walks the whole heap, so it belongs after large transient work (an evaluation), not in every
training step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform


@functools.cache
def _glibc_malloc_trim():
    """glibc's ``malloc_trim`` (int malloc_trim(size_t pad)), or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim(0)``); True when it was called,
    False where the C library has no such call (nothing is done there)."""
    trim = _glibc_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
