"""The network: sends messages over the emulated links and reports what happened.

`send()` returns a SimPy event that always succeeds, with the MessageRecord as
value, at the delivery or drop time. Observers hear about sends, resolutions,
node availability, topology and speed changes.

Two send paths share the same semantics. With constant latency and rate, no
loss, churn, dynamics or access limits, a message's fate is plain arithmetic
(link free-at time + serialization + latency) and its event is queued
directly at the arrival time: no process, no timer. Otherwise the general
path tracks messages so churn and topology changes can drop them in flight.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import simpy

from . import config as C
from .access import SharedAccess
from .accounting import Accounting
from .checks import check_network
from .churn import ChurnSchedule
from .dynamics import MobilityDynamics, make_dynamics
from .errors import ConfigError, TraceFormatError
from .limits import MAX_MESSAGE_BYTES
from .links import ConstantLatencyModel, Link, make_bandwidth_model, make_latency_model
from .loss import Outages, make_loss_model
from .records import DELIVERED, DROPPED, PENDING, MessageRecord
from .scheduling import Scheduler
from .seeding import as_seed_sequence, rng as make_rng
from .stragglers import Stragglers
from .topology import build_topology
from .transport import Transport

OBSERVER_HOOKS = ("on_message", "on_send", "on_node", "on_topology", "on_speed")


class _Flight:
    """Book-keeping of one message on the general path."""

    __slots__ = ("rec", "ev", "link", "transfer", "done", "held", "outcome")

    def __init__(self, rec: MessageRecord, ev: simpy.Event):
        self.rec = rec
        self.ev = ev
        self.link: Link | None = None
        self.transfer = None
        self.done = False
        self.held = False
        self.outcome: tuple[bool, str | None, int] | None = None


class Network:
    """A SimPy network of `n_nodes` nodes built from a NetworkConfig.

    Build with `Network.from_config(env, cfg, n_nodes, seed, base_dir)`, call
    `start()` once (churn, slowdowns and topology dynamics), then `send()`.
    """

    def __init__(
        self,
        env: simpy.Environment,
        cfg: C.NetworkConfig | dict | None = None,
        *,
        n_nodes: int,
        seed: int | np.random.SeedSequence | None = 0,
        base_dir: str | Path | None = None,
    ):
        if cfg is None:
            cfg = C.NetworkConfig()
        elif not isinstance(cfg, C.NetworkConfig):
            cfg = C.NetworkConfig.model_validate(cfg)
        n = int(n_nodes)
        check_network(cfg, n, base_dir)
        self.env = env
        self.config = cfg
        self.n_nodes = n
        self.seed = as_seed_sequence(seed)
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self._sched = Scheduler(env)
        self._started = False
        seed = self.seed

        try:
            self._build(cfg, n, seed, base_dir)
        except (TraceFormatError, FileNotFoundError) as e:  # pragma: no cover - check() catches these first
            raise ConfigError("network", str(e)) from e

        self.accounting = Accounting()
        self._cells = self.accounting.cells
        self._next_id = 0
        self._on_message: list = []
        self._on_send: list = []
        self._on_node: list = []
        self._on_topology: list = []
        self._on_speed: list = []

    @classmethod
    def from_config(
        cls,
        env: simpy.Environment,
        cfg: C.NetworkConfig | dict,
        n_nodes: int,
        seed: int | np.random.SeedSequence | None = 0,
        base_dir: str | Path | None = None,
    ) -> Network:
        """Validate, check and build; raises ConfigError for impossible settings."""
        return cls(env, cfg, n_nodes=n_nodes, seed=seed, base_dir=base_dir)

    # ================================================================== construction

    def _build(self, cfg: C.NetworkConfig, n: int, seed, base_dir) -> None:
        # Topology (mobility builds its own from positions).
        self._mobility: MobilityDynamics | None = None
        dyn_rng = make_rng(seed, "dynamics")
        self._dynamics = make_dynamics(cfg.dynamics, cfg.topology, n, dyn_rng, base_dir)
        if isinstance(self._dynamics, MobilityDynamics):
            self._mobility = self._dynamics
            self._mobility.on_step = self._refresh_link_quality
            g = self._mobility.initial_graph()
        else:
            g = build_topology(cfg.topology, n, make_rng(seed, "topology"), base_dir)
        self._graph: nx.Graph = g
        self._adj: list[set[int]] = [set(g.adj[v]) for v in range(n)]
        self._allow_any = cfg.non_neighbor == "allow"

        # Links.
        self._latency = make_latency_model(cfg.link.latency, n, seed, base_dir)
        self._bandwidth = make_bandwidth_model(cfg.link, seed, base_dir)
        self._links: dict[tuple[int, int], Link] = {}
        self._links_of: list[list[Link]] = [[] for _ in range(n)]

        # Loss and transport.
        self._loss = make_loss_model(cfg.loss, make_rng(seed, "loss"))
        self._outages = Outages(cfg.loss.outages)
        self._transport = Transport(cfg.transport, self._loss, self._outages, cfg.loss.mtu_bytes)
        self._trivial_transport = self._transport.trivial
        self._in_order = cfg.transport.mode == "reliable"

        # Shared access links.
        self._access: SharedAccess | None = None
        if cfg.access.limited:
            up = _per_node(cfg.access.uplink_mbps, n)
            down = _per_node(cfg.access.downlink_mbps, n)
            self._access = SharedAccess(self._sched, up, down, self._transmitted_shared)

        # Churn.
        self._churn = ChurnSchedule(cfg.churn, n, seed, base_dir)
        self._churn_active = self._churn.active
        self._timelines = [self._churn.timeline(v) for v in range(n)]
        self._online = [next(tl)[1] for tl in self._timelines]
        self._hold = cfg.churn.offline_policy == "hold"
        self._hold_timeout = cfg.churn.hold_timeout_s
        self._held: dict[int, list[_Flight]] = {}

        # Stragglers.
        self._stragglers = Stragglers(cfg.stragglers, n, seed)

        # In-flight tracking is needed when something can drop a message mid-way.
        dynamic = not isinstance(cfg.dynamics, C.StaticDynamics)
        self._drop_on_link_down = dynamic and cfg.dynamics.inflight == "drop"
        self._track = self._churn_active or self._drop_on_link_down
        self._inflight: list[dict[int, _Flight]] = [{} for _ in range(n)] if self._track else []

        # Fast path: everything is arithmetic and nothing can interrupt a message.
        self._fast = (
            isinstance(self._latency, ConstantLatencyModel)
            and self._bandwidth.constant
            and self._trivial_transport
            and self._access is None
            and not self._track
            and self._mobility is None
        )
        self._fast_lat = self._latency.seconds if isinstance(self._latency, ConstantLatencyModel) else 0.0
        self._fast_bps = self._bandwidth.bps
        self._free_at: dict[tuple[int, int], float] = {}

    # ================================================================== public API

    @property
    def graph(self) -> nx.Graph:
        """The current topology (nodes 0..n-1); do not mutate it."""
        return self._graph

    def neighbors(self, node: int) -> list[int]:
        """Current neighbours of `node`, sorted."""
        return sorted(self._adj[node])

    def online_neighbors(self, node: int) -> list[int]:
        """Current neighbours of `node` that are online now, sorted."""
        on = self._online
        return sorted(v for v in self._adj[node] if on[v])

    def is_online(self, node: int) -> bool:
        """Whether `node` is online at env.now."""
        return self._online[node]

    def online_nodes(self) -> list[int]:
        return [v for v, on in enumerate(self._online) if on]

    def speed(self, node: int) -> float:
        """Current compute speed factor of `node` (1 = nominal)."""
        return self._stragglers.speed(node)

    def compute_time(self, node: int, work_s: float) -> float:
        """Virtual seconds that `work_s` seconds of nominal work take on `node` now."""
        return work_s / self._stragglers.speed(node)

    @property
    def positions(self) -> np.ndarray | None:
        """Node positions (n x 2, metres) under mobility, else None."""
        return None if self._mobility is None else self._mobility.pos.copy()

    def add_observer(self, obs: Any) -> Any:
        """Register an object with any of on_message, on_send, on_node, on_topology, on_speed."""
        for hook in OBSERVER_HOOKS:
            fn = getattr(obs, hook, None)
            if callable(fn):
                getattr(self, "_" + hook).append(fn)
        return obs

    def remove_observer(self, obs: Any) -> None:
        for hook in OBSERVER_HOOKS:
            fn = getattr(obs, hook, None)
            lst = getattr(self, "_" + hook)
            if fn in lst:
                lst.remove(fn)

    def start(self) -> None:
        """Start churn, transient slowdowns and topology dynamics (once, before or while running)."""
        if self._started:
            raise RuntimeError("Network.start() was already called")
        self._started = True
        now = self.env.now
        if self._churn_active:
            for v in range(self.n_nodes):
                self._schedule_next_transition(v)
        self._stragglers.start(self._sched.call_at, now, self._notify_speed)
        self._dynamics.start(self._sched.call_at, now, self._graph, self._apply_topology)

    # ================================================================== sending

    def send(self, src: int, dst: int, nbytes: int, tag: str, payload: Any = None) -> simpy.Event:
        """Send `nbytes` from src to dst; the event succeeds with the MessageRecord when it is delivered or dropped."""
        n = self.n_nodes
        if not (0 <= src < n and 0 <= dst < n) or src == dst:
            raise ValueError(f"bad endpoints {src} -> {dst} for {n} nodes")
        if not 0 <= nbytes <= MAX_MESSAGE_BYTES:
            raise ValueError(f"nbytes must be in [0, 2**53], got {nbytes}")
        env = self.env
        now = env._now
        mid = self._next_id
        self._next_id = mid + 1
        rec = MessageRecord(mid, src, dst, tag, nbytes, now, None, PENDING, None, payload)
        key = (src, dst, tag)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0, 0, 0, 0, 0, 0]
        cell[0] += 1
        cell[1] += nbytes
        for fn in self._on_send:
            fn(rec)
        ev = simpy.Event(env)
        ev.callbacks.append(self._finish)
        if self._fast and (self._allow_any or dst in self._adj[src]):
            k = (src, dst)
            wait = self._free_at.get(k, 0.0) - now
            if wait < 0.0:
                wait = 0.0
            t_done = now + wait + nbytes * 8 / self._fast_bps
            self._free_at[k] = t_done
            ev._ok = True
            ev._value = rec
            self._sched.push(ev, t_done + self._fast_lat)
            return ev
        self._send_general(_Flight(rec, ev))
        return ev

    def link_rate(self, src: int, dst: int, t: float | None = None) -> float:
        """Rate of the directed link src->dst in bit/s at time t (default now): its
        bandwidth trace, mobility quality or constant rate. Creates the link's state
        exactly as its first send would (so calling it changes no result)."""
        if self._fast:
            return self._fast_bps
        return self._link(src, dst).rate_at(self.env.now if t is None else t)

    def _finish(self, ev: simpy.Event) -> None:
        """First callback of every send event: finalize the record, count, notify."""
        rec: MessageRecord = ev._value
        now = self.env._now
        if rec.status == PENDING:
            rec.status = DELIVERED
            rec.t_arrive = now
        rec.t_done = now
        cell = self._cells[(rec.src, rec.dst, rec.tag)]
        if rec.status == DELIVERED:
            cell[2] += rec.nbytes
            cell[4] += 1
        else:
            cell[3] += rec.nbytes
            cell[5] += 1
        for fn in self._on_message:
            fn(rec)

    # ------------------------------------------------------------------ general path

    def _send_general(self, f: _Flight) -> None:
        rec = f.rec
        src, dst = rec.src, rec.dst
        if not self._allow_any and dst not in self._adj[src]:
            self._drop(f, "no_link")
            return
        if self._churn_active:
            if not self._online[src]:
                self._drop(f, "offline")
                return
            if not self._online[dst]:
                if self._hold:
                    self._hold_flight(f)
                else:
                    self._drop(f, "offline")
                return
        self._admit(f)

    def _link(self, src: int, dst: int) -> Link:
        link = self._links.get((src, dst))
        if link is None:
            link = Link(src, dst)
            self._bandwidth.setup(link)
            link.lat_const = self._latency.link_constant(src, dst)
            if self._mobility is not None:
                link.trace = None
                link.lat_const, link.bps = self._mobility.quality(src, dst)
            self._links[(src, dst)] = link
            self._links_of[src].append(link)
            self._links_of[dst].append(link)
        return link

    def _admit(self, f: _Flight) -> None:
        """Put the message on its link's FIFO queue."""
        rec = f.rec
        link = f.link = self._link(rec.src, rec.dst)
        if self._track:
            self._inflight[rec.src][rec.msg_id] = f
            self._inflight[rec.dst][rec.msg_id] = f
        bits = rec.nbytes * 8
        if self._access is not None:
            f.transfer = self._access.enqueue(link, f, bits)
            return
        now = self.env._now
        wait = link.free_at - now
        if wait < 0.0:
            wait = 0.0
        if link.trace is None:
            t_done = now + wait + bits / link.bps
        else:
            t_done = link.trace.finish_time(now + wait, bits, link.offset)
        link.free_at = t_done
        self._transmitted(f, now + wait, t_done)

    def _transmitted_shared(self, f: _Flight, t_start: float, t_done: float) -> None:
        f.transfer = None
        self._transmitted(f, t_start, t_done)

    def _transmitted(self, f: _Flight, t_start: float, t_done: float) -> None:
        """Serialization is scheduled (or over): add latency, loss and transport effects."""
        rec = f.rec
        link = f.link
        lat = link.lat_const
        if lat is None:
            lat = self._latency.sample(rec.src, rec.dst)
        if self._trivial_transport:
            ok, t, reason, retries = True, t_done + lat, None, 0
        else:
            ok, t, reason, retries = self._transport.resolve(link, rec.nbytes, t_start, t_done, lat)
        if ok and self._in_order:
            if t < link.last_arrival:
                t = link.last_arrival
            link.last_arrival = t
        if ok and retries == 0 and not self._track:
            self._sched.fire_at(f.ev, rec, t)
            return
        f.outcome = (ok, reason, retries)
        self._sched.call_at(t, self._resolve, f)

    def _resolve(self, f: _Flight) -> None:
        if f.done:
            return
        ok, reason, retries = f.outcome
        rec = f.rec
        rec.retries = retries
        if ok:
            f.done = True
            self._untrack(f)
            rec.status = DELIVERED
            rec.t_arrive = self.env._now
            f.ev.succeed(rec)
        else:
            self._drop(f, reason)

    def _drop(self, f: _Flight, reason: str) -> None:
        """Drop now: the event fires at the current time with status 'dropped'."""
        f.done = True
        self._untrack(f)
        rec = f.rec
        rec.status = DROPPED
        rec.reason = reason
        f.ev.succeed(rec)

    def _untrack(self, f: _Flight) -> None:
        if self._track and f.link is not None:
            mid = f.rec.msg_id
            self._inflight[f.rec.src].pop(mid, None)
            self._inflight[f.rec.dst].pop(mid, None)

    def _cancel(self, f: _Flight, reason: str) -> None:
        """Drop a message that is queued or in flight."""
        if f.done:
            return
        if f.transfer is not None and self._access is not None:
            self._access.remove(f.transfer)
            f.transfer = None
        self._drop(f, reason)

    # ------------------------------------------------------------------ held messages

    def _hold_flight(self, f: _Flight) -> None:
        f.held = True
        self._held.setdefault(f.rec.dst, []).append(f)
        if self._hold_timeout is not None:
            self._sched.call_at(self.env.now + self._hold_timeout, self._hold_expired, f)

    def _hold_expired(self, f: _Flight) -> None:
        if f.held and not f.done:
            f.held = False
            self._held[f.rec.dst].remove(f)
            self._drop(f, "hold_timeout")

    def _release_held(self, dst: int) -> None:
        for f in self._held.pop(dst, []):
            if not f.done:
                f.held = False
                self._send_general(f)

    def _drop_held(self, node: int, as_dst: bool) -> None:
        """Drop held messages sent by `node` (and, if as_dst, those waiting for it)."""
        for dst in list(self._held):
            keep = []
            for f in self._held[dst]:
                if f.rec.src == node or (as_dst and dst == node):
                    f.held = False
                    self._drop(f, "offline")
                else:
                    keep.append(f)
            if keep:
                self._held[dst] = keep
            else:
                del self._held[dst]

    # ================================================================== churn

    def _schedule_next_transition(self, node: int) -> None:
        nxt = next(self._timelines[node], None)
        if nxt is not None:
            t, online, permanent = nxt
            self._sched.call_at(max(t, self.env.now), self._transition, node, online, permanent)

    def _transition(self, node: int, online: bool, permanent: bool) -> None:
        if online:
            self._set_online(node)
        else:
            self._set_offline(node, permanent)
        self._schedule_next_transition(node)

    def _set_online(self, node: int) -> None:
        if self._online[node]:
            return
        self._online[node] = True
        t = self.env.now
        for fn in self._on_node:
            fn(node, True, t)
        self._release_held(node)

    def _set_offline(self, node: int, permanent: bool = False) -> None:
        if not self._online[node]:
            if permanent:
                self._drop_held(node, as_dst=True)
            return
        self._online[node] = False
        now = self.env.now
        for fn in self._on_node:
            fn(node, False, now)
        for f in list(self._inflight[node].values()):
            self._cancel(f, "offline")
        # Every message on this node's links was dropped: the links are idle now.
        for link in self._links_of[node]:
            if link.free_at > now:
                link.free_at = now
            if link.last_arrival > now:
                link.last_arrival = now
        self._drop_held(node, as_dst=permanent)

    # ================================================================== topology and speed

    def _apply_topology(self, added: list[tuple[int, int]], removed: list[tuple[int, int]]) -> None:
        g, adj = self._graph, self._adj
        for u, v in removed:
            g.remove_edge(u, v)
            adj[u].discard(v)
            adj[v].discard(u)
        for u, v in added:
            g.add_edge(u, v)
            adj[u].add(v)
            adj[v].add(u)
        t = self.env.now
        for fn in self._on_topology:
            fn(t, added, removed, g)
        if self._drop_on_link_down and removed:
            for u, v in removed:
                for f in list(self._inflight[u].values()):
                    if f.rec.dst == v or f.rec.src == v:
                        self._cancel(f, "link_down")
                for key in ((u, v), (v, u)):
                    link = self._links.get(key)
                    if link is not None:
                        link.free_at = min(link.free_at, t)
                        link.last_arrival = min(link.last_arrival, t)

    def _refresh_link_quality(self) -> None:
        mob = self._mobility
        for (u, v), link in self._links.items():
            link.lat_const, link.bps = mob.quality(u, v)
        if self._access is not None:
            self._access.refresh()

    def _notify_speed(self, node: int, speed: float, t: float) -> None:
        for fn in self._on_speed:
            fn(node, speed, t)

    def __repr__(self) -> str:
        return (
            f"Network(n={self.n_nodes}, edges={self._graph.number_of_edges()}, "
            f"topology={self.config.topology.kind}, fast_path={self._fast})"
        )


def _per_node(value, n: int) -> list[float]:
    """Access capacity per node in bit/s (inf = unlimited)."""
    if value is None:
        return [math.inf] * n
    if isinstance(value, list):
        return [float(v) * 1e6 for v in value]
    return [float(value) * 1e6] * n
