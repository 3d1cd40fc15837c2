"""One branch exchange, for every protocol: what goes on each link, and what is merged.

Protocols (protocols.py) only decide *when* an agent exports and merges (SimPy
processes); everything about *what* is exchanged lives here, with its own state
and checkpoint: the sharing policy's answer per link (computed once per clock,
shared by the send plan and the receipt check), per-link payload budgets and
their deferral state (agents/budget.py), codecs, CHOCO message numbers and
outcomes, and `priority: change` measurements. Sync and async gossip run the
same code; the only differences they pass in are the clock, which sends are
busy (async `send_buffer: latest`), and the staleness bound.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from parse_actors.agents import accepted, plan_exchange
from parse_actors.agents.budget import ALL_KINDS, Candidate, LinkState, schedule, starvation_bound
from parse_actors.agents.compression import wire_nbytes_for
from parse_actors.agents.exchange import degrees
from parse_actors.engine.api import AgentView, SimulationAPI
from parse_actors.engine.messages import BranchMessage
from parse_actors.engine.requests import (Aggregate, BranchChanges, ExchangeSpec, MergeEntry, MergeExchange,
                                          MergeSpec, TrainAndExchange, TrainAndExport)


class Exchange:
    def __init__(self, sim: SimulationAPI, policy: Any):
        self.sim = sim
        self.cfg = cfg = sim.sc.protocol
        self.policy = RememberedPolicy(policy)
        self.refused = 0  # branches that arrived but the receiver's policy does not exchange with the sender
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

    # -- the policy's answers ----------------------------------------------------------
    def plan(self, v: AgentView, clock: int) -> dict[int, list[str]]:
        """Which branches go to which current neighbour, from what this agent has learned."""
        return plan_exchange(self.policy, v.capabilities,
                             {j: v.known.get(j) for j in self.sim.net.neighbors(v.aid)}, clock)

    def accepted(self, v: AgentView, sender: int, clock: int) -> frozenset[str]:
        """The branches `v` may merge from `sender`: the same answer its plan uses."""
        return accepted(self.policy, v.capabilities, v.known.get(sender), clock)

    # -- sizes and budgets -------------------------------------------------------------
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
        return b.nbytes(self.sim.net.link_rate(src, dst))

    def note_control(self, src: int, dst: int, nbytes: int) -> None:
        """A capability message went on src->dst: it counts against that link's next exchange."""
        if self.budgeted:
            self.control[(src, dst)] = self.control.get((src, dst), 0) + nbytes

    async def measure_changes(self, rnd: int, clock: int) -> None:
        """priority: change: how far each branch moved since it was last sent to each
        neighbour, measured on the hosts at the round's start (after the last merge);
        small dicts, awaited before the round's timeline. Replayed from the log when dry."""
        sim = self.sim
        if sim.dry:
            self.changes = self.change_log.get(rnd, {})
            return
        refs = {}
        for v in sim.views:
            if sim.net.is_online(v.aid):
                plan = self.plan(v, clock)
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
            self.sim.log.debug("budget", t=self.sim.env.now, src=v.aid, dst=j, round=rnd, budget=budget,
                               bytes=spent + s.nbytes, control_bytes=spent, sent=[c.key for c in s.send],
                               deferred=s.counts("deferred"), oversize=s.counts("oversize"),
                               **({"change": {k: (None if math.isinf(x) else round(x, 6)) for k, x in change.items()}}
                                  if change is not None else {}))
        return [c.key for c in s.send]

    # -- CHOCO outcomes ------------------------------------------------------------------
    def on_outcome(self, src: int, seq: int, delivered: bool) -> None:
        """A CHOCO message of `src` was delivered or lost: its host learns it at its next call."""
        self.outcomes.setdefault(src, []).append([seq, delivered])

    def take_outcomes(self, aid: int) -> list:
        return self.outcomes.pop(aid, [])

    # -- the send half ---------------------------------------------------------------------
    def export(self, v: AgentView, rnd: int, clock: int, busy: Callable[[int, int, str], bool],
               pre: tuple | None = None) -> tuple[Any, list[tuple[int, str, int, str, BranchMessage]]]:
        """Submit v's local training + export for its exchange `rnd` (its round or cycle),
        and the messages that go out: (neighbour, key, wire bytes, kind, message) per
        branch per neighbour, those not `busy` that fit the link's budget.

        `pre`: (stats, payload, keys) of a training already done (measured compute time)."""
        sim = self.sim
        plan = self.plan(v, clock)
        tr = sim.sc.train
        if pre is not None:
            stats_ref, payload, exported = pre
            plan = {j: [k for k in ks if k in exported] for j, ks in plan.items()}
            plan = {j: ks for j, ks in plan.items() if ks}
        deg = degrees(plan)  # on the plan, not on what fits: Metropolis weights stay symmetric
        # What goes on each link: sizes only, decided before any tensor exists.
        sends: list[tuple[int, str]] = []
        for j, ks in plan.items():
            ks = [k for k in ks if not busy(v.aid, j, k)]
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
        header = self.cfg.header_bytes
        out = []
        n_choco = 0
        for j, k in sends:
            info = caps[k]
            is_choco = info.kind in self.choco_kinds
            msg = BranchMessage(v.aid, rnd, k, payload, deg[k], sim.env.now, choco=is_choco,
                                seq=seq0 + n_choco if is_choco else -1)
            n_choco += is_choco
            out.append((j, k, header + self.size(info), info.kind, msg))
        return stats_ref, out

    # -- the merge half --------------------------------------------------------------------
    def merge(self, v: AgentView, rnd: int, clock: int, inbox: list[BranchMessage], staleness: int | None,
              only_fresh: bool = False) -> Any:
        """Submit the per-branch average of what arrived: one entry per export (sender,
        the sender's round or cycle), each branch read from the payload of the message
        that carried it. The receiver's policy is applied on receipt (the one receipt
        check): a branch it would not exchange with the sender now (e.g. another Harmony
        phase) is refused. CHOCO messages are exempt: both ends of a link keep public
        copies that must see every delivered message (the consensus step itself only
        runs over my plan's branches). `staleness`: the hosts' bound in rounds (None:
        the protocol applied its own); `only_fresh`: CHOCO steps only over neighbours
        heard from since the last step (async)."""
        allowed: dict[int, frozenset[str]] = {}
        kept = []
        for m in inbox:
            if m.sender not in allowed:
                allowed[m.sender] = self.accepted(v, m.sender, clock)
            if m.choco or m.key in allowed[m.sender]:
                kept.append(m)
        self.refused += len(inbox) - len(kept)
        inbox = kept
        if self.structured:
            return self._merge_compressed(v, rnd, clock, inbox, staleness, only_fresh)
        if not inbox:
            return None
        metas, payloads = [], []
        for (sender, r), msgs in _by_export(inbox).items():
            metas.append(MergeEntry(sender, r, [m.key for m in msgs], {m.key: m.degree for m in msgs}))
            payloads.append(msgs[0].payload)
        my_deg = degrees(self.plan(v, clock))
        return self.sim.call(v.host, Aggregate(v.aid, rnd, staleness, my_deg, metas, tuple(payloads)))

    def _merge_compressed(self, v: AgentView, rnd: int, clock: int, inbox: list[BranchMessage],
                          staleness: int | None, only_fresh: bool) -> Any:
        """Plain or naive messages are averaged as usual; CHOCO messages are applied to
        the public copies in delivery (inbox) order, every one of them, then one
        consensus step per CHOCO branch over every neighbour of my plan."""
        choco = [m for m in inbox if m.choco]
        payloads: list = []
        index: dict[int, int] = {}

        def ref(p):
            if id(p) not in index:
                index[id(p)] = len(payloads)
                payloads.append(p)
            return index[id(p)]

        metas = [MergeEntry(s, r, [m.key for m in msgs], {m.key: m.degree for m in msgs}, ref(msgs[0].payload))
                 for (s, r), msgs in _by_export([m for m in inbox if not m.choco]).items()]
        received = [[m.sender, m.key, ref(m.payload), m.degree, m.seq] for m in choco]
        plan = self.plan(v, clock)
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
                         only_fresh=only_fresh, staleness=staleness)
        return self.sim.call(v.host, MergeExchange(v.aid, rnd, degrees(plan), metas, spec, tuple(payloads)))

    # -- counters and checkpoints --------------------------------------------------------------
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
        """Why `load_state` cannot read `st` (a checkpoint's exchange state), or None:
        checked by loading it into a bare object (load_state only assigns attributes),
        before a resume starts anything."""
        try:
            cls.load_state(cls.__new__(cls), st)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            what = f"no {e.args[0]!r}" if isinstance(e, KeyError) and e.args else (str(e) or type(e).__name__)
            return f"not a protocol state the exchange can load ({what.splitlines()[0][:200]})"
        return None

    def preload(self, st: dict) -> None:
        """What a dry replay of the finished periods needs before `load_state` (resume)."""
        log: dict[int, dict] = {}
        for r, a, j, k, x in st.get("change_log", []):
            log.setdefault(int(r), {}).setdefault(int(a), {}).setdefault(int(j), {})[k] = float(x)
        self.change_log = log


