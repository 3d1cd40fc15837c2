"""How much memory an input may make parse-sim allocate, decided before allocating it.

A declared size (an array header, a synthetic dimension, `audit --samples`)
costs nothing to write and can ask for terabytes; reading or building it
first and failing with MemoryError (or being killed) afterwards is the bug
this module prevents. Callers estimate the bytes a value implies, from the
value alone, and refuse it here with a message that says what it would need.

The limit is half of this machine's memory (the smaller of physical memory
and the cgroup's limit): a run holds at least a second copy of what it loads
(float32 conversion, partition subsets, the agents' own copies), so more than
half can never finish.
"""

from __future__ import annotations

import os
from pathlib import Path

_FALLBACK_BYTES = 16 << 30  # where the OS reports nothing


def machine_bytes() -> int:
    """Physical memory, or the cgroup (v2 or v1) memory limit when that is smaller."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = _FALLBACK_BYTES
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def limit_bytes() -> int:
    """What one input may make the process allocate (half of `machine_bytes`)."""
    return machine_bytes() // 2


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; exact below 1 KiB."""
    n = float(n)
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError  # pragma: no cover


def over_limit(nbytes: float, what: str) -> str | None:
    """None when `nbytes` fits, else the reason: '<what> needs X, more than half of this machine's memory (Y)'."""
    limit = limit_bytes()
    if nbytes <= limit:
        return None
    return (f"{what} needs {fmt_bytes(nbytes)}, more than half of this machine's memory "
            f"({fmt_bytes(2 * limit)})")
