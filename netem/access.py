"""Shared access links: max-min fair sharing of node uplinks and downlinks.

When nodes have finite uplink/downlink capacities, the messages being
serialized at the same time compete for them. Each directed link still
serves its own FIFO queue one message at a time (the head transfer), capped
by the link's own rate; concurrent head transfers share every node's uplink
and downlink by max-min fairness (progressive filling), recomputed whenever
a transfer starts or ends or a traced rate changes. Four simultaneous sends
through one uplink thus each get a quarter of it and take four times as long.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from .scheduling import Scheduler

_EPS = 1e-12


class Transfer:
    """The serialization of one message through the shared access network."""

    __slots__ = (
        "flight", "link", "bits", "remaining", "rate", "cap", "last", "t_start", "res", "seq", "version", "finish"
    )

    def __init__(self, flight, link, bits: float, seq: int):
        self.flight = flight
        self.link = link
        self.bits = bits
        self.remaining = float(bits)
        self.rate = 0.0
        self.cap = 0.0
        self.last = 0.0
        self.t_start = math.nan
        self.res: tuple[int, ...] = ()
        self.seq = seq  # activation order: a canonical, deterministic ordering
        self.version = 0  # bumped whenever the pending completion timer is superseded
        self.finish = math.inf


def maxmin_rates(caps: list[float], resources: list[tuple[int, ...]], capacity: dict[int, float]) -> list[float]:
    """Max-min fair rates by progressive filling.

    Flow i may not exceed caps[i] and uses the resources in resources[i]; the
    rates of the flows using resource r sum to at most capacity[r]. All
    unfrozen flows rise together; whichever limit binds first (a resource
    saturating, or a flow reaching its cap) freezes the flows it limits.
    Flows that share no resource are independent, so the filling runs per
    connected group (a lone flow just takes its tightest limit).
    """
    n = len(caps)
    rates = [0.0] * n
    owner: dict[int, int] = {}  # resource -> first flow seen using it
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, res in enumerate(resources):
        for r in res:
            j = owner.setdefault(r, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    for members in groups.values():
        if len(members) == 1:
            i = members[0]
            rates[i] = max(0.0, min([caps[i]] + [capacity[r] for r in resources[i]]))
        else:
            _fill(members, caps, resources, capacity, rates)
    return rates


def _fill(flows: list[int], caps, resources, capacity, rates) -> None:
    """Progressive filling over one group of flows that share resources."""
    rem: dict[int, float] = {}
    users: dict[int, list[int]] = {}
    for i in flows:
        for r in resources[i]:
            rem[r] = capacity[r]
            users.setdefault(r, []).append(i)
    count = {r: len(u) for r, u in users.items()}
    unfrozen = list(flows)
    while unfrozen:
        best, arg_res, arg_flow = math.inf, None, None
        for r, k in count.items():
            if k > 0:
                share = rem[r] / k
                if share < best:
                    best, arg_res, arg_flow = share, r, None
        for i in unfrozen:
            if caps[i] < best:
                best, arg_res, arg_flow = caps[i], None, i
        best = max(best, 0.0)
        if arg_flow is not None:
            freeze = [arg_flow]
        elif arg_res is not None:
            freeze = [i for i in users[arg_res] if i in unfrozen]
        else:  # pragma: no cover - every flow has a finite cap
            freeze = list(unfrozen)
        for i in freeze:
            rates[i] = best
            unfrozen.remove(i)
            for r in resources[i]:
                rem[r] -= best
                count[r] -= 1


class SharedAccess:
    """Fluid model of the transfers in progress under finite access capacities.

    Only the group of transfers that share a resource with a changed one is
    re-allocated, so independent transfers cost O(1) per event.
    """

    def __init__(
        self,
        sched: Scheduler,
        up_bps: list[float],
        down_bps: list[float],
        on_done: Callable[[object, float, float], None],
    ):
        self.sched = sched
        self.env = sched.env
        self.n = len(up_bps)
        self.up = up_bps
        self.down = down_bps
        self.on_done = on_done  # on_done(flight, t_start, t_done)
        self.active: dict[tuple[int, int], Transfer] = {}
        self.users: dict[int, dict[int, Transfer]] = {}  # resource -> transfers using it, by seq
        self._seq = 0
        self._dirty: dict[int, Transfer] = {}
        self._pending = False

    # ------------------------------------------------------------------ queue operations

    def enqueue(self, link, flight, bits: float) -> Transfer:
        self._seq += 1
        tr = Transfer(flight, link, bits, self._seq)
        if link.queue is None:
            link.queue = deque()
        link.queue.append(tr)
        if len(link.queue) == 1:
            self._activate(tr)
        return tr

    def remove(self, tr: Transfer) -> None:
        """Abort a transfer (its message was dropped)."""
        q = tr.link.queue
        if not q or tr not in q:
            return
        if q[0] is tr:
            self._deactivate(tr)
            q.popleft()
            if q:
                self._activate(q[0])
        else:
            q.remove(tr)

    def refresh(self) -> None:
        """Re-allocate everything after an outside change of link rates (mobility)."""
        for tr in self.active.values():
            self._mark(tr)

    # ------------------------------------------------------------------ fluid mechanics

    def _capacity(self, r: int) -> float:
        return self.up[r] if r < self.n else self.down[r - self.n]

    def _activate(self, tr: Transfer) -> None:
        now = self.env.now
        link = tr.link
        tr.t_start = now
        tr.last = now
        res = []
        if self.up[link.src] < math.inf:
            res.append(link.src)
        if self.down[link.dst] < math.inf:
            res.append(self.n + link.dst)
        tr.res = tuple(res)
        self.active[(link.src, link.dst)] = tr
        for r in tr.res:
            self.users.setdefault(r, {})[tr.seq] = tr
        self._mark(tr)

    def _deactivate(self, tr: Transfer) -> None:
        """Take a transfer out of the fluid; the others on its resources get re-allocated."""
        link = tr.link
        del self.active[(link.src, link.dst)]
        tr.version += 1
        self._dirty.pop(tr.seq, None)
        for r in tr.res:
            users = self.users[r]
            del users[tr.seq]
            for other in users.values():
                self._mark(other)

    def _mark(self, tr: Transfer) -> None:
        """Schedule a re-allocation of tr's group, once, after everything else at this instant."""
        self._dirty[tr.seq] = tr
        if not self._pending:
            self._pending = True
            self.sched.call_at(self.env.now, self._recompute)

    def _group(self, seeds) -> list[Transfer]:
        """All active transfers connected to `seeds` through shared resources, in seq order."""
        seen: dict[int, Transfer] = {}
        stack = list(seeds)
        while stack:
            tr = stack.pop()
            if tr.seq in seen:
                continue
            seen[tr.seq] = tr
            for r in tr.res:
                stack.extend(o for o in self.users[r].values() if o.seq not in seen)
        return [seen[k] for k in sorted(seen)]

    def _recompute(self) -> None:
        self._pending = False
        seeds = [tr for tr in self._dirty.values() if (tr.link.src, tr.link.dst) in self.active]
        self._dirty.clear()
        if not seeds:
            return
        now = self.env.now
        group = self._group(seeds)
        for tr in group:
            if tr.rate > 0.0 and now > tr.last:
                tr.remaining -= tr.rate * (now - tr.last)
            tr.last = now
        capacity = {r: self._capacity(r) for tr in group for r in tr.res}
        caps = [tr.link.rate_at(now) for tr in group]
        rates = maxmin_rates(caps, [tr.res for tr in group], capacity)
        for tr, cap, rate in zip(group, caps, rates):
            tr.cap = cap
            if rate == tr.rate and tr.finish < math.inf:
                continue  # its completion timer still holds
            tr.rate = rate
            tr.version += 1
            self._arm(tr, now)

    def _arm(self, tr: Transfer, now: float) -> None:
        """Schedule tr's completion, or its next traced rate change if that comes first."""
        finish = now + tr.remaining / tr.rate if tr.rate > 0.0 else math.inf
        if tr.remaining <= _EPS * tr.bits:
            finish = now
        tr.finish = finish
        link = tr.link
        if link.trace is not None:
            change = link.trace.next_change(now, link.offset)
            if change < finish:
                tr.finish = math.inf  # re-armed at the change
                self.sched.call_at(change, self._rate_change, tr, tr.version)
                return
        if finish < math.inf:
            self.sched.call_at(finish, self._complete, tr, tr.version)

    def _rate_change(self, tr: Transfer, version: int) -> None:
        if version == tr.version:
            self._mark(tr)

    def _complete(self, tr: Transfer, version: int) -> None:
        if version != tr.version:
            return  # superseded by a re-allocation
        now = self.env.now
        tr.remaining = 0.0
        self._deactivate(tr)
        q = tr.link.queue
        q.popleft()
        self.on_done(tr.flight, tr.t_start, now)
        if q and (tr.link.src, tr.link.dst) not in self.active:
            self._activate(q[0])
