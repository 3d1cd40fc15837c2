"""Centralized sanity check on a task whose information structure is known.

Latent parts: s (shared by both modalities), u1, u2 (unique to each). Each
modality is a fixed random projection of the parts it sees, plus noise. The
synergy label XORs the signs of u1 and u2: no single modality says anything
about it. The redundancy label is the sign of s: either modality suffices.
"""

from __future__ import annotations

import numpy as np
import pytest

from parse_actors.agents import Agent, AgentSpec, ModelConfig, OptimConfig
from parse_actors.data.types import ModalData

DIM, PART = 16, 4
MODEL = ModelConfig(slice_width=8, backbone_width=32, mlp_hidden=[64], fusion_hidden=32)
OPTIM = OptimConfig(lr=0.05, momentum=0.9)


def _make(n, seed, label):
    r = np.random.default_rng(1000)  # projections fixed across splits
    p1 = r.standard_normal((2 * PART, DIM)) / np.sqrt(2 * PART)
    p2 = r.standard_normal((2 * PART, DIM)) / np.sqrt(2 * PART)
    r = np.random.default_rng(seed)
    s, u1, u2 = (r.standard_normal((n, PART)) for _ in range(3))
    x1 = np.concatenate([s, u1], 1) @ p1 + 0.05 * r.standard_normal((n, DIM))
    x2 = np.concatenate([s, u2], 1) @ p2 + 0.05 * r.standard_normal((n, DIM))
    y = (u1[:, 0] > 0) ^ (u2[:, 0] > 0) if label == "syn" else s[:, 0] > 0
    return ModalData({"a": x1.astype(np.float32), "b": x2.astype(np.float32)}, y.astype(np.int64))


def _accuracy(mods, label, steps=800):
    train, test = _make(4000, 1, label), _make(2000, 2, label)
    agent = Agent(
        AgentSpec(0, mods), {"a": (DIM,), "b": (DIM,)}, 2, model=MODEL, optim=OPTIM, method="parse", seed=3
    )
    agent.train_steps(train.only(mods), steps, 64)
    return agent.evaluate(test.only(mods))[0]


@pytest.fixture(scope="module")
def results():
    # XOR through the syn path (a third of the unit CE budget, one projection
    # deeper than a monolithic network) leaves its plateau after ~1600 steps at
    # this lr (a monolithic network: ~400), so that case trains longer
    return {
        (mods, label): _accuracy(mods, label, steps=2000 if (mods, label) == (("a", "b"), "syn") else 800)
        for mods in [("a", "b"), ("a",)]
        for label in ("syn", "red")
    }


def test_synergy_needs_both_modalities(results):
    assert results[(("a", "b"), "syn")] > 0.8, results
    assert abs(results[(("a",), "syn")] - 0.5) < 0.06, results


def test_redundancy_from_either_modality(results):
    assert results[(("a", "b"), "red")] > 0.9, results
    assert results[(("a",), "red")] > 0.9, results
