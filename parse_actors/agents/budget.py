"""Per-link payload budgets: which branches go to one neighbour in this exchange.

An *exchange* is one sync round or one async cycle of the sender, per directed
link. Every message costs `header + wire size` bytes against the link's budget
for that exchange, and the scheduler never goes over it. Candidates are ordered
by the priority rule (`kinds`: a kind order, then size, then key; `staleness`:
the branch sent longest ago to this neighbour first; `change`: the branch that
moved most since it was last sent to this neighbour first) and packed first-fit.
What does not fit is *deferred*: its newest version is a candidate again at the
next exchange with that neighbour (sending an old snapshot later is pointless),
and the deferral is counted per kind.

Aging (no starvation). A branch deferred for `defer_limit` (B) exchanges in a
row is *overdue*; overdue branches go before everything else, oldest deferral
first. Bound: with N distinct branches on the link, each fitting the budget on
its own (header + size <= budget), a branch is deferred at most
max(B, 1) + N - 1 times in a row (`starvation_bound`), i.e. it is sent within
max(B, 1) + N consecutive exchanges in which it is a candidate. Proof: it is
overdue after at most max(B, 1) deferrals; from then on the oldest overdue
candidate is sent at every exchange (it fits the empty budget); only branches
whose run of deferrals started no later than its own can be ahead of it (any
new run starts later), at most N - 1 of them, and each exchange sends one.

A branch that cannot fit even alone (header + size > budget) is never sent (the
budget is a hard bound) and is reported as `oversize`, not deferred: with a byte
budget `check_fits` refuses the scenario at load time with the codec that would
make it fit; with a `seconds:` budget the link's rate may make it fit later.
No engine, no Ray, no SimPy: the coordinator runs `schedule` on sizes alone.
The scenario keys (`protocol.payload_budget`, `priority`, ...) are in
scenario/protocol.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping, Sequence

from .branches import BranchInfo
from .compression import Codec, wire_nbytes_for

ALL_KINDS = ("control", "red", "uni", "syn", "head", "encoder")
DEFAULT_PRIORITY = ALL_KINDS
"""Default order on a thin link: protocol messages, then the small, widely shared slices, encoders last."""

Kind = Literal["control", "red", "uni", "syn", "head", "encoder"]


def kind_order(priority: Sequence[str] | str) -> dict[str, int]:
    """Rank of each kind: the listed ones in order, then the rest in the default order."""
    listed = list(priority) if not isinstance(priority, str) else []
    rest = [k for k in DEFAULT_PRIORITY if k not in listed]
    return {k: i for i, k in enumerate(listed + rest)}


def check_fits(
    budget: int | None, header: int, caps: Mapping[str, BranchInfo], codecs: Mapping[str, Codec],
    where: str = "protocol.payload_budget",
) -> None:
    """Refuse a byte budget some branch can never fit in, naming the branch and a codec that fits."""
    if budget is None:
        return
    over = []
    for key in sorted(caps):
        info = caps[key]
        codec = codecs.get(info.kind, Codec())
        size = wire_nbytes_for(info, codec)
        if header + size > budget:
            over.append((size, key, info, codec))
    if over:
        size, key, info, codec = max(over, key=lambda o: (o[0], o[1]))
        more = f" (and {len(over) - 1} more branch(es))" if len(over) > 1 else ""
        raise ValueError(
            f"{where}: {budget} bytes cannot carry branch {key}{more} ({info.kind}, {codec}): "
            f"header {header} + {size} bytes; {_fitting_codec(info, budget - header)}"
        )


def _fitting_codec(info: BranchInfo, room: int) -> str:
    for c in (Codec("fp16"), Codec("int8")):
        if wire_nbytes_for(info, c) <= room:
            return f"compression {info.kind}: {c} fits, or a larger budget"
    for f in (0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001):
        if room > 0 and wire_nbytes_for(info, Codec("topk", f)) <= room:
            return f"compression {info.kind}: {{topk: {f:g}}} fits, or a larger budget"
    return "no codec fits: raise the budget"


# ============================================================================ scheduler
@dataclass(frozen=True)
class Candidate:
    """One branch that could go to this neighbour now; `nbytes` is its wire size (no header)."""

    key: str
    kind: str
    nbytes: int


@dataclass
class LinkState:
    """Deferral state of one directed link (sender side). Plain ints: checkpointable as is."""

    exchanges: int = 0
    """Exchanges scheduled on this link so far (the next one has this index)."""
    last_sent: dict[str, int] = field(default_factory=dict)
    """Branch key -> index of the exchange that last sent it."""
    waiting_since: dict[str, int] = field(default_factory=dict)
    """Branch key -> index of the first exchange of its current run of deferrals."""
    longest_wait: int = 0
    """Most exchanges any branch has waited on this link so far (for summary.json, next to
    `starvation_bound`)."""

    def to_dict(self) -> dict:
        return {"exchanges": self.exchanges, "last_sent": dict(self.last_sent),
                "waiting_since": dict(self.waiting_since), "longest_wait": self.longest_wait}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LinkState":
        return cls(int(d["exchanges"]), {k: int(v) for k, v in d["last_sent"].items()},
                   {k: int(v) for k, v in d["waiting_since"].items()}, int(d.get("longest_wait", 0)))


@dataclass
class Schedule:
    """The outcome of one exchange on one link."""

    send: list[Candidate]
    """In sending order."""
    deferred: list[Candidate]
    oversize: list[Candidate]
    """Could not fit even alone: never sent, reported apart."""
    nbytes: int
    """Bytes on the link for this exchange, headers included (<= budget)."""

    def counts(self, which: str = "deferred") -> dict[str, int]:
        out: dict[str, int] = {}
        for c in getattr(self, which):
            out[c.kind] = out.get(c.kind, 0) + 1
        return out


def schedule(
    candidates: Iterable[Candidate],
    header: int,
    budget: int | None,
    state: LinkState,
    priority: Sequence[str] | str = DEFAULT_PRIORITY,
    defer_limit: int = 4,
    change: Mapping[str, float] | None = None,
    spent: int = 0,
) -> Schedule:
    """Pick what goes on the link now (in order) and what waits; updates `state`.

    `change`: for `priority='change'`, the branch's movement since it was last sent
    to this neighbour (e.g. `ChangeTracker.change`); missing keys count as infinite
    (never sent). `spent`: bytes this exchange already put on the link (capability
    messages): they count against the budget, so a branch that fits the budget
    alone but not what is left is deferred, not oversize (the starvation bound
    then holds for exchanges that carry no such bytes)."""
    cands = list(candidates)
    keys = [c.key for c in cands]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate candidate keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    now = state.exchanges
    rank = kind_order(priority)

    def base(c: Candidate) -> tuple:
        r = rank.get(c.kind, len(rank))
        if priority == "staleness":
            return (state.last_sent.get(c.key, -1), r, c.key)
        if priority == "change":
            ch = math.inf if change is None or c.key not in change else float(change[c.key])
            return (-ch, r, c.key)
        return (r, c.nbytes, c.key)

    def overdue(c: Candidate) -> bool:
        w = state.waiting_since.get(c.key)
        return w is not None and now - w >= defer_limit

    order = sorted(cands, key=lambda c: (0, state.waiting_since[c.key], base(c)) if overdue(c) else (1, 0, base(c)))
    send, deferred, oversize = [], [], []
    room = math.inf if budget is None else int(budget) - int(spent)
    for c in order:
        cost = header + c.nbytes
        if budget is not None and cost > budget:
            oversize.append(c)
        elif cost <= room:
            send.append(c)
            room -= cost
        else:
            deferred.append(c)
    for c in send:
        state.last_sent[c.key] = now
        state.waiting_since.pop(c.key, None)
    for c in deferred:
        w = state.waiting_since.setdefault(c.key, now)
        state.longest_wait = max(state.longest_wait, now - w + 1)
    state.exchanges = now + 1
    return Schedule(send, deferred, oversize, sum(header + c.nbytes for c in send))


def starvation_bound(defer_limit: int, n_branches: int) -> int:
    """Most consecutive deferrals of a branch that fits the budget alone: max(B, 1) + N - 1."""
    return max(defer_limit, 1) + max(n_branches, 1) - 1


class ChangeTracker:
    """How far each branch moved since it was last sent to each neighbour (for
    `priority: change`): relative L2 change ||x - x_sent|| / max(||x_sent||, tiny),
    so big and small branches compare on one scale. Snapshots are shared between
    neighbours that got the same version, so memory is one copy per distinct
    version still referenced, not one per neighbour."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, object]] = {}
        self._sent: dict[tuple[int, str], int] = {}
        self._next = 0

    def change(self, nbr: int, key: str, flat) -> float:
        """`flat`: the branch's current parameters, flattened (a torch tensor)."""
        v = self._sent.get((nbr, key))
        if v is None:
            return math.inf
        ref = self._versions[key][v]
        return float((flat - ref).norm()) / max(float(ref.norm()), 1e-12)

    def sent(self, nbrs: Iterable[int], key: str, flat) -> None:
        """Record that the current `flat` went to `nbrs` (one shared snapshot)."""
        nbrs = list(nbrs)
        if not nbrs:
            return
        v = self._next
        self._next += 1
        self._versions.setdefault(key, {})[v] = flat.detach().clone()
        for j in nbrs:
            self._sent[(j, key)] = v
        live = {vv for (_, k), vv in self._sent.items() if k == key}
        for old in [x for x in self._versions[key] if x not in live]:
            del self._versions[key][old]

    def forget(self, nbr: int) -> None:
        """A neighbour left: drop its references."""
        for jk in [jk for jk in self._sent if jk[0] == nbr]:
            del self._sent[jk]

    def state_dict(self) -> dict:
        return {"versions": {k: dict(v) for k, v in self._versions.items()},
                "sent": [[j, k, v] for (j, k), v in sorted(self._sent.items())], "next": self._next}

    def load_state_dict(self, sd: Mapping) -> None:
        self._versions = {k: dict(v) for k, v in sd["versions"].items()}
        self._sent = {(int(j), k): int(v) for j, k, v in sd["sent"]}
        self._next = int(sd["next"])
