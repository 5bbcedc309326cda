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
nothing. It walks the whole heap, so it belongs after large transient work (an evaluation), or once a minute
of training, not in every training step.

:func:`blocks_mapped_apart` is for an evaluation made inside a training process. The training step's
tensors live on the heap (glibc's mmap threshold rises with the blocks freed, up to 32 MiB), and its
resident size is the part of the heap a step touches. An evaluation of a whole batch (500 maze plans) at once
needs more than a step, and it grew the heap by its peak at each evaluation; the training steps after it
spread over the larger heap, so the run's resident size rose for good at its evaluations though each gave
every page back. While the context is open, blocks of ``min_bytes`` (4 MiB) or more that the heap's free
memory cannot hold are mapped on their own instead of growing the heap (glibc's threshold decides only how the
heap grows): the evaluation's large blocks go back to the system when freed and the heap keeps the size
training gave it. On leaving, the threshold is set to glibc's ceiling (32 MiB, where the dynamic threshold of a training
process sits) and the freed pages are released. Mapping costs page faults, so the evaluation is slower;
training steps keep the heap, which they reuse from step to step. Measured by
``benchmarks/evaluation_heap.py`` on the braided-medium LoFlexMDM (docs/results.md, "long runs that hold
steady"): without the context two evaluations grew the heap 906 -> 1,489 -> 1,627 MiB and the training
steps after the first were resident at 1,411-1,452 MiB (1,140-1,207 before it); with it the evaluations left
the heap as they found it (917 -> 905, 1,129 -> 1,094 MiB) and the steps were resident at 1,321-1,404 MiB,
while each evaluation took 187-188 s against 136-155 s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from contextlib import contextmanager


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
GLIBC_MMAP_THRESHOLD_MAX = 32 * 2**20  # the ceiling of glibc's dynamic mmap threshold on 64-bit systems
EVALUATION_MMAP_THRESHOLD = 4 * 2**20


@functools.cache
def _glibc():
    """The C library where it is glibc (with ``malloc_trim`` and ``mallopt``), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim(0)``); True when it was called,
    False where the C library has no such call (nothing is done there)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def blocks_mapped_apart(min_bytes: int = EVALUATION_MMAP_THRESHOLD):
    """Inside, glibc maps a block of ``min_bytes`` or more on its own where the heap's free memory cannot hold it
    (``mallopt(M_MMAP_THRESHOLD)``), so transient work does not grow the heap that training steps share; on
    leaving, the threshold goes to glibc's ceiling and the free pages are released (module docstring). Does
    nothing without glibc."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, min_bytes)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)
        release_freed_memory()
