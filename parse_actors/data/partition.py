"""Splitting a labelled pool over agents: IID, Dirichlet label skew, quantity
skew, natural groups; stratified held-out splits.

Index arithmetic only (labels in, index arrays out), so it is cheap to test
and the same for every dataset.
"""

from __future__ import annotations

import numpy as np

from .config import PartitionConfig
from .errors import DataError


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to `weights` that add up to `total`."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    raw = w * total
    out = np.floor(raw).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def stratified_take(y: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick `k` indices of `y` with the label mix of `y` (largest remainder per
    class), at random within each class; returns (taken, rest), both sorted."""
    n = len(y)
    k = int(min(max(k, 0), n))
    classes, counts = np.unique(y, return_counts=True)
    quota = _largest_remainder(counts, k)
    quota = np.minimum(quota, counts)
    short = k - int(quota.sum())  # only when rounding asked more than a class has
    taken = []
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(y == c)
        taken.append(rng.permutation(idx)[:q])
    taken = np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
    if short > 0:
        left = np.setdiff1d(np.arange(n), taken)
        taken = np.concatenate([taken, rng.permutation(left)[:short]])
    taken = np.sort(taken)
    rest = np.setdiff1d(np.arange(n), taken)
    return taken.astype(np.int64), rest.astype(np.int64)


def split_train_test(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An agent's (train, test) positions: stratified, test = round(n * fraction),
    at least one of each when the agent has two samples or more."""
    n = len(y)
    k = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    test, train = stratified_take(y, k, rng)
    return train, test


def _iid(n: int, sizes: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(n)
    cuts = np.cumsum(sizes)[:-1]
    return [np.sort(p) for p in np.split(perm[: int(sizes.sum())], cuts)]


def _dirichlet(y: np.ndarray, n_agents: int, alpha: float, min_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, shares over agents ~ Dir(alpha); an agent already above the
    mean size takes no more (Hsu et al. 2019 style balancing); redrawn until
    every agent has `min_size`."""
    n = len(y)
    classes = np.unique(y)
    for _ in range(100):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_agents)]
        sizes = np.zeros(n_agents, dtype=np.int64)
        for c in rng.permutation(classes):
            idx = rng.permutation(np.flatnonzero(y == c))
            p = rng.dirichlet(np.full(n_agents, alpha))
            p = p * (sizes < n / n_agents)
            if p.sum() == 0:
                p = np.full(n_agents, 1.0)
            counts = _largest_remainder(p, len(idx))
            for a, chunk in enumerate(np.split(idx, np.cumsum(counts)[:-1])):
                parts[a].append(chunk)
                sizes[a] += len(chunk)
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(p)) for p in parts]
    raise DataError(
        "partition.alpha",
        f"no Dirichlet({alpha}) draw in 100 gave every one of {n_agents} agents {min_size} samples "
        f"from {n}; raise alpha or lower partition.min_samples",
    )


def _natural(groups: np.ndarray, n_agents: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Whole groups (subjects, speakers) to agents: largest group first, to the agent with fewest samples."""
    ids, counts = np.unique(groups, return_counts=True)
    if len(ids) < n_agents:
        raise DataError("partition.kind", f"natural partition needs at least {n_agents} groups, the dataset has {len(ids)}")
    order = rng.permutation(len(ids))
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(n_agents, dtype=np.int64)
    owned: list[list] = [[] for _ in range(n_agents)]
    for g in order:
        a = int(np.argmin(sizes))
        owned[a].append(ids[g])
        sizes[a] += counts[g]
    return [np.sort(np.flatnonzero(np.isin(groups, o))) for o in owned]


def partition_indices(
    y: np.ndarray,
    n_agents: int,
    cfg: PartitionConfig,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Disjoint index arrays into `y`, one per agent."""
    n = len(y)
    spa = cfg.samples_per_agent
    floor = cfg.min_samples
    if n < n_agents * floor:
        raise DataError(
            "partition.min_samples",
            f"{n_agents} agents x {floor} samples needs {n_agents * floor}, the pool has {n}",
        )
    if cfg.kind in ("iid", "quantity") and spa is not None and n < n_agents * spa:
        raise DataError(
            "partition.samples_per_agent",
            f"{n_agents} agents x {spa} samples needs {n_agents * spa}, the pool has {n}",
        )
    if cfg.kind == "iid":
        total = n_agents * spa if spa is not None else n
        return _iid(n, _largest_remainder(np.ones(n_agents), total), rng)
    if cfg.kind == "quantity":
        if cfg.ratios is not None:
            if len(cfg.ratios) != n_agents:
                raise DataError("partition.ratios", f"{len(cfg.ratios)} ratios for {n_agents} agents")
            share = np.asarray(cfg.ratios, dtype=np.float64)
        else:
            share = rng.dirichlet(np.full(n_agents, cfg.beta))
        total = n_agents * spa if spa is not None else n
        sizes = floor + _largest_remainder(share, total - n_agents * floor)
        return _iid(n, sizes, rng)
    if cfg.kind == "dirichlet":
        parts = _dirichlet(y, n_agents, cfg.alpha, floor, rng)
    else:
        if groups is None:
            raise DataError("partition.kind", "natural partition needs a dataset with groups (subjects or speakers)")
        parts = _natural(groups, n_agents, rng)
        small = [i for i, p in enumerate(parts) if len(p) < floor]
        if small:
            raise DataError("partition.min_samples", f"agent {small[0]} gets {len(parts[small[0]])} samples from its groups, fewer than {floor}")
    if spa is not None:
        parts = [np.sort(rng.permutation(p)[:spa]) if len(p) > spa else p for p in parts]
    return parts


def label_histograms(y: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    return np.stack([np.bincount(y[p], minlength=num_classes) for p in parts])


def label_skew(y: np.ndarray, parts: list[np.ndarray], num_classes: int) -> float:
    """Mean total-variation distance between each agent's label mix and the
    pool's (0: IID; near 1: agents hold disjoint classes)."""
    h = label_histograms(y, parts, num_classes).astype(np.float64)
    agent = h / np.maximum(h.sum(axis=1, keepdims=True), 1)
    pool = np.bincount(y, minlength=num_classes) / max(len(y), 1)
    return float(np.mean(0.5 * np.abs(agent - pool[None, :]).sum(axis=1)))
