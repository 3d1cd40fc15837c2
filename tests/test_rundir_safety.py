"""Run directories: nothing lost, nothing touched outside the run (issue 24).

The rule (parse_actors/metrics/dirguard.py): a marker on every run directory,
`--force` deletes only what the contract names and only under the marker,
no symbolic link is ever followed (run, --force, --resume, report, audit),
one lock per run directory for the life of a run. Full disks
(parse_actors/metrics/reserve.py, logs.py): the finished rounds' tables and a
checkpoint survive, events.jsonl never ends in half a line, one line says
which file, what was kept and how much to free where.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from parse_actors import atomic, logs
from parse_actors.cli import main
from parse_actors.engine import run_scenario
from parse_actors.engine.interrupted import Interrupted
from parse_actors.metrics import dirguard
from parse_actors.metrics.recorder import Recorder
from parse_actors.metrics.reserve import Space
from parse_actors.metrics.rundir import DiskFull, RunDir, RunDirError
from parse_actors.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
SMALL = ["protocol.rounds=3", "train.local_steps=4"]
SETS = [a for o in SMALL for a in ("--set", o)]


def scenario(*overrides):
    return load_scenario(QUICK, list(SMALL) + list(overrides))


def snapshot(d: Path) -> dict[str, bytes | str]:
    """Every entry under `d` without following links: file bytes, link targets, directories."""
    out: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(d))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


def cli(capsys, *args) -> tuple[int, list[str]]:
    """Exit code and stderr lines, less the warnings a run logs on the way (`[warning ...`)."""
    capsys.readouterr()
    rc = main(["-q", *map(str, args)])
    return rc, [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[warning")]




def stop_after(rnd: int):
    def hook(sim, r):
        if r == rnd:
            sim.stop_signal = signal.SIGTERM

    return hook


def event_lines(out: Path) -> list[dict]:
    text = (out / "events.jsonl").read_text()
    assert text.endswith("\n"), "events.jsonl ends in half a line"
    return [json.loads(line) for line in text.splitlines()]


def same_events_as(out: Path, ref: Path) -> None:
    """A resumed run's events.jsonl: the uninterrupted run's lines, plus the resumed run's
    own `setup` and `resume` lines, nothing lost, nothing twice."""
    lines = event_lines(out)
    resumed = [i for i, e in enumerate(lines) if e["event"] == "resume"]
    assert len(resumed) == 1 and lines[resumed[0] - 1]["event"] == "setup", resumed
    del lines[resumed[0] - 1: resumed[0] + 1]
    assert lines == event_lines(ref)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the small scenario (3 rounds)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    run_scenario(scenario(), out, backend="inline")
    return out


@pytest.fixture(scope="module")
def cut_once(tmp_path_factory) -> Path:
    """The small scenario stopped by SIGTERM after round 1 of 3: a checkpoint to resume from."""
    out = tmp_path_factory.mktemp("cut") / "run"
    with pytest.raises(Interrupted):
        run_scenario(scenario(), out, backend="inline", hooks=[stop_after(0)])
    return out


@pytest.fixture
def cut(cut_once, tmp_path) -> Path:
    out = tmp_path / "cut"
    shutil.copytree(cut_once, out, symlinks=True)
    return out


@pytest.fixture
def finished(reference, tmp_path) -> Path:
    out = tmp_path / "finished"
    shutil.copytree(reference, out, symlinks=True)
    return out


# ---------------------------------------------------------------------------- marker and --force


def test_force_refuses_a_folder_that_merely_holds_a_scenario(tmp_path, capsys):
    """Before: the whole folder was deleted because it held a scenario.yaml."""
    out = tmp_path / "project"
    (out / "raw").mkdir(parents=True)
    (out / "scenario.yaml").write_text("seed: 1\n")
    (out / "notes.txt").write_text("years of work")
    (out / "raw" / "data.csv").write_text("1,2\n")
    before = snapshot(out)
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--force", "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{out}: exists, is not empty and is not a parse-sim run directory (no .parse-sim-run)")
    assert snapshot(out) == before


def test_out_dot_force_never_empties_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenario.yaml").write_text(QUICK.read_text())
    (tmp_path / "metrics.csv").write_text("my own table\n")
    (tmp_path / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    rc, err = cli(capsys, "run", "scenario.yaml", "--out", ".", "--force", "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1 and "not a parse-sim run directory" in err[0], err
    assert snapshot(tmp_path) == before


def test_force_replaces_only_what_the_run_wrote(tmp_path, capsys, monkeypatch):
    """`--out .` made the working directory a run directory; files the user put beside
    the run's, even under names close to the contract's, survive `--force`."""
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "run", QUICK, "--out", ".", "--backend", "inline", *SETS, "--set", "protocol.rounds=2")[0] == 0
    first = (tmp_path / "metrics.csv").read_text()
    mine = {"notes.txt": b"notes", "metrics.csv.bak": b"old table", ".hidden": b"h", "data/x.npz": b"raw",
            "plots/my_sketch.png": b"png", "report/keep.png": b"png2"}
    for name, data in mine.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    rc, err = cli(capsys, "run", QUICK, "--out", ".", "--force", "--backend", "inline", *SETS,
                  "--set", "protocol.rounds=2", "--seed", "5")
    assert rc == 0, err
    for name, data in mine.items():
        assert (tmp_path / name).read_bytes() == data, name
    assert (tmp_path / "metrics.csv").read_text() != first  # replaced: the other seed's run
    assert json.loads((tmp_path / "summary.json").read_text())["seed"] == 5


def test_force_deletes_exactly_the_contract_entries(tmp_path):
    out = tmp_path / "run"
    RunDir(out).close()
    for name in dirguard.CONTRACT_FILES:
        (out / name).write_text("x")
    ours = [".metrics.csv.0a1b2c3d.tmp", "plots/accuracy_vs_time.png", "plots/pid_audit_image.png",
            "plots/.bytes_by_kind.png.1234abcd.tmp", "report/final_acc_vs_optim_lr.png", "report/online.png"]
    theirs = ["metrics.csv.orig", ".metrics.csv.tmp.keep", "plots/my_sketch.png", "plots/notes.txt",
              "report/keep.md", "figures/accuracy_vs_time.png", "pid_audit.csv~"]
    for name in ours + theirs:
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(name)
    RunDir(out, force=True).close()
    left = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert left == set(theirs) | {dirguard.MARKER, dirguard.LOCK}


def test_a_report_leaves_pngs_it_does_not_draw(finished, capsys):
    """Before: every PNG in report/ the new report did not link to was deleted."""
    (finished / "report").mkdir()
    (finished / "report" / "my_sketch.png").write_bytes(b"mine")
    (finished / "report" / "slice_drop.png").write_bytes(b"an old report's")
    (finished / "slice_drop.csv").unlink()  # this report draws no slice_drop.png: the old one goes
    summary = json.loads((finished / "summary.json").read_text())
    summary["slice_drop"] = {}
    (finished / "summary.json").write_text(json.dumps(summary))
    assert cli(capsys, "report", finished)[0] == 0
    assert (finished / "report" / "my_sketch.png").read_bytes() == b"mine"
    assert not (finished / "report" / "slice_drop.png").exists()


# ---------------------------------------------------------------------------- links


def test_resume_never_writes_through_an_events_link(cut, tmp_path, capsys):
    """Before: --resume truncated the linked file to the checkpoint's offset and appended to it."""
    outside = tmp_path / "precious.jsonl"
    outside.write_bytes((cut / "events.jsonl").read_bytes() * 3)
    before = outside.read_bytes()
    (cut / "events.jsonl").unlink()
    (cut / "events.jsonl").symlink_to(outside)
    rc, err = cli(capsys, "run", "--resume", cut)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{cut / 'events.jsonl'}: is a symbolic link inside a run directory")
    assert outside.read_bytes() == before
    # the event log itself never opens a link, whatever checked the directory before
    with pytest.raises(OSError) as ei:
        logs.truncate_events(cut / "events.jsonl", 10)
    assert ei.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        logs.open_events(cut / "events.jsonl")
    assert outside.read_bytes() == before


