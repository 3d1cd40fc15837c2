"""Host calls since the last checkpoint, so a dead host's work can be replayed exactly.

The virtual timeline never depends on tensor values, so recovering from a
host (Ray actor) that died is: start a new actor with the same agents, roll
every host back to the last checkpoint, and resubmit the journalled calls in
their original order, with references to lost results mapped to the new ones.
The run then continues as if nothing happened, bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable


class Journal:
    def __init__(self, backend: Any, on_restart: Callable[[int, str], None] | None = None):
        self.backend = backend
        self.entries: list[tuple[int, str, tuple, int, Any]] = []
        self.checkpoints: list[Any] = []
        self.remap: dict[Any, Any] = {}
        self.on_restart = on_restart
        self.restarts = 0

    # -- recording -----------------------------------------------------------
    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        out = self.backend.call(host, method, *args, num_returns=num_returns)
        self.entries.append((host, method, args, num_returns, out))
        return out

    def checkpoint(self) -> None:
        """Snapshot every host's agents (kept in the object store) and start a new journal.

        Waits until the snapshots exist (the hosts are idle at a round
        boundary, so this is short): a journal must never start from a
        checkpoint a dying host did not write."""
        if self.checkpoints and self.backend.dead_hosts():
            self.recover("host found dead at a checkpoint")
        refs = [self.backend.call(h, "checkpoint") for h in range(self.backend.n_hosts)]
        self.backend.wait(refs)
        self.checkpoints = refs
        self.entries = []
        self.remap = {}

    # -- awaiting with recovery -------------------------------------------------
    def resolve(self, ref: Any) -> Any:
        while ref in self.remap:
            ref = self.remap[ref]
        return ref

    async def get(self, refs: list[Any]) -> list[Any]:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        for attempt in range(3):
            try:
                return await self.backend.get([self.resolve(r) for r in refs])
            except (RayActorError, ActorDiedError, ActorUnavailableError) as e:
                if attempt == 2:
                    raise
                self.recover(str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise RuntimeError("unreachable")

    def recover(self, reason: str) -> None:
        dead = self.backend.dead_hosts()
        for h in dead:
            self.backend.restart_host(h)
            self.restarts += 1
            if self.on_restart:
                self.on_restart(h, reason)
        for h in range(self.backend.n_hosts):
            self.backend.call(h, "restore", self.resolve(self.checkpoints[h]))
        entries, self.entries = self.entries, []
        for host, method, args, num_returns, old in entries:
            new_args = tuple(self._map_arg(a) for a in args)
            new = self.call(host, method, *new_args, num_returns=num_returns)
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
