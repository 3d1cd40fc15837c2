"""`parse-sim sweep --ray-address`: cells as Ray tasks on a real two-raylet
cluster on loopback (tests/loopback.py), driven by a `parse-sim` subprocess
(so it never meets the test session's own Ray instance). Every result is
compared with the same sweep in the local process pool: the cells' tables,
sweep.csv (but wall time), tuned.csv and the report must be the same bytes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from loopback import LoopbackCluster
from run_helpers import summary_sans_wall

from parse_actors.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
# 6 small cells: 2 methods x 3 learning rates (a --tune key, so tuned.csv is compared too; no edge
# extension, so the cells are these 6), one seed
SWEEP = ["--grid", "method=parse,local", "--tune", "optim.lr=0.02,0.05,0.1", "--no-extend",
         "--set", "protocol.rounds=4", "--set", "train.local_steps=5", "--set", "output.plots=false",
         "--set", "output.final_weights_max_mb=0"]
CELLS = 6
TIMEOUT = 600  # a safety net on a loaded machine, never a bound

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory) -> Path:
    """The reference: the same sweep in the local process pool."""
    out = tmp_path_factory.mktemp("pool") / "sw"
    assert main(["-q", "sweep", str(QUICK), *SWEEP, "--out", str(out), "--parallel", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def cluster():
    """Head and worker, one CPU each; cells' scratch directories in a TMPDIR of its own."""
    scratch_tmp = tempfile.mkdtemp(prefix="psw", dir="/tmp")
    c = LoopbackCluster(head_cpus=1, worker_cpus=1, extra_env={"TMPDIR": scratch_tmp})
    c.scratch_tmp = Path(scratch_tmp)
    try:
        yield c
    finally:
        c.stop()
        left = c.processes()
        shutil.rmtree(scratch_tmp, ignore_errors=True)
        assert not left, f"cluster processes outlived the tests: {left}"


def _sweep_args(out: Path, cluster: LoopbackCluster, *more: str) -> list[str]:
    return [sys.executable, "-m", "parse_actors.cli", "sweep", str(QUICK), *SWEEP, "--out", str(out),
            "--ray-address", cluster.address, *more]


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _progress(out: Path) -> dict:
    try:
        return json.loads((out / "progress.json").read_text())
    except (OSError, ValueError):  # not written yet
        return {}


