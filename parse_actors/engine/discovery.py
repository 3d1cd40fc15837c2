"""Capability discovery without a server, and sensor changes that alter capabilities.

Each agent learns what its neighbours hold only from their capability
messages (kind `control`, counted in the traffic): sent at start, on new
edges, to and from agents that come back online, and after a sensor is lost
or gained (`data.schedule`).
"""

from __future__ import annotations

from typing import Any

from parse_actors.agents import capability_nbytes
from parse_actors.engine.api import CoordinatorAPI
from parse_actors.engine.messages import CapabilityMessage
from parse_actors.engine.requests import SetModalities



class Discovery:
    def __init__(self, sim: CoordinatorAPI):
        self.sim = sim
        self.pending: list[tuple[int, Any]] = []  # (agent, reference to its new capabilities)
        self.in_flight: set[tuple[int, int]] = set()
        self._sizes: dict[int, tuple[Any, int]] = {}  # id(capabilities) -> (them, bytes of their message)

    def send(self, src: int, dst: int) -> Any:
        sim = self.sim
        caps = sim.views[src].capabilities
        size = sim.sc.protocol.header_bytes + self.nbytes(caps)
        self.in_flight.add((src, dst))
        return sim.send(src, dst, size, "control", CapabilityMessage(src, caps))

    def nbytes(self, caps) -> int:
        """capability_nbytes, once per (interned) capability dict."""
        hit = self._sizes.get(id(caps))
        if hit is None or hit[0] is not caps:
            hit = self._sizes[id(caps)] = (caps, capability_nbytes(caps))
        return hit[1]

    def exchange(self, pairs):
        """SimPy process: send the capability messages of `pairs` and wait for them."""
        net = self.sim.net
        evs = [self.send(a, b) for a, b in pairs if net.is_online(a)]
        if evs:
            yield self.sim.env.all_of(evs)

    def missing(self, agents=None) -> list[tuple[int, int]]:
        """(src, dst) pairs of online neighbours where dst does not know src yet:
        at start, on new edges, and for agents that were offline when their
        neighbours introduced themselves."""
        sim, net = self.sim, self.sim.net
        pairs = []
        for v in sim.views if agents is None else agents:
            if not net.is_online(v.aid):
                continue
            for j in net.neighbors(v.aid):
                if v.aid not in sim.views[j].known and (v.aid, j) not in self.in_flight and net.is_online(j):
                    pairs.append((v.aid, j))
        return pairs

    def rediscover(self, agents=None) -> None:
        """Send the capability messages that are missing (each agent introduces itself)."""
        pairs = self.missing(agents)
        if pairs:
            self.sim.env.process(self.exchange(pairs))

    # -- sensors -------------------------------------------------------------------
    def modality_event(self, ev):
        """SimPy process: agent `ev.agent` loses or gains a modality at `ev.t_s`."""
        sim = self.sim
        yield sim.env.timeout(max(0.0, ev.t_s - sim.env.now))
        v = sim.views[ev.agent]
        mods = set(v.modalities)
        mods = mods - {ev.modality} if ev.action == "lose" else mods | {ev.modality}
        v.modalities = tuple(m for m in sim.fd.modalities if m in mods)
        ref = sim.call(v.host, SetModalities(v.aid, list(v.modalities)))
        self.pending.append((v.aid, ref))
        sim.log.info("modality", t=sim.env.now, agent=v.aid, modality=ev.modality, action=ev.action,
                     modalities=list(v.modalities))

    async def apply_changes(self) -> None:
        """New capabilities (after sensor loss/gain) are learned here and advertised to neighbours."""
        if not self.pending:
            return
        sim = self.sim
        pending, self.pending = self.pending, []
        results = await sim.get([r for _, r in pending])
        pairs = []
        for (aid, _), caps in zip(pending, results):
            sim.views[aid].capabilities = sim.intern_caps(caps)
            pairs.extend((aid, j) for j in sim.net.neighbors(aid))
        sim.env.process(self.exchange(pairs))

    # -- netem observer hooks ---------------------------------------------------------
    def on_message(self, rec: Any, msg: CapabilityMessage) -> None:
        self.in_flight.discard((rec.src, rec.dst))
        if rec.status == "delivered":
            self.sim.views[rec.dst].known[msg.sender] = msg.capabilities

    def on_topology(self, added: list) -> None:
        """A new edge's ends re-introduce themselves (what they learned before may be stale)."""
        views = self.sim.views
        for a, b in added:
            views[a].known.pop(b, None)
            views[b].known.pop(a, None)
