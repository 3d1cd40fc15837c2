"""Issue 20 (part A): the fission, prediction and disentanglement options of PARSE.

Each option is checked for what it promises: the exchange it changes (or not),
scale-neutrality at init measured as issue 11 measures it (the backbone's
gradient under the fission objective against the monolithic network's, on the
same batch), stability over the lr grid, the CLUB estimate against a Gaussian
pair whose mutual information is known in closed form, and the residual
ladder's stop-gradients (exact zeros).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from agent_helpers import SMALL, random_data
from parse_actors.agents import Agent, AgentSpec, LossConfig, ModelConfig, OptimConfig
from parse_actors.agents.losses import club_bound, fission_terms, gaussian_nll, mono_terms, term_weights, total_loss
from parse_actors.agents.model import ClubCritic, FissionOut
from parse_actors.agents.config import SliceWeights
from parse_actors.data import build_federated_data
from parse_actors.data.config import DataConfig

OPTIONS = {
    "today": ({}, {}),
    "fission=project": ({"fission": "project"}, {}),  # the default until 2026-12-08
    "fission=split": ({"fission": "split"}, {}),
    "fission=project_relu": ({"fission": "project_relu"}, {}),
    "fission=project_norm": ({"fission": "project_norm"}, {}),
    "prediction=sum": ({}, {"prediction": "sum"}),
    "prediction=residual": ({}, {"prediction": "residual"}),
    "disentangle=club": ({}, {"disentangle": "club"}),
    "disentangle=none": ({}, {"disentangle": "none"}),
    "residual+project_relu": ({"fission": "project_relu"}, {"prediction": "residual"}),
    "residual+project_relu+club": ({"fission": "project_relu"}, {"prediction": "residual", "disentangle": "club"}),
    "residual+split": ({"fission": "split"}, {"prediction": "residual"}),
    "residual+project_relu+syn3": ({"fission": "project_relu"}, {"prediction": "residual", "logit_weights": {"syn": 3}}),
    "residual+project_relu+syn3+club": ({"fission": "project_relu"},
                                        {"prediction": "residual", "logit_weights": {"syn": 3}, "disentangle": "club"}),
    "synergy_first": ({"fission": "project_relu"},
                      {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1}}),
    "synergy_first+cross": ({"fission": "project_relu"},
                            {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1}, "lambda_cross": 10.0}),
    "synergy_first+cross_backbone": ({"fission": "project_relu"},
                                     {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1},
                                      "lambda_cross": 10.0, "cross_backbone_grad": 1.0}),
    "fuse_synergy_first": ({"fission": "project_fuse"},
                           {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1}, "lambda_cross": 10.0}),
    "fuse_synergy_first+align0.3": ({"fission": "project_fuse"},
                                    {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1},
                                     "lambda_align": 0.3, "lambda_cross": 10.0}),
}
"""Each option alone (the rest at today's values) and the combinations the measurements compare."""

MM = ("audio", "image")


@pytest.fixture(scope="module")
def av_audio():
    """The issue-11 check's data: one audio-only agent with AV-digits samples (iid)."""
    fd = build_federated_data(DataConfig(name="av_digits", cache=False, max_samples=250, partition={"kind": "iid"}),
                              [("audio",)], seed=0)
    return fd, ("audio",), "label"


@pytest.fixture(scope="module")
def synthetic_mm():
    """One image+audio agent on the synthetic task (mixed preset), the multimodal case
    (6,912 training samples)."""
    fd = build_federated_data(DataConfig(name="synthetic", partition={"kind": "iid"}), [MM], seed=0)
    return fd, MM, "instance"


def _agent(fd, mods, pairing, method="local", option="today", seed=0, lr=0.05):
    model, loss = OPTIONS[option]
    return Agent(AgentSpec(0, mods), fd.input_shapes, fd.num_classes, method=method, seed=seed, model=model,
                 loss=loss, optim=OptimConfig(lr=lr, momentum=0.9), pairing=pairing)


# -- schema ---------------------------------------------------------------------------
@pytest.mark.parametrize("section,bad", [
    (ModelConfig, {"fission": "project_ln"}),
    (LossConfig, {"prediction": "median"}),
    (LossConfig, {"disentangle": "hsic"}),
    (LossConfig, {"lambda_club": -0.1}),
    (LossConfig, {"club_hidden": 0}),
])
def test_bad_option_values_refused(section, bad):
    with pytest.raises(ValidationError):
        section.model_validate(bad)


def test_defaults_are_the_measured_ones():
    """docs/architecture.md: `project_fuse` replaced `project` as the default fission (it learns
    the synergy preset, where `project` stays at chance, and is level on the other presets and
    on AV digits); the objective's defaults stay, since the syn-led one costs AV digits'
    unimodal agents 3-5 points. A default changes only with such a measurement."""
    assert ModelConfig().fission == "project_fuse"
    loss = LossConfig()
    assert (loss.prediction, loss.disentangle, loss.logit_weights) == ("mean", "orthogonal", SliceWeights())


# -- exchange -------------------------------------------------------------------------
def test_project_variants_and_club_leave_the_exchange_alone(make_agent):
    """Every `project*` fission advertises the same keys and signatures (hence the same
    bytes on the wire); CLUB critics are local branches: built, trained and
    checkpointed, never advertised (so never exported by any policy)."""
    caps = {}
    for fission in ("project", "project_relu", "project_norm"):
        for dis in ("orthogonal", "club"):
            a = make_agent("IA", model=SMALL.model_copy(update={"fission": fission}),
                           loss={"disentangle": dis})
            caps[fission, dis] = {k: (i.kind, i.signature, i.nbytes) for k, i in a.capabilities().items()}
            critics = sorted(k for k in a.net.branches if k.startswith("critic/"))
            if dis == "club":
                assert critics == ["critic/audio/syn-red", "critic/audio/syn-uni", "critic/audio/uni-red",
                                   "critic/image/syn-red", "critic/image/syn-uni", "critic/image/uni-red"]
                assert set(critics) <= set(a.state_dict()["keys"])
            else:
                assert critics == []
            assert not any(k.startswith("critic/") for k in a.capabilities())
    assert all(c == caps["project", "orthogonal"] for c in caps.values())
    unimodal = make_agent("I", loss={"disentangle": "club"})
    assert sorted(k for k in unimodal.net.branches if k.startswith("critic/")) == ["critic/image/uni-red"]


def test_project_fuse_is_the_monolithic_fusion_cut_per_modality(make_agent):
    """`project_fuse`: each syn slice is W_m h_m (bias-free, fusion_hidden wide) and the
    fusion is ReLU(sum_m s_m / sqrt(K) + b), i.e. one linear layer over the concatenated
    backbone outputs with weight [W_1 ... W_K] / sqrt(K): the monolithic depth. Checked
    in float64 against that layer; the bytes of the branches that change are exact."""
    model = SMALL.model_copy(update={"fission": "project_fuse"})
    a = make_agent("IA", model=model)
    net = a.net.double()
    net.eval()
    h_dim, d = model.fusion_hidden, model.backbone_width
    mods = net.mods  # sorted: audio, image
    x = {m: torch.randn(7, *net.input_shapes[m], generator=torch.Generator().manual_seed(i), dtype=torch.float64)
         for i, m in enumerate(mods)}
    with torch.no_grad():
        out = net(x)
        feats = [net.branches[f"backbone/{m}/{net.archs[m]}"](x[m]) for m in mods]
        w = torch.cat([net.branches[f"fission/{m}/syn"].weight for m in mods], 1) / math.sqrt(len(mods))
        fusion = net.branches["fusion/audio+image"]
        z = torch.relu(torch.cat(feats, 1) @ w.T + fusion.bias)
        want = net.branches["head/syn/audio+image"](z)
    assert [tuple(s.shape) for s in out.syn] == [(7, h_dim)] * 2
    torch.testing.assert_close(out.syn_logits, want, rtol=1e-12, atol=1e-12)
    caps = a.capabilities()
    for m in mods:
        assert caps[f"fission/{m}/syn"].nbytes == 4 * d * h_dim  # no bias
        assert caps[f"fission/{m}/uni"].nbytes == 4 * (d * model.slice_width + model.slice_width)  # as `project`
    assert caps["fusion/audio+image"].nbytes == 4 * h_dim
    plain = make_agent("IA", model=SMALL.model_copy(update={"fission": "project"})).capabilities()
    assert set(caps) == set(plain)  # the same branch keys as `project`: only shapes differ
    assert {k for k in caps if caps[k].signature != plain[k].signature} == {
        "fission/audio/syn", "fission/image/syn", "fusion/audio+image"}
    shared = make_agent("IA", method="parse_share_all", model=model)  # one syn projection for both modalities
    caps = shared.capabilities()
    assert caps["fission/syn/12"].nbytes == 4 * d * h_dim and caps["fusion/2"].nbytes == 4 * h_dim
    loss = shared.train_steps(random_data(("audio", "image")), 2, 16)["loss"]
    assert math.isfinite(loss)


# -- scale-neutral --------------------------------------------------------------------
def _backbone_grad_norm(a, x, y):
    out = a.net(x)
    fn = fission_terms if a.method_spec.model == "fission" else mono_terms
    total_loss(fn(out, y, a.loss_cfg, True), a._weights).backward()
    params = [p for k, b in a.net.branches.items() if k.startswith("backbone/") for p in b.parameters()]
    return torch.sqrt(sum(p.grad.square().sum() for p in params)).item()


def _ratios(fd, mods, pairing, option):
    """Issue 11's check: per seed, the backbones' gradient norm at init on one batch of
    32, fission objective over monolithic."""
    out = []
    for seed in range(4):
        grads = {}
        for method in ("local", "local_mono"):
            a = _agent(fd, mods, pairing, method, option, seed)
            x, y = a._inputs(fd.agents[0].train)
            idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(y))[:32])
            grads[method] = _backbone_grad_norm(a, {m: t[idx] for m, t in x.items()}, y[idx])
        out.append(grads["local"] / grads["local_mono"])
    return out


