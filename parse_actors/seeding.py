"""One seed tree for every random draw.

Children are addressed by name, not by spawn order, so adding a component never
shifts the streams of the others: `derive(seed, "data", "partition")` is always
the same SeedSequence for the same seed.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: str | int) -> int:
    if isinstance(part, int):
        return int(part) & 0xFFFFFFFF
    return zlib.crc32(str(part).encode("utf-8"))


def derive(seed: int, *path: str | int) -> np.random.SeedSequence:
    """The SeedSequence at `path` below the root seed."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key(p) for p in path))


def rng(seed: int, *path: str | int) -> np.random.Generator:
    return np.random.default_rng(derive(seed, *path))


def torch_seed(seed: int, *path: str | int) -> int:
    """A 63-bit integer seed for torch generators at `path`."""
    return int(derive(seed, *path).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)
