"""Process-level tuning that makes small-model training fast and steady.

glibc adapts its trim/mmap thresholds as blocks are freed, so whether a
step's activations (~1 MB for a small CNN) are page-faulted in afresh depends
on incidental heap history: that swings a training loop's speed by 5-25%.
Pinning the thresholds keeps freed activation memory in the heap. Agent hosts
call this once; so does the per-step benchmark.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def fix_malloc_thresholds() -> bool:
    """Pin glibc's trim/mmap thresholds; returns False where not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
        return libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and ok
    except (OSError, AttributeError, TypeError):
        return False