def test_plots_are_never_written_through_a_plots_link(cut, tmp_path, capsys):
    """Before: the resumed run's figures went into the directory `plots` pointed to."""
    outside = tmp_path / "figures"
    outside.mkdir()
    (outside / "accuracy_vs_time.png").write_bytes(b"someone's figure")
    before = snapshot(outside)
    shutil.rmtree(cut / "plots")
    (cut / "plots").symlink_to(outside, target_is_directory=True)
    rc, err = cli(capsys, "run", "--resume", cut)
    assert rc == 2 and len(err) == 1 and "plots: is a symbolic link inside a run directory" in err[0], err
    rc, err = cli(capsys, "run", QUICK, "--out", cut, "--force", "--backend", "inline", *SETS)
    assert rc == 2 and "plots: is a symbolic link" in err[0], err
    # and an atomic write refuses a directory that is a link, even one made after every check
    with pytest.raises(OSError) as ei:
        atomic.write_bytes(cut / "plots" / "bytes_by_kind.png", b"x")
    assert ei.value.errno == errno.ELOOP and str(cut / "plots") in str(ei.value)
    assert snapshot(outside) == before


def test_report_never_deletes_or_writes_through_a_report_link(finished, tmp_path, capsys):
    """Before: `parse-sim report` deleted the PNGs of the directory `report` pointed to."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "accuracy_vs_time.png").write_bytes(b"mine")
    (outside / "holiday.png").write_bytes(b"mine too")
    before = snapshot(outside)
    (finished / "report").symlink_to(outside, target_is_directory=True)
    rc, err = cli(capsys, "report", finished)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{finished / 'report'}: is a symbolic link inside a report directory")
    assert snapshot(outside) == before


def test_report_refuses_a_sweep_whose_run_holds_a_link(finished, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.move(finished, sweep / "seed=0")
    outside = tmp_path / "other_metrics.csv"
    shutil.move(sweep / "seed=0" / "metrics.csv", outside)
    (sweep / "seed=0" / "metrics.csv").symlink_to(outside)
    (sweep / "sweep.json").write_text(json.dumps({"kind": "parse-sim sweep", "name": "s", "grid": {},
                                                  "seeds": [0], "runs": [{"dir": "seed=0", "params": {}, "seed": 0}]}))
    rc, err = cli(capsys, "report", sweep)
    assert rc == 2 and len(err) == 1 and "metrics.csv: is a symbolic link inside a run directory" in err[0], err
    assert not (sweep / "report.md").exists()


def test_audit_never_reads_through_a_link(finished, tmp_path, capsys):
    outside = tmp_path / "weights.pt"
    shutil.move(finished / "final_weights.pt", outside)
    (finished / "final_weights.pt").symlink_to(outside)
    before = snapshot(finished)
    rc, err = cli(capsys, "audit", finished, "--samples", "200", "--max-agents", "1")
    assert rc == 2 and len(err) == 1 and "final_weights.pt: is a symbolic link" in err[0], err
    assert snapshot(finished) == before


def test_a_run_directory_that_is_a_link_is_refused(finished, tmp_path, capsys):
    link = tmp_path / "latest"
    link.symlink_to(finished, target_is_directory=True)
    before = snapshot(finished)
    for args in (("run", QUICK, "--out", link, "--force", "--backend", "inline", *SETS), ("report", link),
                 ("audit", link)):
        rc, err = cli(capsys, *args)
        assert rc == 2 and len(err) == 1 and f"{link}: the " in err[0] and "is a symbolic link" in err[0], err
    assert snapshot(finished) == before


# ---------------------------------------------------------------------------- the lock

PAUSE_HOOK = textwrap.dedent('''
    """Test-only (tests/test_rundir_safety.py): pause a process the first time one of its
    run directories returns from the method PARSE_SIM_TEST_PAUSE_AT names (`__init__`: opened
    and locked; `write_scenario`: a run's scenario.yaml written), until the test opens the
    FIFO named by PARSE_SIM_TEST_PAUSE."""
    import os

    if os.environ.get("PARSE_SIM_TEST_PAUSE"):
        from parse_actors.metrics import rundir

        name = os.environ["PARSE_SIM_TEST_PAUSE_AT"]
        real = getattr(rundir.RunDir, name)
        paused = []

        def pausing(self, *a, **k):
            out = real(self, *a, **k)
            if not paused:
                paused.append(1)
                print(f"PAUSED {self.path}", flush=True)
                with open(os.environ["PARSE_SIM_TEST_PAUSE"]):
                    pass
            return out

        setattr(rundir.RunDir, name, pausing)
''')


class Paused:
    """A parse-sim command in a child process, stopped right after its first run directory
    returned from `at` (see PAUSE_HOOK); `go()` lets it finish."""

    def __init__(self, tmp_path: Path, *args: str, at: str = "__init__"):
        hook = tmp_path / "pause_hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
        self.fifo = tmp_path / "go"
        os.mkfifo(self.fifo)
        self.err = tmp_path / "child.err"
        env = {**os.environ, "PYTHONPATH": str(hook), "PARSE_SIM_TEST_PAUSE": str(self.fifo),
               "PARSE_SIM_TEST_PAUSE_AT": at}
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "parse_actors.cli", "-q", *args], cwd=ROOT, env=env,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        while True:
            line = self.lines.get(timeout=300)
            if line is None:
                pytest.fail(f"the child ended before pausing: {self.err.read_text()[-2000:]}")
            if line.startswith("PAUSED "):
                break

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def go(self) -> int:
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO if the child is not waiting
        os.close(fd)
        return self.proc.wait(timeout=600)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_a_running_run_is_locked_against_runs_force_and_resume(reference, cut, tmp_path, capsys):
    """A second run, a --force, a --resume and an audit of a run directory that a (resumed)
    run is using are one line each, exit 2, and the running run ends as if alone."""
    child = Paused(tmp_path, "run", "--resume", str(cut))
    try:
        before = snapshot(cut)
        for args in (("run", QUICK, "--out", cut, "--backend", "inline", *SETS),
                     ("run", QUICK, "--out", cut, "--force", "--backend", "inline", *SETS),
                     ("run", "--resume", cut, "--backend", "inline"), ("audit", cut)):
            rc, err = cli(capsys, *args)
            assert rc == 2 and len(err) == 1, (args, err)
            assert err[0].startswith(f"{cut}: in use by a running parse-sim (pid {child.proc.pid})"), err
        assert snapshot(cut) == before
        assert child.go() == 0, child.err.read_text()[-2000:]
    finally:
        child.kill()
    assert (cut / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    same_events_as(cut, reference)


def test_run_force_into_a_running_sweeps_cell_is_refused(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    child = Paused(tmp_path, "sweep", str(QUICK), "--out", str(sweep), "--parallel", "1", *SETS,
                   "--set", "protocol.rounds=2", at="write_scenario")
    try:
        cell = next(p for p in sweep.iterdir() if p.is_dir())
        before = snapshot(cell)
        rc, err = cli(capsys, "run", QUICK, "--out", cell, "--force", "--backend", "inline", *SETS)
        assert rc == 2 and len(err) == 1 and err[0].startswith(f"{cell}: in use by a running parse-sim"), err
        assert snapshot(cell) == before
        assert child.go() == 0, child.err.read_text()[-2000:]
    finally:
        child.kill()
    assert json.loads((cell / "summary.json").read_text())["complete"] is True


def test_the_lock_goes_with_its_process(tmp_path):
    """flock: a killed run leaves no stale lock."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from parse_actors.metrics.rundir import RunDir; "
                               f"rd = RunDir({str(out)!r}); print('locked', flush=True); sys.stdin.read()"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunDirError) as ei:
            RunDir(out, force=True)
        assert str(ei.value).startswith(f"{out}: in use by a running parse-sim (pid {holder.pid})")
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    finally:
        holder.kill()
    RunDir(out, force=True).close()