SPLIT_NOT_NEUTRAL = pytest.mark.xfail(strict=True, reason=(
    "split fission (the paper's code, today's parse_split ablation) has one linear layer less between the "
    "backbone and the heads than the monolithic network: on AV audio its backbone gradient at init is "
    "1.5-2.4x (split) and 2.1-3.5x (residual+split) the monolithic one's; kept as it is for byte-identity"))
PROJECT_TOO_SMALL = pytest.mark.xfail(strict=True, reason=(
    "`project` fission (a linear layer at torch's default init between the ReLU backbone and the heads) "
    "passes the multimodal agent's backbone 0.64-0.95x the monolithic gradient (seed 2: 0.64-0.66 < 1/1.5; "
    "with the `sum`, `residual`, `club` and `none` options too); the default until 2026-12-08, kept as an "
    "option; project_relu (He-scaled) is 0.72-0.99x, project_fuse (the default) 0.68-0.98x"))
LINEAR_PROJECT = ("fission=project",)
CROSS_THROUGH_BACKBONE = pytest.mark.xfail(strict=True, reason=(
    "the cross-modal decorrelation at weight 10 with its whole gradient on the backbones "
    "(cross_backbone_grad 1) gives the multimodal agent's backbone 3.7-4.6x the monolithic gradient at init "
    "(measured); the default share 0 keeps it off the backbones (synergy_first+cross)"))


