"""One sweep cell, wherever it runs: run (or resume) its scenario into a run
directory and say how it ended; and, for cells on other machines, the
scratch directory a cell runs in there and the files that travel back.

`run_cell` returns (status, value):
- "ok": complete; value is its summary
- "ok_stop": complete, but a stop was asked during its last round; value (summary, signum)
- "interrupted": stopped by a signal (or the sweep's stop) after a round; its
  checkpoint is written; value is the signal number
- "error": the run failed by itself; value is "ErrorType: message"

A cell on a cluster node runs in a scratch directory of that node
(`<tmp>/psim-cells-<uid>/<cell>.<random>/run`), held by an advisory lock for as
long as its process lives. Its files then go back to the sweep's driver, which
writes the run directory (`install`): nothing a node writes is needed on any
other machine, and a node that dies loses only the cell it was running. The
scratch directory of a process that died (node lost, out of memory) is
removed by the next cell that starts on that machine: its lock was released
by the kernel with the process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

OWNER = ".owner"
"""The lock file of a scratch directory: locked while the cell's process lives."""


def execute(sc, rdir: Path, backend: str, state: str, hooks=()) -> tuple[dict, int | None]:
    """Run (or resume) one cell; returns its summary and the signal that asked to stop
    during the run, if any (a signal in the last round lets the run finish complete)."""
    from parse_actors.engine import resume_run, run_scenario
    from parse_actors.engine.interrupted import Interrupted

    seen: list[int] = []

    def watch(sim, rnd) -> None:
        if sim.stop_signal is not None and not seen:
            seen.append(sim.stop_signal)

    hooks = [*hooks, watch]
    if state == "resume":
        try:
            summary, _ = resume_run(rdir, backend=backend, hooks=hooks)
            return summary, (seen[0] if seen else None)
        except Interrupted:
            raise
        except Exception:  # noqa: BLE001 - an unusable checkpoint: start the run again
            pass
    summary, _ = run_scenario(sc, rdir, backend=backend, force=state != "new", hooks=hooks)
    return summary, (seen[0] if seen else None)


def run_cell(sc, rdir: Path, backend: str, state: str, hooks=()) -> tuple[str, Any]:
    """`execute`, with how it ended as (status, value) (module docstring)."""
    from parse_actors.engine.interrupted import Interrupted

    try:
        summary, stopped = execute(sc, rdir, backend, state, hooks)
        return ("ok", summary) if stopped is None else ("ok_stop", (summary, stopped))
    except Interrupted as e:
        return "interrupted", e.signum
    except Exception as e:  # noqa: BLE001 - reported in sweep.csv, the sweep goes on
        return "error", f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------
# a cell's files: packed where it ran, written where the sweep directory is
# ---------------------------------------------------------------------------


def pack(rdir: Path) -> dict[str, bytes]:
    """Every regular file under `rdir` by its relative POSIX path (links are not followed)."""
    files: dict[str, bytes] = {}
    if not rdir.is_dir():
        return files
    from parse_actors.metrics import dirguard

    for root, dirs, names in os.walk(rdir, followlinks=False):
        dirs.sort()
        for n in sorted(names):
            p = Path(root) / n
            if p.parent == rdir and n in (dirguard.LOCK, dirguard.RESERVE):  # the scratch run's, not results
                continue
            if stat.S_ISREG(os.lstat(p).st_mode):
                files[p.relative_to(rdir).as_posix()] = p.read_bytes()
    return files


def _relative(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise ValueError(f"not a plain relative path: {rel!r}")
    return p


def unpack(files: dict[str, bytes], rdir: Path) -> None:
    """Write `files` (from `pack`) under `rdir`, which must not exist yet."""
    rdir.mkdir(parents=True)
    _write_all(rdir, files, durable=False)


def _write_all(rdir: Path, files: dict[str, bytes], durable: bool) -> None:
    for rel, data in files.items():
        p = rdir.joinpath(*_relative(rel).parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "xb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())


def install(rdir: Path, files: dict[str, bytes]) -> None:
    """Make `rdir` hold exactly `files`, in one rename: a crash leaves either the old
    directory or the new one (`recover` puts a set-aside old one back). An existing
    `rdir` is replaced only under the run-directory rule (metrics/dirguard.py): a run
    directory holding no link, locked meanwhile, so a run using it is never replaced."""
    from parse_actors import atomic
    from parse_actors.metrics import dirguard

    part, old = _sibling(rdir, "part"), _sibling(rdir, "old")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    _write_all(part, files, durable=True)
    (part / "plots").mkdir(exist_ok=True)  # what RunDir makes, even when empty
    if os.path.lexists(rdir):
        with dirguard.hold(rdir, "sweep cell"):
            shutil.rmtree(old, ignore_errors=True)
            os.rename(rdir, old)
    os.rename(part, rdir)
    atomic.fsync_dir(rdir.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover(rdir: Path) -> None:
    """Undo what a crash in the middle of `install` left next to `rdir`."""
    part, old = _sibling(rdir, "part"), _sibling(rdir, "old")
    if old.is_dir() and not old.is_symlink():
        if rdir.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, rdir)
    if part.is_dir() and not part.is_symlink():
        shutil.rmtree(part, ignore_errors=True)


def _sibling(rdir: Path, what: str) -> Path:
    return rdir.parent / f".{rdir.name}.{what}"


# ---------------------------------------------------------------------------
# scratch directories on the node a cell runs on
# ---------------------------------------------------------------------------


def scratch_root() -> Path:
    """This user's folder of cell scratch directories on this machine ($TMPDIR decides where)."""
    return Path(tempfile.gettempdir()) / f"psim-cells-{os.getuid()}"


def _own_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(f"{path}: not a directory of this user; refusing to use it for scratch")


def collect_stale(root: Path) -> list[str]:
    """Remove the scratch directories under `root` whose process is gone (their lock
    is free); a directory without its lock file yet (being made) is left alone."""
    removed = []
    for d in sorted(root.iterdir()):
        if d.is_symlink() or not d.is_dir():
            continue
        try:
            fh = open(d / OWNER, "rb")
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its cell is running
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A fresh run directory path for cell `name` on this machine, removed afterwards."""
    root = scratch_root()
    _own_dir(root)
    collect_stale(root)
    d = Path(tempfile.mkdtemp(prefix=f"{name[:80]}.", dir=root))
    fh = open(d / OWNER, "wb")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield d / "run"
    finally:
        shutil.rmtree(d, ignore_errors=True)
        fh.close()
