"""A real multi-node Ray cluster on 127.0.0.1 for tests (imported by test modules).

Started with `ray start` in a temp dir of its own and stopped by killing every
process it started, found by that dir and by process tree: never `ray stop`,
which would end every Ray instance on the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
# the head notices a dead node within ~3 s (defaults: ~30 s)
SYSTEM_CONFIG = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 500,
                 "health_check_timeout_ms": 500, "health_check_failure_threshold": 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_matching(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return {int(p) for p in out} - {os.getpid()}


def with_descendants(pids: set[int]) -> set[int]:
    """`pids` (those still alive) and every process under them."""
    todo, seen = [p for p in pids if Path(f"/proc/{p}").exists()], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += [int(c) for c in subprocess.run(["pgrep", "-P", str(p)], capture_output=True,
                                                 text=True).stdout.split()]
    return seen


class LoopbackCluster:
    """A head and one worker node on 127.0.0.1, in a temp dir of their own (more
    worker nodes with `add_worker`); every process it started is found by that
    dir or by process tree and killed by pid. `env` is what its nodes run with
    (and what a driver that joins it should use); `extra_env` adds to it."""

    def __init__(self, head_cpus: int, worker_cpus: int, system_config: dict | None = SYSTEM_CONFIG,
                 extra_env: dict | None = None):
        self.tmp = tempfile.mkdtemp(prefix="psn", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **(extra_env or {})}
        self.raylets: list[int] = []  # head first
        self.frozen: set[int] = set()
        try:
            self._ray("start", "--head", f"--port={self.port}", f"--num-cpus={head_cpus}", f"--temp-dir={self.tmp}",
                      "--include-dashboard=false", f"--dashboard-port={free_port()}",
                      *([f"--system-config={json.dumps(system_config)}"] if system_config else []), *self._common())
            self.raylets = sorted(self._raylets())
            self.worker_raylet = self.add_worker(worker_cpus)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _common() -> list[str]:
        return ["--node-ip-address=127.0.0.1", "--disable-usage-stats",
                f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]

    def add_worker(self, cpus: int) -> int:
        """Start one more worker node; returns its raylet's pid."""
        before = self._raylets()
        self._ray("start", f"--address={self.address}", f"--num-cpus={cpus}", *self._common())
        new = self._raylets() - before
        assert len(new) == 1, f"expected one new raylet, got {new}"
        pid = new.pop()
        self.raylets.append(pid)
        return pid

    def _ray(self, *args: str) -> None:
        r = subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    def _raylets(self) -> set[int]:
        return {p for p in pids_matching(self.tmp) if Path(f"/proc/{p}/comm").exists()
                and Path(f"/proc/{p}/comm").read_text().strip() == "raylet"}

    def node_processes(self, raylet: int) -> set[int]:
        """A node's raylet and every process under it (its workers and agents)."""
        return with_descendants({raylet})

    def kill_worker_node(self) -> None:
        """SIGKILL the (first) worker's raylet only: its workers find out by themselves."""
        os.kill(self.worker_raylet, signal.SIGKILL)

    def kill_node(self, raylet: int) -> None:
        """SIGKILL a node's raylet and every process under it at once, as when the machine dies."""
        for p in self.node_processes(raylet):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def freeze_worker_node(self) -> None:
        """SIGSTOP the worker's raylet and everything under it (its actors): a hung node."""
        self.frozen = with_descendants({self.worker_raylet})
        for p in self.frozen:
            os.kill(p, signal.SIGSTOP)

    def processes(self) -> set[int]:
        """Every live process of the cluster."""
        return with_descendants(pids_matching(self.tmp) | self.frozen)

    def stop(self) -> None:
        """Kill every process of the cluster: those naming its temp dir, whatever runs
        under them, and whatever was frozen. Ray's agents and workers rename
        themselves (ray::DashboardAgent, ray::AgentHost) so only the tree finds them,
        and a frozen one never notices its raylet is gone."""
        for _ in range(3):
            pids = self.processes()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.frozen = set()
            time.sleep(0.5)
        shutil.rmtree(self.tmp, ignore_errors=True)
