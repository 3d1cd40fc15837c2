"""Held-out linear probes: how much of a latent variable a representation
makes linearly readable.

A probe is fitted on one half of the held-out samples and scored on the other
(the halves come from a seeded permutation), so a representation of noise
scores chance whatever its width. Gaussian latents: ridge regression, scored
by R^2 (variance explained over all the latent's dimensions). Discrete codes:
multinomial logistic regression (L-BFGS, float64, zero init: deterministic),
scored by accuracy. `normalised` maps both to [0, 1]: 0 is chance (R^2 <= 0,
accuracy at the majority rate of the scored half), 1 is perfect.
"""

from __future__ import annotations

import numpy as np
import torch

from parse_actors.seeding import rng as seeded_rng


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, score) index halves of n samples, from a seeded permutation."""
    perm = seeded_rng(seed, "audit", "probe_split").permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def _standardise(x: np.ndarray, fit: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mu = x[fit].mean(0)
    sd = x[fit].std(0)
    sd[sd < 1e-8] = 1.0  # a constant feature stays constant (zero), never blows up
    z = (x - mu) / sd
    return np.concatenate([z, np.ones((len(z), 1))], axis=1)


def ridge_r2(x: np.ndarray, targets: dict[str, np.ndarray], fit: np.ndarray, score: np.ndarray,
             lam: float = 1e-2) -> dict[str, float]:
    """Held-out R^2 of a ridge regression of each target (n, d_t) on x (n, d).
    `lam` is per fitted sample (the penalty is lam * n_fit * |W|^2, bias free)."""
    if not targets:
        return {}
    a = _standardise(x, fit)
    names = list(targets)
    ys = [np.asarray(targets[k], dtype=np.float64).reshape(len(a), -1) for k in names]
    y = np.concatenate(ys, axis=1)
    af = a[fit]
    reg = lam * len(fit) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(af.T @ af + reg, af.T @ y[fit])
    err = (a[score] @ w - y[score]) ** 2
    dev = (y[score] - y[fit].mean(0)) ** 2
    out, c = {}, 0
    for k, t in zip(names, ys):
        d = t.shape[1]
        out[k] = float(1.0 - err[:, c : c + d].sum() / max(dev[:, c : c + d].sum(), 1e-12))
        c += d
    return out


def logistic_acc(x: np.ndarray, targets: dict[str, np.ndarray], num_classes: int, fit: np.ndarray,
                 score: np.ndarray, weight_decay: float = 1e-3, max_iter: int = 60) -> dict[str, float]:
    """Held-out accuracy of a multinomial logistic regression of each integer
    target on x. The targets' problems are independent; they are solved in one
    L-BFGS run on the sum of their losses (same optimum, one call)."""
    if not targets:
        return {}
    a = torch.from_numpy(_standardise(x, fit))
    names = list(targets)
    y = torch.from_numpy(np.stack([np.asarray(targets[k], dtype=np.int64) for k in names]))  # (T, n)
    T, d, C = len(names), a.shape[1], int(num_classes)
    w = torch.zeros((T, d, C), dtype=torch.float64, requires_grad=True)
    fi = torch.from_numpy(fit)
    af, yf = a[fi], y[:, fi]
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=max_iter, tolerance_grad=1e-5, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.einsum("nd,tdc->tnc", af, w)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, C), yf.reshape(-1), reduction="sum") / len(fi)
        loss = loss + weight_decay * (w[:, :-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        si = torch.from_numpy(score)
        pred = torch.einsum("nd,tdc->tnc", a[si], w).argmax(-1)
        acc = (pred == y[:, si]).double().mean(1)
    return {k: float(v) for k, v in zip(names, acc)}


def chance_accuracy(labels: np.ndarray, score: np.ndarray) -> float:
    """Majority-class rate of the scored half: what a constant guess reaches."""
    counts = np.bincount(np.asarray(labels)[score])
    return float(counts.max() / len(score))


def normalise(metric: str, value: float, chance: float = 0.0) -> float:
    """Map a probe score to [0, 1]: 0 at chance (or below), 1 when perfect."""
    if metric == "r2":
        return float(min(max(value, 0.0), 1.0))
    if chance >= 1.0:
        return 0.0
    return float(min(max((value - chance) / (1.0 - chance), 0.0), 1.0))
