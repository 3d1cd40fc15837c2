"""Topology generators (networkx) and their feasibility checks.

Every generator returns an undirected `nx.Graph` on nodes 0..n-1. Random
generators get their seed from the caller's named stream, and are redrawn
until connected when the config asks for connectivity.
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np

from . import config as C
from .errors import ConfigError, trace_errors
from .tracefiles import load_edge_list, resolve_path

RANDOM_KINDS = ("k_regular", "erdos_renyi", "watts_strogatz", "barabasi_albert")


def grid_shape(cfg: C.GridTopology, n: int) -> tuple[int, int]:
    """(rows, cols) of a grid config for n nodes; the most square one if unset."""
    rows, cols = cfg.rows, cfg.cols
    if rows is None and cols is None:
        rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
        return rows, n // rows
    if rows is None:
        rows = n // cols if n % cols == 0 else -1
    elif cols is None:
        cols = n // rows if n % rows == 0 else -1
    return rows, cols


def check_topology(cfg, n: int, base_dir: str | Path | None = None) -> None:
    """Reject topologies that cannot exist for n nodes (ConfigError with key path).

    Fixed shapes (ring, chordal ring, complete, grid, star) are connected by
    construction; random ones are redrawn at build time.
    """
    if isinstance(cfg, C.ChordalRingTopology):
        for i, k in enumerate(cfg.chords):
            if k >= n:
                raise ConfigError(f"topology.chords.{i}", f"chord offset {k} must be < n ({n})")
    elif isinstance(cfg, C.KRegularTopology):
        d = cfg.degree
        if d >= n:
            raise ConfigError("topology.degree", f"degree {d} is impossible with {n} nodes (needs degree < n)")
        if (d * n) % 2:
            raise ConfigError("topology.degree", f"degree {d} with {n} nodes: degree * n must be even")
        if cfg.connected and d == 1 and n > 2:
            raise ConfigError("topology.degree", f"a 1-regular graph on {n} nodes is never connected")
    elif isinstance(cfg, C.ErdosRenyiTopology):
        if cfg.connected and n > 1 and cfg.p == 0.0:
            raise ConfigError("topology.p", "p = 0 gives no edges, so the graph cannot be connected")
    elif isinstance(cfg, C.WattsStrogatzTopology):
        if cfg.k % 2:
            raise ConfigError("topology.k", f"k must be even (k/2 neighbours on each side), got {cfg.k}")
        if cfg.k >= n:
            raise ConfigError("topology.k", f"k = {cfg.k} must be < n ({n})")
    elif isinstance(cfg, C.BarabasiAlbertTopology):
        if cfg.m >= n:
            raise ConfigError("topology.m", f"m = {cfg.m} must be < n ({n})")
    elif isinstance(cfg, C.GridTopology):
        rows, cols = grid_shape(cfg, n)
        if rows < 1 or cols < 1 or rows * cols != n:
            raise ConfigError(
                "topology.rows" if cfg.rows is not None else "topology.cols",
                f"grid {cfg.rows} x {cfg.cols} does not fit {n} nodes (rows * cols must equal n)",
            )
        if cfg.periodic and (rows < 3 or cols < 3):
            raise ConfigError("topology.periodic", f"a periodic grid needs rows, cols >= 3, got {rows} x {cols}")
    elif isinstance(cfg, C.StarTopology):
        if cfg.center >= n:
            raise ConfigError("topology.center", f"node {cfg.center} does not exist (n={n})")
    elif isinstance(cfg, C.EdgeListTopology):
        g = _edge_list_graph(cfg, n, base_dir)
        if cfg.connected and not nx.is_connected(g):
            parts = nx.number_connected_components(g)
            raise ConfigError(
                "topology.path",
                f"the edge list gives a disconnected graph ({parts} components) but `connected` is true",
            )


def _edge_list_graph(cfg: C.EdgeListTopology, n: int, base_dir) -> nx.Graph:
    p = resolve_path(cfg.path, base_dir)
    with trace_errors("topology.path"):
        if not p.is_file():
            raise FileNotFoundError(f"edge list {str(p)!r} not found")
        edges = load_edge_list(p)
    bad = sorted({x for e in edges for x in e if x >= n})
    if bad:
        raise ConfigError("topology.path", f"{p}: nodes {bad[:5]} out of range for {n} nodes (ids are 0..n-1)")
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return g


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**32 - 1))


def _normalise(g: nx.Graph, n: int) -> nx.Graph:
    """A plain Graph with nodes 0..n-1 added in order and sorted edges."""
    out = nx.Graph()
    out.add_nodes_from(range(n))
    out.add_edges_from(sorted((min(u, v), max(u, v)) for u, v in g.edges() if u != v))
    return out


def build_topology(cfg, n: int, rng: np.random.Generator, base_dir: str | Path | None = None) -> nx.Graph:
    """The graph for `cfg` on n nodes; random kinds draw from `rng`."""
    check_topology(cfg, n, base_dir)
    if isinstance(cfg, C.RingTopology):
        g = nx.cycle_graph(n)
    elif isinstance(cfg, C.ChordalRingTopology):
        g = nx.cycle_graph(n)
        g.add_edges_from((i, (i + k) % n) for k in cfg.chords for i in range(n))
    elif isinstance(cfg, C.CompleteTopology):
        g = nx.complete_graph(n)
    elif isinstance(cfg, C.GridTopology):
        rows, cols = grid_shape(cfg, n)
        grid = nx.grid_2d_graph(rows, cols, periodic=cfg.periodic)
        g = nx.relabel_nodes(grid, {(r, c): r * cols + c for r, c in grid.nodes()})
    elif isinstance(cfg, C.StarTopology):
        g = nx.star_graph(n - 1) if n > 1 else nx.empty_graph(1)
        if cfg.center != 0:
            g = nx.relabel_nodes(g, {0: cfg.center, cfg.center: 0})
    elif isinstance(cfg, C.EdgeListTopology):
        g = _edge_list_graph(cfg, n, base_dir)
    elif isinstance(cfg, C.BarabasiAlbertTopology):
        g = nx.barabasi_albert_graph(n, cfg.m, seed=_seed(rng))
    else:
        g = _random_connected(cfg, n, rng)
    return _normalise(g, n)


def _random_connected(cfg, n: int, rng: np.random.Generator) -> nx.Graph:
    tries = cfg.max_tries if cfg.connected else 1
    for _ in range(tries):
        s = _seed(rng)
        if isinstance(cfg, C.KRegularTopology):
            g = nx.random_regular_graph(cfg.degree, n, seed=s)
        elif isinstance(cfg, C.ErdosRenyiTopology):
            g = nx.fast_gnp_random_graph(n, cfg.p, seed=s) if cfg.p < 0.2 else nx.gnp_random_graph(n, cfg.p, seed=s)
        elif isinstance(cfg, C.WattsStrogatzTopology):
            g = nx.watts_strogatz_graph(n, cfg.k, cfg.p, seed=s)
        else:  # pragma: no cover - guarded by RANDOM_KINDS
            raise AssertionError(cfg.kind)
        if not cfg.connected or n <= 1 or nx.is_connected(g):
            return g
    hint = ""
    if isinstance(cfg, C.ErdosRenyiTopology) and cfg.p < math.log(n) / n:
        hint = f"; p = {cfg.p} is below the connectivity threshold ln(n)/n = {math.log(n) / n:.3g}"
    key = {"k_regular": "degree", "erdos_renyi": "p", "watts_strogatz": "p"}[cfg.kind]
    raise ConfigError(f"topology.{key}", f"no connected {cfg.kind} graph on {n} nodes in {cfg.max_tries} tries{hint}")


def relabel_random(g: nx.Graph, rng: np.random.Generator) -> nx.Graph:
    """The same shape with nodes permuted (used when resampling fixed shapes)."""
    n = g.number_of_nodes()
    perm = rng.permutation(n)
    return _normalise(nx.relabel_nodes(g, {i: int(perm[i]) for i in range(n)}), n)


def is_random_kind(cfg) -> bool:
    return cfg.kind in RANDOM_KINDS
