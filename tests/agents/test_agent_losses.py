"""Loss terms: finite on random data, and each reaches only the branches it should."""

from __future__ import annotations

import pytest
import torch

from parse_actors.agents import LossConfig
from parse_actors.agents.losses import alignment, fission_terms, info_nce, orthogonality

from agent_helpers import random_data


def _out(agent, n=16, seed=0):
    d = random_data(agent.modalities, n=n, seed=seed)
    x, y = agent._inputs(d)
    return agent.net(x), y


def _reached(agent, term):
    keys = agent.capabilities()
    params = [(k, p) for k in keys for p in agent.net.branches[k].parameters()]
    grads = torch.autograd.grad(term, [p for _, p in params], allow_unused=True, retain_graph=True)
    hit = set()
    for (k, _), g in zip(params, grads):
        if g is not None and g.abs().sum() > 0:
            hit.add(k)
    return hit


def _expected(term: str, key: str) -> bool:
    parts = key.split("/")
    if parts[0] == "backbone":
        return True
    if term == "ce":
        return True
    if term == "orth":
        return parts[0] == "fission"
    if term == "align":
        return key.startswith("fission/") and parts[2] == "red"
    slice_kind = {"head_red": "red", "head_uni": "uni", "head_syn": "syn"}[term]
    if parts[0] == "fission":
        return parts[2] == slice_kind
    if parts[0] == "fusion":
        return slice_kind == "syn"
    return parts[1] == slice_kind  # head/red, head/uni/<m>, head/syn/<modset>


@pytest.mark.parametrize("type_name", ["I", "IA", "IAT"])
@pytest.mark.parametrize("method", ["parse", "parse_split"])
@pytest.mark.parametrize("align", ["infonce", "cosine"])
def test_terms_finite_and_routed(make_agent, type_name, method, align):
    agent = make_agent(type_name, method=method, loss=LossConfig(align=align))
    out, y = _out(agent)
    terms = fission_terms(out, y, agent.loss_cfg)
    expected_terms = {"ce", "head_red", "head_uni", "orth"} | ({"head_syn", "align"} if agent.is_multimodal else set())
    assert set(terms) == expected_terms
    for name, t in terms.items():
        assert t.ndim == 0 and torch.isfinite(t), name
        hit = _reached(agent, t)
        want = {k for k in agent.capabilities() if _expected(name, k)}
        assert hit == want, (name, sorted(hit ^ want))


def test_syn_ce_never_reaches_red_head_and_align_never_uni_heads(make_agent):
    agent = make_agent("IAT")
    out, y = _out(agent)
    terms = fission_terms(out, y, agent.loss_cfg)
    assert "head/red" not in _reached(agent, terms["head_syn"])
    assert not {k for k in _reached(agent, terms["align"]) if k.startswith("head/")}


def test_zero_weight_terms_are_skipped(make_agent):
    agent = make_agent("IA", method="parse_no_align")
    out, y = _out(agent)
    assert "align" not in fission_terms(out, y, agent.loss_cfg, skip_unweighted=True)
    res = agent.train_steps(random_data(agent.modalities), 2, 8)
    assert "align" not in res["terms"] and "orth" in res["terms"]


def test_term_values():
    a = torch.eye(4)
    # perfectly aligned, well separated: InfoNCE near 0 at low temperature, cosine 0
    assert info_nce(a, a, 0.01) < 1e-6
    assert alignment([a, a], "cosine", 0.1).abs() < 1e-6
    assert alignment([a, -a], "cosine", 0.1) == pytest.approx(2.0)
    # orthogonality: 0 for uncorrelated slices, 1 for identical 1-D slices
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert orthogonality([[z[:, :1], z[:, 1:]]]) < 1e-6
    assert orthogonality([[z[:, :1], z[:, :1]]]) == pytest.approx(1.0, abs=1e-5)


def test_total_loss_is_weighted_sum(make_agent):
    agent = make_agent("IA", loss=LossConfig(ce_weight=1.0, head_weight=0.25, lambda_align=0.5, lambda_orth=2.0))
    r = agent.train_steps(random_data(agent.modalities), 1, 16)
    t = r["terms"]
    want = t["ce"] + 0.25 * (t["head_red"] + t["head_uni"] + t["head_syn"]) + 0.5 * t["align"] + 2.0 * t["orth"]
    assert r["loss"] == pytest.approx(want, rel=1e-5)


def test_monolithic_loss_is_ce(make_agent):
    agent = make_agent("IA", method="dsgd_full")
    r = agent.train_steps(random_data(agent.modalities), 2, 8)
    assert set(r["terms"]) == {"ce"} and r["loss"] == pytest.approx(r["terms"]["ce"])
