"""Issue 20 (separation): the cross-modal decorrelation of the uni slices
(`loss.lambda_cross`) and the backbones' share of the separation terms' gradient
(`loss.separation_grad`).

The checks are exact where the maths gives the value: the decorrelation of
constructed signals, the branches each term reaches (exact zeros), and the
gradient the backbone gets at share g (g times the full one, on the same batch).
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from agent_helpers import SMALL
from parse_actors.agents import LossConfig
from parse_actors.agents.losses import cross_decorrelation, fission_terms, term_weights

EPS = 1e-3
X = torch.tensor([1.0, -1.0, 1.0, -1.0])
Z = torch.tensor([1.0, 1.0, -1.0, -1.0])
"""Centred, unit-variance and orthogonal over a batch of 4: their correlation is 0 exactly."""


def test_cross_decorrelation_of_constructed_signals():
    """Each channel standardised with the eps floor has correlation 1/(1+eps) with
    itself and 0 with an orthogonal one. Pair (uni_0 = X, features of modality 1 =
    [X, Z]) scores (c^2 + 0) / 2, pair (uni_1 = Z, features of modality 0 = [Z])
    scores c^2; the term is their mean. A uni slice unrelated to the other side
    scores 0."""
    c = 1.0 / (1.0 + EPS)
    unis = [X[:, None], Z[:, None]]
    feats = [Z[:, None], torch.stack([X, Z], 1)]  # modality 0 sees Z, modality 1 sees X and Z
    want = (c * c / 2 + c * c) / 2
    assert cross_decorrelation(unis, feats, EPS).item() == pytest.approx(want, rel=1e-6)
    assert cross_decorrelation([X[:, None], X[:, None]], [Z[:, None], Z[:, None]], EPS).item() == 0.0


def test_cross_decorrelation_reaches_the_uni_slices_only():
    u = [X[:, None].clone().requires_grad_(), Z[:, None].clone().requires_grad_()]
    h = [torch.stack([X, Z], 1).requires_grad_(), torch.stack([Z, X], 1).requires_grad_()]
    g = torch.autograd.grad(cross_decorrelation(u, h, EPS), u + h, allow_unused=True)
    assert all(t is not None and torch.count_nonzero(t) > 0 for t in g[:2])
    assert all(t is None for t in g[2:])


def test_defaults_leave_the_objective_as_it_was(make_agent, data):
    """lambda_cross 0: no recomputed slices, a zero weight; a unimodal agent never
    gets the term (it has no other modality)."""
    cfg = LossConfig()
    assert (cfg.lambda_cross, cfg.cross_backbone_grad) == (0.0, 0.0)
    a = make_agent("IA")
    x, _ = a._inputs(data(("image", "audio"), n=8))
    a._mode(training=True)
    assert a.net(x).cross_uni is None and a.net.cross_grad is None
    assert term_weights(cfg, True)["cross"] == 0.0
    assert term_weights(LossConfig(lambda_cross=3.0), False)["cross"] == 0.0
    assert term_weights(LossConfig(lambda_cross=3.0), True)["cross"] == 3.0
    uni = make_agent("I", loss={"lambda_cross": 3.0})
    x, y = uni._inputs(data(("image",), n=8))
    uni._mode(training=True)
    out = uni.net(x)
    assert out.cross_uni is None and "cross" not in fission_terms(out, y, uni.loss_cfg, True)


@pytest.mark.parametrize("bad", [{"lambda_cross": -0.1}, {"cross_backbone_grad": 1.5}, {"cross_backbone_grad": -0.1}])
def test_bad_values_refused(bad):
    with pytest.raises(ValidationError):
        LossConfig.model_validate(bad)


def _grads(a, term, prefixes, x, y):
    a._mode(training=True)
    terms = fission_terms(a.net(x), y, a.loss_cfg, True)
    params = [p for k, b in a.net.branches.items() if k.startswith(prefixes) for p in b.parameters()]
    return torch.autograd.grad(terms[term], params, allow_unused=True)


def _zero(gs):
    return all(g is None or torch.count_nonzero(g) == 0 for g in gs)


def _nonzero(gs):
    return all(g is not None and torch.count_nonzero(g) > 0 for g in gs)


def _close(a, b):
    return all(torch.allclose(s, t, rtol=1e-5, atol=1e-9) for s, t in zip(a, b))


UNI = ("fission/image/uni", "fission/audio/uni")
OTHERS = ("fission/image/red", "fission/audio/red", "fission/image/syn", "fission/audio/syn", "head/", "fusion/")


@pytest.mark.parametrize("fission", ["project", "project_relu"])
def test_cross_backbone_grad_scales_the_backbones_share_exactly(make_agent, data, fission):
    """At share g the backbones get g times the term's full gradient (same parameters,
    same batch; exact zeros at the default 0) and the uni projections the full one
    whatever g. The term never reaches the red or syn projections nor any head or
    the fusion; the alignment's gradient does not depend on the share."""
    model = SMALL.model_copy(update={"fission": fission})
    d = data(("image", "audio"), n=32)
    loss = {"lambda_cross": 2.0, "lambda_align": 1.0}
    full = make_agent("IA", model=model, loss={**loss, "cross_backbone_grad": 1.0})
    x, y = full._inputs(d)
    full._mode(training=True)
    assert full.net(x).cross_uni is None  # share 1: the slices themselves
    g_full = _grads(full, "cross", ("backbone/",), x, y)
    assert _nonzero(g_full)
    assert _zero(_grads(full, "cross", OTHERS, x, y))
    p_full = _grads(full, "cross", UNI, x, y)
    a_full = _grads(full, "align", ("backbone/",), x, y)
    for g in (0.0, 0.25):
        a = make_agent("IA", model=model, loss={**loss, "cross_backbone_grad": g})
        got = _grads(a, "cross", ("backbone/",), x, y)
        assert _zero(got) if g == 0.0 else _close(got, [g * t for t in g_full])
        assert _close(_grads(a, "cross", UNI, x, y), p_full)
        assert _zero(_grads(a, "cross", OTHERS, x, y))
        assert _close(_grads(a, "align", ("backbone/",), x, y), a_full)


def test_recomputed_slices_hold_the_same_values(make_agent, data):
    a = make_agent("IA", loss={"lambda_cross": 1.0, "cross_backbone_grad": 0.5})
    x, _ = a._inputs(data(("image", "audio"), n=16))
    a._mode(training=True)
    out = a.net(x)
    assert all(torch.allclose(s, t, rtol=0, atol=1e-6) for s, t in zip(out.cross_uni, out.uni))
    a._mode(training=False)
    assert a.net(x).cross_uni is None  # evaluation never builds them
