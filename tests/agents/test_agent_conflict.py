"""Gradient-conflict instrument on constructed vectors (exact cosines)."""

from __future__ import annotations

import math

import pytest
import torch

from parse_actors.agents import gradient_conflict


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_exact_cosines():
    updates = {
        0: {"b": t(1, 0), "only_uni": t(1, 1)},  # uni
        1: {"b": t(0, 1)},  # uni
        2: {"b": t(-1, 0), "only_multi": t(1, 0)},  # multi
        3: {"b": t(1, 1)},  # multi
    }
    multi = {0: False, 1: False, 2: True, 3: True}
    r = gradient_conflict(updates, multi)
    assert set(r) == {"b"}
    # mean uni (0.5, 0.5), mean multi (0, 0.5): cos = 0.25 / (sqrt(.5) * .5) = 1/sqrt(2)
    assert r["b"]["cosine"] == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    # pairs: (0,2) -1, (0,3) 1/sqrt2, (1,2) 0, (1,3) 1/sqrt2 -> one of four negative
    assert r["b"]["frac_negative"] == pytest.approx(0.25)
    assert r["b"]["mean_pair_cosine"] == pytest.approx((-1 + 2 / math.sqrt(2)) / 4, abs=1e-12)
    assert (r["b"]["n_uni"], r["b"]["n_multi"]) == (2, 2)


def test_opposite_and_zero_updates():
    r = gradient_conflict({0: {"k": t(2, 0, 0)}, 1: {"k": t(-3, 0, 0)}}, {0: False, 1: True})
    assert r["k"]["cosine"] == pytest.approx(-1.0) and r["k"]["frac_negative"] == 1.0
    r = gradient_conflict({0: {"k": t(0, 0)}, 1: {"k": t(1, 0)}}, {0: False, 1: True})
    assert r["k"]["cosine"] == 0.0 and r["k"]["frac_negative"] == 0.0


def test_on_agents_last_update(make_agent, data):
    agents = {0: make_agent("I", seed=0), 1: make_agent("IA", seed=1), 2: make_agent("A", seed=2)}
    for a in agents.values():
        a.train_steps(data(a.modalities), 3, 16)
    r = gradient_conflict({i: a.last_update() for i, a in agents.items()}, {i: a.is_multimodal for i, a in agents.items()})
    assert "head/red" in r and r["head/red"]["n_uni"] == 2 and r["head/red"]["n_multi"] == 1
    assert "backbone/image/cnn" in r and "fusion/audio+image" not in r
    assert all(-1 - 1e-9 <= v["cosine"] <= 1 + 1e-9 for v in r.values())
