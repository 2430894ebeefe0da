"""Keep freed memory for the next training step instead of handing it back to the OS.

A training step allocates and frees the same large arrays every time (activations, gradients,
a few MB each). With glibc's default malloc settings, some of those frees return pages to the
operating system (memory is given back from the top of the heap once more than 128 KB there is
free, and blocks above the mmap threshold are unmapped on free), so the next step's arrays are
fresh pages, and the kernel zero-fills each 4 KB page on its first write (a page fault each).
On the default model those page faults (``perf`` shows ``exc_page_fault`` / ``clear_page``) are
a visible share of the step, and these settings remove them (benchmarks/README.md has the numbers).

    reuse_freed_memory()      # what ``miniclip train`` and benchmarks/bench_train.py call

It sets glibc's ``M_MMAP_THRESHOLD`` to 32 MB (arrays below it come from the heap, which keeps
freed blocks for reuse) and ``M_TRIM_THRESHOLD`` to 1 GB (free memory at the top of the heap is
kept, up to that much). The cost is that the process keeps its high-water mark of heap memory
(the peak RSS does not grow: the peak is reached inside every step anyway). Setting any
of them turns off glibc's own adaptive threshold, so both are set together. Elsewhere (macOS,
musl, Windows) this does nothing. ``MINICLIP_MALLOC_TUNING=0`` turns it off.
"""

import ctypes
import ctypes.util
import os

# mallopt parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied = None


def reuse_freed_memory():
    """Tune glibc malloc as described above; returns True if applied (glibc, not turned off)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("MINICLIP_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (or no libc found): nothing to tune
        return False
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; both must hold, or the adaptive default is the better choice
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