def _by_export(msgs: list[BranchMessage]) -> dict[tuple[int, int], list[BranchMessage]]:
    """Messages grouped by the export that carried them: (sender, the sender's round or
    cycle) names one payload. In (round, sender, key) order."""
    groups: dict[tuple[int, int], list[BranchMessage]] = {}
    for m in sorted(msgs, key=lambda m: (m.round, m.sender, m.key)):
        groups.setdefault((m.sender, m.round), []).append(m)
    return groups


class RememberedPolicy:
    """A sharing policy whose answers are remembered for the current clock. Policies
    are pure functions of (my capabilities, theirs, clock), and capability dicts are
    interned (`Simulation.intern_caps`), so each distinct pair is evaluated once per
    clock, and the send plan, the receipt check and the merge's degrees all read
    that one answer."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.clock: int | None = None
        self.memo: dict[tuple[int, int], tuple[Any, Any, list[str]]] = {}

    def select(self, mine: Any, theirs: Any, clock: int = 0) -> list[str]:
        if clock != self.clock:
            self.memo.clear()
            self.clock = clock
        hit = self.memo.get((id(mine), id(theirs)))
        if hit is None or hit[0] is not mine or hit[1] is not theirs:  # (the memo keeps both alive: ids stay theirs)
            hit = self.memo[(id(mine), id(theirs))] = (mine, theirs, self.policy.select(mine, theirs, clock))
        return list(hit[2])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def __repr__(self) -> str:
        return repr(self.policy)
