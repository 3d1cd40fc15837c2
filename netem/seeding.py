"""Named random streams below one SeedSequence.

Each component asks for its stream by name (`derive(seed, "loss")`); the child
key is the CRC32 of the name appended to the parent's spawn key, so adding or
removing a component never shifts the draws of the others, and the same seed
always gives the same streams.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: str | int) -> int:
    if isinstance(part, (int, np.integer)):
        return int(part) & 0xFFFFFFFF
    return zlib.crc32(str(part).encode("utf-8"))


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """Accept a SeedSequence (used as is), an int (as entropy) or None (fresh entropy)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def derive(seed: np.random.SeedSequence, *names: str | int) -> np.random.SeedSequence:
    """The child SeedSequence at `names` below `seed`, independent of spawn order."""
    return np.random.SeedSequence(
        entropy=seed.entropy,
        spawn_key=tuple(seed.spawn_key) + tuple(_key(n) for n in names),
        pool_size=seed.pool_size,
    )


def rng(seed: np.random.SeedSequence, *names: str | int) -> np.random.Generator:
    """A Generator on the named stream (see `derive`)."""
    return np.random.default_rng(derive(seed, *names))


def uniform(seed: np.random.SeedSequence, *names: str | int) -> float:
    """One U[0,1) number for a named key, cheaper than building a Generator.

    Used for per-link quantities (a trace phase, say) that must not depend on
    the order in which links are first used.
    """
    word = derive(seed, *names).generate_state(2, dtype=np.uint32)
    return float((int(word[0]) << 21 | int(word[1]) >> 11) / float(1 << 53))
