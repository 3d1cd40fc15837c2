"""Host calls since the last snapshot, so a lost host's work can be replayed exactly.

The virtual timeline never depends on tensor values, so recovering from a
host (Ray actor) that died is: start a new actor with the same agents (or,
when the cluster has no room for one, e.g. its node is gone, move its agents
onto a surviving host), roll every host back to the last snapshot, and
resubmit the journalled calls in their original order, with references to
lost results mapped to the new ones. The run then continues as if nothing
happened, bit for bit.

Snapshots are fetched to the driver when taken, together with the exports of
messages still waiting or in flight (merged after the snapshot): objects held
only in the object store of a node are lost with that node. See failover.py.
"""

from __future__ import annotations

from typing import Any, Callable

from parse_actors.engine.failover import RESUME_HINT, RunStalled

MAX_RECOVERIES = 3
"""Recoveries in a row for one wait before the run gives up (RunStalled)."""


class Journal:
    def __init__(self, backend: Any, on_restart: Callable[[int, str], None] | None = None,
                 needed: Callable[[], dict] | None = None,
                 on_snapshot: Callable[[list[dict], list], None] | None = None,
                 on_replace: Callable[[int, int, str], None] | None = None,
                 active: Callable[[], bool] | None = None):
        self.backend = backend
        self.entries: list[tuple[int, str, tuple, int, Any]] = []
        self.checkpoints: list[dict] = []  # per host: its agents' states (values, in the driver)
        self.kept: dict[Any, Any] = {}  # export reference -> value, of messages crossing the snapshot
        self.remap: dict[Any, Any] = {}
        self.on_restart = on_restart
        self.on_replace = on_replace
        self.needed = needed or (lambda: {})
        self.on_snapshot = on_snapshot
        self.active = active or (lambda: True)
        self.restarts = 0
        self.replaced = 0

    # -- recording -----------------------------------------------------------
    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        args = tuple(self._map_arg(a) for a in args)  # results lost and recomputed since
        out = self.backend.call(host, method, *args, num_returns=num_returns)
        self.entries.append((host, method, args, num_returns, out))
        return out

    async def checkpoint(self) -> None:
        """Snapshot every host's agents into the driver and start a new journal.

        Waits until the snapshots are here (the hosts are idle at a round
        boundary, so this is short): a journal must never start from a
        snapshot a dying host did not write. The channel (hosts.py) sends the calls it
        holds first: every call made so far is in this snapshot, none journalled after it."""
        if not self.active():
            return
        for attempt in range(MAX_RECOVERIES + 1):
            if self.checkpoints and self.backend.dead_hosts():
                self.recover("host found dead at a snapshot")
            needed = self.needed()
            refs = [self.backend.call(h, "checkpoint", *self.backend.checkpoint_args(h))
                    for h in range(self.backend.n_hosts)]
            try:
                states = await self.backend.get(refs)
                values = await self.backend.get([self.resolve(r) for r in needed.values()])
                break
            except self._recoverable() as e:
                if not self.checkpoints or attempt == MAX_RECOVERIES:
                    raise RunStalled(_lost(e, self.backend)) from None
                self.recover(_reason(e), _actor_of(e))
        self.checkpoints = states
        self.kept = dict(zip(needed.values(), values))
        self.entries = []
        # references still in messages keep pointing at what replaced them
        self.remap = {r: self.resolve(r) for r in needed.values() if self.resolve(r) is not r}
        if self.on_snapshot:
            self.on_snapshot(states, [[s, r, v] for (s, r), v in zip(needed, values)])

    # -- awaiting with recovery -------------------------------------------------
    def resolve(self, ref: Any) -> Any:
        while ref in self.remap:
            ref = self.remap[ref]
        return ref

    async def get(self, refs: list[Any]) -> list[Any]:
        for attempt in range(MAX_RECOVERIES + 1):
            try:
                return await self.backend.get([self.resolve(r) for r in refs])
            except self._recoverable() as e:
                if not self.checkpoints or attempt == MAX_RECOVERIES:
                    raise RunStalled(_lost(e, self.backend)) from None
                self.recover(_reason(e), _actor_of(e))
        raise RuntimeError("unreachable")

    def recover(self, reason: str, known: frozenset = frozenset()) -> None:
        """Restart or re-place the dead hosts (those of the actor ids in `known`
        without asking), roll every host back to the last snapshot and replay
        the calls since (RunStalled when a dead host has nowhere to go)."""
        dead = set(self.backend.dead_hosts(known=known))
        for h in sorted(dead):
            dead.discard(h)
            onto = self.backend.revive(h, dead)
            if onto is None:
                self.restarts += 1
                if self.on_restart:
                    self.on_restart(h, reason)
            else:
                self.replaced += 1
                if self.on_replace:
                    self.on_replace(h, onto, reason)
        for old, value in self.kept.items():  # exports made before the snapshot: from the driver's copy
            self.remap[old] = self.backend.put(value)
        self.kept = {self.remap[old]: value for old, value in self.kept.items()}
        for h in range(self.backend.n_hosts):
            self.backend.call(h, "restore", self.checkpoints[h])
        entries, self.entries = self.entries, []
        for host, method, args, num_returns, old in entries:
            new = self.call(host, method, *args, num_returns=num_returns)
            if num_returns == 1:
                self.remap[old] = new
            else:
                for o, n in zip(old, new):
                    self.remap[o] = n

    def _map_arg(self, a: Any) -> Any:
        try:
            return self.resolve(a)
        except TypeError:  # unhashable plain values
            return a

    @staticmethod
    def _recoverable() -> tuple[type, ...]:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, ObjectLostError, RayActorError

        return (RayActorError, ActorDiedError, ActorUnavailableError, ObjectLostError)


def _actor_of(e: BaseException) -> frozenset:
    """The actor an error names as unreachable or dead (hex id), if any."""
    aid = getattr(e, "actor_id", None)
    return frozenset([aid]) if isinstance(aid, str) and aid else frozenset()


def _reason(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _lost(e: BaseException, backend: Any) -> str:
    return f"hosts keep failing ({_reason(e)[:200]}){backend.describe()}; {RESUME_HINT}"


def attach(sim: Any, backend: Any) -> Journal | None:
    """Give a Ray run's backend its deadlines and stop check, and the run its journal
    (None when engine.checkpoint_every is 0 or the run is inline)."""
    eng = sim.sc.engine
    if getattr(backend, "name", "") != "ray":
        return None
    backend.timeout_s = eng.ray_timeout_s
    backend.restart_timeout_s = eng.restart_timeout_s
    backend.stop = lambda: sim.stop_signal
    if not eng.checkpoint_every:
        return None
    return Journal(backend, sim._on_restart, needed=sim.resume.needed, active=lambda: not sim.dry,
                   on_snapshot=sim.resume.keep,
                   on_replace=lambda h, g, reason: sim.log.warning(
                       "host_replaced", t=sim.env.now, host=h, onto=g, round=sim.round + 1, reason=reason,
                       agents=[v.aid for v in sim.views if v.host == h]))
