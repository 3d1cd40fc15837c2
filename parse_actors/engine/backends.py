"""Where AgentHosts run: in-process (`inline`) or as Ray actors (`ray`).

Both expose the same three verbs to the coordinator: `call` submits a host
method and returns a reference at once, `get` awaits references, `shutdown`
releases everything. On Ray a reference is an ObjectRef (payloads travel host
to host without touching the coordinator); inline it is the value itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Sequence

from parse_actors.data.cache import cache_root


SETUP_METHODS = ("add_agents", "set_eval_data")
"""Host calls that rebuild a host's agents; replayed when a dead host is restarted."""


class InlineBackend:
    """Runs every host in the coordinator's process, eagerly, in call order."""

    name = "inline"

    def __init__(self, n_hosts: int, torch_threads: int = 1, device: str = "cpu", batched_stepping: str = "auto"):
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        from parse_actors.engine.host import AgentHost  # torch: not before a backend is built (runner.py)

        self.device = device
        self.hosts = [AgentHost(h, torch_threads, device, batched_stepping) for h in range(n_hosts)]

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        return getattr(self.hosts[host], method)(*args)

    def checkpoint_args(self, host: int) -> tuple:
        """Arguments of a host's `checkpoint` call: its own agents (all of them, inline)."""
        return ()

    def put(self, value: Any) -> Any:
        """A reference to share one value with every host (inline: the value itself)."""
        return value

    async def get(self, refs: Sequence[Any]) -> list[Any]:
        return list(refs)

    def wait(self, refs: Sequence[Any]) -> None:
        return None

    def dead_hosts(self, timeout_s: float | None = None, known: frozenset | set = frozenset()) -> list[int]:
        return []

    def describe(self) -> str:
        return ""

    def shutdown(self) -> None:
        self.hosts = []


