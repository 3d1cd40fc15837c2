"""Partial information decomposition of the label between two feature sets.

Measure: BROJA (Bertschinger, Rauh, Olbrich, Jost, Ay 2014: unique information
is the minimum of I(S1;Y|S2) over distributions with the same (S1,Y) and
(S2,Y) marginals), solved by `dit`'s exponential-cone program of Makkeh,
Theis and Vicente (2018, BROJA-2PID, via ECOS; dit.algorithms.broja_cone,
the solver behind dit.pid.PID_BROJA(method="cone")). Why BROJA: of the two-source measures it is the one whose unique
information is operational (a decision-theoretic meaning), its components are
non-negative, and it does not credit independent sources with redundancy the
way I_min does; I_ccs can go negative. The cone solver takes a fraction of a
second on 8 x 8 x C alphabets where dit's generic solvers take minutes.

Features are continuous, PID needs discrete variables: each source is cut
into `states` cells by k-means (scipy, k-means++, seeded) on its standardised
features, fitted on the first half of the samples; the plug-in joint of
(cell 1, cell 2, label) over all samples is decomposed. k-means never sees the
label, so counting on every sample adds no label leakage; what it adds is the
plug-in bias of a 8 x 8 x C table, reported as `null`: the same decomposition
with the label permuted (what a representation carrying nothing scores).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from parse_actors.seeding import derive

COMPONENTS = ("redundant", "unique_1", "unique_2", "synergy", "total")


def discretise(x: np.ndarray, fit: np.ndarray, states: int, seed: int) -> np.ndarray:
    """Cell index (0..states-1) of every sample: k-means on standardised features."""
    from scipy.cluster.vq import kmeans2, vq

    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mu, sd = x[fit].mean(0), x[fit].std(0)
    keep = sd > 1e-8
    if not keep.any():
        return np.zeros(len(x), dtype=np.int64)
    z = (x[:, keep] - mu[keep]) / sd[keep]
    k = int(min(states, len(np.unique(np.round(z[fit], 6), axis=0))))
    if k <= 1:
        return np.zeros(len(x), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "one of the clusters is empty": fine, fewer cells
        centroids, _ = kmeans2(z[fit], k, minit="++", seed=np.random.default_rng(derive(seed, "audit", "kmeans")))
    cells, _ = vq(z, centroids)
    return np.unique(cells, return_inverse=True)[1].astype(np.int64)


def _mi(joint: np.ndarray, axes_a, axes_b) -> float:
    """I(A;B) in bits from a joint table whose axes are split into A and B."""
    keep = tuple(sorted(axes_a + axes_b))
    drop = tuple(k for k in range(joint.ndim) if k not in keep)
    pab = joint.sum(axis=drop, keepdims=True) if drop else joint
    pa = pab.sum(axis=tuple(axes_b), keepdims=True)
    pb = pab.sum(axis=tuple(axes_a), keepdims=True)
    nz = pab > 0
    return float(np.sum(pab[nz] * np.log2((pab / (pa * pb))[nz])))


def broja(s1: np.ndarray, s2: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """BROJA PID (bits) of the label y between two discrete sources, from the
    plug-in joint distribution of the three integer arrays.

    The unique informations come from dit's cone program
    (dit.algorithms.broja_cone.broja_cone_solve; called directly because
    PID_BROJA falls back to a generic solver that takes minutes when the cone
    solution misses its feasibility tolerance); redundancy and synergy follow
    from the PID identities I(S1;Y) = R + U1, I(S1,S2;Y) = R + U1 + U2 + S.
    A failed solve gives NaN components."""
    import dit
    from dit.algorithms.broja_cone import broja_cone_solve

    logging.getLogger("dit").setLevel(logging.ERROR)
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        return {c: 0.0 for c in COMPONENTS}
    s1 = np.unique(s1, return_inverse=True)[1]
    s2 = np.unique(s2, return_inverse=True)[1]
    y = np.unique(y, return_inverse=True)[1]
    joint = np.zeros((s1.max() + 1, s2.max() + 1, y.max() + 1))
    np.add.at(joint, (s1, s2, y), 1.0)
    joint /= joint.sum()
    i1, i2, i12 = _mi(joint, [0], [2]), _mi(joint, [1], [2]), _mi(joint, [0, 1], [2])
    nz = np.argwhere(joint > 0)
    d = dit.Distribution([tuple(int(v) for v in o) for o in nz], [float(joint[tuple(o)]) for o in nz])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, meta = broja_cone_solve(d, [[0], [1]], [2])
    except Exception:  # noqa: BLE001 - a failed solve is a missing value, not a failed audit
        return {c: float("nan") for c in COMPONENTS}
    u1 = min(max(float(meta["ui_source0"]), 0.0), i1)
    u2 = min(max(float(meta["ui_source1"]), 0.0), i2)
    red = i1 - u1
    return {"redundant": red, "unique_1": u1, "unique_2": u2, "synergy": i12 - red - u1 - u2, "total": i12}


def pid_of_label(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, fit: np.ndarray, states: int,
                 seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """(PID of y between the two feature sets, the same with y permuted)."""
    c1 = discretise(x1, fit, states, seed)  # one seed for both: identical sources get identical cells
    c2 = discretise(x2, fit, states, seed)
    y = np.asarray(y, dtype=np.int64)
    y_null = np.random.default_rng(derive(seed, "audit", "null")).permutation(y)
    return broja(c1, c2, y), broja(c1, c2, y_null)
