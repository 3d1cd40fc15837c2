"""Gossip protocols: *when* agents train, send and merge, each owning its loop.

A protocol decides virtual times (SimPy processes) and drives the exchange
(exchange.py: what goes on each link, what is merged) through `SimulationAPI`
(api.py); it never waits for a tensor except where `compute_time: measured`
needs wall-clock durations. `sync` runs rounds with
a barrier (D-PSGD style); `async` lets every agent loop train -> send ->
merge at its own pace, with evaluations every `eval_every_s` virtual seconds.
A new protocol is one class here with an `async drive()`, registered in
`PROTOCOLS`.
"""

from __future__ import annotations

from typing import Any

from parse_actors.engine.api import AgentView, SimulationAPI
from parse_actors.engine.messages import BranchMessage
from parse_actors.engine.requests import TrainAndExport


class Protocol:
    """What every protocol shares: the exchange it drives (exchange.py) and the cost
    model. Subclasses own their SimPy processes and nothing else."""

    name = "base"
    only_fresh_choco = False
    """CHOCO consensus steps only over neighbours heard from since the last step."""

    def __init__(self, sim: SimulationAPI):
        self.sim = sim
        self.env = sim.env
        self.net = sim.net
        self.cfg = sim.sc.protocol
        self.exchange = sim.exchange

    async def drive(self) -> None:
        raise NotImplementedError

    def counters(self) -> dict:
        """Protocol counts for summary.json."""
        return {"refused_on_receipt": self.exchange.refused}

    def clock(self, rnd: int) -> int:
        """The sharing policy's phase clock (see agents/exchange.py): the round in sync mode."""
        return rnd

    @property
    def staleness(self) -> int | None:
        """The bound the hosts apply when merging, in rounds (None: the protocol applied its own)."""
        return self.sim.sc.aggregation.staleness

    def work(self, v: AgentView) -> float:
        """Virtual seconds of one local training phase: the cost model, never wall time."""
        tr = self.sim.sc.train
        return self.net.compute_time(v.aid, tr.local_steps * tr.batch_size * v.cost_per_sample)

    def busy(self, src: int, dst: int, key: str) -> bool:
        """Whether a message for this branch and neighbour must wait (never, in sync rounds)."""
        return False

    def sent(self, src: int, dst: int, key: str, ev: Any) -> None:
        pass

    def train_and_send(self, v: AgentView, rnd: int, pre: tuple | None = None) -> tuple[Any, list]:
        """Submit local training + export, then put its messages on the network (one per
        branch per neighbour that the exchange lets through); their delivery events."""
        v.updates += 1
        stats_ref, out = self.exchange.export(v, rnd, self.clock(rnd), self.busy, pre)
        evs = []
        for j, k, nbytes, kind, msg in out:
            ev = self.sim.send(v.aid, j, nbytes, kind, msg)
            self.sent(v.aid, j, k, ev)
            evs.append(ev)
        return stats_ref, evs

    def merge(self, v: AgentView, rnd: int, inbox: list[BranchMessage]) -> Any:
        """Submit the merge of what arrived (exchange.py: the receipt check, one entry per export)."""
        return self.exchange.merge(v, rnd, self.clock(rnd), inbox, self.staleness, self.only_fresh_choco)


class SyncProtocol(Protocol):
    """Rounds with a barrier. Agents offline at a round's start skip it; messages
    that miss the barrier (round_timeout_s) are merged the round after, or
    ignored by the staleness bound."""

    name = "sync"

    async def drive(self) -> None:
        sim = self.sim
        rounds = self.cfg.rounds
        measured_mode = sim.sc.engine.compute_time == "measured"
        async for rnd in sim.periods(rounds):
            if self.exchange.tracking:
                await self.exchange.measure_changes(rnd, self.clock(rnd))
            measured = await self._measure_round(rnd) if measured_mode else None
            out: dict = {}
            sim.run_until(self.env.process(self.round(rnd, out, measured)))
            if sim.dry:
                continue
            evaluate = (rnd + 1) % self.cfg.eval_every == 0 or rnd == rounds - 1
            await sim.close_period(rnd, out["stats"], out["active"], evaluate)

    async def _measure_round(self, rnd: int) -> dict | None:
        """compute_time: measured: run this round's local training first and time it
        (wall clock: not reproducible); the timeline then uses those durations."""
        sim = self.sim
        if sim.dry:
            return None
        pending = {}
        tr = sim.sc.train
        for v in sim.views:
            if self.net.is_online(v.aid):
                keys = sorted({k for ks in self.exchange.plan(v, self.clock(rnd)).values() for k in ks})
                stats, payload = sim.call(v.host, TrainAndExport(v.aid, tr.local_steps, tr.batch_size, keys))
                pending[v.aid] = (stats, payload, set(keys))
        results = await sim.get([p[0] for p in pending.values()])
        return {aid: (res["wall_s"], *pending[aid]) for aid, res in zip(pending, results)}

    def round(self, rnd: int, out: dict, measured: dict | None = None):
        """SimPy process of one round; `measured` maps agent -> (wall seconds, stats,
        payload, keys) of a training already run, else the cost model applies."""
        sim = self.sim
        out["t_start"] = self.env.now
        sim.rediscover()
        active = [v for v in sim.views if self.net.is_online(v.aid)]
        stats: dict[int, Any] = {}
        procs = [self.env.process(self._agent(v, rnd, stats, (measured or {}).get(v.aid))) for v in active]
        barrier = self.env.all_of(procs)
        if self.cfg.round_timeout_s is not None:
            barrier = barrier | self.env.timeout(self.cfg.round_timeout_s)
        yield barrier
        for v in active:
            if v.aid in stats and self.net.is_online(v.aid):
                inbox, v.inbox = v.inbox, []
                self.merge(v, rnd, inbox)
        out.update(t_end=self.env.now, active=len(active), stats=stats)

    def _agent(self, v: AgentView, rnd: int, stats: dict, measured: tuple | None = None):
        if measured is None:
            yield self.env.timeout(self.work(v))
        else:
            yield self.env.timeout(self.net.compute_time(v.aid, measured[0]))
        if not self.net.is_online(v.aid):
            return  # went down while training: this round's work is lost
        stats[v.aid], evs = self.train_and_send(v, rnd, None if measured is None else measured[1:])
        if evs:
            yield self.env.all_of(evs)