ALIGN_TOO_LARGE = pytest.mark.xfail(strict=True, reason=(
    "the red alignment at 0.3 (3x the default) on top of `project_fuse` with the syn-led prediction gives "
    "the multimodal agent's backbone 1.47-2.05x the monolithic gradient at init (measured, seeds 0-3; "
    "0.84-1.11x at the default 0.1): InfoNCE's gradient at init is as large as the CE's"))


def _multimodal_mark(option):
    if option in LINEAR_PROJECT:
        return PROJECT_TOO_SMALL
    if option == "fuse_synergy_first+align0.3":
        return ALIGN_TOO_LARGE
    return CROSS_THROUGH_BACKBONE if option == "synergy_first+cross_backbone" else None


@pytest.mark.parametrize("option", [
    pytest.param(o, marks=SPLIT_NOT_NEUTRAL) if "split" in o else o for o in OPTIONS])
def test_gradient_at_init_within_1_5x_of_monolithic_av_audio(av_audio, option):
    """Unimodal agent, the issue-11 data (measured, seeds 0-3: today 1.22-1.44, the
    project_relu/norm variants 0.83-1.44, sum/residual 1.22-1.45)."""
    ratios = _ratios(*av_audio, option)
    print(option, [round(r, 3) for r in ratios])
    assert all(1 / 1.5 <= r <= 1.5 for r in ratios), ratios