# ---------------------------------------------------------------------------- full disks: fault injection


class Disk:
    """A filesystem that fills when told (`fill`): from then on writes succeed only
    within `budget` bytes, a write that does not fit lands partly (events) or not at
    all (atomic: the temporary file), and deleting parse-sim's reserve gives back
    `refill` bytes (None: what the reserve held; a replaced file's old version is
    never given back, so the model errs on the full side)."""

    def __init__(self, monkeypatch, refill: int | None = None, partial: int = 10):
        self.full = False
        self.budget = 0
        self.refill = refill
        self.partial = partial
        real_write, real_all, real_release = atomic._write, logs._write_all, Space.release

        def write(path, data):
            if not self._take(len(data)):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_write(path, data)

        def write_all(fd, data):
            if not self._take(len(data)):
                real_all(fd, data[: min(self.partial, len(data) - 1)])  # half a line lands
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_all(fd, data)

        def release(space):
            held = space.reserved
            freed = real_release(space)
            if self.full:
                self.budget += held if self.refill is None else self.refill
            return freed

        monkeypatch.setattr(atomic, "_write", write)
        monkeypatch.setattr(logs, "_write_all", write_all)
        monkeypatch.setattr(Space, "release", release)

    def _take(self, n: int) -> bool:
        if not self.full:
            return True
        if n > self.budget:
            return False
        self.budget -= n
        return True

    def fill_after_round(self, monkeypatch, rnd: int) -> None:
        """Full from the first write after round `rnd`'s evaluation is recorded."""
        real = Recorder.record

        def record(rec, r, *a, **k):
            real(rec, r, *a, **k)
            if r == rnd:
                self.full = True

        monkeypatch.setattr(Recorder, "record", record)

    def fill_at_write(self, monkeypatch, nth: int) -> None:
        """Full from the `nth` write (atomic file or event line) on."""
        count = [0]
        for module, name in ((atomic, "_write"), (logs, "_write_all")):
            inner = getattr(module, name)

            def counted(*a, _inner=inner):
                count[0] += 1
                if count[0] == nth:
                    self.full = True
                return _inner(*a)

            monkeypatch.setattr(module, name, counted)

    def free(self) -> None:
        self.full = False


