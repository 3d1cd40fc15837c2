"""`parse-sim sweep --ray-address`: every cell a Ray task, spread over a cluster.

Each cell is one task with the resources it declares (`--cell-cpus`,
`--cell-gpus` fractions, `--cell-memory`) and runs its scenario inline in that
task's process, as a cell of the local pool does, so its results are the
pool's byte for byte. Ray packs as many cells on a node as its resources
allow; `--parallel K` caps the cells submitted at once.

Where results go: a cell runs in a scratch directory of its node and returns
its files through the object store; this process (the driver) writes each run
directory into the sweep directory in one rename (cell.py). Real clusters
often share no filesystem (cloud nodes, each with its own disk), and a shared
one could not be trusted with a dead node's half-written directory or its
lock; here no node but the driver's ever needs the sweep directory, and a cell
lost with its node left nothing behind there. The cost is a copy of each run
directory (kilobytes to a few MB; `output.final_weights_max_mb` bounds the
largest file) over the network once.

Faults:
- a cell whose node or worker process dies (raylet killed, out of memory) is
  submitted again, up to `--retries` times, and lands on a live node; it
  starts over (its run is deterministic, so the result is the same);
- a cell that fails by itself (an exception in the run) is not retried: it is
  recorded as failed with its error and the others go on;
- SIGINT/SIGTERM: no new cell starts, running cells finish their round and
  send back a checkpoint (`--resume` continues them), then the sweep exits.
  A second signal cancels them at once. A killed driver loses only the cells
  it was running: finished ones are already on disk.

The sweep's tasks are told to stop, and report where they run, through one
small actor pinned to the driver's node (`_Control`): it lives and dies with
the driver.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from parse_actors.errors import ScenarioError

STOP_POLL_S = 0.5
"""How often a running cell asks whether the sweep is stopping (wall time; results never depend on it)."""
WAIT_S = 0.5
"""How often the driver looks at progress and signals while it waits for cells."""

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str, flag: str = "--cell-memory") -> int:
    """'2GiB', '500MB', '1.5gb', '1073741824' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ScenarioError(flag, "", f"expected a size like 2GiB, 500MB or a number of bytes, got {text!r}")
    n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise ScenarioError(flag, "", f"expected a positive size, got {text!r}")
    return n


@dataclass
class CellResources:
    """What one cell asks the cluster for (Ray's logical resources: they decide placement,
    they do not limit what the process uses)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes

    def check(self) -> None:
        if not self.cpus >= 0:
            raise ScenarioError("--cell-cpus", "", f"expected a number of CPUs >= 0, got {self.cpus!r}")
        if not 0 <= self.gpus:
            raise ScenarioError("--cell-gpus", "", f"expected a GPU fraction >= 0, got {self.gpus!r}")
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ScenarioError("--cell-gpus", "", f"above 1, expected a whole number of GPUs, got {self.gpus!r}")

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory:
            opts["memory"] = self.memory
        return opts

    def text(self) -> str:
        parts = [f"{self.cpus:g} CPU"] + ([f"{self.gpus:g} GPU"] if self.gpus else [])
        if self.memory:
            parts.append(f"{self.memory / 2**30:.3g} GiB")
        return ", ".join(parts)


@dataclass
class ClusterOptions:
    address: str  # auto, HOST:PORT, or local (a Ray instance started for the sweep)
    resources: CellResources
    retries: int = 3


# ---------------------------------------------------------------------------
# on the cluster
# ---------------------------------------------------------------------------


class _Control:
    """The sweep's one actor: running cells say where they run, and ask whether to stop."""

    def __init__(self) -> None:
        self.stopping = False
        self.running: dict[str, dict] = {}

    def started(self, name: str, where: dict) -> bool:
        self.running[name] = where
        return not self.stopping

    def stop(self) -> None:
        self.stopping = True

    def should_stop(self) -> bool:
        return self.stopping

    def snapshot(self) -> dict[str, dict]:
        return dict(self.running)