def _wait_for(proc: subprocess.Popen, out: Path, what, every_s: float = 0.1, timeout: float = TIMEOUT) -> dict:
    """Poll progress.json until `what(progress)` holds; fails if the sweep ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = _progress(out)
        if p and what(p):
            return p
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended first (rc {proc.returncode}): {proc.stderr.read()[-3000:]}")
        time.sleep(every_s)
    raise AssertionError(f"not seen within {timeout}s: {_progress(out)}")


def _sweep_csv_sans_wall(out: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    for r in rows:
        r.pop("wall_time_s")
    return rows


def _report(out: Path) -> str:
    assert main(["-q", "report", str(out)]) == 0
    return (out / "report.md").read_text().replace(str(out), "SWEEP_DIR")


def assert_same_results(out: Path, ref: Path) -> None:
    cells = [r["dir"] for r in json.loads((ref / "sweep.json").read_text())["runs"]]
    assert len(cells) == CELLS and [r["dir"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == cells
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".sweep.lock"]
    for c in cells:
        for table in ("metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv", "scenario.yaml"):
            assert (out / c / table).read_bytes() == (ref / c / table).read_bytes(), (c, table)
        assert summary_sans_wall(out / c) == summary_sans_wall(ref / c), c
    assert _sweep_csv_sans_wall(out) == _sweep_csv_sans_wall(ref)
    assert (out / "tuned.csv").read_bytes() == (ref / "tuned.csv").read_bytes()
    assert _report(out) == _report(ref)


def test_cluster_sweep_equals_local_pool(pool_sweep, cluster, tmp_path):
    out = tmp_path / "sw"
    r = _run(_sweep_args(out, cluster, "-v"), cluster.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"cells run on Ray cluster at {cluster.address}" in r.stdout
    assert "6 ran, 0 skipped, 0 failed" in r.stdout
    assert sum(line.startswith("[") and "acc " in line for line in r.stdout.splitlines()) == CELLS  # -v: each cell
    progress = _progress(out)
    assert progress["finished"] and progress["done"] == CELLS and progress["retries"] == 0
    assert len(progress["cells_per_node"]) == 2, progress  # both nodes ran cells
    # never more cells on a node than its CPUs (one each here): a cell that blocked in ray.get
    # would have lent its CPU to the next one
    by_node: dict[str, list] = {}
    for c in progress["cells"].values():
        by_node.setdefault(c["node"], []).append((c["started"], c["ended"]))
    for spans in by_node.values():
        spans.sort()
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), spans
    assert_same_results(out, pool_sweep)
    assert not any(cluster.scratch_tmp.glob("psim-cells-*/*")), "a cell's scratch directory was left behind"


def test_resume_after_sigint_runs_only_missing_cells(pool_sweep, cluster, tmp_path):
    out = tmp_path / "sw"
    proc = _start(_sweep_args(out, cluster, "--parallel", "1"), cluster.env)
    try:
        _wait_for(proc, out, lambda p: p["done"] >= 1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert f"continue with: parse-sim sweep --resume {out}" in stderr
    manifest = json.loads((out / "sweep.json").read_text())
    cells = [r["dir"] for r in manifest["runs"]]
    done = [c for c in cells if (out / c / "summary.json").is_file()
            and json.loads((out / c / "summary.json").read_text())["complete"]]
    stopped = [c for c in cells if (out / c / "checkpoint.pt").is_file()]  # stopped after a round
    assert 1 <= len(done) < CELLS, done
    before = {c: (out / c / "summary.json").stat().st_mtime_ns for c in done}

    r = _run([sys.executable, "-m", "parse_actors.cli", "sweep", "--resume", str(out),
              "--ray-address", cluster.address], cluster.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(done)} of {CELLS} runs already complete" in r.stdout
    assert f"{CELLS - len(done)} ran, {len(done)} skipped, 0 failed" in r.stdout
    assert {c: (out / c / "summary.json").stat().st_mtime_ns for c in done} == before  # not run again
    for c in stopped:  # continued from the checkpoint it sent back when stopped
        assert json.loads((out / c / "run.json").read_text())["resumed_from_round"] is not None, c
    assert_same_results(out, pool_sweep)


def test_node_killed_mid_sweep_cell_is_rerun_elsewhere(pool_sweep, cluster, tmp_path):
    out = tmp_path / "sw"
    extra = cluster.add_worker(1)  # the node to lose; the module's two nodes stay
    proc = _start(_sweep_args(out, cluster), cluster.env)
    try:
        # a cell is running on the extra node (its worker process is under that raylet)
        def on_extra(p: dict) -> list[dict]:
            procs = cluster.node_processes(extra) if p["running"] else set()
            return [r for r in p["running"] if r.get("pid") in procs]

        victim = on_extra(_wait_for(proc, out, on_extra, every_s=0.3))[0]
        assert victim["node"] != _progress(out)["driver_node"]
        cluster.kill_node(extra)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "lost with its node or worker" in stdout and "running it again (attempt 2 of 4)" in stdout, stdout
    progress = _progress(out)
    assert progress["retries"] >= 1 and progress["done"] == CELLS
    assert_same_results(out, pool_sweep)
    # the dead cell's scratch directory was taken over (its lock died with it) and removed
    assert not any(cluster.scratch_tmp.glob("psim-cells-*/*"))


def test_cell_failing_by_itself_is_recorded_and_the_others_go_on(cluster, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a cuda cell would not fail here")
    out = tmp_path / "sw"
    r = _run([sys.executable, "-m", "parse_actors.cli", "sweep", str(QUICK), "--grid", "engine.device=cpu,cuda",
              "--set", "protocol.rounds=2", "--set", "train.local_steps=2", "--set", "output.plots=false",
              "--out", str(out), "--ray-address", cluster.address], cluster.env)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "1 ran, 0 skipped, 1 failed" in r.stdout
    failed = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and "engine.device=cuda" in failed[0] and "CUDA" in failed[0], r.stdout
    rows = {row["engine.device"]: row for row in csv.DictReader(io.StringIO((out / "sweep.csv").read_text()))}
    assert rows["cpu"]["complete"] == "true" and rows["cpu"]["error"] == ""
    assert rows["cuda"]["complete"] == "false" and "CUDA" in rows["cuda"]["error"]
    progress = _progress(out)
    assert progress["retries"] == 0 and progress["failed"] == 1 and "CUDA" in next(iter(progress["errors"].values()))
