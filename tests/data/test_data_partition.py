"""Partitions over agents and stratified held-out splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parse_actors.data import DataError, PartitionConfig
from parse_actors.data.partition import label_skew, partition_indices, split_train_test, stratified_take


def labels(n=4000, c=10, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


def check_disjoint(parts, n):
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx) and allidx.max() < n


def test_iid_equal_sizes_low_skew():
    y = labels()
    parts = partition_indices(y, 8, PartitionConfig(kind="iid"), np.random.default_rng(0))
    check_disjoint(parts, len(y))
    assert {len(p) for p in parts} == {500}
    assert label_skew(y, parts, 10) < 0.06


def test_iid_samples_per_agent_exact_and_too_big():
    y = labels()
    parts = partition_indices(y, 8, PartitionConfig(samples_per_agent=100), np.random.default_rng(0))
    assert [len(p) for p in parts] == [100] * 8
    with pytest.raises(DataError) as e:
        partition_indices(y, 8, PartitionConfig(samples_per_agent=501), np.random.default_rng(0))
    assert e.value.path == "partition.samples_per_agent"


def test_dirichlet_skew_grows_as_alpha_shrinks():
    y = labels()
    skew = []
    for alpha in (100.0, 1.0, 0.1):
        s = [label_skew(y, partition_indices(y, 8, PartitionConfig(kind="dirichlet", alpha=alpha),
                                             np.random.default_rng(r)), 10) for r in range(3)]
        skew.append(np.mean(s))
    assert skew[0] < 0.1 < skew[1] < skew[2]
    assert skew[2] > 0.5


def test_dirichlet_respects_min_samples_and_uses_whole_pool():
    y = labels(1000)
    parts = partition_indices(y, 10, PartitionConfig(kind="dirichlet", alpha=0.05, min_samples=20), np.random.default_rng(1))
    check_disjoint(parts, len(y))
    assert min(len(p) for p in parts) >= 20 and sum(len(p) for p in parts) == 1000


def test_dirichlet_impossible_min_is_a_data_error():
    y = labels(100)
    with pytest.raises(DataError) as e:
        partition_indices(y, 10, PartitionConfig(kind="dirichlet", alpha=0.01, min_samples=10), np.random.default_rng(0))
    assert e.value.path == "partition.alpha"


def test_quantity_skew_sizes_vary_labels_do_not():
    y = labels()
    skewed = partition_indices(y, 8, PartitionConfig(kind="quantity", beta=0.3), np.random.default_rng(0))
    flat = partition_indices(y, 8, PartitionConfig(kind="quantity", beta=100.0), np.random.default_rng(0))
    sizes = np.array([len(p) for p in skewed])
    assert sizes.sum() == 4000 and sizes.min() >= 10
    assert sizes.std() / sizes.mean() > 3 * np.std([len(p) for p in flat]) / 500
    assert label_skew(y, [p for p in skewed if len(p) > 200], 10) < 0.1


def test_quantity_explicit_ratios():
    y = labels(1000)
    parts = partition_indices(y, 3, PartitionConfig(kind="quantity", ratios=[1, 2, 7], min_samples=1), np.random.default_rng(0))
    assert [len(p) for p in parts] == [101, 200, 699]  # 1 each, then 997 by largest remainder


def test_natural_groups_stay_whole():
    y = labels(900)
    groups = np.repeat(np.arange(9), 100)
    parts = partition_indices(y, 3, PartitionConfig(kind="natural"), np.random.default_rng(0), groups)
    owners = [set(groups[p]) for p in parts]
    assert all(len(o) == 3 for o in owners) and set.union(*owners) == set(range(9))
    with pytest.raises(DataError) as e:
        partition_indices(y, 10, PartitionConfig(kind="natural"), np.random.default_rng(0), groups)
    assert e.value.path == "partition.kind"


def test_too_small_pool():
    with pytest.raises(DataError) as e:
        partition_indices(labels(50), 8, PartitionConfig(min_samples=10), np.random.default_rng(0))
    assert e.value.path == "partition.min_samples"


def test_stratified_take_keeps_label_mix():
    y = np.repeat([0, 1, 2], [600, 300, 100])
    take, rest = stratified_take(y, 100, np.random.default_rng(0))
    assert np.bincount(y[take]).tolist() == [60, 30, 10]
    assert len(np.intersect1d(take, rest)) == 0 and len(take) + len(rest) == 1000


def test_train_test_split_same_distribution():
    y = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    tr, te = split_train_test(y, 0.2, np.random.default_rng(0))
    assert len(te) == 20 and len(tr) == 80
    assert np.bincount(y[te], minlength=4).tolist() == [10, 6, 3, 1]
    tr, te = split_train_test(np.array([0, 1]), 0.2, np.random.default_rng(0))
    assert len(tr) == 1 and len(te) == 1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(50, 600),
    n_agents=st.integers(1, 12),
    kind=st.sampled_from(["iid", "dirichlet", "quantity"]),
    conc=st.floats(0.05, 50),
    seed=st.integers(0, 2**16),
)
def test_partitions_are_disjoint_and_respect_min(n, n_agents, kind, conc, seed):
    y = labels(n, 5, seed)
    cfg = PartitionConfig(kind=kind, alpha=conc, beta=conc, min_samples=3)
    try:
        parts = partition_indices(y, n_agents, cfg, np.random.default_rng(seed))
    except DataError as e:  # only the documented "cannot satisfy min_samples" outcomes
        assert e.path in ("partition.alpha", "partition.min_samples")
        return
    assert len(parts) == n_agents
    check_disjoint(parts, n)
    assert min(len(p) for p in parts) >= 3
    assert sum(len(p) for p in parts) == n  # the whole pool is shared out
