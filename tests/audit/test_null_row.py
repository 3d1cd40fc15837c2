"""The untrained-network null row and the issue-20 criteria computed beside it.

Exact where the construction gives it: a run that took no step has final weights
equal to its initial ones, so its untrained twin measures exactly the same and its
audit reports no win at all; the oracle fission scored as if it were a run has share
ratios of exactly 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parse_actors.audit import audit_run, fission_criteria, wins
from parse_actors.audit import features as feat
from parse_actors.audit.criteria import OWN_MARGIN, own_column, row_margins
from parse_actors.audit.records import pid_rows, probe_rows, slice_drop_rows
from parse_actors.audit.probes import halves
from parse_actors.data import SyntheticConfig
from parse_actors.data.synthetic import generate_heldout

SAMPLES = 800


@pytest.fixture(scope="module")
def untrained_audit(untrained_run):
    return audit_run(untrained_run, n_samples=SAMPLES, plots=False)


def _values(records, method):
    return sorted((str(r["agent"]).split(":")[-1], r["measure"], r["row"], r["column"], r["value"])
                  for r in records if r["method"] == method)


def test_untrained_twin_is_the_runs_initial_network(untrained_audit):
    """No step taken: every measurement of the twin equals the run's, to the bit."""
    recs = untrained_audit.rows
    assert _values(recs, "parse") and _values(recs, "parse") == _values(recs, "untrained")
    assert {r["group"] for r in recs if r["method"] == "untrained"} == {"untrained:image", "untrained:image+audio"}


def test_an_untrained_runs_audit_reports_zero_wins(untrained_audit):
    c = untrained_audit.criteria
    assert wins(c) == []
    assert c["own_column"]["rows_won"] == 0 and c["syn_own_column"]["rows_won"] == 0
    # what the issue saw: untrained syn slices read their own codes (a linear image of the
    # input) and would have "won" their column; the null row takes that win away
    assert c["syn_own_column"]["untrained"] == c["syn_own_column"]["trained"]
    for name in ("own_column", "syn_own_column", "fusion_sum", "pid_synergy_share", "pid_redundancy_share"):
        assert c[name]["pass"] is not True, name


def test_trained_run_has_a_distinct_null_row_and_slice_drop(trained_run):
    res = audit_run(trained_run, n_samples=SAMPLES, plots=False)
    recs = res.rows
    assert _values(recs, "parse") != _values(recs, "untrained")
    drop = {(r["agent"], r["column"]) for r in recs if r["measure"] == "slice_drop"}
    assert drop == {(0, "acc"), (0, "acc_without_red"), (0, "acc_without_uni"),
                    (1, "acc"), (1, "acc_without_red"), (1, "acc_without_uni"), (1, "acc_without_syn"),
                    ("untrained:0", "acc"), ("untrained:0", "acc_without_red"), ("untrained:0", "acc_without_uni"),
                    ("untrained:1", "acc"), ("untrained:1", "acc_without_red"), ("untrained:1", "acc_without_uni"),
                    ("untrained:1", "acc_without_syn")}
    assert set(res.criteria["slice_drop"]) == {"image", "image+audio", "untrained:image", "untrained:image+audio"}
    full = res.criteria["slice_drop"]["image+audio"]["acc"]
    assert full > 0.4  # 4 classes: trained far above chance; untrained near it
    assert res.criteria["slice_drop"]["untrained:image+audio"]["acc"] < 0.4


def _probe(agent, method, row, col, value, own):
    return {"measure": "probe", "agent": agent, "group": "g", "method": method, "row": row, "column": col,
            "metric": "r2", "value": value, "null": 0.0, "normalised": value, "own": int(own)}


def _row(agent, method, row, own_v, other_v):
    return [_probe(agent, method, row, "z_R", own_v, True), _probe(agent, method, row, "z_U:a", other_v, False)]


def test_the_null_row_rule_per_row_and_per_criterion():
    recs = (_row(1, "parse", "red/a", 0.9, 0.1) + _row("untrained:1", "untrained", "red/a", 0.9, 0.2)  # null wins
            + _row(2, "parse", "red/a", 0.9, 0.1) + _row("untrained:2", "untrained", "red/a", 0.3, 0.3))  # null fails
    assert row_margins(recs[:2], ("red",))[("1", "red/a")] == pytest.approx(0.8)
    c = own_column(recs, ("red", "uni"), applies=True)
    assert (c["trained"], c["untrained"], c["wins"], c["rows_won"], c["rows_won_by_untrained"]) == (1.0, 0.5, 0.5, 1, 1)
    assert c["pass"] is False  # 0.5 of rows < 0.9
    # every row won by both: the trained value passes, the untrained one too -> no win
    both = _row(1, "parse", "red/a", 0.9, 0.1) + _row("untrained:1", "untrained", "red/a", 0.9, 0.1)
    c = own_column(both, ("red",), applies=True)
    assert c["trained"] == 1.0 and c["wins"] == 0.0 and c["pass"] is False
    # a margin just under the bar is not a win
    c = own_column(_row(1, "parse", "red/a", 0.1 + OWN_MARGIN - 1e-6, 0.1), ("red",), applies=True)
    assert c["rows_won"] == 0