class AsyncProtocol(Protocol):
    """No global round: each agent loops train -> send -> merge what has arrived.

    Only the newest version of each (sender, branch) in an inbox is merged;
    versions older than `aggregation.staleness` of the receiver's own cycles
    (in virtual time) are ignored.
    """

    name = "async"
    staleness = None  # applied in `_loop`, in virtual time: a sender's cycle says nothing of the receiver's
    only_fresh_choco = True

    def __init__(self, sim: SimulationAPI):
        super().__init__(sim)
        self.cycles = {v.aid: 0 for v in sim.views}
        self.stats: dict[int, Any] = {}
        self.in_flight: dict[tuple[int, int, str], Any] = {}
        self.skipped = 0

    def counters(self) -> dict:
        return {**super().counters(), "async_sends_skipped": self.skipped}

    def clock(self, rnd: int) -> int:
        """The index of the current evaluation period: every agent agrees on it (an
        agent's own cycle count would put neighbours in different phases)."""
        return int(self.env.now // self.cfg.eval_every_s)

    async def drive(self) -> None:
        sim = self.sim
        for v in sim.views:
            self.env.process(self._loop(v))
        async for k in sim.periods(self.cfg.rounds):
            sim.run_until((k + 1) * self.cfg.eval_every_s)
            stats, self.stats = self.stats, {}
            if sim.dry:
                continue
            active = sum(self.net.is_online(v.aid) for v in sim.views)
            await sim.close_period(k, stats, active, True)

    def busy(self, src: int, dst: int, key: str) -> bool:
        """With `send_buffer: latest`, a branch is not queued for a neighbour while
        its previous version to that neighbour is still in flight: a fast agent
        on a thin link sends its newest state instead of an ever longer queue."""
        if self.cfg.send_buffer != "latest":
            return False
        ev = self.in_flight.get((src, dst, key))
        if ev is not None and not ev.processed:
            self.skipped += 1
            return True
        return False

    def sent(self, src: int, dst: int, key: str, ev: Any) -> None:
        if self.cfg.send_buffer == "latest":
            self.in_flight[(src, dst, key)] = ev

    def _loop(self, v: AgentView):
        sim = self.sim
        staleness = sim.sc.aggregation.staleness
        while True:
            if not self.net.is_online(v.aid):
                yield sim.online_event(v.aid)
                continue
            sim.rediscover([v])
            t0 = self.env.now
            yield self.env.timeout(self.work(v))
            if not self.net.is_online(v.aid):
                continue
            cycle = self.cycles[v.aid]
            self.stats[v.aid], _ = self.train_and_send(v, cycle)
            cycle_time = max(self.env.now - t0, 1e-12)
            newest: dict[tuple[int, str], BranchMessage] = {}
            choco = []  # CHOCO differences: every delivered one is applied (the sender counted it), in order
            for m in v.inbox:
                if m.choco:
                    choco.append(m)
                elif self.env.now - m.t_send <= staleness * cycle_time or staleness == 0 and m.t_send >= t0:
                    newest[(m.sender, m.key)] = m
            v.inbox = []
            # Each message keeps its own export (sender, sender's cycle): a sender's newest
            # copies of two branches may come from different exports.
            self.merge(v, cycle, list(newest.values()) + choco)
            self.cycles[v.aid] = cycle + 1
            if not sim.sc.train.local_steps:
                yield self.env.timeout(1e-3)  # never spin at one instant


PROTOCOLS: dict[str, type[Protocol]] = {"sync": SyncProtocol, "async": AsyncProtocol}
