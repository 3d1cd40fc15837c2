"""Fewer, bigger host calls: the calls due at one virtual instant go to each host as one.

Protocols submit one call per agent (train, merge, evaluate) at the virtual
instant it is due. The batcher holds them back while the clock stays at that
instant and sends each host's as one `AgentHost.run_batch` call when the clock
moves, when a call needs the result of a held one, or when the coordinator
waits for results. Each host still runs its calls in submission order and the
calls of different hosts depend on each other only through results that were
sent before (a call that needs a held result sends everything held first), so
results are those of one call per agent, bit for bit; only the number of
round trips changes (one per host per phase instead of one per agent).

A submitted call gets `Pending` placeholders back at once (one per return
value), resolved to the backend's references (Ray ObjectRefs, or values
inline) when its batch is sent; `resolve` maps them for `get`. Placeholders
are replaced where they are top-level arguments of a call, the only place Ray
resolves references too. On Ray the journal (journal.py) records what is
sent, batches included, and replays exactly that after a lost host.
"""

from __future__ import annotations

from typing import Any, Callable


class Pending:
    """A held call's return value, until its batch is sent."""

    __slots__ = ("ref", "sent")

    def __init__(self) -> None:
        self.ref: Any = None
        self.sent = False


class CallBatcher:
    MAX_BATCH = 64
    """Calls per batch at most: a batch's results (e.g. 64 exports) are serialized
    together, so this bounds the memory a host needs for one call; 64 calls
    already cut the per-call cost to noise."""

    def __init__(self, submit: Callable[..., Any], now: Callable[[], float]):
        self._submit = submit  # submit(host, method, *args, num_returns=k) -> ref or tuple of refs
        self._now = now
        self._held: dict[int, list[tuple[str, tuple, int, list[Pending]]]] = {}
        self._t: float | None = None
        self.calls = 0  # calls submitted to the batcher
        self.sent = 0  # host calls actually sent

    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        if self._held and (self._now() != self._t or any(isinstance(a, Pending) and not a.sent for a in args)):
            self.flush()
        args = tuple(a.ref if isinstance(a, Pending) else a for a in args)
        self._t = self._now()
        outs = [Pending() for _ in range(num_returns)]
        held = self._held.setdefault(host, [])
        held.append((method, args, num_returns, outs))
        self.calls += 1
        if len(held) >= self.MAX_BATCH:
            self._send(host, self._held.pop(host))
        return outs[0] if num_returns == 1 else tuple(outs)

    def flush(self) -> None:
        """Send what is held: one call per host (the call itself when it is alone)."""
        held, self._held = self._held, {}
        for host, entries in held.items():
            self._send(host, entries)

    def _send(self, host: int, entries: list) -> None:
        """One call for `entries` (every argument among them already sent: see `call`)."""
        self.sent += 1
        if len(entries) == 1:
            method, args, k, outs = entries[0]
            refs = self._submit(host, method, *args, num_returns=k)
            refs = [refs] if k == 1 else list(refs)
        else:
            spec = [(method, len(args), k) for method, args, k, _ in entries]
            flat = [a for _, args, _, _ in entries for a in args]
            total = sum(k for _, _, k, _ in entries)
            refs = list(self._submit(host, "run_batch", spec, *flat, num_returns=total))
            outs = [o for *_, entry_outs in entries for o in entry_outs]
        for o, r in zip(outs, refs, strict=True):
            o.ref, o.sent = r, True

    def resolve(self, refs: list) -> list:
        """Backend references for `refs`. Everything held is sent first: whoever
        asks for references is about to wait on results or hand them to the
        backend, and hosts should not sit idle meanwhile."""
        if self._held:
            self.flush()
        return [r.ref if isinstance(r, Pending) else r for r in refs]


def run_batch(host: Any, spec: list[tuple[str, int, int]], flat: tuple,
              before: Callable[[int], Any] | None = None) -> tuple:
    """Host side: run the calls of `spec` (method, number of args, number of returns)
    in order on `host`; their return values flattened into one tuple. `before(n)`,
    when given, runs just before call n (the host's batched training uses it)."""
    out: list[Any] = []
    i = 0
    for n, (method, nargs, k) in enumerate(spec):
        if before is not None:
            before(n)
        r = getattr(host, method)(*flat[i:i + nargs])
        i += nargs
        if k == 1:
            out.append(r)
        else:
            out.extend(r)
    return tuple(out)