@pytest.mark.parametrize("option", [
    pytest.param(o, marks=_multimodal_mark(o)) if _multimodal_mark(o) else o for o in OPTIONS])
def test_gradient_at_init_within_1_5x_of_monolithic_multimodal(synthetic_mm, option):
    """Image+audio agent on the synthetic task, where the syn path exists (measured,
    seeds 0-3: the project_relu/norm variants 0.72-0.99, with syn weight 3
    0.92-1.18, split 0.85-1.28, residual+split 0.87-1.35)."""
    ratios = _ratios(*synthetic_mm, option)
    print(option, [round(r, 3) for r in ratios])
    assert all(1 / 1.5 <= r <= 1.5 for r in ratios), ratios


# -- stable ---------------------------------------------------------------------------
STABLE = ["today", "fission=project", "prediction=residual", "disentangle=club"]
"""Options that meet the 5-point bound (the defaults, `project_fuse`, seed 0: 2.5 / 1.4 / 2.8 points at
lr 0.01 / 0.03 / 0.05; `sum`, `residual`, `club` and `none` run on it too). `project_norm` is left out: its training accuracy fell 5.2
points below its best at lr 0.03 (seed 0)."""
NEAR_STABLE = ["residual+project_relu+syn3", "residual+project_relu+syn3+club", "fuse_synergy_first"]
"""The synergy candidates miss the 5-point bound narrowly (measured 5.3 points at lr 0.03, 5.6 with
CLUB at lr 0.05, seed 0; docs/architecture.md): held to 8 points, so a collapse still fails.
`fuse_synergy_first` (the syn-led objective on `project_fuse`, which learns synergy) falls 5.3 points
at lr 0.05 on seed 0 (seeds 1-2: 1.6, 4.8; at lr 0.01 4.4 / 9.6 / 3.0, seed 1's fall an early dip near
chance that the monolithic network also has, one round sooner, before WARMUP; docs/architecture.md).
`synergy_first` is in no list: it fails the issue's stability rule (measured, seed 0: drops of 7.1
points at lr 0.01, 6.6 at 0.05 and 21 at 0.3; seeds 1 and 2: 7.6 and 4.7 at lr 0.01, 9.7 and 3.5 at
0.05; docs/architecture.md), which is why it is not the default; a test of an outcome that chaotic
would be a statement about this CPU, not a check."""


WARMUP = 5
"""Rounds before a drop counts (mid-run): in the first rounds every option, today's included,
moves by up to 7 points while it is still near chance (measured 0.39 -> 0.33 at round 2)."""


