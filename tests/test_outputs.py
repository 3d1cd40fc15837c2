"""Outputs: every file written atomically; an unusable run directory (unwritable,
disk full, exists) is a clear one-line error before any training starts."""

from __future__ import annotations

import ast
import errno
import json
import os
from pathlib import Path

import pytest

from parse_actors import atomic
from parse_actors.cli import main
from parse_actors.metrics.rundir import RunDir, RunDirError

ROOT = Path(__file__).resolve().parents[1]


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if p.name.endswith(".tmp") or p.name == ".write-test")


# ---------------------------------------------------------------------------- atomic writes


def test_rundir_writes_every_table(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.write_scenario("seed: 1\n")
    rd.write_metrics([{"round": 1, "t": 0.5, "agent": 0, "group": "image", "acc": 0.25, "loss": 1.5, "extra": 3}])
    rd.write_comm([{"src": 0, "dst": 1, "kind": "red", "messages": 2, "bytes_sent": 10, "bytes_delivered": 10,
                    "bytes_dropped": 0}])
    rd.write_table("conflict.csv", ["round", "cosine"], [{"round": 1, "cosine": float("nan")}])
    rd.write_summary({"rounds": 1})
    rd.write_run_info({"backend": "inline"})
    rd.close()  # the disk-full reserve goes, the marker and the (released) lock file stay
    names = sorted(p.name for p in rd.path.iterdir())
    assert names == [".parse-sim-lock", ".parse-sim-run", "comm.csv", "conflict.csv", "metrics.csv", "plots",
                     "run.json", "scenario.yaml", "summary.json"]
    assert (rd.path / "metrics.csv").read_text().splitlines() == ["round,t,agent,group,acc,loss,extra",
                                                                   "1,0.5,0,image,0.25,1.5,3"]
    assert (rd.path / "conflict.csv").read_text().splitlines()[1] == "1,nan"
    assert json.loads((rd.path / "summary.json").read_text()) == {"rounds": 1}
    assert leftovers(rd.path) == []


def test_growing_tables_match_a_full_write(tmp_path, monkeypatch):
    """metrics.csv is rewritten after every evaluation from a list that only grows: only
    the new rows are formatted, yet every file is the one a fresh full write gives,
    also when a later row brings a new column or a different list is passed."""
    rows: list[dict] = []
    grown, fresh = RunDir(tmp_path / "grown"), RunDir(tmp_path / "fresh")
    formatted: list[int] = []
    plain = atomic.csv_text
    monkeypatch.setattr(atomic, "csv_text", lambda header, rs: plain(header, [formatted.append(1) or r for r in rs]))

    def check():
        grown.write_metrics(rows)
        grown.write_table("slice_drop.csv", ["round", "acc"], rows, growing=True)
        fresh.write_metrics(list(rows))
        fresh.write_table("slice_drop.csv", ["round", "acc"], list(rows))
        for name in ("metrics.csv", "slice_drop.csv"):
            assert (grown.path / name).read_bytes() == (fresh.path / name).read_bytes()

    check()  # no rows yet: the header alone
    for rnd in range(3):
        rows.extend({"round": rnd, "t": 0.1 * rnd, "agent": a, "group": "g", "acc": 0.5, "loss": 1.0,
                     **({"acc_val": 0.25} if rnd == 2 else {})} for a in range(4))
        formatted.clear()
        grown.write_metrics(rows)
        # rounds 0-1: the new rows only; round 2 brings `acc_val`: every row again
        assert len(formatted) == (4 if rnd < 2 else 12)
        check()
    assert (grown.path / "metrics.csv").read_text().splitlines()[0] == "round,t,agent,group,acc,loss,acc_val"
    other = [dict(r, acc=0.75) for r in rows]  # another list: written from scratch
    grown.write_metrics(other)
    assert (grown.path / "metrics.csv").read_text().splitlines()[1].split(",")[4] == "0.75"


@pytest.mark.parametrize("fail_in", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, fail_in):
    """A write that fails half-way (disk full at write, flush or rename) leaves the
    old file whole and no temporary file behind: readers never see half a file."""
    rd = RunDir(tmp_path / "run")
    rd.write_summary({"rounds": 1})
    before = (rd.path / "summary.json").read_bytes()

    def fail(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fail_in == "write":
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()
                return False

            def write(self, data):
                self.f.write(data[: len(data) // 2])  # half of it lands, then the disk is full
                self.f.flush()
                fail()

        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    elif fail_in == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", fail)
    else:
        monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(RunDirError) as ei:
        rd.write_summary({"rounds": 2, "much": "x" * 100_000})
    assert str(ei.value).startswith(f"{rd.path / 'summary.json'}: cannot write: No space left on device")
    monkeypatch.undo()
    assert (rd.path / "summary.json").read_bytes() == before
    assert leftovers(rd.path) == []


# Every place in parse_actors that opens a file for writing or serializes to one.
# Anything else must go through parse_actors.atomic (temp file + fsync + rename).
ALLOWED_WRITES = {
    ("parse_actors/logs.py", "open"): "events.jsonl: an append-only log, one write per line, opened without "
                                      "following a link (resume truncates it to the checkpoint's offset); a "
                                      "line that finds the disk full is cut off again",
    ("parse_actors/metrics/dirguard.py", "open"): "the lock file (holds the pid), the marker and directories (read): not outputs",
    ("parse_actors/metrics/reserve.py", "open"): "the disk-full reserve: ballast allocated with posix_fallocate",
    ("parse_actors/data/cache.py", "fdopen"): "cache entries: own mkstemp + os.replace",
    ("parse_actors/data/cache.py", "savez"): "into the temp file above",
    ("parse_actors/data/cache.py", "replace"): "the rename that makes the cache entry appear whole",
    ("parse_actors/studies/sweep.py", "open"): ".sweep.lock: an empty advisory lock file, not an output",
    ("parse_actors/studies/cell.py", "open"): "a cell's files into a new hidden .part directory (each fsync'd "
                                             "before the rename that shows it whole) or a new scratch directory; "
                                             "a scratch directory's empty lock file",
    ("parse_actors/studies/cell.py", "rename"): "install/recover: a cell's whole run directory set aside or put "
                                               "in place, one rename each",
    ("parse_actors/metrics/plots.py", "savefig"): "into a BytesIO, then atomic.write_bytes",
    ("parse_actors/engine/checkpoint.py", "save"): "torch.save into a BytesIO, then atomic.write_bytes",
    ("parse_actors/metrics/final_weights.py", "save"): "torch.save into a BytesIO, then atomic.write_bytes",
    ("parse_actors/data/files.py", "open"): "os.open(O_RDONLY | O_NONBLOCK ...): reads input files, never writes",
    ("parse_actors/regular_file.py", "open"): "os.open(O_RDONLY | O_NONBLOCK | O_NOFOLLOW): reads only",
}
WRITE_MODES = set("wax+")
# serializers writing to a file, by the module they are called on (None: a method of any object)
SERIALIZERS = {
    "save": {"torch", "np", "numpy", "pickle"},
    "savez": {"np", "numpy"},
    "savez_compressed": {"np", "numpy"},
    "savetxt": {"np", "numpy"},
    "dump": {"json", "pickle", "yaml", "torch"},
    "safe_dump": {"yaml"},
    "copy": {"shutil"},
    "copy2": {"shutil"},
    "copyfile": {"shutil"},
    "move": {"shutil"},
    "rename": {"os"},
    "replace": {"os"},
    "savefig": None,
    "to_csv": None,
    "write_text": None,  # Path.write_text: not atomic
    "write_bytes": None,
}


def _write_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else None
        if name in ("open", "fdopen"):
            # open(file, mode) / os.fdopen(fd, mode); Path.open(mode)
            pos = 0 if isinstance(fn, ast.Attribute) and owner not in ("os", "io", "builtins") else 1
            mode = node.args[pos] if len(node.args) > pos else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and WRITE_MODES & set(mode.value):
                yield name, node.lineno
            elif pos == 1 and mode is not None and not isinstance(mode, ast.Constant):
                yield name, node.lineno  # a computed mode: review it
        elif name in SERIALIZERS and owner != "atomic":
            owners = SERIALIZERS[name]
            to_string = owner == "yaml" and len(node.args) < 2 and not any(k.arg == "stream" for k in node.keywords)
            if (owners is None or owner in owners) and not to_string:
                yield name, node.lineno
        elif name == "savefig" and owner != "atomic":
            yield name, node.lineno


def test_every_output_goes_through_atomic():
    found = []
    for p in sorted((ROOT / "parse_actors").rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel == "parse_actors/atomic.py":
            continue  # the implementation (mkstemp, fsync, os.replace), tested below
        for name, line in _write_calls(ast.parse(p.read_text(), rel)):
            if (rel, name) not in ALLOWED_WRITES:
                found.append(f"{rel}:{line}: {name}(...)")
    assert not found, f"writes that bypass parse_actors.atomic (use atomic.write_*): {found}"


def test_atomic_replaces_in_one_step(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic.write_text(target, "one")
    atomic.write_text(target, "two")
    assert target.read_text() == "two" and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- unusable run directories


def test_run_dir_under_a_file(tmp_path):
    f = tmp_path / "some_file"
    f.write_text("keep")
    with pytest.raises(RunDirError) as ei:
        RunDir(f / "run")
    assert str(ei.value) == f"{f / 'run'}: cannot write the run directory: Not a directory"
    assert f.read_text() == "keep"


def test_run_dir_in_an_unwritable_place():
    with pytest.raises(RunDirError) as ei:
        RunDir(Path("/proc/parse-sim-test/run"))  # unwritable even for root
    assert str(ei.value).startswith("/proc/parse-sim-test/run: cannot write the run directory: ")


def test_run_dir_that_is_a_file(tmp_path):
    f = tmp_path / "out"
    f.write_text("keep")
    for force in (False, True):
        with pytest.raises(RunDirError) as ei:
            RunDir(f, force=force)
        assert str(ei.value) == f"{f}: exists and is not a directory"
    assert f.read_text() == "keep"


def test_disk_full_at_the_probe(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "write_bytes", full)
    with pytest.raises(RunDirError) as ei:
        RunDir(tmp_path / "run")
    assert str(ei.value) == f"{tmp_path / 'run'}: cannot write the run directory: No space left on device"


def test_disk_full_during_the_probe_flush(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(RunDirError) as ei:
        RunDir(tmp_path / "run")
    assert "No space left on device" in str(ei.value)
    monkeypatch.undo()
    assert leftovers(tmp_path) == []


def made_run_dir(out: Path) -> Path:
    """A run directory as a run leaves it (marker, lock released), with a scenario and old metrics."""
    RunDir(out).close()
    (out / "scenario.yaml").write_text("seed: 1\n")
    (out / "metrics.csv").write_text("old")
    return out


def test_existing_run_dir_is_kept_without_force(tmp_path):
    out = made_run_dir(tmp_path / "run")
    with pytest.raises(RunDirError) as ei:
        RunDir(out)
    assert str(ei.value) == f"{out}: run directory exists and is not empty (use --force to overwrite)"
    assert (out / "metrics.csv").read_text() == "old"


def test_force_replaces_a_run_dir(tmp_path):
    out = made_run_dir(tmp_path / "run")
    RunDir(out, force=True).close()
    assert sorted(p.name for p in out.iterdir()) == [".parse-sim-lock", ".parse-sim-run", "plots"]


def test_force_never_deletes_what_is_not_a_run_dir(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(RunDirError) as ei:
        RunDir(out, force=True)
    assert "is not a parse-sim run directory" in str(ei.value) and "--force deletes only" in str(ei.value)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_force_replaces_a_run_that_died_before_its_scenario(tmp_path):
    out = tmp_path / "run"
    RunDir(out).close()
    (out / ".write-test").write_bytes(b"x")
    RunDir(out, force=True).close()
    assert sorted(p.name for p in out.iterdir()) == [".parse-sim-lock", ".parse-sim-run", "plots"]


def test_reuse_keeps_the_contents(tmp_path):
    out = made_run_dir(tmp_path / "run")
    (out / "metrics.csv").write_text("rows so far")
    RunDir(out, reuse=True)
    assert (out / "metrics.csv").read_text() == "rows so far"


# ---------------------------------------------------------------------------- through the CLI, before training


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if the run gets as far as building the simulation."""
    import parse_actors.engine.runner as runner

    def never(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(runner, "_simulation", never)  # builds the Simulation (imported on first use)


def test_cli_disk_full_is_one_line_before_training(tmp_path, capsys, monkeypatch, no_training, quickstart_path):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "write_bytes", full)
    out = tmp_path / "run"
    assert main(["run", str(quickstart_path), "--out", str(out), "--backend", "inline"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{out}: cannot write the run directory: No space left on device"]


def test_cli_unwritable_out_is_one_line_before_training(tmp_path, capsys, no_training, quickstart_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("x")
    assert main(["run", str(quickstart_path), "--out", str(blocker / "run"), "--backend", "inline"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{blocker / 'run'}: cannot write the run directory: Not a directory"]


def test_cli_existing_run_dir_needs_force(tmp_path, capsys, no_training, quickstart_path):
    out = made_run_dir(tmp_path / "run")
    assert main(["run", str(quickstart_path), "--out", str(out), "--backend", "inline"]) == 2
    assert "use --force to overwrite" in capsys.readouterr().err
    assert (out / "scenario.yaml").read_text() == "seed: 1\n"