class RayBackend:
    """AgentHosts as Ray actors; each executes its calls in submission order.

    Hosts are logical (the coordinator's `views[a].host`); each maps to an
    actor. When a host's actor is lost and the cluster has no room for a new
    one, the host is re-placed: its agents are rebuilt on a surviving host's
    actor, which from then on serves both (failover.py).
    """

    name = "ray"

    def __init__(self, n_hosts: int, torch_threads: int = 1, device: str = "cpu", batched_stepping: str = "auto"):
        import ray

        self._ray = ray
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 1.0))
        gpus = float(resources.get("GPU", 0.0))
        # one CPU per host where the cluster has them, a share of them where it has fewer
        self.per_cpu = min(1.0, cpus / n_hosts)
        if device == "auto":
            device = "cuda" if gpus > 0 else "cpu"
        self.device = device
        opts: dict[str, Any] = {"num_cpus": self.per_cpu, "max_concurrency": 1, "max_restarts": 0}
        if device != "cpu" and gpus > 0:
            opts["num_gpus"] = min(1.0, gpus / n_hosts)
        from parse_actors.engine.host import AgentHost

        self._actor_cls = ray.remote(AgentHost).options(**opts)
        self._init_args = (torch_threads, device, batched_stepping)
        self._setup: dict[int, list[tuple[str, tuple]]] = {h: [] for h in range(n_hosts)}
        self.hosts = [self._actor_cls.remote(h, *self._init_args) for h in range(n_hosts)]
        self.moved: dict[int, int] = {}  # re-placed host -> the host whose actor now holds its agents
        # deadlines and the stop check; set from the scenario by journal.attach
        self.timeout_s = 300.0
        self.restart_timeout_s = 30.0
        self.stop: Callable[[], int | None] = lambda: None

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def aids(self, host: int) -> list[int]:
        """The agents built on a host (from its set-up calls)."""
        return [spec.agent_id for method, args in self._setup[host] if method == "add_agents"
                for spec, *_ in args[0]]

    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        if method in SETUP_METHODS:
            self._setup[host].append((method, args))
        fn = getattr(self.hosts[host], method)
        if num_returns != 1:
            fn = fn.options(num_returns=num_returns)
        return fn.remote(*args)

    def checkpoint_args(self, host: int) -> tuple:
        """Arguments of a host's `checkpoint` call: once a host was re-placed, an actor
        may hold several hosts' agents, so each call names its host's."""
        return (self.aids(host),) if self.moved else ()

    def put(self, value: Any) -> Any:
        """Put `value` in the object store once; hosts receive it by reference."""
        return self._ray.put(value)

    def _actors(self) -> dict[Any, list[int]]:
        """Each distinct actor with the hosts it serves."""
        out: dict[Any, list[int]] = {}
        for h, a in enumerate(self.hosts):
            out.setdefault(a, []).append(h)
        return out

    def dead_hosts(self, timeout_s: float | None = None, known: frozenset | set = frozenset()) -> list[int]:
        """Hosts whose actor does not answer within `timeout_s` (default
        engine.restart_timeout_s; a host busy with queued calls answers after
        them), plus those whose actor id (hex) is in `known` (named by an error:
        an actor whose connection broke is not waited for)."""
        ray = self._ray
        timeout_s = self.restart_timeout_s if timeout_s is None else timeout_s
        actors = self._actors()
        dead = [h for a, hs in actors.items() if a._actor_id.hex() in known for h in hs]
        pings = {a.pid.remote(): hs for a, hs in actors.items() if a._actor_id.hex() not in known}
        ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=timeout_s, fetch_local=True) \
            if pings else ([], [])
        for ref, hs in pings.items():
            if ref in ready:
                try:
                    ray.get(ref, timeout=timeout_s)
                    continue
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    pass
            dead.extend(hs)
        return sorted(dead)

    # -- losing a host ------------------------------------------------------
    def free_cpus(self, lost: list[int]) -> float:
        """CPUs of the live cluster not held by the hosts' actors other than `lost`'s."""
        total = float(self._ray.cluster_resources().get("CPU", 0.0))
        held = {a for h, a in enumerate(self.hosts) if h not in lost}
        return max(0.0, total - self.per_cpu * len(held))

    def revive(self, host: int, dead: set[int] | frozenset = frozenset()) -> int | None:
        """Give a dead host a live actor holding its agents as built at set-up
        (state is restored by the caller). A new actor when the cluster has room
        for one within engine.restart_timeout_s (returns None), else the
        least-loaded surviving host's actor (returns that host; `dead`: hosts
        known to be dead too). RunStalled when neither exists."""
        from parse_actors.engine.failover import RESUME_HINT, RunStalled, pick_survivor

        ray = self._ray
        lost = [h for h, a in enumerate(self.hosts) if a is self.hosts[host]]
        try:
            ray.kill(self.hosts[host], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        free = self.free_cpus(lost)
        if free + 1e-9 >= self.per_cpu:
            actor = self._actor_cls.remote(host, *self._init_args)
            if self._started(actor):
                self._rebuild(host, actor)
                return None
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        # no room: move the host's agents onto a surviving host's actor
        alive = [h for h in range(self.n_hosts) if h not in dead and h not in set(lost) and h not in self.moved]
        loads = {h: float(len(self.aids(h))) + sum(len(self.aids(m)) for m, g in self.moved.items() if g == h)
                 for h in alive}
        onto = pick_survivor(loads)
        if onto is None:
            gone = sorted(set(lost) | set(dead))
            many = len(gone) > 1
            raise RunStalled(f"host{'s' if many else ''} {', '.join(map(str, gone))} lost with "
                             f"{'their node(s)' if many else 'its node'}; {free:g} of {self.per_cpu:g} CPU free and no "
                             f"surviving host to take {'their' if many else 'its'} agents; {RESUME_HINT}")
        self._rebuild(host, self.hosts[onto])
        self.moved[host] = onto
        return onto

    def _started(self, actor: Any, no_room_s: float = 3.0) -> bool:
        """Whether a new actor starts within engine.restart_timeout_s; gives up
        sooner when the cluster has had no CPU free for it for `no_room_s` (its
        view may still count a node that is gone)."""
        ray = self._ray
        ping = actor.pid.remote()
        t0 = time.monotonic()
        roomless_since = None
        while time.monotonic() - t0 < self.restart_timeout_s:
            ready, _ = ray.wait([ping], timeout=0.2)
            if ready:
                try:
                    ray.get(ping)
                    return True
                except ray.exceptions.RayError:
                    return False
            now = time.monotonic()
            if float(ray.available_resources().get("CPU", 0.0)) + 1e-9 >= self.per_cpu:
                roomless_since = None
            elif roomless_since is None:
                roomless_since = now
            elif now - roomless_since > min(no_room_s, self.restart_timeout_s):
                return False
        return False

    def _rebuild(self, host: int, actor: Any) -> None:
        """Point `host` at `actor` and build its agents there (set-up calls replayed)."""
        self.moved.pop(host, None)
        self.hosts[host] = actor
        for method, args in self._setup[host]:
            getattr(actor, method).remote(*args)

    def describe(self) -> str:
        """What the cluster lacks, for an error line ('' when it cannot tell)."""
        try:
            total = float(self._ray.cluster_resources().get("CPU", 0.0))
            free = float(self._ray.available_resources().get("CPU", 0.0))
        except Exception:  # noqa: BLE001
            return ""
        return (f" ({len(self._actors())} host actors, {free:g} of {total:g} cluster CPUs free, "
                f"{self.per_cpu:g} per host)")

    def kill_host(self, host: int) -> None:
        """Kill a host's actor (for fault-injection tests)."""
        self._ray.kill(self.hosts[host], no_restart=True)

    def wait(self, refs: Sequence[Any]) -> None:
        """Block until `refs` are computed, without fetching them here (deadline: engine.ray_timeout_s)."""
        if refs:
            self._ray.wait(list(refs), num_returns=len(refs), fetch_local=False, timeout=self.timeout_s)

    async def get(self, refs: Sequence[Any]) -> list[Any]:
        from parse_actors.engine.failover import gather

        if not refs:
            return []
        return await gather(refs, self.timeout_s, self.stop, self.describe)

    def shutdown(self) -> None:
        for h in set(self.hosts):
            try:
                self._ray.kill(h)
            except Exception:  # noqa: BLE001 - already gone is fine
                pass
        self.hosts = []


def _ray_temp_base() -> Path:
    """Ray's session dir holds unix sockets whose paths must stay under ~107
    bytes, and Ray appends ~60; fall back to a short /tmp path when the cache
    dir is deep."""
    base = cache_root() / "ray"
    if len(str(base)) <= 40:
        return base
    return Path(tempfile.gettempdir()) / f"psim-ray-{os.getuid()}"


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """A Ray instance for one run: local and self-contained unless `address` is given
    (HOST:PORT or auto; 'local' is the same as none).

    A local instance gets its own temp dir, no dashboard, no usage stats and
    token auth off (it listens on loopback only). On every way out (an error,
    KeyboardInterrupt, a signal's stop, even one cutting `ray.init` or
    `ray.shutdown` short) it is shut down, whatever of its processes is still
    alive is killed (`_own_processes`: never another Ray on the machine) and its
    temp dir removed. If Ray is already initialised (a test session sharing one
    instance), it is used as is and left running; a joined cluster's processes
    are the cluster's.
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    tmp = None
    kwargs: dict[str, Any] = dict(configure_logging=False, log_to_driver=False)
    if address == "local":  # a local instance even where the scenario names a cluster
        address = None
    if address:
        kwargs["address"] = address
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        base = _ray_temp_base()
        base.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="r", dir=base)
        kwargs.update(include_dashboard=False, _temp_dir=tmp, num_cpus=num_cpus or os.cpu_count() or 1)
    try:
        ray.init(**kwargs)
        yield ray
    finally:
        own = _own_processes(tmp) if tmp else []  # before shutdown: workers still hang under their raylet
        try:
            ray.shutdown()
        finally:
            if tmp:
                _kill(own + _own_processes(tmp))
                shutil.rmtree(tmp, ignore_errors=True)


def _own_processes(tmp: str) -> list:
    """The processes of the local Ray instance whose temp dir is `tmp`: those naming it
    on their command line (gcs_server, raylet, log monitor, agents) and every process
    under them (workers rename themselves `ray::...`, so only the tree finds them).
    `tmp` is unique to this session, so no other Ray on the machine matches."""
    import psutil  # shipped with Ray (ray/thirdparty_files, on sys.path once ray is imported)

    me, inside = os.getpid(), tmp.rstrip(os.sep) + os.sep
    roots = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != me and any(inside in part or part.endswith(tmp) for part in (p.info["cmdline"] or ())):
                roots.append(p)
        except (psutil.Error, TypeError):
            continue
    found = {p.pid: p for p in roots}
    for p in roots:
        try:
            found.update({c.pid: c for c in p.children(recursive=True) if c.pid != me})
        except psutil.Error:
            continue
    return list(found.values())


def _kill(procs: list, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s` for what is still alive (psutil checks each
    process's start time, so a reused pid is never hit). A zombie counts as gone: it
    runs nothing, and reaping it is its new parent's business."""
    import psutil

    def running(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    for sig_send in ("terminate", "kill"):
        alive = [p for p in procs if running(p)]
        for p in alive:
            try:
                getattr(p, sig_send)()
            except psutil.Error:
                continue
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in alive if running(p)]
        if not alive:
            return
