"""Loss terms: finite on random data, and each reaches only the branches it should."""

from __future__ import annotations

import pytest
import torch

from parse_actors.agents import LossConfig
from parse_actors.agents.losses import alignment, fission_terms, info_nce, orthogonality, supcon, term_weights

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
@pytest.mark.parametrize("align", ["infonce", "supcon", "cosine"])
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
    # orthogonality: 0 for uncorrelated slices, 1 for identical 1-D slices (up to the
    # variance floor: correlation var / (var + eps), here var = 0.5)
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert orthogonality([[z[:, :1], z[:, 1:]]]) < 1e-6
    assert orthogonality([[z[:, :1], z[:, :1]]], eps=1e-9) == pytest.approx(1.0, abs=1e-6)
    assert orthogonality([[z[:, :1], z[:, :1]]], eps=1e-3) == pytest.approx((0.5 / 0.501) ** 2, rel=1e-6)


def test_total_loss_is_weighted_sum(make_agent):
    # the CE weights are normalised to a unit budget: 1 : 0.25 -> 0.8 : 0.2, the
    # head share split over the three heads of a multimodal agent
    agent = make_agent("IA", loss=LossConfig(ce_weight=1.0, head_weight=0.25, lambda_align=0.5, lambda_orth=2.0))
    r = agent.train_steps(random_data(agent.modalities), 1, 16)
    t = r["terms"]
    want = 0.8 * t["ce"] + 0.2 / 3 * (t["head_red"] + t["head_uni"] + t["head_syn"]) + 0.5 * t["align"] + 2.0 * t["orth"]
    assert r["loss"] == pytest.approx(want, rel=1e-5)
    uni = make_agent("I", loss=LossConfig(ce_weight=1.0, head_weight=0.25, lambda_orth=2.0))
    r = uni.train_steps(random_data(uni.modalities), 1, 16)
    t = r["terms"]
    assert set(t) == {"ce", "head_red", "head_uni", "orth"}
    assert r["loss"] == pytest.approx(0.8 * t["ce"] + 0.1 * (t["head_red"] + t["head_uni"]) + 2.0 * t["orth"], rel=1e-5)


CE_TERMS = ("ce", "head_red", "head_uni", "head_syn")


@pytest.mark.parametrize("multimodal", [False, True])
def test_ce_weights_sum_to_one(multimodal):
    w = term_weights(LossConfig(), multimodal)
    assert sum(w[k] for k in CE_TERMS) == pytest.approx(1.0, abs=1e-12)
    assert w["ce"] == 0.5 and (w["head_syn"] == 0.0) == (not multimodal)
    # any user weights are normalised to the same unit budget
    w = term_weights(LossConfig(ce_weight=3.0, head_weight=1.0), multimodal)
    assert sum(w[k] for k in CE_TERMS) == pytest.approx(1.0, abs=1e-12) and w["ce"] == 0.75
    with pytest.raises(ValueError, match="ce_weight \\+ head_weight"):
        LossConfig(ce_weight=0.0, head_weight=0.0)
    # a multimodal agent's own deep-supervision share: the unimodal agents keep head_weight
    w = term_weights(LossConfig(head_weight_multimodal=0.0), multimodal)
    assert sum(w[k] for k in CE_TERMS) == pytest.approx(1.0, abs=1e-12)
    assert (w["ce"], w["head_red"], w["head_uni"]) == ((1.0, 0.0, 0.0) if multimodal else (0.5, 0.25, 0.25))
    assert term_weights(LossConfig(head_weight_multimodal=0.5), multimodal) == term_weights(LossConfig(), multimodal)
    with pytest.raises(ValueError, match="head_weight_multimodal"):
        LossConfig(ce_weight=0.0, head_weight_multimodal=0.0)


def _supcon_reference(views, y, t):
    """Khosla et al. (2020) eq. 2, written as loops."""
    z = torch.nn.functional.normalize(torch.cat(views), dim=1).double()
    lab = y.repeat(len(views))
    total = 0.0
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        denom = sum(torch.exp(z[i] @ z[a] / t) for a in others)
        pos = [p for p in others if lab[p] == lab[i]]
        total += -sum(torch.log(torch.exp(z[i] @ z[p] / t) / denom) for p in pos) / len(pos)
    return total / len(z)


def test_supcon_matches_the_paper():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(12, 5, generator=g) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 0, 4, 1, 2])
    for t in (0.1, 0.5):
        assert supcon(views, y, t).item() == pytest.approx(_supcon_reference(views, y, t).item(), rel=1e-5)
        # the alignment term is temperature-scaled (a CE's gradient size at any temperature)
        assert alignment(views, "supcon", t, y).item() == pytest.approx(t * supcon(views, y, t).item())
        assert alignment(views[:2], "infonce", t).item() == pytest.approx(t * info_nce(views[0], views[1], t).item())
    # by label: two samples of one class are positives even across modalities
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y2 = torch.tensor([0, 0, 1, 1])
    assert supcon([a, a.clone()], y2, 0.05) < 0.1 * supcon([a, a.flip(0)], y2, 0.05)
    with pytest.raises(ValueError, match="labels"):
        alignment(views, "supcon", 0.1)


def test_align_auto_follows_pairing(make_agent):
    assert make_agent("IA").loss_cfg.align == "infonce"
    assert make_agent("IA", pairing="label").loss_cfg.align == "supcon"
    assert make_agent("IA", pairing="label", loss=LossConfig(align="cosine")).loss_cfg.align == "cosine"
    with pytest.raises(ValueError, match="pairing"):
        make_agent("IA", pairing="class")
    r = make_agent("IA", pairing="label").train_steps(random_data(("image", "audio")), 2, 8)
    assert torch.isfinite(torch.tensor(r["terms"]["align"]))


@pytest.mark.parametrize("scale", [0.0, 1e-12, 1e-6, 1e-3, 0.03, 1.0, 100.0])
def test_orthogonality_bounded_for_collapsed_slices(scale):
    """A collapsing slice (all samples the same up to `scale`) gives a finite term
    and a gradient of norm <= 2 / sqrt(n * eps) (losses.orthogonality); at
    scale 0 (a constant slice) term and gradient are exactly 0. The old 1/norm
    standardisation had a gradient ~1/scale here."""
    n, eps = 32, 1e-3
    g = torch.Generator().manual_seed(1)
    healthy = torch.randn(n, 4, generator=g)
    noise = torch.randn(n, 4, generator=g)
    for base in (torch.zeros(n, 4), torch.full((n, 4), 3.0)):  # zero and constant slices
        # partly correlated with the healthy slice: the worst case for the gradient
        x = (base + scale * (healthy + noise)).requires_grad_(True)
        other = healthy.clone().requires_grad_(True)
        term = orthogonality([[x, other]], eps)
        gx, go = torch.autograd.grad(term, [x, other])
        assert torch.isfinite(term) and torch.isfinite(gx).all() and torch.isfinite(go).all()
        bound = 2 / (n * eps) ** 0.5
        assert gx.norm() <= bound and go.norm() <= bound, (scale, gx.norm(), go.norm(), bound)
        if scale == 0.0:
            assert term == 0 and gx.abs().max() == 0 and go.abs().max() == 0



def test_monolithic_loss_is_ce(make_agent):
    agent = make_agent("IA", method="dsgd_full")
    r = agent.train_steps(random_data(agent.modalities), 2, 8)
    assert set(r["terms"]) == {"ce"} and r["loss"] == pytest.approx(r["terms"]["ce"])
