"""What a Ray run does when the cluster lets it down: deadlines, re-placement, stalls.

- Every wait on Ray has a deadline (`engine.ray_timeout_s` without any awaited
  result arriving). A wait that cannot finish ends the run with `RunStalled`:
  one line saying what is missing; the runner writes the tables and the last
  snapshot as a checkpoint (`parse-sim run --resume RUN_DIR`), exit 1.
- A host whose actor died is restarted when the cluster still has room for it
  (within `engine.restart_timeout_s`); otherwise (its node is gone) its agents
  are *re-placed* on a surviving host. Either way every host then rolls back to
  the last snapshot and the calls since are replayed (journal.py). Agents are
  independent objects with their own seeds and hosts run calls in submission
  order, so where an agent lives never changes a result.
- Snapshots are fetched to the driver (the coordinator's process) when taken:
  a snapshot left in the object store of a node would be lost with that node.
  The last one is also kept as a checkpoint's content (resume.py) for a run
  that gets stuck. journal.attach wires all this into a Ray run.
- A first Ctrl-C while a wait makes no progress ends the run from the last
  snapshot after a short grace (`StopRequested`), instead of waiting forever
  for a round that cannot finish.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable, Sequence

STOP_GRACE_S = 10.0
"""After a first Ctrl-C, how long a wait may go without progress before the round is abandoned."""

RESUME_HINT = "resume with --resume RUN_DIR [--ray-address HOST:PORT|local, or --backend inline]"


class RunStalled(RuntimeError):
    """The run can make no progress on Ray (hosts lost and nowhere to put their
    agents, or nothing finished within the deadline). The message is one line."""


class StopRequested(Exception):
    """A first Ctrl-C/SIGTERM arrived while a wait made no progress: end the run
    from the last snapshot instead of finishing the round."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by signal {signum} while waiting on Ray")


class ClusterUnreachable(RuntimeError):
    """`--ray-address` names a cluster that does not answer (one line)."""


# ---------------------------------------------------------------- deadline-bounded waits
async def gather(refs: Sequence[Any], timeout_s: float, stop: Callable[[], int | None],
                 describe: Callable[[], str] = lambda: "") -> list[Any]:
    """`asyncio.gather` over Ray ObjectRefs with a deadline: fails with
    RunStalled when no awaited result arrives for `timeout_s` (the clock restarts
    at every result), with StopRequested when a stop was asked for and nothing
    arrived for STOP_GRACE_S. The first error of a result is raised as is."""
    futs = [asyncio.wrap_future(r.future()) for r in refs]
    pending = set(futs)
    last = time.monotonic()
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
            now = time.monotonic()
            if done:
                last = now
            sig = stop()
            if sig is not None and now - last > min(timeout_s, STOP_GRACE_S):
                raise StopRequested(sig)
            if now - last > timeout_s:
                raise RunStalled(f"no result from the hosts for {timeout_s:g}s (engine.ray_timeout_s){describe()}; "
                                 f"{RESUME_HINT}")
        return [f.result() for f in futs]
    finally:
        for f in pending:
            f.cancel()


# ---------------------------------------------------------------- where a lost host's agents go
def pick_survivor(loads: dict[int, float]) -> int | None:
    """The surviving host (by logical index) with the least load; ties to the lowest index."""
    if not loads:
        return None
    return min(loads, key=lambda h: (loads[h], h))


def check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Fail within seconds when a Ray cluster address does not accept connections
    (ray.init would retry for minutes)."""
    if not address or address == "local" or address.startswith("ray://"):
        return
    shown = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address(address)
        except Exception:  # noqa: BLE001 - let ray.init report what it finds
            return
        if not address:
            raise ClusterUnreachable("no running Ray cluster found for --ray-address auto (no RAY_ADDRESS, no "
                                     "cluster started on this machine); give HOST:PORT, 'local', or use "
                                     "--backend inline")
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        port_n = int(port)
    except ValueError:
        raise ClusterUnreachable(f"--ray-address {shown!r}: expected auto, local or HOST:PORT") from None
    try:
        with socket.create_connection((host or "127.0.0.1", port_n), timeout=timeout_s):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        if isinstance(e, (socket.timeout, TimeoutError)):
            why = f"no answer within {timeout_s:g}s"
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {shown} ({why}); start it, or run with "
                                 "--ray-address HOST:PORT of a live cluster, --ray-address local or "
                                 "--backend inline") from None