def cell_task(sc, name: str, backend: str, state: str, files: dict, control, attempt: int,
              verbosity: int, source: str | None = None) -> tuple[str, Any, dict, dict]:
    """One cell on a cluster node: (status, value, its run directory's files, when it
    started and ended on this machine's clock).

    It never blocks in `ray.get`/`ray.wait`: Ray lends a blocked task's CPUs to
    other tasks, which would put more cells on a node than it has CPUs for. The
    control actor's answers are awaited through `ObjectRef.future()` instead."""
    import ray

    from parse_actors import logs
    from parse_actors.metrics.progress import Progress
    from parse_actors.provenance import source_changed
    from parse_actors.studies.cell import pack, run_cell, scratch, unpack

    logs.configure(verbosity)
    Progress.enabled_default = False
    where = {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid(),
             "attempt": attempt, "since": time.time()}
    if not control.started.remote(name, where).future().result(timeout=300):
        return "cancelled", None, {}, {}
    changed = source_changed(source)  # this node's checkout, or an edit since the sweep started
    if changed:
        return "error", f"on {where['host']}: {changed}", {}, {"started": where["since"], "ended": time.time()}
    asked = [None, time.monotonic()]  # the pending "should I stop?" answer, when it was asked

    def stop_when_asked(sim, rnd) -> None:
        fut, since = asked
        if fut is not None and fut.done():
            asked[0] = None
            if fut.result():
                import signal

                sim.stop_signal = signal.SIGINT  # finish this round, write a checkpoint, stop
        elif fut is None and time.monotonic() - since >= STOP_POLL_S:
            asked[:] = [control.should_stop.remote().future(), time.monotonic()]

    with scratch(name) as rdir:
        if files:
            unpack(files, rdir)
        status, value = run_cell(sc, rdir, backend, state, hooks=[stop_when_asked])
        files = pack(rdir)
    return status, value, files, {"started": where["since"], "ended": time.time()}


# ---------------------------------------------------------------------------
# in the driver
# ---------------------------------------------------------------------------


def _lost(err: Exception) -> bool:
    """Whether a task's failure is the cluster's (node or worker gone), not the cell's own."""
    import ray.exceptions as rx

    return not isinstance(err, (rx.RayTaskError, rx.TaskCancelledError, rx.RuntimeEnvSetupError,
                                rx.TaskUnschedulableError))


def check_fits(ray, res: CellResources, address: str) -> None:
    """A cell no live node can hold would wait forever: say so before anything runs."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": res.cpus, "GPU": res.gpus, "memory": float(res.memory or 0)}
    if any(all(float(n.get(k, 0.0)) + 1e-9 >= v for k, v in need.items() if v) for n in nodes):
        return
    most = {k: max((float(n.get(k, 0.0)) for n in nodes), default=0.0) for k in need}
    short = [f for f, k in (("--cell-gpus", "GPU"), ("--cell-memory", "memory"), ("--cell-cpus", "CPU"))
             if need[k] and most[k] + 1e-9 < need[k]]
    flag = (short or ["--cell-cpus"])[0] if nodes else "--ray-address"
    raise ScenarioError(flag, "", f"no node of the Ray cluster at {address} can hold a cell ({res.text()}); "
                                  f"{len(nodes)} live node(s), the largest has {most['CPU']:g} CPU, "
                                  f"{most['GPU']:g} GPU, {most['memory'] / 2**30:.3g} GiB")


def _on_driver_node(ray):
    """Pins an actor to the driver's node: it then goes only when the driver goes."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


@contextmanager
def connect(opts: ClusterOptions):
    """Ray for the sweep: the cluster joined (or a local instance started), checked to be
    able to hold a cell; released on exit. Fails before the sweep writes anything."""
    from parse_actors.engine.backends import ray_session
    from parse_actors.engine.failover import check_reachable

    check_reachable(opts.address)
    with ray_session(opts.address) as ray:
        check_fits(ray, opts.resources, opts.address)
        yield ray


def run_on_ray(ray, sweep, pending: list, opts: ClusterOptions, parallel: int | None, progress, stop_flag,
               verbosity: int, install: Callable[[Any, dict], None]) -> int | None:
    """Run `pending` cells as Ray tasks (`ray` from `connect`); `progress` hears of every
    start and end, `install(run, files)` writes a cell's run directory. Returns the
    signal that stopped the sweep, or None."""
    progress.where(f"Ray cluster at {opts.address}" if opts.address != "local" else "a local Ray instance",
                   ray.get_runtime_context().get_node_id())
    control = ray.remote(_Control).options(num_cpus=0, scheduling_strategy=_on_driver_node(ray)).remote()
    task = ray.remote(cell_task).options(**opts.resources.options(), max_retries=0, scheduling_strategy="SPREAD")
    try:
        return _Loop(ray, sweep, pending, opts, parallel, progress, stop_flag, verbosity, install, control,
                     task).run()
    finally:
        try:
            ray.kill(control)
        except Exception:  # noqa: BLE001 - gone with the connection: it dies with the driver anyway
            pass


