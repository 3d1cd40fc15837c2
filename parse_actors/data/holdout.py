"""The sets held out of the dataset before agents get anything: the common test
set, the global validation set, and the `max_samples` cap on what is left.

Each draw has its own named seed stream (parse_actors.seeding) and none
depends on the method, the agents or the network, so every method of a sweep
sees the same held-out sets for the same seed (paired comparisons).
"""

from __future__ import annotations

import math

import numpy as np

from ..seeding import rng as seeded_rng
from .config import DataConfig
from .errors import DataError
from .partition import stratified_take
from .types import ModalData, SourceData


def global_test(cfg: DataConfig, src: SourceData, seed: int) -> tuple[ModalData, ModalData, np.ndarray | None, str]:
    """(pool, global test, pool groups, where the test came from)."""
    r = seeded_rng(seed, "data", "global_test")
    gts = cfg.global_test_size
    if src.test is not None:
        n = len(src.test)
        if gts is None:
            k = n
        elif isinstance(gts, float):
            k = int(round(n * gts))
        else:
            if gts > n:
                raise DataError("global_test_size", f"{gts} samples asked, the dataset's test split has {n}")
            k = gts
        take, _ = stratified_take(src.test.y, k, r)
        return src.train, src.test.subset(take), src.groups, "dataset test split"
    n = len(src.train)
    k = int(round(n * (0.2 if gts is None else gts))) if not isinstance(gts, int) else gts
    if k >= n:
        raise DataError("global_test_size", f"{k} samples asked, the dataset has {n}")
    take, rest = stratified_take(src.train.y, k, r)
    groups = None if src.groups is None else src.groups[rest]
    return src.train.subset(rest), src.train.subset(take), groups, "held out from the pool"


def per_class(size: int, num_classes: int) -> int:
    """Samples per class of a balanced set of at least `size` samples."""
    return math.ceil(size / max(num_classes, 1))


def balanced_take(y: np.ndarray, size: int, num_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`per_class(size)` indices of every class 0..num_classes-1, at random within the
    class; returns (taken, rest), both sorted. DataError when a class has too few."""
    q = per_class(size, num_classes)
    counts = np.bincount(y, minlength=num_classes)
    short = [c for c in range(num_classes) if counts[c] < q]
    if short:
        c = short[0]
        raise DataError("global_val_size", f"{size} samples asked ({q} per class, {num_classes} classes), class {c} "
                                           f"has {int(counts[c])} in the pool; lower global_val_size")
    taken = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:q] for c in range(num_classes)]))
    rest = np.setdiff1d(np.arange(len(y)), taken)
    return taken.astype(np.int64), rest.astype(np.int64)


def global_validation(cfg: DataConfig, pool: ModalData, pool_groups: np.ndarray | None, num_classes: int,
                      seed: int) -> tuple[ModalData, ModalData | None, np.ndarray | None]:
    """(pool left for agents, global validation set or None, its groups): a class-balanced
    set of `data.global_val_size` samples (rounded up to a multiple of the classes) drawn
    from the pool, so disjoint from the common test set and from every agent's data.
    Tuning chooses on it (`sweep --tune`); null: none, and nothing else moves."""
    if cfg.global_val_size is None:
        return pool, None, pool_groups
    take, rest = balanced_take(pool.y, cfg.global_val_size, num_classes, seeded_rng(seed, "data", "global_val"))
    groups = None if pool_groups is None else pool_groups[rest]
    return pool.subset(rest), pool.subset(take), groups


def cap_pool(cfg: DataConfig, pool: ModalData, pool_groups: np.ndarray | None,
             seed: int) -> tuple[ModalData, np.ndarray | None]:
    """At most `data.max_samples` of the pool (random, seeded), the rest left unused."""
    if cfg.max_samples is None or len(pool) <= cfg.max_samples:
        return pool, pool_groups
    keep = np.sort(seeded_rng(seed, "data", "max_samples").permutation(len(pool))[: cfg.max_samples])
    return pool.subset(keep), None if pool_groups is None else pool_groups[keep]