def free_hint(err: str, out: Path) -> None:
    assert f"; free at least " in err and f" MiB on the filesystem of {out} (mounted at " in err, err


# Writes of the small scenario's run, counted: 1 the marker, 3 scenario.yaml, 4 the first event line,
# 118 metrics.csv after round 1, 150 an event of round 2, 317 final_weights.pt, 322 summary.json, 325 the
# last plot (326 in all).
@pytest.mark.parametrize("nth, outcome", [(1, "refused"), (3, "stopped"), (4, "stopped"), (118, "stopped"),
                                          (150, "stopped"), (317, "complete"), (322, "complete"),
                                          (325, "complete")])
def test_a_full_disk_at_any_write_loses_nothing(nth, outcome, reference, tmp_path, capsys, monkeypatch):
    """Whichever write finds the disk full: one line naming a file of the run (or none, when
    the run finished into the reserve), whole files only, and once space is freed the run
    continues (or runs again) to the uninterrupted run's tables."""
    import csv

    out = tmp_path / "run"
    disk = Disk(monkeypatch)
    disk.fill_at_write(monkeypatch, nth)
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    if outcome == "complete":
        assert rc == 0 and err == [], err
    else:
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(f"{out}") and "no space left on device" in err[0].lower(), err
    if (out / "events.jsonl").exists():
        event_lines(out)
    for table in out.glob("*.csv"):
        with open(table, newline="") as f:
            rows = list(csv.reader(f))
        assert rows and all(len(r) == len(rows[0]) for r in rows), table
    assert not list(out.rglob("*.tmp"))
    disk.free()
    if outcome == "stopped":
        assert (out / "checkpoint.pt").is_file()
        assert cli(capsys, "run", "--resume", out)[0] == 0
    elif outcome == "refused":
        assert cli(capsys, "run", QUICK, "--out", out, "--force", "--backend", "inline", *SETS)[0] == 0
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    for name in ("metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_disk_full_mid_run_keeps_the_rounds_and_resumes(reference, tmp_path, capsys, monkeypatch):
    """The disk fills at the start of round 2 of 3: round 2 finishes, its tables and a
    checkpoint go into the reserve's space, the held event lines after them; freed,
    `--resume` ends where an uninterrupted run does, events included."""
    out = tmp_path / "run"
    disk = Disk(monkeypatch)
    disk.fill_after_round(monkeypatch, 0)
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{out / 'events.jsonl'}: no space left on device; the run stopped after 2 rounds; "
                             "the finished rounds' tables and a checkpoint are kept; free at least "), err
    free_hint(err[0], out)
    assert err[0].endswith(f", then continue with: parse-sim run --resume {out}")
    event_lines(out)
    ref_rows = (reference / "metrics.csv").read_text().splitlines()
    assert (out / "metrics.csv").read_text().splitlines() == ref_rows[: 1 + 2 * 8]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["rounds"] == 2
    assert (out / "checkpoint.pt").is_file() and not list(out.rglob("*.tmp"))
    disk.free()
    rc, err = cli(capsys, "run", "--resume", out)
    assert rc == 0, err
    for name in ("metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    same_events_as(out, reference)


def test_disk_full_after_the_last_round_keeps_a_complete_run(reference, tmp_path, capsys, monkeypatch):
    """The issue's case: both rounds (here: all three) finished when the disk filled;
    before, neither summary.json nor a checkpoint survived."""
    out = tmp_path / "run"
    disk = Disk(monkeypatch)
    disk.fill_after_round(monkeypatch, 2)
    capsys.readouterr()
    rc = main(["-q", "run", str(QUICK), "--out", str(out), "--backend", "inline", *SETS])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0 and [line.split()[2] for line in err] == ["disk_full", "disk_full"], err
    assert "the run stops at the end of this round" in err[0] and "wrote everything into parse-sim's reserve" in err[1]
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    for name in ("metrics.csv", "events.jsonl", "comm.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert (out / "final_weights.pt").is_file() and (out / "plots" / "accuracy_vs_time.png").is_file()


def test_a_reserve_too_small_for_everything_keeps_the_tables(reference, tmp_path, capsys, monkeypatch):
    """Only 200 kB come back: the final weights (665 kB) do not fit and are skipped;
    the tables are complete, and the one line lists what is missing."""
    out = tmp_path / "run"
    disk = Disk(monkeypatch, refill=200_000)
    disk.fill_after_round(monkeypatch, 2)
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1, err
    assert "; the run finished and its tables are written; not written: final_weights.pt; free at least" in err[0]
    free_hint(err[0], out)
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    assert (out / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert not (out / "final_weights.pt").exists()
    event_lines(out)


def test_a_disk_that_stays_full_loses_nothing_already_written(tmp_path, capsys, monkeypatch):
    """Nothing comes back (another process took the reserve's space): no checkpoint can be
    written; what was written stays whole and the line says so."""
    out = tmp_path / "run"
    disk = Disk(monkeypatch, refill=0)
    disk.fill_after_round(monkeypatch, 0)
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{out / 'events.jsonl'}: no space left on device; the run stopped before a "
                             "checkpoint could be written; not written: "), err
    assert "checkpoint.pt" in err[0] and err[0].endswith(", then run it again")
    lines = event_lines(out)
    assert lines and all(e.get("round", 0) <= 1 for e in lines if e["event"] == "round")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("round,t,agent,group,acc,loss") and len(rows) == 1 + 8
    assert not (out / "checkpoint.pt").exists() and not list(out.rglob("*.tmp"))


def test_events_never_end_in_half_a_line(tmp_path, monkeypatch):
    """Each line is one write; one that finds the disk full is cut back off and held,
    then written whole when the log closes with room again."""
    path = tmp_path / "events.jsonl"
    disk = Disk(monkeypatch, partial=7)
    logs.open_events(path)
    log = logs.get_logger()
    log.info("a", t=0.0, _console=False)
    disk.full = True
    log.info("b", t=1.0, _console=False)
    log.info("c", t=2.0, _console=False)
    assert path.read_text() == '{"event": "a", "t": 0.0}\n'  # half of "b" was cut off again
    assert logs.events_offset() == len(path.read_text()) + 2 * len('{"event": "b", "t": 1.0}\n')
    disk.free()
    logs.close_events()
    assert [e["event"] for e in event_lines(tmp_path)] == ["a", "b", "c"]


def test_a_disk_too_full_for_the_reserve_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import parse_actors.engine.runner as runner

    monkeypatch.setattr(runner, "_simulation", lambda *a, **k: pytest.fail("training started"))

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "run"
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    assert rc == 2 and err == [f"{out}: cannot write the run directory: No space left on device (parse-sim keeps "
                               "a reserve of 4 MiB in the run directory, so that a full disk still leaves room "
                               "for a checkpoint)"], err


# ---------------------------------------------------------------------------- full disks: a real one


@pytest.fixture
def small_fs(tmp_path):
    """A 24 MiB tmpfs (root only; skipped where mounting is not permitted)."""
    d = tmp_path / "fs"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def fill(fs: Path) -> Path:
    """Write a file until the filesystem takes no more, not even a byte."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (2 ** 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


def test_a_real_full_disk_keeps_the_rounds_and_resumes(small_fs, reference, capsys):
    out = small_fs / "run"
    filler: list[Path] = []

    def fill_after_round_1(sim, rnd):
        if rnd == 0:
            filler.append(fill(small_fs))

    with pytest.raises(DiskFull) as ei:
        run_scenario(scenario(), out, backend="inline", hooks=[fill_after_round_1])
    msg = str(ei.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{out}/"), msg
    assert "no space left on device; the run stopped after 2 rounds; the finished rounds' tables and a " \
           "checkpoint are kept" in msg
    assert f"on the filesystem of {out} (mounted at {small_fs}, " in msg
    event_lines(out)
    ref_rows = (reference / "metrics.csv").read_text().splitlines()
    assert (out / "metrics.csv").read_text().splitlines() == ref_rows[: 1 + 2 * 8]
    assert not (out / dirguard.RESERVE).exists() and not list(out.rglob("*.tmp"))
    filler[0].unlink()
    rc, err = cli(capsys, "run", "--resume", out)
    assert rc == 0, err
    for name in ("metrics.csv", "comm.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    same_events_as(out, reference)


def test_a_real_disk_too_small_for_the_reserve_is_refused(small_fs, capsys):
    hog = small_fs / "hog"
    hog.write_bytes(b"\0" * (21 * 2 ** 20))  # 3 MiB left: the probe fits, the 4 MiB reserve does not
    out = small_fs / "run"
    rc, err = cli(capsys, "run", QUICK, "--out", out, "--backend", "inline", *SETS)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"{out}: cannot write the run directory: No space left on device (parse-sim keeps "
                             "a reserve of 4 MiB"), err


def test_sweep_refuses_a_run_that_holds_a_link(tmp_path, capsys):
    """Planning a sweep reads its runs' scenario.yaml and summary.json: never through a link."""
    sweep = tmp_path / "sweep"
    cell = sweep / "seed=0"
    cell.mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(QUICK.read_text())
    (cell / "scenario.yaml").symlink_to(outside)
    rc, err = cli(capsys, "sweep", QUICK, "--out", sweep, *SETS)
    assert rc == 2 and err == [f"{cell / 'scenario.yaml'}: is a symbolic link inside a run directory; parse-sim "
                               "never reads, writes or deletes through one (remove the link, or copy the files in)"]
    assert outside.read_text() == QUICK.read_text()


def test_resume_refuses_a_fifo_in_place_of_a_run_file(cut):
    """Opening a FIFO blocks until someone writes to it: only regular files are opened.
    (A child process with a timeout, so that a regression fails instead of hanging.)"""
    (cut / "events.jsonl").unlink()
    os.mkfifo(cut / "events.jsonl")
    r = subprocess.run([sys.executable, "-m", "parse_actors.cli", "-q", "run", "--resume", str(cut)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    expect = f"{cut / 'events.jsonl'}: is not a regular file; parse-sim opens only regular files in a run directory"
    assert r.returncode == 2 and r.stderr.splitlines() == [expect], r.stderr


# ---------------------------------------------------------------------------- the contract stays one list


def test_the_contract_names_what_readme_and_the_writers_name():
    """README's run-directory table, the figure names the plotting code writes and
    dirguard's lists are the same names: --force can delete all of them and nothing else."""
    import re

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### The run directory"):readme.index("**What parse-sim touches**")]
    named = {n for row in table.splitlines() if row.startswith("| `") for n in re.findall(r"`([^`]+)`",
                                                                                       row.split("|")[1])}
    files = {n for n in named if not n.endswith("/")}
    assert files == (dirguard.CONTRACT_FILES - {".write-test"}) | {dirguard.MARKER, dirguard.LOCK}
    assert {n.rstrip("/") for n in named if n.endswith("/")} == set(dirguard.CONTRACT_DIRS)
    written = {"plots": [ROOT / "parse_actors/metrics/plots.py", ROOT / "parse_actors/audit/plots.py"],
               "report": sorted((ROOT / "parse_actors/studies").glob("report*.py"))}
    for sub, sources in written.items():
        names = {re.sub(r"\{[^}]*\}", "x", m) for src in sources
                 for m in re.findall(r'f?"([A-Za-z_{}.]+\.png)"', src.read_text())}
        assert names and all(dirguard.is_figure(sub, n) for n in names), (sub, names)
