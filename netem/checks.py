"""Checks of a network config that need the node count or the files it names
(topology feasible, traces readable, per-node lists the right length); raise
ConfigError with the key path. Kept apart from config.py, which only declares:
these need the topology builders and trace readers, which import config."""

from __future__ import annotations

from pathlib import Path

from . import topology as topo
from .config import ListStragglers, MobilityDynamics, NetworkConfig, TraceChurn, TraceLatency
from .errors import ConfigError, TraceFormatError, trace_errors
from .limits import MAX_LATENCY_MS
from .links import map_hosts
from .tracefiles import (cached_bandwidth_trace, cached_latency_matrix, load_availability, resolve_bandwidth,
                         resolve_latency, resolve_path)


def check_network(cfg: NetworkConfig, n_nodes: int, base_dir: str | Path | None = None) -> None:
    """Checks that need the node count or files; raises ConfigError(path, message)."""
    n = int(n_nodes)
    if n < 1:
        raise ConfigError("n_nodes", f"need at least 1 node, got {n}")
    if not isinstance(cfg.dynamics, MobilityDynamics):
        topo.check_topology(cfg.topology, n, base_dir)
    _check_latency(cfg.link.latency, n, base_dir)
    if cfg.link.bandwidth is not None:
        bw = cfg.link.bandwidth
        with trace_errors("link.bandwidth.trace"):
            path = resolve_bandwidth(bw.trace, base_dir)
            cached_bandwidth_trace(path, name=bw.trace)
        try:
            cached_bandwidth_trace(path, scale=bw.scale, name=bw.trace)
        except ValueError as e:  # the file is fine at scale 1: the scale takes it past the limits
            raise ConfigError("link.bandwidth.scale", f"{path}: {e}") from None
    for key in ("uplink_mbps", "downlink_mbps"):
        v = getattr(cfg.access, key)
        if isinstance(v, list) and len(v) != n:
            raise ConfigError(f"access.{key}", f"gives {len(v)} values for {n} nodes")
    for i, o in enumerate(cfg.loss.outages):
        for end in ("src", "dst"):
            if getattr(o, end) >= n:
                raise ConfigError(f"loss.outages.{i}.{end}", f"node {getattr(o, end)} does not exist (n={n})")
    _check_churn(cfg.churn, n, base_dir)
    st = cfg.stragglers
    if isinstance(st, ListStragglers) and len(st.speeds) != n:
        raise ConfigError("stragglers.speeds", f"gives {len(st.speeds)} speeds for {n} nodes")


def _check_latency(lat, n: int, base_dir) -> None:
    if not isinstance(lat, TraceLatency):
        return

    srv = None if lat.servers is None else resolve_path(lat.servers, base_dir)
    if srv is not None and not srv.is_file():
        raise ConfigError("link.latency.servers", f"servers file {str(srv)!r} not found")
    try:
        pings, servers = resolve_latency(lat.file, lat.servers, base_dir)
        matrix = cached_latency_matrix(pings, servers)
    except (TraceFormatError, OSError) as e:
        in_servers = srv is not None and isinstance(e, TraceFormatError) and e.file == str(srv)
        raise ConfigError("link.latency.servers" if in_servers else "link.latency.file", str(e)) from e
    if lat.mapping == "nearest_city":
        if matrix.servers is None:
            raise ConfigError("link.latency.servers", "mapping 'nearest_city' needs a servers CSV with cities")
        if lat.locations is None or len(lat.locations) != n:
            got = 0 if lat.locations is None else len(lat.locations)
            raise ConfigError(
                "link.latency.locations",
                f"mapping 'nearest_city' needs one location per node: {got} for {n} nodes",
            )
    elif lat.locations is not None:
        raise ConfigError("link.latency.locations", "only used with mapping 'nearest_city'")
    worst = matrix.max_ms() * lat.scale / 2
    if worst > MAX_LATENCY_MS:
        raise ConfigError("link.latency.scale", f"{pings}: scale {lat.scale:g} makes one-way latencies up to "
                          f"{worst:.3g} ms, more than {MAX_LATENCY_MS:g} ms (one day)")
    try:
        map_hosts(matrix, lat.mapping, n, lat.locations, None)
    except ValueError as e:
        key = "locations" if lat.mapping == "nearest_city" else "mapping"
        raise ConfigError(f"link.latency.{key}", str(e)) from None


def _check_churn(ch, n: int, base_dir) -> None:
    lj = ch.late_join
    if lj.nodes is not None:
        bad = [v for v in lj.nodes if v >= n]
        if bad:
            raise ConfigError("churn.late_join.nodes", f"nodes {bad} do not exist (n={n})")
    if isinstance(ch, TraceChurn):

        p = resolve_path(ch.file, base_dir)
        with trace_errors("churn.file"):
            if not p.is_file():
                raise FileNotFoundError(f"availability trace {str(p)!r} not found")
            sessions = load_availability(p)
        if len(sessions) < n:
            raise ConfigError("churn.file", f"{p} describes {len(sessions)} nodes, the scenario has {n}")
