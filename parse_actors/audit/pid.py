"""Partial information decomposition of the label between two feature sets.

Measure: BROJA (Bertschinger, Rauh, Olbrich, Jost, Ay 2014: unique information
is the minimum of I(S1;Y|S2) over distributions with the same (S1,Y) and
(S2,Y) marginals), as implemented by `dit` (dit.pid.PID_BROJA) with the
exponential-cone solver of Makkeh, Theis and Vicente (2018, BROJA-2PID, via
ECOS). Why BROJA: of the two-source measures it is the one whose unique
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


def broja(s1: np.ndarray, s2: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """BROJA PID (bits) of the label y between two discrete sources, from the
    plug-in joint distribution of the three integer arrays."""
    import dit
    from dit.pid import PID_BROJA

    logging.getLogger("dit").setLevel(logging.ERROR)
    trip = np.stack([s1, s2, y], axis=1).astype(np.int64)
    outcomes, counts = np.unique(trip, axis=0, return_counts=True)
    if len(np.unique(y)) < 2:
        return {c: 0.0 for c in COMPONENTS}
    d = dit.Distribution([tuple(int(v) for v in o) for o in outcomes], (counts / counts.sum()).tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = PID_BROJA(d, [[0], [1]], [2], method="cone")
    red = float(p.get_pi(((0,), (1,))))
    u1 = float(p.get_pi(((0,),)))
    u2 = float(p.get_pi(((1,),)))
    syn = float(p.get_pi(((0, 1),)))
    return {"redundant": red, "unique_1": u1, "unique_2": u2, "synergy": syn, "total": red + u1 + u2 + syn}


def pid_of_label(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, fit: np.ndarray, states: int,
                 seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """(PID of y between the two feature sets, the same with y permuted)."""
    c1 = discretise(x1, fit, states, seed)  # one seed for both: identical sources get identical cells
    c2 = discretise(x2, fit, states, seed)
    y = np.asarray(y, dtype=np.int64)
    y_null = np.random.default_rng(derive(seed, "audit", "null")).permutation(y)
    return broja(c1, c2, y), broja(c1, c2, y_null)
