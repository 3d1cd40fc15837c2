"""Where AgentHosts run: in-process (`inline`) or as Ray actors (`ray`).

Both expose the same three verbs to the coordinator: `call` submits a host
method and returns a reference at once, `get` awaits references, `shutdown`
releases everything. On Ray a reference is an ObjectRef (payloads travel host
to host without touching the coordinator); inline it is the value itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

from parse_actors.data.cache import cache_root
from parse_actors.engine.host import AgentHost


SETUP_METHODS = ("add_agents", "set_eval_data")
"""Host calls that rebuild a host's agents; replayed when a dead host is restarted."""


class InlineBackend:
    """Runs every host in the coordinator's process, eagerly, in call order."""

    name = "inline"

    def __init__(self, n_hosts: int, torch_threads: int = 1, device: str = "cpu"):
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.hosts = [AgentHost(h, torch_threads, device) for h in range(n_hosts)]

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        return getattr(self.hosts[host], method)(*args)

    def put(self, value: Any) -> Any:
        """A reference to share one value with every host (inline: the value itself)."""
        return value

    async def get(self, refs: Sequence[Any]) -> list[Any]:
        return list(refs)

    def wait(self, refs: Sequence[Any]) -> None:
        return None

    def dead_hosts(self) -> list[int]:
        return []

    def shutdown(self) -> None:
        self.hosts = []


class RayBackend:
    """AgentHosts as Ray actors; each executes its calls in submission order."""

    name = "ray"

    def __init__(self, n_hosts: int, torch_threads: int = 1, device: str = "cpu"):
        import ray

        self._ray = ray
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 1.0))
        gpus = float(resources.get("GPU", 0.0))
        per_cpu = min(1.0, cpus / n_hosts)
        if device == "auto":
            device = "cuda" if gpus > 0 else "cpu"
        self.device = device
        opts: dict[str, Any] = {"num_cpus": per_cpu, "max_concurrency": 1, "max_restarts": 0}
        if device != "cpu" and gpus > 0:
            opts["num_gpus"] = min(1.0, gpus / n_hosts)
        self._actor_cls = ray.remote(AgentHost).options(**opts)
        self._init_args = (torch_threads, device)
        self._setup: dict[int, list[tuple[str, tuple]]] = {h: [] for h in range(n_hosts)}
        self.hosts = [self._actor_cls.remote(h, *self._init_args) for h in range(n_hosts)]

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        if method in SETUP_METHODS:
            self._setup[host].append((method, args))
        fn = getattr(self.hosts[host], method)
        if num_returns != 1:
            fn = fn.options(num_returns=num_returns)
        return fn.remote(*args)

    def put(self, value: Any) -> Any:
        """Put `value` in the object store once; hosts receive it by reference."""
        return self._ray.put(value)

    def dead_hosts(self, timeout_s: float = 30.0) -> list[int]:
        """Hosts whose actor no longer answers."""
        ray = self._ray
        pings = {h: a.pid.remote() for h, a in enumerate(self.hosts)}
        dead = []
        for h, ref in pings.items():
            try:
                ray.get(ref, timeout=timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                dead.append(h)
        return dead

    def restart_host(self, host: int) -> None:
        """A fresh actor holding the same agents as built at set-up (state restored by the caller)."""
        try:
            self._ray.kill(self.hosts[host])
        except Exception:  # noqa: BLE001
            pass
        self.hosts[host] = self._actor_cls.remote(host, *self._init_args)
        for method, args in self._setup[host]:
            getattr(self.hosts[host], method).remote(*args)

    def kill_host(self, host: int) -> None:
        """Kill a host's actor (for fault-injection tests)."""
        self._ray.kill(self.hosts[host], no_restart=True)

    def wait(self, refs: Sequence[Any]) -> None:
        """Block until `refs` are computed, without fetching them here."""
        if refs:
            self._ray.wait(list(refs), num_returns=len(refs), fetch_local=False)

    async def get(self, refs: Sequence[Any]) -> list[Any]:
        if not refs:
            return []
        return list(await asyncio.gather(*refs))

    def shutdown(self) -> None:
        for h in self.hosts:
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
    """A Ray instance for one run: local and self-contained unless `address` is given.

    A local instance gets its own temp dir, no dashboard, no usage stats and
    token auth off (it listens on loopback only); it is shut down and its temp
    dir removed on exit. If Ray is already initialised (a test session sharing
    one instance), it is used as is and left running.
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    tmp = None
    kwargs: dict[str, Any] = dict(configure_logging=False, log_to_driver=False)
    if address:
        kwargs["address"] = address
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        base = _ray_temp_base()
        base.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="r", dir=base)
        kwargs.update(include_dashboard=False, _temp_dir=tmp, num_cpus=num_cpus or os.cpu_count() or 1)
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