@pytest.mark.parametrize("option", [*STABLE, *NEAR_STABLE])
def test_stable_over_the_lr_grid(synthetic_mm, option):
    """No divergence at lr 0.01..0.3 (momentum 0.9, default clipping): 20 rounds of 10
    steps without sharing, every loss and parameter finite; up to lr 0.05 training
    accuracy, from round 5 on, never more than 5 points under the best round before it; at 0.1 and 0.3
    (where the monolithic network itself drops 8 and 32 points, measured on this
    task) no more than 20, ending above 0.5 (chance 0.25). Fixed seed."""
    fd, mods, pairing = synthetic_mm
    train = fd.agents[0].train
    for lr in (0.01, 0.03, 0.05, 0.1, 0.3):
        a = _agent(fd, mods, pairing, "local", option, lr=lr)
        accs, losses = [], []
        for _ in range(20):
            losses.append(a.train_steps(train, 10, 32)["loss"])
            accs.append(a.evaluate(train)[0])
        drop = max(max(accs[: i + 1]) - acc for i, acc in enumerate(accs) if i >= WARMUP)
        print(f"{option} lr {lr}: final {accs[-1]:.3f}, worst drop {drop:.3f}")
        assert all(math.isfinite(x) for x in losses), (option, lr, losses)
        assert all(torch.isfinite(p).all() for p in a.net.parameters()), (option, lr)
        assert drop <= ((0.05 if option in STABLE else 0.08) if lr <= 0.05 else 0.2), (option, lr, accs)
        assert lr <= 0.05 or accs[-1] > 0.5, (option, lr, accs)


# -- CLUB -----------------------------------------------------------------------------
def _gaussian_pair(n, d, rho, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, d, generator=g)
    o = rho * s + math.sqrt(1 - rho * rho) * torch.randn(n, d, generator=g)
    return s, o


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_club_with_the_true_conditional_is_its_closed_form_upper_bound(rho):
    """s, o standard normal per channel with correlation rho: I = -log(1 - rho^2) / 2
    nats per channel. With q the true conditional N(rho s, 1 - rho^2), CLUB's
    expectation is rho^2 / (1 - rho^2) >= I (equality at rho = 0). On 200,000
    pairs the estimate is within 0.01 of it (its standard error is < 0.003)."""
    s, o = _gaussian_pair(200_000, 4, rho, seed=1)
    mi = -0.5 * math.log(1 - rho * rho)
    closed = rho * rho / (1 - rho * rho)
    est = club_bound(rho * s, torch.full_like(o, math.log(1 - rho * rho)), o).item()
    assert abs(est - closed) < 0.01, (est, closed)
    assert closed >= mi
    assert est >= mi - 0.01, (est, mi)


def test_club_with_a_fitted_critic_bounds_the_known_mi():
    """The critic `ClubCritic` fitted by its own likelihood (as the agent trains it)
    on rho = 0.8 pairs: the CLUB estimate on fresh pairs lies between the true
    I (0.511 nats per channel) and the true conditional's bound (1.78), and on
    independent pairs within 0.05 of 0. Fixed seeds; the fit is 1,500 Adam steps."""
    torch.manual_seed(0)
    for rho, lo, hi in ((0.8, -0.5 * math.log(1 - 0.64) - 0.05, 0.64 / 0.36 + 0.1), (0.0, -0.05, 0.05)):
        critic = ClubCritic(4, 4, 32)
        opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
        for step in range(1500):
            s, o = _gaussian_pair(256, 4, rho, seed=100 + step)
            loss = gaussian_nll(*critic(s), o)
            opt.zero_grad()
            loss.backward()
            opt.step()
        s, o = _gaussian_pair(100_000, 4, rho, seed=7)
        with torch.no_grad():
            est = club_bound(*critic(s), o).item()
        print(f"rho {rho}: CLUB {est:.3f}, bounds [{lo:.3f}, {hi:.3f}]")
        assert lo <= est <= hi, (rho, est)


def test_club_gradients_go_where_they_should(make_agent, data):
    """The bound reaches the slices (and so the backbones and projections) but not the
    critics; the critic's likelihood reaches the critics only: exact zeros."""
    a = make_agent("IA", loss={"disentangle": "club"})
    d = data(("image", "audio"), n=32)
    x, y = a._inputs(d)
    a._mode(training=True)
    out = a.net(x)
    terms = fission_terms(out, y, a.loss_cfg, True)
    critic = {k: list(b.parameters()) for k, b in a.net.branches.items() if k.startswith("critic/")}
    model = {k: list(b.parameters()) for k, b in a.net.branches.items() if not k.startswith("critic/")}
    flat_c = [p for ps in critic.values() for p in ps]
    flat_m = [p for ps in model.values() for p in ps]
    g_bound = torch.autograd.grad(terms["club"], flat_c + flat_m, retain_graph=True, allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in g_bound[: len(flat_c)])
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in g_bound[len(flat_c):])
    g_fit = torch.autograd.grad(terms["club_fit"], flat_c + flat_m, allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in g_fit[len(flat_c):])
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in g_fit[: len(flat_c)])
    w = term_weights(a.loss_cfg, True)
    assert w["club"] == a.loss_cfg.lambda_club and w["club_fit"] == 1.0 and w["orth"] == 0.0


