"""Known answers of both audit measurements on a synthetic task: an ideal
fission built from the true latents, pure noise, and red/uni swapped.

Tolerances: with 2000 fitted / 2000 scored samples, the normalised probe score
of a feature set independent of the target is below 0.05 (a few standard
errors of an accuracy at chance, and the -d/n bias of a held-out R^2); the
plug-in PID of the label from two 8-cell sources carries up to ~0.04 bits of
bias, which the label-shuffled `null` measures: a source pair carrying
nothing scores within 0.02 bits of its null.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parse_actors.audit import features as feat
from parse_actors.audit.audit import pid_rows, probe_rows
from parse_actors.audit.probes import halves
from parse_actors.data import SyntheticConfig
from parse_actors.data.synthetic import generate, generate_heldout

MODS = ["audio", "image"]
N = 4000


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    h = generate_heldout(SyntheticConfig(preset="mixed", dim=16), seed=5, n=N)
    fit, score = halves(N, 5)
    return h, feat.latent_targets(h.task, h.latents), fit, score


def _oracle(h):
    return feat.oracle_features(h.task, h.latents, MODS)


def _pid(rows, h, fit):
    """(pair, component) -> record; the two unique components are unique_1, unique_2."""
    out = {}
    for r in pid_rows(rows, MODS, h.data.y, fit, 8, 5):
        col = r["column"]
        if col.startswith("unique:"):
            col = "unique_1" if col == "unique:" + r["row"].split("|")[0] else "unique_2"
        out[(r["row"], col)] = r
    return out


def _best(recs, row):
    mine = [r for r in recs if r["row"] == row]
    return max(mine, key=lambda r: r["normalised"])["column"]


def test_heldout_samples_are_fresh_draws_of_the_runs_task():
    cfg = SyntheticConfig(preset="mixed", dim=16, n_samples=500, noise=0.0)
    run = generate(cfg, seed=5, oracle=False)
    h = generate_heldout(cfg, seed=5, n=500)
    assert all(np.array_equal(run.task.projections[m], h.task.projections[m]) for m in MODS)
    assert np.array_equal(run.task.bias, h.task.bias)
    assert not np.array_equal(run.latents["red"], h.latents["red"])
    assert np.array_equal(h.data.y, h.task.labels(h.latents))  # no label noise: the task's own label rule
    again = generate(cfg, seed=5, oracle=False)  # drawing held-out samples changed nothing of the run's data
    assert all(np.array_equal(run.data.x[m], again.data.x[m]) for m in MODS)


def test_targets_cover_every_latent_group(task):
    _, targets, _, _ = task
    assert list(targets) == ["z_R", "z_U:image", "z_U:audio", "q:audio+image:image", "q:audio+image:audio",
                             "sum:audio+image"]  # the task's modality order (image, audio)


def test_oracle_probes_each_slice_carries_exactly_its_own_kind(task):
    h, targets, fit, score = task
    recs = probe_rows(_oracle(h), targets, h.task.C, fit, score)
    for r in recs:
        if r["row"].startswith("backbone/"):
            continue
        if r["own"]:
            assert r["normalised"] > 0.98, r
        else:
            assert r["normalised"] < 0.05, r
    assert {_best(recs, f"red/{m}") for m in MODS} == {"z_R"}
    assert _best(recs, "syn/image") == "q:audio+image:image"
    # one modality's code says nothing about the sum; only the fused syn slices read it
    assert max(r["normalised"] for r in recs if r["column"] == "sum:audio+image"
               and r["row"] != "fusion/audio+image") < 0.05


def test_noise_carries_nothing(task):
    h, targets, fit, score = task
    r = np.random.default_rng(1)
    noise = {k: r.standard_normal(v.shape) for k, v in _oracle(h).items()}
    recs = probe_rows(noise, targets, h.task.C, fit, score)
    assert max(x["normalised"] for x in recs) < 0.05
    for x in pid_rows(noise, MODS, h.data.y, fit, 8, 5):
        if x["column"] == "total":
            assert x["value"] < x["null"] + 0.02, x
            assert x["value"] < 0.06, x


def test_swapping_red_and_uni_shows_in_the_matrix(task):
    h, targets, fit, score = task
    rows = _oracle(h)
    for m in MODS:
        rows[f"red/{m}"], rows[f"uni/{m}"] = rows[f"uni/{m}"], rows[f"red/{m}"]
    recs = probe_rows(rows, targets, h.task.C, fit, score)
    for m in MODS:
        assert _best(recs, f"red/{m}") == f"z_U:{m}"
        assert _best(recs, f"uni/{m}") == "z_R"
        own = [r for r in recs if r["row"] in (f"red/{m}", f"uni/{m}") and r["own"]]
        assert max(r["normalised"] for r in own) < 0.05


def test_pid_oracle_red_is_redundant_uni_unique_syn_synergistic(task):
    h, _, fit, _ = task
    p = _pid(_oracle(h), h, fit)
    red, uni, syn = "red/audio|red/image", "uni/audio|uni/image", "syn/audio|syn/image"
    # identical sources (z_R on both sides): everything they say is redundant
    assert p[(red, "redundant")]["normalised"] > 0.99
    assert p[(red, "total")]["value"] > 0.2
    # the code sum: nothing from either code alone, all of it synergistic
    assert p[(syn, "synergy")]["normalised"] > 0.95
    assert p[(syn, "total")]["value"] > p[(syn, "total")]["null"] + 0.05
    # independent unique latents: more unique than redundant (the argmax of a sum
    # also makes them partly synergistic: that is the label rule, not the estimator)
    uniq = p[(uni, "unique_1")]["value"] + p[(uni, "unique_2")]["value"]
    assert uniq > 1.5 * p[(uni, "redundant")]["value"]
    assert p[(uni, "redundant")]["normalised"] < 0.3


def test_pid_swap_moves_redundancy_to_the_uni_pair(task):
    h, _, fit, _ = task
    rows = _oracle(h)
    for m in MODS:
        rows[f"red/{m}"], rows[f"uni/{m}"] = rows[f"uni/{m}"], rows[f"red/{m}"]
    p = _pid(rows, h, fit)
    assert p[("uni/audio|uni/image", "redundant")]["normalised"] > 0.99
    assert p[("red/audio|red/image", "redundant")]["normalised"] < 0.3
