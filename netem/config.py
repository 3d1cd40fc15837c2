"""The `network:` section of a scenario, as typed pydantic models.

Field constraints reject impossible values at validation time (zero
bandwidth, probabilities outside [0, 1], NaN, unknown kinds); `check()` adds
the checks that need the number of nodes or the files a scenario points to,
raising ConfigError with the dotted key path. Every field has a default, so
`NetworkConfig()` is a valid network: a ring with 10 ms, 100 Mbit/s links,
no loss, no churn, no stragglers.

Units are in the key names: `_ms`, `_s`, `_mbps` (10^6 bit/s), `_bytes`, `_m`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .base import LatencyMs, Mbps, NonNegFloat, NonNegInt, PosFloat, PosInt, Prob, StrictModel, _tagged, ordered
from .distributions import (
    ConstantLatency,
    ExponentialSession,
    LognormalLatency,
    LognormalSpeed,
    NormalLatency,
    SessionDist,
    SpeedDist,
    UniformLatency,
)

# =========================================================================== topology


class _TopologyBase(StrictModel):
    connected: bool = True
    """Require a connected graph: random generators are redrawn until connected (up to `max_tries`), fixed shapes and edge lists are checked."""


class RingTopology(_TopologyBase):
    """Each node i linked to i-1 and i+1 (mod n)."""

    kind: Literal["ring"] = "ring"
    """A cycle over the nodes in index order."""


class ChordalRingTopology(_TopologyBase):
    """A ring plus chords: node i is also linked to i+k and i-k for every k in `chords`."""

    kind: Literal["chordal_ring"] = "chordal_ring"
    """A ring with extra chords."""
    chords: Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=1)] = [2]
    """Chord offsets k (each >= 2 and < n); node i links to i +- k mod n."""


class KRegularTopology(_TopologyBase):
    """A uniformly random graph in which every node has the same degree."""

    kind: Literal["k_regular"] = "k_regular"
    """Random regular graph (networkx.random_regular_graph)."""
    degree: PosInt = 4
    """Degree of every node; needs degree < n and degree * n even."""
    max_tries: Annotated[int, Field(gt=0, le=100_000)] = 1000
    """Redraws allowed to find a connected graph when `connected` is true."""


class ErdosRenyiTopology(_TopologyBase):
    """G(n, p): each pair linked independently with probability p."""

    kind: Literal["erdos_renyi"] = "erdos_renyi"
    """Erdos-Renyi random graph."""
    p: Prob = 0.2
    """Edge probability; connectivity needs roughly p > ln(n)/n."""
    max_tries: Annotated[int, Field(gt=0, le=100_000)] = 1000
    """Redraws allowed to find a connected graph when `connected` is true."""


class WattsStrogatzTopology(_TopologyBase):
    """Small world: a ring lattice of degree k whose edges are rewired with probability p."""

    kind: Literal["watts_strogatz"] = "watts_strogatz"
    """Watts-Strogatz small-world graph."""
    k: Annotated[int, Field(ge=2)] = 4
    """Each node starts linked to its k nearest ring neighbours (k even, k < n)."""
    p: Prob = 0.1
    """Rewiring probability per edge."""
    max_tries: Annotated[int, Field(gt=0, le=100_000)] = 1000
    """Redraws allowed to find a connected graph when `connected` is true."""


class BarabasiAlbertTopology(_TopologyBase):
    """Preferential attachment: each new node links to m existing ones."""

    kind: Literal["barabasi_albert"] = "barabasi_albert"
    """Barabasi-Albert scale-free graph (always connected)."""
    m: PosInt = 2
    """Edges added per new node (m < n)."""


class CompleteTopology(_TopologyBase):
    """Every pair linked (all-to-all, e.g. for random gossip over any peer)."""

    kind: Literal["complete"] = "complete"
    """Complete graph."""


class GridTopology(_TopologyBase):
    """A rows x cols lattice; node i sits at (i // cols, i % cols)."""

    kind: Literal["grid"] = "grid"
    """2-D grid graph."""
    rows: PosInt | None = None
    """Rows; with `cols` null too, the most square factorisation of n is used."""
    cols: PosInt | None = None
    """Columns; rows * cols must equal n."""
    periodic: bool = False
    """Wrap around (a torus)."""


class StarTopology(_TopologyBase):
    """One hub linked to every other node."""

    kind: Literal["star"] = "star"
    """Star graph."""
    center: NonNegInt = 0
    """The hub node."""


class EdgeListTopology(_TopologyBase):
    """Edges read from a file of `u v` lines (node ids 0..n-1)."""

    kind: Literal["edge_list"] = "edge_list"
    """Graph from an edge-list file."""
    path: str
    """Edge-list file; relative paths resolve against the scenario's directory."""


Topology = _tagged(
    "kind",
    "ring",
    RingTopology,
    ChordalRingTopology,
    KRegularTopology,
    ErdosRenyiTopology,
    WattsStrogatzTopology,
    BarabasiAlbertTopology,
    CompleteTopology,
    GridTopology,
    StarTopology,
    EdgeListTopology,
)


# =========================================================================== link: latency


class TraceLatency(StrictModel):
    """Per-pair latency from measured round-trip times (one-way = avg RTT / 2).

    Each node is mapped to a measured host; with `jitter`, every message draws
    a normal one-way latency with std mdev / 2, floored at min RTT / 2.
    """

    dist: Literal["trace"] = "trace"
    """Measured latency matrix."""
    file: str = "wonderproxy-excerpt"
    """Shipped name (`wonderproxy-excerpt`) or path of a `source,destination,min,avg,max,mdev` CSV."""
    servers: str | None = None
    """Servers CSV (id, city, latitude, longitude) for `nearest_city`; a shipped name brings its own."""
    mapping: Literal["seeded", "ordered", "nearest_city"] = "seeded"
    """How nodes pick hosts: `seeded` draws distinct hosts at random (with replacement once n exceeds the hosts), `ordered` takes hosts in id order, `nearest_city` uses `locations`."""
    locations: list[Union[str, Annotated[list[float], Field(min_length=2, max_length=2)]]] | None = None
    """For `nearest_city`, one entry per node: a city name of the servers file or a [latitude, longitude] pair (the nearest host is used)."""
    jitter: bool = True
    """Draw per-message jitter from the measured mdev; false uses avg RTT / 2 exactly."""
    scale: PosFloat = 1.0
    """Multiply all latencies (e.g. 0.5 to model a faster network)."""


Latency = _tagged(
    "dist",
    "constant",
    ConstantLatency,
    NormalLatency,
    LognormalLatency,
    UniformLatency,
    TraceLatency,
)


# =========================================================================== link: bandwidth


class BandwidthTraceConfig(StrictModel):
    """Time-varying link rate from a `time_seconds Mbit/s` trace that loops."""

    trace: str
    """Shipped name (norway-3g-bus, norway-3g-car, norway-3g-ferry, norway-3g-train) or path."""
    scale: PosFloat = 1.0
    """Multiply the trace's rates."""
    offset_s: NonNegFloat | Literal["random"] = "random"
    """Where in the trace each directed link starts: `random` draws a phase per link (links not in lockstep), a number starts every link at that trace time."""


class LinkConfig(StrictModel):
    """Physics of every directed link: latency, rate, queue."""

    latency: Latency = Field(default_factory=ConstantLatency)
    """One-way propagation latency model (`dist`: constant, normal, lognormal, uniform, trace)."""
    bandwidth_mbps: Mbps | None = 100.0
    """Constant link rate in Mbit/s; serialization takes nbytes * 8 / (bandwidth_mbps * 1e6) s. Null (and ignored) when `bandwidth` gives a trace."""
    bandwidth: BandwidthTraceConfig | None = None
    """A bandwidth trace instead of `bandwidth_mbps`."""
    queue: Literal["fifo"] = "fifo"
    """Queue discipline per directed link: messages are serialized one after another in send order."""

    @model_validator(mode="after")
    def _one_bandwidth(self):
        if self.bandwidth is not None:
            if "bandwidth_mbps" in self.model_fields_set and self.bandwidth_mbps is not None:
                raise ValueError("set either bandwidth_mbps (constant) or bandwidth (trace), not both")
            self.__dict__["bandwidth_mbps"] = None  # dumps then reload unchanged
        elif self.bandwidth_mbps is None:
            raise ValueError("bandwidth_mbps may only be null when `bandwidth` gives a trace")
        return self


class AccessConfig(StrictModel):
    """Per-node access links shared by all of the node's links (max-min fair share).

    A number applies to every node, a list gives one value per node, null is
    unlimited. Four simultaneous sends through one uplink each get a quarter of it.
    """

    uplink_mbps: Mbps | list[Mbps] | None = None
    """Upload capacity of each node, Mbit/s."""
    downlink_mbps: Mbps | list[Mbps] | None = None
    """Download capacity of each node, Mbit/s."""

    @property
    def limited(self) -> bool:
        return self.uplink_mbps is not None or self.downlink_mbps is not None


# =========================================================================== loss


class Outage(StrictModel):
    """A scheduled link outage: nothing gets through during [start_s, end_s)."""

    src: NonNegInt
    """Sending node."""
    dst: NonNegInt
    """Receiving node."""
    start_s: NonNegFloat
    """Start of the outage, virtual seconds."""
    end_s: NonNegFloat
    """End of the outage (> start_s)."""
    both_directions: bool = True
    """Also cut dst -> src."""

    @model_validator(mode="after")
    def _order(self):
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be > start_s ({self.start_s})")
        if self.src == self.dst:
            raise ValueError("src and dst must differ")
        return self


class _LossBase(StrictModel):
    mtu_bytes: PosInt = 1500
    """Packet size: a message of nbytes is ceil(nbytes / mtu_bytes) packets (at least 1)."""
    outages: list[Outage] = []
    """Scheduled link outages."""


class NoLoss(_LossBase):
    """No random loss (outages still apply)."""

    model: Literal["none"] = "none"
    """No packet loss."""


class BernoulliLoss(_LossBase):
    """Independent packet loss: a message of n packets is hit with probability 1 - (1 - p)^n."""

    model: Literal["bernoulli"] = "bernoulli"
    """Bernoulli packet loss."""
    p_packet: Prob = 0.01
    """Loss probability of each packet."""


class GilbertElliottLoss(_LossBase):
    """Bursty loss: a two-state (good/bad) Markov chain per directed link, stepped per packet.

    Mean bad-burst length is 1 / p_bg packets; the long-run fraction of bad
    packets is p_gb / (p_gb + p_bg).
    """

    model: Literal["gilbert_elliott"] = "gilbert_elliott"
    """Gilbert-Elliott burst loss."""
    p_gb: Prob = 0.01
    """Probability of moving good -> bad after a packet."""
    p_bg: Annotated[float, Field(gt=0.0, le=1.0)] = 0.3
    """Probability of moving bad -> good after a packet."""
    loss_good: Prob = 0.0
    """Packet loss probability in the good state."""
    loss_bad: Prob = 1.0
    """Packet loss probability in the bad state."""


Loss = _tagged("model", "none", NoLoss, BernoulliLoss, GilbertElliottLoss)


class TransportConfig(StrictModel):
    """What a loss does to a message."""

    mode: Literal["datagram", "reliable"] = "datagram"
    """`datagram`: any lost packet drops the message (reason "loss"). `reliable`: lost packets are resent after `retry_timeout_ms`, so loss shows as delay; messages are delivered in order per link and dropped only after `max_retries` (reason "retries") or when an endpoint goes offline."""
    retry_timeout_ms: PosFloat = 200.0
    """Retransmission timeout, counted from the end of the previous (re)transmission."""
    max_retries: NonNegInt = 8
    """Retransmission rounds before the message is given up."""


# =========================================================================== churn


class LateJoin(StrictModel):
    """Nodes that are offline at the start and join later (uniform time in [min_s, max_s])."""

    fraction: Prob = 0.0
    """Fraction of nodes (rounded to the nearest count, drawn by seed) that join late."""
    nodes: list[NonNegInt] | None = None
    """Explicit late joiners instead of `fraction`."""
    min_s: NonNegFloat = 0.0
    """Earliest join time, seconds."""
    max_s: NonNegFloat = 60.0
    """Latest join time, seconds (>= min_s)."""

    @model_validator(mode="after")
    def _order(self):
        ordered(self, "min_s", "max_s")
        if self.nodes is not None and "fraction" in self.model_fields_set:
            raise ValueError("give either fraction or nodes, not both")
        return self


class _ChurnBase(StrictModel):
    permanent_failure_p: Prob = 0.0
    """Probability that a departure is permanent (the node never returns)."""
    late_join: LateJoin = Field(default_factory=LateJoin)
    """Nodes that start offline and join later."""
    offline_policy: Literal["drop", "hold"] = "drop"
    """A message to an offline node: `drop` it (reason "offline"), or `hold` it at the sender until the node returns (dropped if the sender leaves first)."""
    hold_timeout_s: PosFloat | None = None
    """With `hold`, drop a held message after this long (reason "hold_timeout"); null holds forever."""


class NoChurn(_ChurnBase):
    """Nodes stay online (late joiners and permanent failures aside)."""

    model: Literal["none"] = "none"
    """No on/off sessions."""


class SessionChurn(_ChurnBase):
    """Alternating online / offline sessions per node; availability = E[online] / (E[online] + E[offline])."""

    model: Literal["sessions"] = "sessions"
    """On/off sessions from distributions."""
    online: SessionDist = Field(default_factory=lambda: ExponentialSession(mean_s=3600.0))
    """Length of online sessions (`on` is avoided as a key: YAML reads it as true)."""
    offline: SessionDist = Field(default_factory=lambda: ExponentialSession(mean_s=600.0))
    """Length of offline periods."""
    start: Literal["online", "stationary"] = "online"
    """`online`: every node starts a fresh online session at t=0. `stationary`: each starts online with probability equal to the availability."""


class TraceChurn(_ChurnBase):
    """Availability from a trace of online sessions (`node start_s end_s` per line)."""

    model: Literal["trace"] = "trace"
    """Availability trace."""
    file: str
    """Trace file; relative paths resolve against the scenario's directory."""
    mapping: Literal["ordered", "seeded"] = "ordered"
    """Which trace nodes become nodes 0..n-1: the first n labels in natural order, or n drawn by seed."""


Churn = _tagged("model", "none", NoChurn, SessionChurn, TraceChurn)


# =========================================================================== stragglers


class TransientSlowdown(StrictModel):
    """Temporary slow episodes on every node (Poisson starts, exponential lengths)."""

    mean_interval_s: PosFloat = 600.0
    """Mean time between the end of one episode and the start of the next, seconds."""
    mean_duration_s: PosFloat = 60.0
    """Mean episode length, seconds."""
    slowdown: Annotated[float, Field(ge=1.0)] = 4.0
    """Speed is divided by this during an episode."""


class _StragglerBase(StrictModel):
    transient: TransientSlowdown | None = None
    """Optional temporary slowdowns on top of the base speeds."""


class NoStragglers(_StragglerBase):
    """Every node has speed 1."""

    model: Literal["none"] = "none"
    """Uniform speed."""


class FractionStragglers(_StragglerBase):
    """A fraction of the nodes (drawn by seed) is `slowdown` times slower."""

    model: Literal["fraction"] = "fraction"
    """Fraction of slow nodes."""
    fraction: Prob = 0.2
    """Share of slow nodes; round(fraction * n) nodes are slow."""
    slowdown: Annotated[float, Field(ge=1.0)] = 4.0
    """Slow nodes have speed 1 / slowdown."""


class ListStragglers(_StragglerBase):
    """Explicit speed per node."""

    model: Literal["list"] = "list"
    """Speeds given per node."""
    speeds: Annotated[list[PosFloat], Field(min_length=1)]
    """Speed factor of node i (1 = nominal, 0.5 = twice as slow); one per node."""


class DistStragglers(_StragglerBase):
    """Speeds drawn per node from a distribution."""

    model: Literal["dist"] = "dist"
    """Speeds from a distribution."""
    speed: SpeedDist = Field(default_factory=LognormalSpeed)
    """The speed distribution."""


Stragglers = _tagged("model", "none", NoStragglers, FractionStragglers, ListStragglers, DistStragglers)


# =========================================================================== dynamics


class _DynamicsBase(StrictModel):
    inflight: Literal["complete", "drop"] = "complete"
    """Messages in flight on a link that disappears: `complete` delivers them, `drop` drops them (reason "link_down")."""


class StaticDynamics(_DynamicsBase):
    """The topology never changes."""

    model: Literal["static"] = "static"
    """Fixed topology."""


class ResampleDynamics(_DynamicsBase):
    """A fresh topology of the same kind every period (fixed shapes get a random node relabelling)."""

    model: Literal["resample"] = "resample"
    """Periodic resampling."""
    period_s: PosFloat = 60.0
    """Seconds between resamples."""


class MarkovDynamics(_DynamicsBase):
    """Each edge of the initial topology flips off/on independently every period."""

    model: Literal["markov"] = "markov"
    """Markov edge on/off."""
    p_off: Prob = 0.1
    """Probability that a present edge goes away at a step."""
    p_on: Prob = 0.5
    """Probability that an absent edge comes back at a step (long-run share up: p_on / (p_on + p_off))."""
    period_s: PosFloat = 10.0
    """Seconds between steps."""


class MobilityDynamics(_DynamicsBase):
    """Random-waypoint nodes in a square; an edge exists while two nodes are within `radius_m`.

    Link latency and bandwidth interpolate linearly between their `near`
    (distance 0) and `far` (distance = radius) values; replaces `topology` and
    the link's latency and bandwidth models.
    """

    model: Literal["mobility"] = "mobility"
    """Random-waypoint mobility."""
    area_m: PosFloat = 1000.0
    """Side of the square, metres."""
    radius_m: PosFloat = 300.0
    """Communication range, metres."""
    speed_min_mps: NonNegFloat = 1.0
    """Lowest node speed, m/s."""
    speed_max_mps: PosFloat = 5.0
    """Highest node speed, m/s (>= speed_min_mps)."""
    pause_s: NonNegFloat = 0.0
    """Pause at each waypoint, seconds."""
    step_s: PosFloat = 1.0
    """How often positions and edges are updated, seconds."""
    latency_near_ms: LatencyMs = 1.0
    """Latency at distance 0, ms."""
    latency_far_ms: LatencyMs = 5.0
    """Latency at the edge of range, ms."""
    bandwidth_near_mbps: Mbps = 54.0
    """Rate at distance 0, Mbit/s."""
    bandwidth_far_mbps: Mbps = 6.0
    """Rate at the edge of range, Mbit/s."""

    @model_validator(mode="after")
    def _order(self):
        return ordered(self, "speed_min_mps", "speed_max_mps")


Dynamics = _tagged("model", "static", StaticDynamics, ResampleDynamics, MarkovDynamics, MobilityDynamics)


# =========================================================================== network


class NetworkConfig(StrictModel):
    """The emulated network: topology, links, loss, churn, stragglers and their dynamics."""

    topology: Topology = Field(default_factory=RingTopology)
    """Graph of who can talk to whom (`kind`: ring, chordal_ring, k_regular, erdos_renyi, watts_strogatz, barabasi_albert, complete, grid, star, edge_list)."""
    non_neighbor: Literal["drop", "allow"] = "drop"
    """A message between nodes that are not neighbours right now: `drop` it (reason "no_link") or `allow` it over a direct link."""
    link: LinkConfig = Field(default_factory=LinkConfig)
    """Per directed link: latency, bandwidth, FIFO queue."""
    access: AccessConfig = Field(default_factory=AccessConfig)
    """Per-node uplink/downlink capacity shared by the node's links."""
    loss: Loss = Field(default_factory=NoLoss)
    """Packet loss (`model`: none, bernoulli, gilbert_elliott), MTU and scheduled outages."""
    transport: TransportConfig = Field(default_factory=TransportConfig)
    """Datagram (loss drops) or reliable (loss delays) delivery."""
    churn: Churn = Field(default_factory=NoChurn)
    """Node availability (`model`: none, sessions, trace), late joiners, permanent failures, offline policy."""
    stragglers: Stragglers = Field(default_factory=NoStragglers)
    """Compute speed per node (`model`: none, fraction, list, dist) and transient slowdowns."""
    dynamics: Dynamics = Field(default_factory=StaticDynamics)
    """Time-varying topology (`model`: static, resample, markov, mobility)."""

    @model_validator(mode="after")
    def _mobility_owns_topology(self):
        if isinstance(self.dynamics, MobilityDynamics) and "topology" in self.model_fields_set:
            raise ValueError("dynamics.model 'mobility' builds the graph from node positions; remove `topology`")
        return self

    # ------------------------------------------------------------------ files

    def file_fields(self) -> list[tuple[str, str]]:
        """(key path, value) of every field that names a user file (shipped names
        left out), so a caller can vet the files before `check` reads them."""
        from .tracefiles import SHIPPED_BANDWIDTH, SHIPPED_LATENCY

        out: list[tuple[str, str]] = []
        if isinstance(self.topology, EdgeListTopology):
            out.append(("topology.path", self.topology.path))
        lat = self.link.latency
        if isinstance(lat, TraceLatency):
            if lat.file not in SHIPPED_LATENCY:
                out.append(("link.latency.file", lat.file))
            if lat.servers is not None:
                out.append(("link.latency.servers", lat.servers))
        if self.link.bandwidth is not None and self.link.bandwidth.trace not in SHIPPED_BANDWIDTH:
            out.append(("link.bandwidth.trace", self.link.bandwidth.trace))
        if isinstance(self.churn, TraceChurn):
            out.append(("churn.file", self.churn.file))
        return out

    # ------------------------------------------------------------------ semantic checks
