"""The one channel to the hosts: requests in, references out, in virtual-time order.

It owns the three layers a host call goes through: the batcher (calls due at
one virtual instant reach each host as one, batching.py), the journal (on Ray:
what was sent since the last snapshot, replayed after a lost host, journal.py)
and the backend (inline or Ray, backends.py). Nothing outside holds the
backend or the journal, so the rule "send the held calls before anything
reaches past the batcher" is kept here: `direct()` flushes on entry, and
`checkpoint()` flushes before it asks every host for its agents' state.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from parse_actors.engine.batching import CallBatcher
from parse_actors.engine.requests import Request


class HostChannel:
    def __init__(self, backend: Any, now: Callable[[], float], dry: Callable[[], bool] = lambda: False):
        self.backend = backend  # (private to the engine's set-up, failover and tests; protocols never see it)
        self.journal: Any = None  # journal.Journal on Ray with engine.checkpoint_every (attach_journal)
        self.batcher = CallBatcher(self._submit, now)
        self._dry = dry

    @property
    def n_hosts(self) -> int:
        return self.backend.n_hosts

    def attach_journal(self, journal: Any) -> None:
        self.journal = journal

    # -- the batched path (protocols, evaluation, discovery) ---------------------------
    def call(self, host: int, req: Request) -> Any:
        """Submit `req` to `host` now; placeholders come back at once (one per return
        value), turned into the backend's references by `get`/`refs`. Skipped (None)
        while finished periods are replayed dry, except requests marked `in_dry`."""
        if self._dry() and not req.in_dry:
            return (None,) * req.returns if req.returns > 1 else None
        return self.batcher.call(host, req.method, *req.args(), num_returns=req.returns)

    def refs(self, values: list) -> list:
        """The backend's references for what `call` returned (held calls sent first)."""
        return self.batcher.resolve(list(values))

    async def get(self, refs: list) -> list:
        refs = self.refs(refs)  # awaiting results sends every held call
        if self.journal is not None:
            return await self.journal.get(refs)
        return await self.backend.get(refs)

    def flush(self) -> None:
        """Send the held calls (one per host)."""
        self.batcher.flush()

    def _submit(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        """Where the batcher sends a call: through the journal on Ray (replayed after a lost host)."""
        if self.journal is not None:
            return self.journal.call(host, method, *args, num_returns=num_returns)
        return self.backend.call(host, method, *args, num_returns=num_returns)

    # -- past the batcher ------------------------------------------------------------
    @contextmanager
    def direct(self) -> Iterator["_Direct"]:
        """Calls straight to the backend, unjournalled (set-up, restoring a checkpoint):
        everything held is sent first, so hosts see every call in submission order."""
        self.flush()
        yield _Direct(self)

    async def checkpoint(self) -> dict[int, dict]:
        """Every agent's full state ({agent: state}), from every host; held calls are
        sent first so the states include them. Each host's call goes alone: the backend
        names the agents of a re-placed host (failover.py)."""
        self.flush()
        refs = [self._submit(h, "checkpoint", *self.backend.checkpoint_args(h)) for h in range(self.n_hosts)]
        states: dict[int, dict] = {}
        for part in await self.get(refs):
            states.update(part)
        return states

    async def snapshot(self) -> None:
        """A journal snapshot (Ray with engine.checkpoint_every): a host lost later is
        rolled back to here and the calls since are replayed. No-op without one."""
        self.flush()  # every call made so far is in the snapshot, none journalled after it
        if self.journal is not None:
            await self.journal.checkpoint()

    @property
    def restarts(self) -> tuple[int, int]:
        """(hosts restarted, hosts re-placed) so far."""
        j = self.journal
        return (j.restarts, j.replaced) if j is not None else (0, 0)

    def shutdown(self) -> None:
        if self.backend is not None:
            self.backend.shutdown()


class _Direct:
    """The backend's verbs, for `HostChannel.direct` blocks only: calls are neither
    batched nor journalled; waits still recover a lost host like the channel's."""

    def __init__(self, channel: HostChannel):
        self._channel = channel

    def call(self, host: int, req: Request) -> Any:
        return self._channel.backend.call(host, req.method, *req.args(), num_returns=req.returns)

    def put(self, value: Any) -> Any:
        return self._channel.backend.put(value)

    async def get(self, refs: list) -> list:
        return await self._channel.get(refs)