class _Loop:
    def __init__(self, ray, sweep, pending, opts, parallel, progress, stop_flag, verbosity, install, control, task):
        self.ray, self.sweep, self.opts, self.progress = ray, sweep, opts, progress
        self.stop_flag, self.verbosity, self.install = stop_flag, verbosity, install
        self.control, self.task = control, task
        self.queue = deque(pending)
        self.window = parallel or len(pending)
        self.inflight: dict[Any, Any] = {}  # ObjectRef -> PlannedRun
        self.attempts: dict[str, int] = {}
        self.started: dict[str, int] = {}  # cell -> attempt seen running
        self.stopping: int | None = None
        from parse_actors.provenance import source_digest

        self.source = source_digest()  # the files the sweep started with: every node must run them

    def submit(self, run) -> None:
        from parse_actors.studies.cell import pack

        name = run.point.name
        self.attempts[name] = self.attempts.get(name, 0) + 1
        files = pack(run.dir) if run.state == "resume" else {}
        ref = self.task.remote(run.scenario, name, self.sweep.backend, run.state, files, self.control,
                               self.attempts[name], self.verbosity, self.source)
        self.inflight[ref] = run

    def run(self) -> int | None:
        ray = self.ray
        while self.inflight or (self.queue and self.stopping is None):
            while self.queue and self.stopping is None and len(self.inflight) < self.window:
                self.submit(self.queue.popleft())
            ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=WAIT_S,
                                fetch_local=False)
            for ref in ready:
                self.collect(ref)
            self.look_around()
        return self.stopping

    def collect(self, ref) -> None:
        ray = self.ray
        run = self.inflight.pop(ref)
        name = run.point.name
        self.started.pop(name, None)
        try:
            status, value, files, span = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - sorted below: the cluster's fault or the cell's
            if isinstance(e, ray.exceptions.TaskCancelledError):
                self.progress.cancelled(run)
                return
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
            if _lost(e) and self.attempts[name] <= self.opts.retries and self.stopping is None:
                self.progress.lost(run, why, self.attempts[name] + 1, self.opts.retries + 1)
                self.queue.appendleft(run)
                return
            self.progress.finished(run, "error", f"lost with its node or worker {self.attempts[name]} time(s): {why}"
                                   if _lost(e) else why)
            return
        if status == "cancelled":
            self.progress.cancelled(run)
            return
        if files:
            self.install(run, files)
        self.progress.ran(run, span)
        if status == "interrupted" and self.stopping is None and self.attempts[name] <= self.opts.retries:
            # its process was told to stop, not the sweep: it continues from the checkpoint it sent
            run.state = "resume"
            self.progress.lost(run, f"stopped by signal {value}", self.attempts[name] + 1, self.opts.retries + 1)
            self.queue.appendleft(run)
            return
        self.progress.finished(run, status, value)

    def look_around(self) -> None:
        """Who runs where (progress), and whether a signal asked to stop."""
        ray = self.ray
        try:
            running = ray.get(self.control.snapshot.remote(), timeout=30)
        except ray.exceptions.GetTimeoutError:
            running = None
        names = {r.point.name: r for r in self.inflight.values()}
        if running is not None:
            for name, where in running.items():
                if name in names and where.get("attempt") == self.attempts.get(name) and \
                        self.started.get(name) != where.get("attempt"):
                    self.started[name] = where["attempt"]
                    self.progress.started(names[name], where)
        sig = self.stop_flag.signum
        if sig is None:
            return
        if self.stopping is None:
            self.stopping = sig
            self.progress.stopping(sig, len(self.started))
            self.control.stop.remote()
            for ref, run in list(self.inflight.items()):  # not started yet: never will
                if run.point.name not in self.started:
                    ray.cancel(ref)
        elif self.stop_flag.count > 1:
            for ref in list(self.inflight):
                ray.cancel(ref, force=True)
            self.inflight.clear()
