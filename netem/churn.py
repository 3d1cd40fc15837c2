"""Node availability: on/off sessions, availability traces, late joiners, permanent failures.

Each node gets a lazily generated timeline of (time, online, permanent)
transitions from its own named random stream, so node i's schedule does not
depend on how many nodes there are or on the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import config as C
from .seeding import rng as make_rng
from .tracefiles import load_availability, resolve_path

Transition = tuple[float, bool, bool]  # (time, online, permanent)


def expected_availability(cfg: C.SessionChurn) -> float:
    """Long-run fraction of time online: E[online] / (E[online] + E[offline])."""
    return cfg.online.mean_s / (cfg.online.mean_s + cfg.offline.mean_s)


class ChurnSchedule:
    """Availability timelines for n nodes."""

    def __init__(self, cfg, n: int, seed: np.random.SeedSequence, base_dir: str | Path | None = None):
        self.cfg = cfg
        self.n = n
        self.seed = seed
        self.join_at = self._late_joiners(cfg.late_join, n)
        self._trace: list[list[tuple[float, float]]] | None = None
        if isinstance(cfg, C.TraceChurn):
            sessions = load_availability(resolve_path(cfg.file, base_dir))
            labels = list(sessions)
            if len(labels) < n:
                raise ValueError(f"{cfg.file}: {len(labels)} nodes in the trace, {n} needed")
            if cfg.mapping == "seeded":
                pick = make_rng(seed, "churn", "mapping").choice(len(labels), n, replace=False)
                labels = [labels[int(i)] for i in pick]
            self._trace = [sessions[labels[i]] for i in range(n)]
        if isinstance(cfg, C.SessionChurn):
            self._on = cfg.online.sampler()
            self._off = cfg.offline.sampler()

    @property
    def active(self) -> bool:
        """Whether any node can ever be offline."""
        return not isinstance(self.cfg, C.NoChurn) or bool(self.join_at)

    def _late_joiners(self, lj: C.LateJoin, n: int) -> dict[int, float]:
        g = make_rng(self.seed, "churn", "late_join")
        if lj.nodes is not None:
            nodes = sorted(set(lj.nodes))
        else:
            k = int(math.floor(lj.fraction * n + 0.5))
            nodes = sorted(int(i) for i in g.permutation(n)[:k])
        return {v: float(g.uniform(lj.min_s, lj.max_s)) for v in nodes}

    def timeline(self, node: int) -> Iterator[Transition]:
        """Transitions of `node`, starting with its state at t = 0 (never permanent)."""
        g = make_rng(self.seed, "churn", node)
        p_perm = self.cfg.permanent_failure_p
        join = self.join_at.get(node)
        if join is not None and join > 0:
            yield (0.0, False, False)
            base = self._base(node, join, g, fresh=True)
            state: bool | None = False
        else:
            base = self._base(node, 0.0, g, fresh=False)
            state = None
        for t, online in base:
            if online == state:
                continue
            if not online and state is not None and p_perm > 0 and g.random() < p_perm:
                yield (t, False, True)
                return
            state = online
            yield (t, online, False)

    def _base(self, node: int, t0: float, g: np.random.Generator, fresh: bool) -> Iterator[tuple[float, bool]]:
        cfg = self.cfg
        if isinstance(cfg, C.SessionChurn):
            if cfg.start == "stationary" and not fresh:
                online = bool(g.random() < expected_availability(cfg))
            else:
                online = True
            t = t0
            yield (t, online)
            while True:
                t += (self._on if online else self._off)(g)
                online = not online
                yield (t, online)
        elif self._trace is not None:
            sessions = self._trace[node]
            yield (t0, any(a <= t0 < b for a, b in sessions))
            for a, b in sessions:
                if a > t0:
                    yield (a, True)
                if b > t0:
                    yield (b, False)
        else:
            yield (t0, True)
