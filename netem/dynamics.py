"""Time-varying topologies: periodic resampling, Markov edge flips, mobility.

A dynamics object owns a schedule; at each step it computes the edges to add
and remove and hands them to the network, which updates its graph and tells
observers (`on_topology`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np

from . import config as C
from .topology import build_topology, is_random_kind, relabel_random

Edge = tuple[int, int]
ApplyFn = Callable[[list[Edge], list[Edge]], None]


def edge_set(g: nx.Graph) -> set[Edge]:
    return {(u, v) if u < v else (v, u) for u, v in g.edges()}


def diff(old: set[Edge], new: set[Edge]) -> tuple[list[Edge], list[Edge]]:
    """(added, removed), each sorted."""
    return sorted(new - old), sorted(old - new)


class Dynamics:
    """Static topology: nothing happens."""

    def start(self, call_at: Callable, now: float, graph: nx.Graph, apply: ApplyFn) -> None:
        pass


class ResampleDynamics(Dynamics):
    """Redraw the topology every `period_s` (fixed shapes: random node relabelling)."""

    def __init__(
        self, cfg: C.ResampleDynamics, topo_cfg, n: int, rng: np.random.Generator, base_dir: str | Path | None
    ):
        self.period = cfg.period_s
        self.topo_cfg = topo_cfg
        self.n = n
        self.rng = rng
        self.base_dir = base_dir
        self._template: nx.Graph | None = None

    def _next_graph(self) -> nx.Graph:
        if is_random_kind(self.topo_cfg):
            return build_topology(self.topo_cfg, self.n, self.rng, self.base_dir)
        if self._template is None:
            self._template = build_topology(self.topo_cfg, self.n, self.rng, self.base_dir)
        return relabel_random(self._template, self.rng)

    def start(self, call_at, now, graph, apply):
        def step(t):
            added, removed = diff(edge_set(graph), edge_set(self._next_graph()))
            apply(added, removed)
            call_at(t + self.period, step, t + self.period)

        call_at(now + self.period, step, now + self.period)


class MarkovDynamics(Dynamics):
    """Each edge of the initial graph goes down with p_off and comes back with p_on per step."""

    def __init__(self, cfg: C.MarkovDynamics, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng

    def start(self, call_at, now, graph, apply):
        base = sorted(edge_set(graph))
        up = np.ones(len(base), dtype=bool)
        period, p_off, p_on = self.cfg.period_s, self.cfg.p_off, self.cfg.p_on

        def step(t):
            u = self.rng.random(len(base))
            flip = np.where(up, u < p_off, u < p_on)
            idx = np.flatnonzero(flip)
            up[idx] = ~up[idx]
            added = [base[i] for i in idx if up[i]]
            removed = [base[i] for i in idx if not up[i]]
            if added or removed:
                apply(added, removed)
            call_at(t + period, step, t + period)

        call_at(now + period, step, now + period)


class RandomWaypoint:
    """Random-waypoint motion in a square: go to a uniform point at a uniform speed, pause, repeat."""

    def __init__(self, n: int, area: float, vmin: float, vmax: float, pause: float, rng: np.random.Generator):
        self.n, self.area, self.vmin, self.vmax, self.pause = n, area, vmin, vmax, pause
        self.rng = rng
        self.a = rng.uniform(0, area, (n, 2))  # segment start
        self.b = self.a.copy()  # segment end (waypoint)
        self.t_a = np.zeros(n)
        self.t_b = np.zeros(n)
        self.t_leave = np.zeros(n)  # when the node leaves its waypoint
        self._new_segments(np.arange(n), 0.0)

    def _new_segments(self, idx: np.ndarray, t_from) -> None:
        k = len(idx)
        self.a[idx] = self.b[idx]
        self.t_a[idx] = t_from
        self.b[idx] = self.rng.uniform(0, self.area, (k, 2))
        speed = np.maximum(self.rng.uniform(self.vmin, self.vmax, k), 1e-9)
        dist = np.hypot(*(self.b[idx] - self.a[idx]).T)
        self.t_b[idx] = self.t_a[idx] + dist / speed
        self.t_leave[idx] = self.t_b[idx] + self.pause

    def positions(self, t: float) -> np.ndarray:
        """Positions at time t (t must not decrease between calls)."""
        while True:
            idx = np.flatnonzero(self.t_leave <= t)
            if len(idx) == 0:
                break
            self._new_segments(idx, self.t_leave[idx])
        span = self.t_b - self.t_a
        frac = np.clip(np.divide(t - self.t_a, span, out=np.ones(self.n), where=span > 0), 0.0, 1.0)
        return self.a + (self.b - self.a) * frac[:, None]


class MobilityDynamics(Dynamics):
    """Edges between nodes within `radius_m`; link latency and rate follow distance."""

    def __init__(self, cfg: C.MobilityDynamics, n: int, rng: np.random.Generator):
        self.cfg = cfg
        self.n = n
        self.walk = RandomWaypoint(n, cfg.area_m, cfg.speed_min_mps, cfg.speed_max_mps, cfg.pause_s, rng)
        self.pos = self.walk.positions(0.0)
        self.on_step: Callable[[], None] | None = None  # network hook: refresh link parameters

    def edges(self) -> set[Edge]:
        """Pairs within range at the current positions."""
        if self.n < 2:
            return set()
        i, j = np.triu_indices(self.n, 1)
        d = self.pos[i] - self.pos[j]
        close = np.flatnonzero(np.einsum("ij,ij->i", d, d) <= self.cfg.radius_m**2)
        return {(int(i[k]), int(j[k])) for k in close}

    def initial_graph(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_edges_from(sorted(self.edges()))
        return g

    def distance(self, u: int, v: int) -> float:
        d = self.pos[u] - self.pos[v]
        return float(np.hypot(d[0], d[1]))

    def quality(self, u: int, v: int) -> tuple[float, float]:
        """(latency s, rate bit/s) of a link at the current distance (beyond range: the far values)."""
        c = self.cfg
        f = min(self.distance(u, v) / c.radius_m, 1.0)
        lat = (c.latency_near_ms + (c.latency_far_ms - c.latency_near_ms) * f) / 1000
        bw = (c.bandwidth_near_mbps + (c.bandwidth_far_mbps - c.bandwidth_near_mbps) * f) * 1e6
        return lat, bw

    def start(self, call_at, now, graph, apply):
        dt = self.cfg.step_s

        def step(t):
            self.pos = self.walk.positions(t)
            if self.on_step is not None:
                self.on_step()
            added, removed = diff(edge_set(graph), self.edges())
            if added or removed:
                apply(added, removed)
            call_at(t + dt, step, t + dt)

        call_at(now + dt, step, now + dt)


def make_dynamics(cfg, topo_cfg, n: int, rng: np.random.Generator, base_dir) -> Dynamics:
    if isinstance(cfg, C.ResampleDynamics):
        return ResampleDynamics(cfg, topo_cfg, n, rng, base_dir)
    if isinstance(cfg, C.MarkovDynamics):
        return MarkovDynamics(cfg, rng)
    if isinstance(cfg, C.MobilityDynamics):
        return MobilityDynamics(cfg, n, rng)
    return Dynamics()
