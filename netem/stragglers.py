"""Compute speed per node: persistent stragglers plus optional transient slowdowns.

The engine turns work into virtual time with `compute_time(node, work_s) =
work_s / speed(node)`, using the speed at the moment the work starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import config as C
from .distributions import exponential
from .seeding import rng as make_rng


def base_speeds(cfg, n: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Persistent speed factor of each node (1 = nominal)."""
    g = make_rng(seed, "stragglers")
    speeds = np.ones(n)
    if isinstance(cfg, C.FractionStragglers):
        k = int(math.floor(cfg.fraction * n + 0.5))
        slow = g.permutation(n)[:k]
        speeds[slow] = 1.0 / cfg.slowdown
    elif isinstance(cfg, C.ListStragglers):
        speeds = np.asarray(cfg.speeds, dtype=float)[:n].copy()
    elif isinstance(cfg, C.DistStragglers):
        speeds = cfg.speed.sampler().draw(g, n)
    return speeds


class Stragglers:
    """Current speed of every node; transient episodes are scheduled by `start`."""

    def __init__(self, cfg, n: int, seed: np.random.SeedSequence):
        self.cfg = cfg
        self.n = n
        self.seed = seed
        self.base = base_speeds(cfg, n, seed)
        self.slow = np.zeros(n, dtype=bool)
        self._speeds = self.base.astype(float).tolist()

    def speed(self, node: int) -> float:
        return self._speeds[node]

    def start(self, call_at: Callable, now: float, notify: Callable[[int, float, float], None]) -> None:
        """Schedule transient slowdowns (if configured); `notify(node, speed, t)` on each change."""
        tr = self.cfg.transient
        if tr is None:
            return
        for node in range(self.n):
            g = make_rng(self.seed, "stragglers", "transient", node)
            self._schedule(node, g, now, call_at, notify)

    def _schedule(self, node, g, now, call_at, notify):
        tr = self.cfg.transient
        interval, duration = exponential(tr.mean_interval_s), exponential(tr.mean_duration_s)
        gap = interval(g)

        def begin(t0):
            self.slow[node] = True
            self._speeds[node] = float(self.base[node]) / tr.slowdown
            notify(node, self._speeds[node], t0)
            t1 = t0 + duration(g)
            call_at(t1, end, t1)

        def end(t1):
            self.slow[node] = False
            self._speeds[node] = float(self.base[node])
            notify(node, self._speeds[node], t1)
            t2 = t1 + interval(g)
            call_at(t2, begin, t2)

        call_at(now + gap, begin, now + gap)
