"""The local process pool of `parse-sim sweep` (the default on one machine), and the
sweep process's own SIGINT/SIGTERM handling.

Cells run in worker processes (`--parallel K`, spawn start method), each
calling `run_scenario` with the sweep's backend; with `--backend ray` they run
one at a time, each in its own local Ray instance shut down when the run ends.
Cells always go to worker processes, even one at a time: this process keeps
its own signal handling (stop starting cells, let running ones checkpoint),
which a run executing here would take over for its duration.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

_STOP = None  # in a worker: the parent's "stop the sweep" event
_STARTED = None  # in a worker: where it says which cell it starts


def _ignore_signals() -> None:
    # An idle worker ignores SIGINT/SIGTERM and the parent's relay (the parent decides); a
    # run installs its own handlers (engine/signals.py: finish the round, checkpoint, stop)
    # and restores these when it ends.
    from parse_actors.engine.signals import RELAY

    for sig in (signal.SIGINT, signal.SIGTERM, RELAY):
        signal.signal(sig, signal.SIG_IGN)


def _init_worker(verbosity: int, stop, started) -> None:
    global _STOP, _STARTED
    _STOP, _STARTED = stop, started
    _ignore_signals()
    from parse_actors import logs
    from parse_actors.metrics.progress import Progress

    logs.configure(verbosity)
    Progress.enabled_default = False


def _worker(sc, name: str, rdir: str, backend: str, state: str, source: str | None = None) -> tuple[str, Any]:
    from pathlib import Path

    from parse_actors.provenance import source_changed
    from parse_actors.studies.cell import run_cell

    if _STOP is not None and _STOP.is_set():
        return "cancelled", None
    changed = source_changed(source)
    if changed:
        return "error", changed
    if _STARTED is not None:
        _STARTED.put((name, os.getpid()))
    try:
        return run_cell(sc, Path(rdir), backend, state)
    finally:
        _ignore_signals()


class Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


class DriverSignals:
    """In the sweep's own process: SIGINT/SIGTERM stop the sweep (also when started in the
    background, where SIGINT arrives ignored). `record`: only note the signal (the
    caller looks at `signum` and `count`; a third one raises KeyboardInterrupt);
    otherwise raise `Stop` where the process is."""

    def __init__(self, record: bool = False) -> None:
        import threading

        self.active = threading.current_thread() is threading.main_thread()
        self.record = record
        self.saved: dict = {}
        self.signum: int | None = None
        self.count = 0

    def _handle(self, signum, frame):
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if not self.record:
            raise Stop(signum)
        if self.count > 2:
            raise KeyboardInterrupt

    def arm(self) -> None:
        if not self.active:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, h in self.saved.items():
            signal.signal(sig, h if h is not None else signal.SIG_DFL)


def run_pool(sweep, pending: list, k: int, tracker, verbosity: int, sigs: DriverSignals) -> int | None:
    """Run `pending` cells in `k` worker processes; returns the signal that stopped the
    sweep, or None. `tracker` hears of every start and end."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from parse_actors.provenance import source_digest

    source = source_digest()  # the files this process started the sweep with: every worker must run them
    ctx = multiprocessing.get_context("spawn")
    stop, started = ctx.Event(), ctx.SimpleQueue()
    sigs.arm()
    ex = ProcessPoolExecutor(max_workers=k, mp_context=ctx, initializer=_init_worker,
                             initargs=(verbosity, stop, started))
    futures = {}
    by_name = {r.point.name: r for r in pending}
    interrupted = None
    host = socket.gethostname()

    def drain_started() -> None:
        while not started.empty():
            name, pid = started.get()
            tracker.started(by_name[name], {"host": host, "pid": pid})

    try:
        for run in pending:
            fut = ex.submit(_worker, run.scenario, run.point.name, str(run.dir), sweep.backend, run.state, source)
            futures[fut] = run
        todo = set(futures)
        while todo:
            fin, todo = wait(todo, timeout=1.0, return_when=FIRST_COMPLETED)
            drain_started()
            tracker.tick()
            for fut in fin:
                run = futures[fut]
                try:
                    status, value = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker died (out of memory, killed)
                    status, value = "error", f"worker process failed: {type(e).__name__}: {e}"
                if status == "interrupted":
                    interrupted = value
                elif status == "ok_stop":  # finished, but a signal asked the sweep to stop
                    interrupted = value[1]
                if status != "cancelled":
                    tracker.finished(run, status, value)
            if interrupted is not None:
                break
    except Stop as e:
        interrupted = e.signum
    except KeyboardInterrupt:
        interrupted = signal.SIGINT
    finally:
        if interrupted is not None:
            # no new cell starts; running ones finish their round and write a checkpoint. The
            # stop is relayed (a Ctrl-C reached them already, a `kill` of this process did
            # not) with engine/signals.py's RELAY, which never counts as a second signal.
            from parse_actors.engine.signals import RELAY

            stop.set()
            for p in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    os.kill(p.pid, RELAY)
                except (OSError, AttributeError):
                    pass
            ex.shutdown(wait=True, cancel_futures=True)
        else:
            ex.shutdown(wait=True)
    return interrupted
