"""Checkpoints on disk and `--resume`: continue an interrupted run to the same metrics.

The virtual timeline is recomputed from the seed: finished periods are
replayed *dry* (network, churn and compute times run; no host call is made,
no event is logged), then the agents' saved state is put back and the run
goes on. Exports of messages still waiting or in flight at the checkpoint are
saved with it, because they are merged after it.
"""

from __future__ import annotations

from typing import Any

from parse_actors import logs
from parse_actors.engine import checkpoint as ckpt
from parse_actors.engine.api import CoordinatorAPI
from parse_actors.engine.requests import Capabilities, Restore
from parse_actors.scenario.fingerprint import fingerprint



class Resume:
    def __init__(self, sim: CoordinatorAPI, state: dict | None):
        self.sim = sim
        self.state = state
        self.payloads: dict[tuple[int, int], Any] = (
            {(s, r): p for s, r, p in state.get("payloads", [])} if state else {})
        self.last: dict | None = None  # the last Ray snapshot as a checkpoint, for a run that gets stuck
        self.on_disk: int | None = state["round"] if state else None  # the round checkpoint.pt holds now

    @property
    def start(self) -> int:
        """First period that runs for real (0 for a fresh run)."""
        return 0 if self.state is None else self.state["round"] + 1

    def payload(self, sender: int, rnd: int) -> Any:
        """While replaying: the saved export of (sender, round), if a message of it
        was still waiting or in flight at the checkpoint."""
        return self.payloads.get((sender, rnd))

    async def restore(self) -> None:
        """After replaying the finished periods' timeline: put the agents' saved state back."""
        sim = self.sim
        by_host: dict[int, dict] = {}
        for aid, sd in self.state["states"].items():
            by_host.setdefault(sim.views[aid].host, {})[aid] = sd
        # Straight to the hosts, unjournalled (the journal's snapshot below starts from here);
        # sensor changes replayed so far are sent first, so they reach the hosts before the states.
        with sim.hosts.direct() as hosts:
            await hosts.get([hosts.call(h, Restore(part)) for h, part in by_host.items()])
            caps = await hosts.get([hosts.call(sim.views[a].host, Capabilities(a)) for a in range(len(sim.views))])
        for v, c in zip(sim.views, caps):
            v.capabilities = sim.intern_caps(c)
        if "protocol" in self.state:
            sim.exchange.load_state(self.state["protocol"])
        sim.round = self.state["round"]
        sim.log.info("resume", t=sim.env.now, from_round=sim.round + 1)
        await sim.hosts.snapshot()

    async def save(self, rnd: int) -> None:
        """Period-boundary checkpoint on disk."""
        sim = self.sim
        states = await sim.hosts.checkpoint()
        needed = self.needed()
        values = await sim.get(list(needed.values()))
        payloads = [[s, r, p] for (s, r), p in zip(needed, values)]
        ckpt.save(sim.run_dir.path, self.state_at(rnd, states, payloads))
        self.on_disk = rnd
        sim.recorder.flush()

    def needed(self) -> dict[tuple[int, int], Any]:
        """Exports still needed after this point, by (sender, round): of messages
        waiting in an inbox or in flight (they are merged after a checkpoint)."""
        sim = self.sim
        waiting = [m for v in sim.views for m in v.inbox] + list(sim.flying.values())
        needed = {(m.sender, m.round): m.payload for m in waiting}
        return dict(zip(needed, sim.hosts.refs(list(needed.values()))))  # backend references, not placeholders

    def state_at(self, rnd: int, states: dict[int, dict], payloads: list) -> dict:
        """A checkpoint's content after period `rnd`: `states` every agent's state,
        `payloads` the exports of `needed()` as [sender, round, value]."""
        sim = self.sim
        rec = {k: list(v) for k, v in sim.recorder.state().items()}
        return {"format": ckpt.FORMAT, "scenario": fingerprint(sim.sc), "round": rnd, "t": sim.env.now,
                "states": states, "payloads": payloads, **rec, "messages": dict(sim.messages),
                "protocol": sim.exchange.state(), "seed": sim.sc.seed, "events_offset": logs.events_offset()}

    def keep(self, states: list[dict], payloads: list) -> None:
        """At each Ray snapshot (journal.py): what a checkpoint would hold, kept in
        memory for `write_last` (none before the first period finished)."""
        sim = self.sim
        if sim.round < 0 or sim.dry:
            self.last = None
            return
        merged: dict[int, dict] = {}
        for part in states:
            merged.update(part)
        self.last = self.state_at(sim.round, merged, payloads)

    def write_last(self) -> bool:
        """A run that cannot go on: the tables back to the last snapshot, written
        as the checkpoint `--resume` continues from. False when there is none."""
        sim, snap = self.sim, self.last
        if snap is None:
            return False
        ckpt.save(sim.run_dir.path, snap)
        self.on_disk = snap["round"]
        rec = sim.recorder
        rec.rows = list(snap["rows"])
        rec.conflict_rows = list(snap.get("conflict_rows", []))
        rec.slice_rows = list(snap.get("slice_rows", []))
        sim.round = snap["round"]
        sim.messages = dict(snap["messages"])
        return True
