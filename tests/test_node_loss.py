"""Losing a cluster node: a real two-node Ray cluster on loopback, started and
stopped by these tests (never `ray stop`, which would end every Ray on the
machine), with the run in a subprocess driver (`parse-sim run --ray-address`)
so it does not meet the test session's own Ray instance."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from loopback import LoopbackCluster
from loopback import free_port as _free_port
from run_helpers import kill_host_after_round, live_events
from run_helpers import summary_sans_wall as _summary_sans_wall

from parse_actors.engine import run_scenario
from parse_actors.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
SETS = ["protocol.rounds=8", "train.local_steps=20", "output.plots=false"]
FAST = ["engine.restart_timeout_s=5", "engine.ray_timeout_s=180"]  # generous: a loaded machine starts actors slowly

pytestmark = pytest.mark.slow


def _parse_sim(*args: str, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parse_actors.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _start_run(out: Path, cluster: LoopbackCluster, *sets: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "parse_actors.cli", "run", str(QUICK), "--out", str(out), "-q",
            "--ray-address", cluster.address]
    for s in [*SETS, *sets]:
        args += ["--set", s]
    return subprocess.Popen(args, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def _wait_for_round(out: Path, proc: subprocess.Popen, rnd: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        if any(e.get("event") == "round" and e["round"] >= rnd for e in live_events(out)):
            return
        time.sleep(0.2)
    raise AssertionError(f"round {rnd} not reached in {timeout}s")


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nodeloss") / "inline"
    run_scenario(load_scenario(QUICK, SETS), out, backend="inline")
    return out


@pytest.fixture
def isolated_env(tmp_path):
    """Its own dataset cache, so a stray process is easy to find by path."""
    cache = tempfile.mkdtemp(prefix="psc", dir="/tmp")
    yield {"PARSE_SIM_CACHE": cache}
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.ray
def test_host_with_no_room_to_restart_is_replaced_in_process(inline_run, ray_instance, tmp_path, monkeypatch):
    """Re-placement without a cluster: the session's Ray, a host killed after
    round 0 and (patched) no CPU free for a new actor."""
    from parse_actors.engine.backends import RayBackend

    monkeypatch.setattr(RayBackend, "free_cpus", lambda self, lost: 0.0)
    kill_after_round_0, killed = kill_host_after_round(0)
    out = tmp_path / "replaced"
    run_scenario(load_scenario(QUICK, [*SETS, "engine.hosts=2"]), out, backend="ray", hooks=[kill_after_round_0])
    replaced = [e for e in _events(out) if e["event"] == "host_replaced"]
    assert [(e["host"], e["onto"]) for e in replaced] == [(0, 1)]
    run = json.loads((out / "run.json").read_text())
    assert run["hosts_replaced"] == 1 and run["host_restarts"] == 0
    assert run["host_calls"]["sent"] < run["host_calls"]["submitted"]  # the journal replayed batched calls
    assert (out / "metrics.csv").read_text() == (inline_run / "metrics.csv").read_text()
    assert _summary_sans_wall(out) == _summary_sans_wall(inline_run)


def test_node_lost_mid_run_agents_are_replaced_and_metrics_unchanged(inline_run, tmp_path, isolated_env):
    cluster = LoopbackCluster(head_cpus=2, worker_cpus=1)
    try:
        cluster.env.update(isolated_env)
        out = tmp_path / "lost"
        proc = _start_run(out, cluster, "engine.hosts=3", *FAST)
        _wait_for_round(out, proc, 2)
        t_kill = time.time()
        cluster.kill_worker_node()
        _, stderr = proc.communicate(timeout=180)
        recovery_wall = time.time() - t_kill
        assert proc.returncode == 0, stderr[-3000:]
    finally:
        cluster.stop()
    replaced = [e for e in _events(out) if e["event"] == "host_replaced"]
    assert replaced, [e["event"] for e in _events(out)]
    run = json.loads((out / "run.json").read_text())
    assert run["hosts_replaced"] == len(replaced) and run["hosts"] == 3
    # re-placement and replay change nothing: the same tables as the inline run
    assert (out / "metrics.csv").read_text() == (inline_run / "metrics.csv").read_text()
    assert (out / "conflict.csv").read_text() == (inline_run / "conflict.csv").read_text()
    assert _summary_sans_wall(out) == _summary_sans_wall(inline_run)
    assert not (out / "checkpoint.pt").exists()
    print(f"recovered and finished {recovery_wall:.1f}s after the node was killed")


def test_no_room_left_is_one_line_error_then_resume_elsewhere(inline_run, tmp_path, isolated_env):
    # every host on the worker (the head has no CPU): losing it leaves nowhere to go
    cluster = LoopbackCluster(head_cpus=0, worker_cpus=1)
    try:
        cluster.env.update(isolated_env)
        out = tmp_path / "stuck"
        proc = _start_run(out, cluster, "engine.hosts=2", "output.checkpoint_every=0", *FAST)
        _wait_for_round(out, proc, 2)
        t_kill = time.time()
        cluster.kill_worker_node()
        _, stderr = proc.communicate(timeout=120)
        took = time.time() - t_kill
    finally:
        cluster.stop()
    assert proc.returncode == 1, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("parse-sim:")]
    assert len(lines) == 1 and "lost with" in lines[0] and f"--resume {out}" in lines[0], stderr[-3000:]
    assert "0 of 0.5 CPU free" in lines[0] or "no result" in lines[0], lines[0]
    assert took < 60, took
    print(f"stalled run ended {took:.1f}s after the node was killed")
    summary = json.loads((out / "summary.json").read_text())
    # the kill can land before or after round 2's snapshot reaches the driver: the tables and the
    # checkpoint end at the last snapshot, whichever it was
    assert summary["complete"] is False and summary["rounds"] >= 1
    from parse_actors.engine import checkpoint as ckpt

    assert ckpt.load(out)["round"] == summary["rounds"] - 1  # from the last snapshot (checkpoint_every=0)
    # the cluster is gone: resuming as it ran fails fast, in one line
    t0 = time.time()
    r = _parse_sim("run", "--resume", str(out), env=cluster.env, timeout=60)
    assert r.returncode == 1 and time.time() - t0 < 30, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"parse-sim: cannot reach the Ray cluster at {cluster.address}")
    port = _free_port()  # an override names another cluster: that one is tried (and fails fast) instead
    r = _parse_sim("run", "--resume", str(out), "--ray-address", f"127.0.0.1:{port}", env=cluster.env, timeout=60)
    assert r.returncode == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in r.stderr, r.stderr[-2000:]
    # ... and onto another backend it ends as if nothing had happened
    r = _parse_sim("run", "--resume", str(out), "--backend", "inline", "-q", env=cluster.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "metrics.csv").read_text() == (inline_run / "metrics.csv").read_text()
    assert _summary_sans_wall(out) == _summary_sans_wall(inline_run)


def test_first_ctrl_c_ends_a_round_blocked_on_a_hung_node(inline_run, tmp_path, isolated_env):
    # Ray's own node-failure detection at its defaults (slow): the round stays blocked
    cluster = LoopbackCluster(head_cpus=2, worker_cpus=1, system_config=None)
    try:
        cluster.env.update(isolated_env)
        out = tmp_path / "hung"
        proc = _start_run(out, cluster, "engine.hosts=3", "output.checkpoint_every=0", *FAST)
        _wait_for_round(out, proc, 2)
        cluster.freeze_worker_node()
        time.sleep(1.0)
        t_int = time.time()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=90)
        took = time.time() - t_int
    finally:
        cluster.stop()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted by SIGINT" in stderr and took < 45, (took, stderr[-2000:])
    print(f"ended {took:.1f}s after SIGINT")
    summary = json.loads((out / "summary.json").read_text())
    # the freeze can land before or after round 2's snapshot reaches the driver (a loaded
    # machine): the tables and the checkpoint end at the last snapshot, whichever it was
    assert summary["complete"] is False and summary["rounds"] >= 1
    from parse_actors.engine import checkpoint as ckpt

    assert ckpt.load(out)["round"] == summary["rounds"] - 1
    r = _parse_sim("run", "--resume", str(out), "--backend", "inline", "-q", env=cluster.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "metrics.csv").read_text() == (inline_run / "metrics.csv").read_text()
    assert _summary_sans_wall(out) == _summary_sans_wall(inline_run)


def test_unreachable_ray_address_fails_fast(tmp_path, isolated_env):
    port = _free_port()  # nothing listens there
    t0 = time.time()
    r = _parse_sim("run", str(QUICK), "--out", str(tmp_path / "x"), "--ray-address", f"127.0.0.1:{port}",
                   env={**os.environ, **isolated_env}, timeout=60)
    assert r.returncode == 1, r.stderr
    assert time.time() - t0 < 30
    assert r.stderr.strip().splitlines() == [
        f"parse-sim: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused); start it, or run with "
        "--ray-address HOST:PORT of a live cluster, --ray-address local or --backend inline"]