@pytest.fixture(scope="module")
def oracle_as_run():
    """The oracle fission's rows scored as if a run (and the untrained twin = noise)."""
    torch.set_num_threads(1)
    n, mods = 2000, ["audio", "image"]
    h = generate_heldout(SyntheticConfig(preset="mixed", dim=16), seed=5, n=n)
    fit, score = halves(n, 5)
    targets = feat.latent_targets(h.task, h.latents)
    rows = feat.oracle_features(h.task, h.latents, mods)
    noise = {k: np.random.default_rng(1).standard_normal(v.shape) for k, v in rows.items()}
    recs = []
    for agent, method, r in ((1, "parse", rows), ("oracle", "oracle", rows), ("untrained:1", "untrained", noise)):
        for x in probe_rows(r, targets, h.task.C, fit, score) + pid_rows(r, mods, h.data.y, fit, 8, 5):
            recs.append({"agent": agent, "group": "g", "method": method, **x})
    return recs, h.info["mix"]


def test_oracle_fission_scores_its_own_columns(oracle_as_run):
    recs, mix = oracle_as_run
    c = fission_criteria(recs, mix)
    assert c["own_column"]["oracle"] == 1.0 and c["own_column"]["trained"] == 1.0 and c["own_column"]["pass"]
    assert c["own_column"]["untrained"] == 0.0
    assert c["syn_own_column"]["oracle"] == 1.0
    assert c["fusion_sum"]["oracle"] > 0.98 and c["fusion_sum"]["threshold"] == 0.3 and c["fusion_sum"]["pass"]
    assert c["fusion_sum"]["untrained"] < 0.05
    for name in ("pid_synergy_share", "pid_redundancy_share"):
        assert c[name]["applies"] and c[name]["trained"] == 1.0 and c[name]["bits_ratio"] == 1.0, name
        assert c[name]["pass"] is True, name
    assert c["pid_synergy_share"]["oracle_share"] > 0.95
    assert c["pid_redundancy_share"]["oracle_share"] > 0.99
    assert sorted(wins(c)) == ["fusion_sum", "own_column", "pid_redundancy_share", "pid_synergy_share"]


def test_criteria_that_do_not_apply(oracle_as_run):
    recs, _ = oracle_as_run
    c = fission_criteria(recs, {"redundant": 0.0, "unique": 0.0, "synergy": 1.0})
    assert c["own_column"]["pass"] is None and c["fusion_sum"]["threshold"] == 0.8
    c = fission_criteria(recs, {"redundant": 1.0, "unique": 0.0, "synergy": 0.0})
    assert c["fusion_sum"]["pass"] is None and c["own_column"]["applies"]


def test_slice_drop_rows_are_the_models_own_drops():
    from parse_actors.agents import Agent, AgentSpec
    from parse_actors.data.types import ModalData

    shapes = {"image": (6,), "audio": (5,)}
    r = np.random.default_rng(0)
    x = {m: r.standard_normal((64, *s)).astype(np.float32) for m, s in shapes.items()}
    y = r.integers(0, 3, 64)
    for method, cols in (("parse", ["acc", "acc_without_red", "acc_without_uni", "acc_without_syn"]),
                         ("dsgd_full", ["acc"])):
        a = Agent(AgentSpec(agent_id=0, modalities=("image", "audio")), input_shapes=shapes, num_classes=3,
                  model={"slice_width": 4, "backbone_width": 8, "fusion_hidden": 8}, method=method, seed=1)
        recs = slice_drop_rows(a, x, y, chance=0.4)
        assert [x_["column"] for x_ in recs] == cols
        for rec in recs:
            kind = None if rec["column"] == "acc" else rec["column"].rsplit("_", 1)[1]
            assert rec["value"] == a.evaluate(ModalData(x, y), drop_kind=kind)[0]


def test_criteria_recomputed_from_the_csv_match_the_audits(untrained_audit):
    from parse_actors.audit.records import read_records

    res = untrained_audit
    again = fission_criteria(read_records(res.csv), res.info["ground_truth"]["mix"])
    assert set(again) == set(res.criteria)
    for name, c in res.criteria.items():
        if name == "slice_drop":
            assert {g: pytest.approx(cols, abs=1e-6) for g, cols in c.items()} == again[name]
            continue
        for k, v in c.items():
            if isinstance(v, float):
                assert again[name][k] == pytest.approx(v, abs=1e-5), (name, k)
            else:
                assert again[name][k] == v, (name, k)
