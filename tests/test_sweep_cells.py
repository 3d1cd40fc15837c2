"""Sweep cells away from the cluster: a cell's files packed and written back in one
rename, scratch directories of dead processes taken over, the progress
estimate, `sweep --resume` planning, and the flags of `sweep --ray-address`
(all without starting Ray, but the last test, which uses the session's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parse_actors.cli import main
from parse_actors.metrics import dirguard
from parse_actors.metrics.dirguard import GuardError, write_marker
from parse_actors.studies import cell
from parse_actors.studies.progress import SweepProgress, clock

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_pack_install_round_trip_replaces_the_directory_whole(tmp_path):
    src = tmp_path / "src"
    (src / "plots").mkdir(parents=True)
    (src / "metrics.csv").write_bytes(b"round,t\n0,1.0\n")
    (src / "plots" / "a.png").write_bytes(b"\x89PNG")
    (src / "link").symlink_to(tmp_path / "elsewhere")  # links are not followed, not copied
    write_marker(src)  # a cell's scratch run directory, as RunDir makes it
    (src / dirguard.LOCK).write_text("123\n")  # the scratch run's lock: not a result
    files = cell.pack(src)
    assert files == {dirguard.MARKER: dirguard.MARKER_TEXT.encode(), "metrics.csv": b"round,t\n0,1.0\n",
                     "plots/a.png": b"\x89PNG"}
    dst = tmp_path / "sw" / "cell"
    dst.mkdir(parents=True)
    write_marker(dst)  # an earlier attempt's run directory: the run-directory rule lets it be replaced
    (dst / "stale.txt").write_text("from an earlier attempt")
    cell.install(dst, files)
    assert _tree(dst) == files and (dst / "plots").is_dir()
    assert sorted(p.name for p in dst.parent.iterdir()) == ["cell"]  # no .part / .old left
    (src / "plots" / "a.png").unlink()
    cell.install(dst, cell.pack(src))
    assert (dst / "plots").is_dir() and not any((dst / "plots").iterdir())  # as RunDir makes it
    back = tmp_path / "back"
    cell.unpack(files, back)
    assert _tree(back) == files


def test_install_never_replaces_what_is_not_a_run_directory(tmp_path):
    """A cell's place holding someone's folder (no marker, no scenario.yaml), or a running
    run (locked), is refused, not renamed away."""
    dst = tmp_path / "sw" / "cell"
    dst.mkdir(parents=True)
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(GuardError, match="not a sweep cell"):
        cell.install(dst, {"metrics.csv": b"x"})
    assert (dst / "notes.txt").read_text() == "mine"
    write_marker(dst)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT);"
                               " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
                               str(dst / dirguard.LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GuardError, match="in use"):
            cell.install(dst, {"metrics.csv": b"x"})
        assert (dst / "notes.txt").read_text() == "mine"
    finally:
        holder.stdin.close()
        holder.wait()


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../b", "", "a//b", "./a"])
def test_install_refuses_paths_outside_the_run_directory(tmp_path, rel):
    with pytest.raises(ValueError, match="not a plain relative path"):
        cell.install(tmp_path / "cell", {rel: b"x"})
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


def test_recover_puts_back_a_directory_set_aside_by_a_crash(tmp_path):
    rdir = tmp_path / "cell"
    old, part = tmp_path / ".cell.old", tmp_path / ".cell.part"
    old.mkdir()
    (old / "summary.json").write_text("{}")
    part.mkdir()  # the new one, half written
    cell.recover(rdir)
    assert (rdir / "summary.json").read_text() == "{}" and not old.exists() and not part.exists()
    old.mkdir()  # crash after the new one was in place: the old one just goes
    cell.recover(rdir)
    assert not old.exists() and (rdir / "summary.json").is_file()


def test_scratch_of_a_dead_process_is_taken_over_a_live_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    root = cell.scratch_root()
    code = ("import sys, time; from parse_actors.studies import cell\n"
            "with cell.scratch('c') as d:\n"
            "    d.mkdir(); (d / 'metrics.csv').write_text('x'); print(d, flush=True); time.sleep(600)\n")
    holders = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "TMPDIR": str(tmp_path)}) for _ in range(2)]
    try:
        dirs = [Path(h.stdout.readline().strip()).parent for h in holders]
        assert all(d.parent == root and (d / "run" / "metrics.csv").is_file() for d in dirs)
        holders[0].kill()  # dies holding it: the kernel releases its lock
        holders[0].wait()
        (root / "being-made").mkdir()  # no lock file yet: left alone
        with cell.scratch("next") as mine:
            assert not dirs[0].exists() and dirs[1].exists() and (root / "being-made").exists()
            assert mine.parent.parent == root
        assert not mine.parent.exists()
    finally:
        for h in holders:
            h.kill()
            h.wait()


def test_progress_counts_and_estimate(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    lines: list[str] = []
    p = SweepProgress(tmp_path, total=10, skipped=2, echo=lines.append, verbose=True, status=True)
    p.started("a", {"node": "n1", "pid": 7})
    p.started("b", {"node": "n2", "pid": 8})
    assert p.eta_s() is None
    now[0] = 130.0
    p.finished("a", "[3/10] a: acc 0.5", complete=True)
    p.finished("b", "[4/10] b: FAILED: boom", complete=False, error="RuntimeError: boom")
    # 2 cells ended in 30 s; 10 - 3 done - 1 failed = 6 left: 6 x 15 s
    assert p.eta_s() == 90.0
    assert p.status_line() == "sweep: 3/10 done, 0 running, 1 failed; elapsed 0:30, about 1:30 left"
    # -v: a line per cell; the status line after the first, then at most every STATUS_EVERY_S
    assert lines == ["[3/10] a: acc 0.5", "sweep: 3/10 done, 1 running, 0 failed; elapsed 0:30, about 3:30 left",
                     "[4/10] b: FAILED: boom"]
    j = json.loads((tmp_path / "progress.json").read_text())
    assert (j["done"], j["failed"], j["skipped"], j["errors"]) == (3, 1, 2, {"b": "RuntimeError: boom"})
    assert j["cells_per_node"] == {"n1": 1, "n2": 1} and j["eta_s"] == 90.0 and not j["finished"]
    p.close()
    assert json.loads((tmp_path / "progress.json").read_text())["finished"] is True
    assert lines[-1].startswith("sweep: 3/10 done")
    assert (clock(3609), clock(247), clock(9)) == ("1:00:09", "4:07", "0:09")
    quiet: list[str] = []
    q = SweepProgress(tmp_path, total=1, skipped=0, echo=quiet.append, verbose=False, status=False)
    q.finished("a", "[1/1] a: acc 0.5", complete=True)
    q.close()
    assert quiet == []  # -q: nothing (a failure would still be said)


def _sweep_dir(tmp_path) -> Path:
    from parse_actors.studies.sweep import plan_sweep, write_manifest

    sw = plan_sweep(QUICK, ["method=parse,local"], 2, ["protocol.rounds=2"], tmp_path / "sw",
                    tune_args=["optim.lr=0.02,0.1"])
    sw.out.mkdir()
    write_manifest(sw)
    return sw.out


def test_resume_plans_the_sweep_that_sweep_json_describes(tmp_path, monkeypatch):
    from parse_actors.studies.sweep import SweepError, plan_sweep, resume_sweep

    out = _sweep_dir(tmp_path)
    again = resume_sweep(out)
    first = plan_sweep(QUICK, ["method=parse,local"], 2, ["protocol.rounds=2"], tmp_path / "x",
                       tune_args=["optim.lr=0.02,0.1"])
    assert [r.point.name for r in again.runs] == [r.point.name for r in first.runs] and len(again.runs) == 8
    assert again.tune == ["optim.lr"] and again.seeds == [0, 1] and again.overrides == ["protocol.rounds=2", "data.global_val_size=300"]  # (--tune adds it)
    assert [r.scenario.model_dump() for r in again.runs] == [r.scenario.model_dump() for r in first.runs]
    monkeypatch.chdir(tmp_path)  # the stored relative path is not there: the absolute one is used
    assert len(resume_sweep(out).runs) == 8
    m = json.loads((out / "sweep.json").read_text())
    m["runs"] = m["runs"][:3]
    (out / "sweep.json").write_text(json.dumps(m))
    with pytest.raises(SweepError, match="now gives other cells"):
        resume_sweep(out)
    with pytest.raises(SweepError, match="cannot resume: no readable sweep.json"):
        resume_sweep(tmp_path / "nothing")


@pytest.mark.parametrize("args, expect", [
    (["--cell-gpus", "0.5"], "--cell-gpus: only with --ray-address"),
    (["--retries", "1"], "--retries: only with --ray-address"),
    (["--ray-address", "local", "--backend", "ray"], "--backend: ray: not with --ray-address"),
    (["--ray-address", "local", "--cell-memory", "2XB"], "--cell-memory: expected a size like 2GiB"),
    (["--ray-address", "local", "--cell-gpus", "1.5"], "--cell-gpus: above 1, expected a whole number"),
    (["--ray-address", "local", "--cell-cpus", "-1"], "--cell-cpus: expected a number of CPUs >= 0"),
    (["--resume", "x", "--seeds", "2"], "--resume: takes the sweep directory only, not --seeds"),
    (["--resume", "x", "--time-budget", "3"], "--resume: takes the sweep directory only, not --time-budget"),
])
def test_bad_cluster_flags_exit_2_before_anything(tmp_path, capsys, args, expect):
    out = tmp_path / "sw"
    scenario = [] if "--resume" in args else [str(QUICK), "--out", str(out)]
    assert main(["sweep", *scenario, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_unreachable_cluster_is_one_line_exit_1(tmp_path, capsys):
    from loopback import free_port

    port = free_port()
    assert main(["sweep", str(QUICK), "--out", str(tmp_path / "sw"), "--ray-address", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"parse-sim: cannot reach the Ray cluster at 127.0.0.1:{port}")


def test_sizes():
    from parse_actors.studies.cluster import parse_size

    assert (parse_size("2GiB"), parse_size("500MB"), parse_size("1.5gb"), parse_size("1024")) == (
        2 * 2**30, 500 * 10**6, 1_500_000_000, 1024)


@pytest.mark.ray
def test_cell_no_node_can_hold_is_refused_before_it_waits_forever(ray_instance, tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", str(QUICK), "--out", str(out), "--ray-address", "local", "--cell-gpus", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("--cell-gpus: no node of the Ray cluster at local can hold a cell "
                                               "(1 CPU, 1 GPU)"), err
