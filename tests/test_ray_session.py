"""`ray_session` leaves no process of its own Ray behind, on every way out, and
never touches another Ray instance on the machine.

Each case runs in a fresh Python process (in the test session `ray_session` would
join the shared instance and leave it running). A task starts a child process
in a session of its own, as a tool a task runs may do (Ray ends a worker's
ordinary children itself, measured here, but not that one): `ray.shutdown`
stops the worker, not that child; only the session's own clean-up (its process
tree, collected before the shut-down) ends it. Before, it outlived the session;
the same clean-up ends Ray's own agents, which otherwise notice their raylet is
gone only a while after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import sys
    from parse_actors.engine.backends import ray_session

    how = sys.argv[1]
    try:
        with ray_session(num_cpus=1) as ray:
            @ray.remote
            def spawn():
                import subprocess
                return subprocess.Popen(["sleep", "600"], start_new_session=True).pid

            print(ray.get(spawn.remote()), flush=True)
            if how == "keyboard":
                raise KeyboardInterrupt
            if how == "error":
                raise RuntimeError("the run failed")
    except (KeyboardInterrupt, RuntimeError):
        pass
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["normal", "keyboard", "error"])
def test_the_session_kills_what_its_ray_left_alive(tmp_path, how):
    cache = tempfile.mkdtemp(prefix="psr", dir="/tmp")
    bystander = subprocess.Popen(["sleep", "600"])  # another process on the machine: not the session's
    try:
        r = subprocess.run([sys.executable, "-c", DRIVER, how], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PARSE_SIM_CACHE": cache}, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        child = int(r.stdout.split()[0])
        assert not _alive(child), "a process started under the session's Ray outlived it"
        left = [p for p in subprocess.run(["pgrep", "-f", cache], capture_output=True, text=True).stdout.split()
                if _alive(int(p))]
        assert left == [], left
        assert _alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()
        shutil.rmtree(cache, ignore_errors=True)
