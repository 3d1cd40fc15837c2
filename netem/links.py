"""Link physics: latency models, bandwidth models and the per-link state.

A directed link is a FIFO server: a message starts serializing when the link
has finished the ones before it, takes nbytes * 8 / rate seconds (integrated
over a bandwidth trace when the rate varies), then propagates for a latency
drawn from the latency model.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from . import config as C
from .seeding import rng as make_rng, uniform
from .tracefiles import BandwidthTrace, LatencyMatrix


class Link:
    """State of one directed link (created on first use)."""

    __slots__ = (
        "src",
        "dst",
        "free_at",
        "bps",
        "trace",
        "offset",
        "lat_const",
        "last_arrival",
        "loss_state",
        "queue",
    )

    def __init__(self, src: int, dst: int):
        self.src = src
        self.dst = dst
        self.free_at = 0.0  # when the link finishes serializing what it has accepted
        self.bps = 0.0  # constant rate, bit/s (unused when `trace` is set)
        self.trace: BandwidthTrace | None = None
        self.offset = 0.0  # phase of the trace for this link
        self.lat_const: float | None = None  # fixed latency of this link, if it has one
        self.last_arrival = 0.0  # for in-order delivery under reliable transport
        self.loss_state = None  # per-link loss channel state (Gilbert-Elliott)
        self.queue: deque | None = None  # transfers waiting, when access links are shared

    def rate_at(self, t: float) -> float:
        """Link rate in bit/s at time t."""
        return self.bps if self.trace is None else self.trace.rate_at(t, self.offset)

    def tx_end(self, t0: float, bits: float) -> float:
        """When `bits` started at t0 finish serializing on this link alone."""
        if self.trace is None:
            return t0 + bits / self.bps
        return self.trace.finish_time(t0, bits, self.offset)

    def __repr__(self) -> str:
        return f"Link({self.src}->{self.dst}, free_at={self.free_at})"


# =========================================================================== latency


class LatencyModel:
    """One-way latency in seconds; `link_constant` is not None when a link's latency never varies."""

    def link_constant(self, u: int, v: int) -> float | None:
        return None

    def sample(self, u: int, v: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class ConstantLatencyModel(LatencyModel):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def link_constant(self, u: int, v: int) -> float:
        return self.seconds

    def sample(self, u: int, v: int) -> float:
        return self.seconds


class DistLatencyModel(LatencyModel):
    """Latency drawn from a distribution (netem.distributions), per message or per link."""

    def __init__(self, cfg, seed: np.random.SeedSequence):
        self.cfg = cfg
        self.seed = seed
        self.rng = make_rng(seed, "latency")
        self.per_link = cfg.per == "link"
        self._draw = cfg.sampler().draw

    def link_constant(self, u: int, v: int) -> float | None:
        if not self.per_link:
            return None
        # Symmetric and independent of first-use order: a stream per undirected link.
        return self._draw(make_rng(self.seed, "latency", "link", min(u, v), max(u, v)))

    def sample(self, u: int, v: int) -> float:
        return self._draw(self.rng)


class TraceLatencyModel(LatencyModel):
    """Latency between the measured hosts the two nodes are mapped to."""

    def __init__(self, matrix: LatencyMatrix, hosts: list[int], jitter: bool, scale: float, rng: np.random.Generator):
        self.matrix = matrix
        self.hosts = hosts  # node -> index into matrix.hosts
        self.jitter = jitter
        self.scale = scale
        self.rng = rng
        self._pairs: dict[tuple[int, int], tuple[float, float, float]] = {}  # only the node pairs that talk

    def one_way(self, u: int, v: int) -> tuple[float, float, float]:
        """(mean, std, floor) of the one-way latency u -> v, seconds."""
        got = self._pairs.get((u, v))
        if got is None:
            mn, avg, mdev = self.matrix.stats(self.hosts[u], self.hosts[v])  # map_hosts chose measured pairs
            k = self.scale / 2000.0  # RTT ms -> one-way s
            got = self._pairs[(u, v)] = (avg * k, mdev * k, mn * k)
        return got

    def link_constant(self, u: int, v: int) -> float | None:
        return None if self.jitter else self.one_way(u, v)[0]

    def sample(self, u: int, v: int) -> float:
        mean, std, floor = self.one_way(u, v)
        if std <= 0:
            return mean
        for _ in range(100):
            x = self.rng.normal(mean, std)
            if x >= floor:
                return float(x)
        return floor


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def _norm_city(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def map_hosts(
    matrix: LatencyMatrix,
    mapping: str,
    n: int,
    locations: list | None,
    rng: np.random.Generator | None,
) -> list[int]:
    """Assign each node a host (index into `matrix.hosts`) with data to every other chosen host.

    `seeded`: a random permutation of the hosts, repeated when n exceeds them
    (so hosts are reused as evenly as possible); `ordered`: hosts in id order,
    cycled; `nearest_city`: per node, the host in the named city or nearest to
    the given [lat, lon]. Raises ValueError when impossible.
    """
    complete = matrix.complete_hosts()
    if not complete:
        raise ValueError(f"{matrix.source}: no host has measurements to all others")
    cand = [matrix.index_of(h) for h in complete]
    if mapping == "ordered":
        return [cand[i % len(cand)] for i in range(n)]
    if mapping == "seeded":
        g = rng if rng is not None else np.random.default_rng(0)
        out: list[int] = []
        while len(out) < n:
            out.extend(cand[int(k)] for k in g.permutation(len(cand)))
        return out[:n]
    if mapping != "nearest_city":
        raise ValueError(f"unknown mapping {mapping!r}")
    servers = matrix.servers or {}
    complete_set = set(cand)
    located = [(i, servers[h]) for i, h in enumerate(matrix.hosts) if h in servers]
    if not located:
        raise ValueError("no measured host appears in the servers file")
    by_city: dict[str, int] = {}
    # Hosts measured against everyone win when several share a city.
    for i, s in sorted(located, key=lambda x: x[0] not in complete_set):
        for name in (s.city, s.name):
            by_city.setdefault(_norm_city(name), i)
    near = [(i, s) for i, s in located if i in complete_set] or located
    lats = np.array([s.lat for _, s in near])
    lons = np.array([s.lon for _, s in near])
    out = []
    for node, loc in enumerate(locations or []):
        if isinstance(loc, str):
            key = _norm_city(loc)
            if key not in by_city:
                known = ", ".join(sorted({s.city for _, s in located})[:12])
                raise ValueError(f"node {node}: no measured host in city {loc!r} (cities include: {known}, ...)")
            out.append(by_city[key])
        else:
            lat, lon = float(loc[0]), float(loc[1])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"node {node}: [latitude, longitude] out of range: {loc}")
            out.append(near[int(np.argmin(_haversine_km(lat, lon, lats, lons)))][0])
    if len(out) != n:
        raise ValueError(f"need one location per node: {len(out)} for {n} nodes")
    gap = matrix.missing_pair(out)
    if gap is not None:
        ca, cb = (servers[matrix.hosts[h]].city for h in gap)
        raise ValueError(f"no measurement between the hosts in {ca} and {cb}; pick other locations")
    return out


def make_latency_model(cfg, n: int, seed: np.random.SeedSequence, base_dir) -> LatencyModel:
    """The latency model of a link config (`cfg` is one of the Latency variants)."""
    if isinstance(cfg, C.ConstantLatency):
        return ConstantLatencyModel(cfg.sampler().params[0])
    if isinstance(cfg, C.TraceLatency):
        from .tracefiles import cached_latency_matrix, resolve_latency

        matrix = cached_latency_matrix(*resolve_latency(cfg.file, cfg.servers, base_dir))
        hosts = map_hosts(matrix, cfg.mapping, n, cfg.locations, make_rng(seed, "latency", "mapping"))
        return TraceLatencyModel(matrix, hosts, cfg.jitter, cfg.scale, make_rng(seed, "latency"))
    return DistLatencyModel(cfg, seed)


# =========================================================================== bandwidth


class BandwidthModel:
    """Configures each new link's rate: a constant, or a trace with a per-link phase."""

    def __init__(self, bps: float, trace: BandwidthTrace | None, offset, seed: np.random.SeedSequence):
        self.bps = bps
        self.trace = trace
        self.offset = offset  # float seconds, or "random"
        self.seed = seed

    @property
    def constant(self) -> bool:
        return self.trace is None

    def setup(self, link: Link) -> None:
        link.bps = self.bps
        if self.trace is not None:
            link.trace = self.trace
            if self.offset == "random":
                link.offset = uniform(self.seed, "bandwidth", "offset", link.src, link.dst) * self.trace.period
            else:
                link.offset = float(self.offset)


def make_bandwidth_model(cfg: C.LinkConfig, seed: np.random.SeedSequence, base_dir) -> BandwidthModel:
    if cfg.bandwidth is None:
        return BandwidthModel(cfg.bandwidth_mbps * 1e6, None, 0.0, seed)
    from .tracefiles import cached_bandwidth_trace, resolve_bandwidth

    bw = cfg.bandwidth
    trace = cached_bandwidth_trace(resolve_bandwidth(bw.trace, base_dir), scale=bw.scale, name=bw.trace)
    return BandwidthModel(math.nan, trace, bw.offset_s, seed)


__all__ = [
    "Link",
    "LatencyModel",
    "ConstantLatencyModel",
    "DistLatencyModel",
    "TraceLatencyModel",
    "BandwidthModel",
    "make_latency_model",
    "make_bandwidth_model",
    "map_hosts",
]
