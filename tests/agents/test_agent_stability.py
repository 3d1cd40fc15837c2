"""Issue 11: PARSE's objective has the baselines' scale and trains stably at their
learning rate (lr 0.05, momentum 0.9) on AV digits, without sharing.

Before the fix the fission model's objective was ~3x the monolithic one's
(summed head logits, deep supervision on top of the main CE): audio-only
fission agents could not fit their training set (train acc ~0.29 vs 0.74) and
some went NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parse_actors.agents import Agent, AgentSpec, OptimConfig
from parse_actors.agents.losses import fission_terms, mono_terms, total_loss
from parse_actors.agents.model import FissionOut
from parse_actors.agents.config import SliceWeights
from parse_actors.data import build_federated_data
from parse_actors.data.config import DataConfig

STEPS, ROUNDS, BATCH = 10, 20, 32  # the paper_ring scenario's local training: 200 steps


@pytest.fixture(scope="module")
def audio_data():
    """One audio-only agent with 180 AV-digits training samples (iid)."""
    cfg = DataConfig(name="av_digits", cache=False, max_samples=250, partition={"kind": "iid"})
    fd = build_federated_data(cfg, [("audio",)], seed=0)
    return fd, fd.agents[0].train


def _agent(fd, method, optim=None, seed=0):
    return Agent(AgentSpec(0, ("audio",)), fd.input_shapes, fd.num_classes, method=method, seed=seed,
                 optim=optim or OptimConfig(lr=0.05, momentum=0.9), pairing="label")


def _train(fd, train, method, optim=None):
    a = _agent(fd, method, optim)
    losses = [a.train_steps(train, STEPS, BATCH)["loss"] for _ in range(ROUNDS)]
    params_finite = all(torch.isfinite(p).all() for p in a.net.parameters())
    return a.evaluate(train)[0], losses, params_finite


@pytest.fixture(scope="module")
def trained(audio_data):
    """Both networks trained under the default clipping (clip_grad_norm 5), the
    only regime a test may compare: without clipping training on this audio data
    is unstable, and where an unstable run ends depends on the CPU's kernels (on
    one machine fission 0.64 vs monolithic 0.15, on another 0.51 vs 0.69)."""
    fd, train = audio_data
    assert OptimConfig().clip_grad_norm == 5.0
    return {m: _train(fd, train, m, OptimConfig(lr=0.05, momentum=0.9)) for m in ("local", "local_mono")}


def test_fission_fits_training_set_under_default_clipping(trained, audio_data):
    """(a) 200 steps at lr 0.05, momentum 0.9, default clipping: the fission agent
    fits its training set (measured 0.94 on two CPUs; it was 0.29 when its
    objective was 3x the monolithic one's) and its loss falls without blowing up:
    no round ends more than 1 nat above the best round before it (minibatch noise
    measured up to 0.36; a diverging run jumps by several nats or to NaN), and
    the last 5 rounds average under 0.6x the first round's loss. The monolithic agent is checked the same way, with a
    looser fit (measured 0.72-0.79): neither outcome is compared with the other."""
    n = len(audio_data[1])
    assert 150 <= n <= 250
    for method, fit in (("local", 0.85), ("local_mono", 0.5)):
        acc, losses, _ = trained[method]
        print(f"{method}: train acc {acc:.3f} (n={n}); losses {[round(x, 3) for x in losses]}")
        assert acc >= fit, (method, acc)
        best = [min(losses[: i + 1]) for i in range(len(losses))]
        assert all(x <= b + 1.0 for x, b in zip(losses[1:], best)), (method, losses)
        assert sum(losses[-5:]) / 5 < 0.6 * losses[0], (method, losses)


def test_no_nan_in_training(trained):
    """(b) Every round's loss and every final parameter is finite (default clipping)."""
    for key, (_, losses, params_finite) in trained.items():
        assert all(math.isfinite(x) for x in losses), key
        assert params_finite, key


def _backbone_grad_norm(a, x, y):
    out = a.net(x)
    fn = fission_terms if a.method_spec.model == "fission" else mono_terms
    total_loss(fn(out, y, a.loss_cfg, True), a._weights).backward()
    params = list(a.net.branches["backbone/audio/mlp"].parameters())
    return torch.sqrt(sum(p.grad.square().sum() for p in params)).item()


def test_backbone_gradient_at_init_matches_monolithic(audio_data):
    """Scale-neutral: at init, on the same batch, the audio backbone's gradient
    under the fission objective is within a factor 2 of the monolithic one's
    (measured 1.0-1.5x; it was 3.2x: 1.41 vs 0.44)."""
    fd, train = audio_data
    ratios = []
    for seed in range(4):
        grads = {}
        for method in ("local", "local_mono"):
            a = _agent(fd, method, seed=seed)
            x, y = a._inputs(train)
            idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(y))[:BATCH])
            grads[method] = _backbone_grad_norm(a, {m: t[idx] for m, t in x.items()}, y[idx])
        print(f"seed {seed}: audio backbone grad norm at init: fission {grads['local']:.3f} "
              f"monolithic {grads['local_mono']:.3f}")
        ratios.append(grads["local"] / grads["local_mono"])
    assert all(0.5 <= r <= 2.0 for r in ratios), ratios


def _out(k_mods, logits, syn=True):
    n, c = logits.shape
    return FissionOut(
        red=[], uni=[], syn=None,
        red_logits=logits.expand(k_mods, n, c).clone(),
        uni_logits=[logits.clone() for _ in range(k_mods)],
        syn_logits=logits.clone() if syn else None,
    )


def test_prediction_is_a_normalised_mean():
    """(c) Identical heads give exactly that head's logits, for unimodal and
    multimodal agents and any weights; unequal heads give the weighted mean."""
    logits = torch.randn(7, 10, generator=torch.Generator().manual_seed(0))
    for w in (SliceWeights(), SliceWeights(red=1, uni=1, syn=2), SliceWeights(red=0.25, uni=4, syn=0)):
        assert torch.equal(_out(1, logits, syn=False).prediction(w), logits)
        assert torch.equal(_out(2, logits).prediction(w), logits)
        assert torch.equal(_out(3, logits).prediction(w), logits)
        for drop in ("red", "uni", "syn"):
            assert torch.equal(_out(2, logits).prediction(w, drop), logits)
    o = _out(2, logits)
    o.red_logits = torch.stack([logits, 3 * logits])  # red averaged over modalities: 2 * logits
    o.uni_logits = [4 * logits, 4 * logits]
    o.syn_logits = 0 * logits
    w = SliceWeights(red=1, uni=1, syn=2)
    assert torch.allclose(o.prediction(w), (1 * 2 * logits + 1 * 4 * logits + 2 * 0 * logits) / 4, rtol=1e-6, atol=0)
    assert torch.allclose(o.prediction(w, "syn"), (2 * logits + 4 * logits) / 2, rtol=1e-6, atol=0)
    # nothing left to predict from: no information, not a division by zero
    only_red = _out(1, logits, syn=False)
    assert torch.equal(only_red.prediction(SliceWeights(red=1, uni=0), "red"), torch.zeros_like(logits))
