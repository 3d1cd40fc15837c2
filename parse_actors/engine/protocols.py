"""Gossip protocols: *when* agents train, send and merge, each owning its loop.

A protocol decides virtual times (SimPy processes) and submits host calls
through `SimulationAPI` (api.py); it never waits for a tensor except where
`compute_time: measured` needs wall-clock durations. `sync` runs rounds with
a barrier (D-PSGD style); `async` lets every agent loop train -> send ->
merge at its own pace, with evaluations every `eval_every_s` virtual seconds.
A new protocol is one class here with an `async drive()`, registered in
`PROTOCOLS`.
"""

from __future__ import annotations

import math
from typing import Any

from parse_actors.agents.budget import ALL_KINDS, Candidate, LinkState, schedule, starvation_bound
from parse_actors.agents.compression import wire_nbytes_for
from parse_actors.agents.exchange import degrees
from parse_actors.engine.api import AgentView, SimulationAPI
from parse_actors.engine.messages import BranchMessage
from parse_actors.engine.requests import (Aggregate, BranchChanges, ExchangeSpec, MergeExchange, MergeSpec,
                                          TrainAndExchange, TrainAndExport)


class Protocol:
    name = "base"

    def __init__(self, sim: SimulationAPI):
        self.sim = sim
        self.env = sim.env
        self.net = sim.net
        self.cfg = cfg = sim.sc.protocol
        self.refused = 0  # branches that arrived but the receiver's policy does not exchange with the sender
        # Budgets, priorities and compression (protocol.payload_budget, priority, compression).
        self.budgeted = cfg.payload_budget is not None
        self.codecs = {k: cfg.codec_of(k) for k in ALL_KINDS}
        self.compressed = cfg.lossy()
        self.tracking = cfg.priority == "change" and self.budgeted  # hosts measure change since last sent
        self.structured = self.compressed or self.tracking  # train_and_exchange / merge_exchange payloads
        self.choco_kinds = ({k for k, c in self.codecs.items() if c.name != "none"}
                            if self.compressed and cfg.compressed_averaging == "choco" else set())
        self.links: dict[tuple[int, int], LinkState] = {}  # deferral state per directed link
        self.deferred: dict[tuple[int, int, str], int] = {}
        self.oversize: dict[tuple[int, int, str], int] = {}
        self.control: dict[tuple[int, int], int] = {}  # capability bytes sent since the link's last exchange
        self.max_branches = 0  # most candidate branches seen on one link (starvation bound)
        self.outcomes: dict[int, list[list]] = {}  # CHOCO: sender -> [[seq, delivered]] not yet told its host
        self.choco_seq: dict[int, int] = {}  # CHOCO: next message number of each agent (mirrors its host)
        self.changes: dict[int, dict[int, dict[str, float]]] = {}  # priority change: this round's values
        self.change_log: dict[int, dict] = {}  # round -> changes (checkpointed: a dry replay schedules with them)

    async def drive(self) -> None:
        raise NotImplementedError

    @property
    def staleness(self) -> int | None:
        """The bound the hosts apply when merging, in rounds (None: the protocol applied its own)."""
        return self.sim.sc.aggregation.staleness

    def counters(self) -> dict:
        """Protocol counts for summary.json."""
        return {"refused_on_receipt": self.refused}

    def clock(self, rnd: int) -> int:
        """The sharing policy's phase clock (see agents/exchange.py): the round in sync mode."""
        return rnd

    # -- budgets and compression -------------------------------------------------
    def size(self, info) -> int:
        """Wire bytes of one branch (no header): its codec's exact size."""
        codec = self.codecs.get(info.kind)
        if codec is None or codec.name == "none":
            return info.nbytes
        return wire_nbytes_for(info, codec)

    def link_budget(self, src: int, dst: int) -> int | None:
        """Bytes the link src->dst may carry in this exchange (None: no bound)."""
        b = self.cfg.payload_budget
        if b is None or isinstance(b, int):
            return b
        return b.nbytes(self.net.link_rate(src, dst))

    def note_control(self, src: int, dst: int, nbytes: int) -> None:
        """A capability message went on src->dst: it counts against that link's next exchange."""
        if self.budgeted:
            self.control[(src, dst)] = self.control.get((src, dst), 0) + nbytes

    async def measure_changes(self, rnd: int) -> None:
        """priority: change: how far each branch moved since it was last sent to each
        neighbour, measured on the hosts at the round's start (after the last merge);
        small dicts, awaited before the round's timeline. Replayed from the log when dry."""
        sim = self.sim
        if sim.dry:
            self.changes = self.change_log.get(rnd, {})
            return
        refs = {}
        for v in sim.views:
            if self.net.is_online(v.aid):
                plan = sim.plan(v, self.clock(rnd))
                if plan:
                    refs[v.aid] = sim.call(v.host, BranchChanges(v.aid, plan))
        vals = await sim.get(list(refs.values()))
        self.changes = {aid: {int(j): d for j, d in val.items()} for aid, val in zip(refs, vals)}
        self.change_log[rnd] = self.changes

    def _schedule(self, v: AgentView, j: int, keys: list[str], rnd: int) -> list[str]:
        """The keys that fit this exchange's budget on v->j, in sending order; counts the rest."""
        caps = v.capabilities
        cands = [Candidate(k, caps[k].kind, self.size(caps[k])) for k in keys]
        self.max_branches = max(self.max_branches, len(cands))
        budget = self.link_budget(v.aid, j)
        st = self.links.setdefault((v.aid, j), LinkState())
        spent = self.control.pop((v.aid, j), 0)
        header = self.cfg.header_bytes
        change = self.changes.get(v.aid, {}).get(j) if self.tracking else None
        s = schedule(cands, header, budget, st, self.cfg.priority, self.cfg.defer_limit, change, spent=spent)
        for table, which in ((self.deferred, s.deferred), (self.oversize, s.oversize)):
            for c in which:
                table[(v.aid, j, c.kind)] = table.get((v.aid, j, c.kind), 0) + 1
        if (s.deferred or s.oversize) and self.sim.sc.output.log_messages:
            self.sim.log.debug("budget", t=self.env.now, src=v.aid, dst=j, round=rnd, budget=budget,
                              bytes=spent + s.nbytes, control_bytes=spent, sent=[c.key for c in s.send],
                              deferred=s.counts("deferred"), oversize=s.counts("oversize"),
                              **({"change": {k: (None if math.isinf(x) else round(x, 6)) for k, x in change.items()}}
                                 if change is not None else {}))
        return [c.key for c in s.send]

    def on_outcome(self, src: int, seq: int, delivered: bool) -> None:
        """A CHOCO message of `src` was delivered or lost: its host learns it at its next call."""
        self.outcomes.setdefault(src, []).append([seq, delivered])

    def take_outcomes(self, aid: int) -> list:
        return self.outcomes.pop(aid, [])

    def payload_counters(self) -> dict:
        """summary.json: deferrals and oversize branches per kind, the longest wait
        measured on any link next to the guaranteed bound."""
        by_kind = lambda t: {k: sum(n for (_, _, kk), n in t.items() if kk == k)  # noqa: E731
                             for k in ALL_KINDS if any(kk == k for (_, _, kk) in t)}
        return {"deferred_by_kind": by_kind(self.deferred), "oversize_by_kind": by_kind(self.oversize),
                "longest_wait": max((st.longest_wait for st in self.links.values()), default=0),
                "starvation_bound": starvation_bound(self.cfg.defer_limit, self.max_branches)}

    def state(self) -> dict:
        """Checkpoint: plain ints, strings, lists and dicts."""
        return {"links": {f"{s}-{d}": st.to_dict() for (s, d), st in sorted(self.links.items())},
                "deferred": [[s, d, k, n] for (s, d, k), n in sorted(self.deferred.items())],
                "oversize": [[s, d, k, n] for (s, d, k), n in sorted(self.oversize.items())],
                "control": [[s, d, n] for (s, d), n in sorted(self.control.items())],
                "max_branches": self.max_branches,
                "outcomes": [[a, [list(o) for o in out]] for a, out in sorted(self.outcomes.items())],
                "choco_seq": [[a, n] for a, n in sorted(self.choco_seq.items())],
                "change_log": [[r, a, j, k, x] for r, per in sorted(self.change_log.items())
                               for a, nb in sorted(per.items()) for j, d in sorted(nb.items())
                               for k, x in sorted(d.items())]}

    def load_state(self, st: dict) -> None:
        self.links = {}
        for name, d in st["links"].items():
            s, _, dd = name.partition("-")
            self.links[(int(s), int(dd))] = LinkState.from_dict(d)
        self.deferred = {(int(s), int(d), k): int(n) for s, d, k, n in st["deferred"]}
        self.oversize = {(int(s), int(d), k): int(n) for s, d, k, n in st["oversize"]}
        self.control = {(int(s), int(d)): int(n) for s, d, n in st["control"]}
        self.max_branches = int(st["max_branches"])
        self.outcomes = {int(a): [[int(q), bool(ok)] for q, ok in out] for a, out in st["outcomes"]}
        self.choco_seq = {int(a): int(n) for a, n in st["choco_seq"]}
        self.preload(st)

    @classmethod
    def state_problem(cls, st: Any) -> str | None:
        """Why `load_state` cannot read `st` (a checkpoint's protocol state), or None:
        checked by loading it into a bare protocol object (load_state only assigns
        attributes), before a resume starts anything."""
        try:
            cls.load_state(cls.__new__(cls), st)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            what = f"no {e.args[0]!r}" if isinstance(e, KeyError) and e.args else (str(e) or type(e).__name__)
            return f"not a state the {cls.name} protocol can load ({what.splitlines()[0][:200]})"
        return None

    def preload(self, st: dict) -> None:
        """What a dry replay of the finished periods needs before `load_state` (resume)."""
        log: dict[int, dict] = {}
        for r, a, j, k, x in st.get("change_log", []):
            log.setdefault(int(r), {}).setdefault(int(a), {}).setdefault(int(j), {})[k] = float(x)
        self.change_log = log

    # -- shared steps ----------------------------------------------------------
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
        """Submit local training + export, then one message per branch per neighbour
        (those that fit the link's budget, when there is one).

        `pre`: (stats, payload, keys) of a training already done (measured compute time)."""
        sim = self.sim
        v.updates += 1
        plan = sim.plan(v, self.clock(rnd))
        tr = sim.sc.train
        if pre is not None:
            stats_ref, payload, exported = pre
            plan = {j: [k for k in ks if k in exported] for j, ks in plan.items()}
            plan = {j: ks for j, ks in plan.items() if ks}
        deg = degrees(plan)  # on the plan, not on what fits: Metropolis weights stay symmetric
        # What goes on each link: sizes only, decided before any tensor exists.
        sends: list[tuple[int, str]] = []
        for j, ks in plan.items():
            ks = [k for k in ks if not self.busy(v.aid, j, k)]
            if self.budgeted:
                ks = self._schedule(v, j, ks, rnd)
            sends.extend((j, k) for k in ks)
        caps = v.capabilities
        choco = [(j, k) for j, k in sends if caps[k].kind in self.choco_kinds]
        seq0 = self.choco_seq.get(v.aid, 0)
        if pre is None:
            if self.structured:
                self.choco_seq[v.aid] = seq0 + len(choco)
                keys = sorted({k for j, k in sends if caps[k].kind not in self.choco_kinds})
                spec = ExchangeSpec(codecs={k: str(c) for k, c in self.codecs.items()}, seed=sim.sc.seed,
                                    exchange=rnd, choco=[list(p) for p in choco], seq0=seq0,
                                    outcomes=self.take_outcomes(v.aid),
                                    sent=[[j, k] for j, k in sends] if self.tracking else [])
                stats_ref, payload = sim.call(v.host, TrainAndExchange(v.aid, tr.local_steps, tr.batch_size, keys, spec))
            else:
                keys = (sorted({k for ks in plan.values() for k in ks}) if not self.budgeted
                        else sorted({k for _, k in sends}))
                stats_ref, payload = sim.call(v.host, TrainAndExport(v.aid, tr.local_steps, tr.batch_size, keys))
        if sim.dry:
            payload = sim.replay_payload(v.aid, rnd)
        header = sim.sc.protocol.header_bytes
        evs = []
        n_choco = 0
        for j, k in sends:
            info = caps[k]
            is_choco = info.kind in self.choco_kinds
            msg = BranchMessage(v.aid, rnd, k, payload, deg[k], self.env.now, choco=is_choco,
                                seq=seq0 + n_choco if is_choco else -1)
            n_choco += is_choco
            ev = sim.send(v.aid, j, header + self.size(info), info.kind, msg)
            self.sent(v.aid, j, k, ev)
            evs.append(ev)
        return stats_ref, evs

    def merge(self, v: AgentView, rnd: int, inbox: list[BranchMessage]) -> Any:
        """Submit the per-branch average of what arrived: one entry per export (sender,
        the sender's round or cycle), each branch read from the payload of the message
        that carried it. The receiver's policy is applied on receipt too: a branch it would
        not exchange with the sender now (e.g. another Harmony phase) is refused. CHOCO
        messages are exempt: both ends of a link keep public copies that must see every
        delivered message (the consensus step itself only runs over my plan's branches)."""
        clock = self.clock(rnd)
        allowed: dict[int, frozenset[str]] = {}
        kept = []
        for m in inbox:
            if m.sender not in allowed:
                allowed[m.sender] = self.sim.accepted(v, m.sender, clock)
            if m.choco or m.key in allowed[m.sender]:
                kept.append(m)
        self.refused += len(inbox) - len(kept)
        inbox = kept
        if self.structured:
            return self._merge_compressed(v, rnd, inbox)
        if not inbox:
            return None
        inbox.sort(key=lambda m: (m.round, m.sender, m.key))
        groups: dict[tuple[int, int], list[BranchMessage]] = {}
        for m in inbox:
            groups.setdefault((m.sender, m.round), []).append(m)
        metas, payloads = [], []
        for (sender, r), msgs in groups.items():
            metas.append({"sender": sender, "round": r, "keys": [m.key for m in msgs],
                          "degree": {m.key: m.degree for m in msgs}})
            payloads.append(msgs[0].payload)
        my_deg = degrees(self.sim.plan(v, clock))
        return self.sim.call(v.host, Aggregate(v.aid, rnd, self.staleness, my_deg, metas, tuple(payloads)))

    def _merge_compressed(self, v: AgentView, rnd: int, inbox: list[BranchMessage]) -> Any:
        """Plain or naive messages are averaged as usual; CHOCO messages are applied to
        the public copies in delivery (inbox) order, every one of them, then one
        consensus step per CHOCO branch over every neighbour of my plan."""
        plain = sorted((m for m in inbox if not m.choco), key=lambda m: (m.round, m.sender, m.key))
        choco = [m for m in inbox if m.choco]
        payloads: list = []
        index: dict[int, int] = {}

        def ref(p):
            if id(p) not in index:
                index[id(p)] = len(payloads)
                payloads.append(p)
            return index[id(p)]

        groups: dict[tuple[int, int], list[BranchMessage]] = {}
        for m in plain:
            groups.setdefault((m.sender, m.round), []).append(m)
        metas = [{"sender": s, "round": r, "keys": [m.key for m in msgs], "degree": {m.key: m.degree for m in msgs},
                  "payload": ref(msgs[0].payload)} for (s, r), msgs in groups.items()]
        received = [[m.sender, m.key, ref(m.payload), m.degree, m.seq] for m in choco]
        plan = self.sim.plan(v, self.clock(rnd))
        steps: dict[str, list[int]] = {}
        for j in sorted(plan):
            for k in plan[j]:
                if v.capabilities[k].kind in self.choco_kinds:
                    steps.setdefault(k, []).append(j)
        outcomes = self.take_outcomes(v.aid)
        if not (metas or received or steps or outcomes):
            return None
        spec = MergeSpec(choco=received, steps=steps, outcomes=outcomes, seed=self.sim.sc.seed,
                         gammas={k: self.cfg.gamma_of(v.capabilities[k].kind) for k in steps},
                         only_fresh=self.name == "async", staleness=self.staleness)
        return self.sim.call(v.host, MergeExchange(v.aid, rnd, degrees(plan), metas, spec, tuple(payloads)))


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
            if self.tracking:
                await self.measure_changes(rnd)
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
                keys = sorted({k for ks in sim.plan(v, self.clock(rnd)).values() for k in ks})
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