def test_evaluation_runs_no_critic(make_agent, data):
    a = make_agent("IA", loss={"disentangle": "club"})
    x, _ = a._inputs(data(("image", "audio"), n=8))
    a._mode(training=False)
    assert a.net(x).club is None
    a._mode(training=True)
    assert len(a.net(x).club) == 6


# -- residual ---------------------------------------------------------------------------
def _params(a, prefixes):
    return [p for k, b in a.net.branches.items() if k.startswith(prefixes) for p in b.parameters()]


@pytest.mark.parametrize("fission", ["project", "project_relu", "split"])
def test_residual_ladder_stops_gradients_exactly(make_agent, data, fission):
    """Under `residual` the uni head's loss has exactly zero gradient on the red
    branches, the syn head's on the red and uni branches; the prediction's CE (the
    same value as the syn rung's) does reach both (the check can fail)."""
    red = ("head/red", "fission/audio/red", "fission/image/red")
    uni = ("head/uni/", "fission/audio/uni", "fission/image/uni")
    a = make_agent("IA", model=SMALL.model_copy(update={"fission": fission}), loss={"prediction": "residual"})
    x, y = a._inputs(data(("image", "audio"), n=32))
    terms = fission_terms(a.net(x), y, a.loss_cfg, True)
    assert torch.equal(terms["ce"], terms["head_syn"])

    def grads(term, prefixes):
        return torch.autograd.grad(terms[term], _params(a, prefixes), retain_graph=True, allow_unused=True)

    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads("head_uni", red))
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads("head_syn", red + uni))
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in grads("ce", red + uni))
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in grads("head_uni", uni))


def _out(logits_by_kind):
    r, u, s = logits_by_kind
    g = torch.Generator().manual_seed(1)
    slices = [[torch.randn(len(s), 3, generator=g) for _ in range(2)] for _ in range(3)]
    return FissionOut(red=slices[0], uni=slices[1], syn=slices[2], red_logits=torch.stack(r), uni_logits=list(u),
                      syn_logits=s)


def test_sum_prediction_and_its_ladder_values():
    """`sum`/`residual`: the weighted sum of the kinds (red and uni averaged over
    modalities), drops leave a kind out; the ladder's values are the CEs of the
    partial sums."""
    g = torch.Generator().manual_seed(0)
    r = [torch.randn(6, 4, generator=g) for _ in range(2)]
    u = [torch.randn(6, 4, generator=g) for _ in range(2)]
    s = torch.randn(6, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    o = _out((r, u, s))
    R, U = (r[0] + r[1]) / 2, (u[0] + u[1]) / 2
    w = SliceWeights(red=1, uni=2, syn=0.5)
    assert torch.allclose(o.prediction(w, mode="sum"), R + 2 * U + 0.5 * s, atol=1e-6)
    assert torch.allclose(o.prediction(w, "uni", mode="residual"), R + 0.5 * s, atol=1e-6)
    cfg = LossConfig(prediction="residual", logit_weights=w)
    t = fission_terms(o, y, cfg)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(t["head_uni"], ce(R + 2 * U, y)) and torch.allclose(t["head_syn"], ce(R + 2 * U + 0.5 * s, y))
    assert torch.allclose(t["ce"], ce(R + 2 * U + 0.5 * s, y))
    # the prediction CE's share over the kinds summed (3 here, 2 for a unimodal agent)
    assert term_weights(cfg, True)["ce"] == pytest.approx(0.5 / 3)
    assert term_weights(cfg, False)["ce"] == pytest.approx(0.5 / 2)
    assert term_weights(LossConfig(), True)["ce"] == 0.5
