"""The one rule for run and report directories: what parse-sim may touch there.

- A run directory carries parse-sim's marker (`.parse-sim-run`, written when
  the directory is made). `--force` deletes only the entries the run
  directory contract names (`CONTRACT_FILES`, the figures of `plots/` and
  `report/`, temporary files of atomic writes, the reserve), and only in a
  directory with the marker: user files beside them survive, and a non-empty
  directory without the marker is refused.
- Nothing is read, written or deleted through a symbolic link: a run or
  report directory that is a link or holds one (at its top, in `plots/` or
  `report/`), or whose contract files are not regular files (a FIFO blocks
  whoever opens it), is refused before anything else happens; deletions and
  the lock go through a descriptor of the directory opened without following
  links, writes through atomic.py (which does the same).
- A run holds an exclusive lock (`flock` on `.parse-sim-lock`) for its whole
  life; the kernel drops it when the process ends, however it ends, so a crash
  never leaves a stale lock. A second run, a `--force`, a `--resume` or an
  audit of a locked directory is refused. Locks are re-entrant within one
  process (an audit run at the end of a run).

Every refusal is a `GuardError`, a RunDirError: one line, exit code 2.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import os
import stat
from pathlib import Path

from parse_actors import atomic

MARKER = ".parse-sim-run"
MARKER_TEXT = "parse-sim run directory, format 1\n"
"""What the marker holds: a format id (a directory made by a later format still counts as ours)."""
LOCK = ".parse-sim-lock"
RESERVE = ".parse-sim-reserve"
"""Ballast released when the disk fills, so the last tables and a checkpoint still fit (reserve.py)."""

CONTRACT_FILES = frozenset({
    "scenario.yaml", "events.jsonl", "metrics.csv", "comm.csv", "summary.json", "conflict.csv", "slice_drop.csv",
    "run.json", "checkpoint.pt", "final_weights.pt", "pid_audit.csv", "pid_audit.json", "report.md",
    ".write-test", RESERVE,
})
"""The files a run (or `parse-sim report` / `audit` on it) writes at a run directory's top."""
PLOT_FIGURES = ("accuracy_vs_time.png", "bytes_by_kind.png", "pid_audit_*.png")
"""What plots/ holds: the run's figures and the audit's heatmaps (audit/plots.py)."""
REPORT_FIGURES = ("accuracy_vs_time.png", "time_to_target.png", "bytes_by_kind.png", "gradient_conflict.png",
                  "gradient_conflict_vs_time.png", "slice_drop.png", "online.png", "final_acc_vs_*.png",
                  "acc_at_budget_vs_*.png", "accuracy_vs_rounds.png", "accuracy_vs_bytes.png")
"""What report/ holds: the figures `parse-sim report` draws (studies/report.py) for a run or a sweep."""
CONTRACT_DIRS = {"plots": PLOT_FIGURES, "report": REPORT_FIGURES}


class RunDirError(Exception):
    """The output directory cannot be used (exists, unwritable, disk full, not ours, in use)."""


class GuardError(RunDirError):
    """Refused by the rule above: the directory is not parse-sim's, holds a link, or is in use."""


def refuse(message: str) -> GuardError:
    return GuardError(message)


# ------------------------------------------------------------------ the contract

def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_contract_file(name: str) -> bool:
    return name in CONTRACT_FILES or atomic.is_temp_of(name, lambda n: n in CONTRACT_FILES)


def is_figure(sub: str, name: str) -> bool:
    """Whether `sub/name` is a figure parse-sim writes there (or the temporary file of one)."""
    pats = CONTRACT_DIRS[sub]
    return _matches(name, pats) or atomic.is_temp_of(name, lambda n: _matches(n, pats))


# ------------------------------------------------------------------ links

def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_entries(path: Path, what: str = "run directory") -> None:
    """Refuse `path` when it is a symbolic link or holds one at its top, in plots/ or in
    report/, or when an entry the contract names is not what parse-sim writes there (a FIFO,
    a device, a directory in place of a file: opening one would block or read a device)."""
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        raise refuse(f"{path}: the {what} is a symbolic link; parse-sim never reads, writes or deletes "
                     "through one (give the real path)")
    if not stat.S_ISDIR(st.st_mode):
        return
    for entry in _scan(path):
        if entry.is_symlink():
            raise _link_inside(path, entry.name, what)
        if entry.name in CONTRACT_DIRS and entry.is_dir(follow_symlinks=False):
            for sub in _scan(Path(entry.path)):
                if sub.is_symlink():
                    raise _link_inside(path, f"{entry.name}/{sub.name}", what)
        elif entry.name in CONTRACT_FILES | {MARKER, LOCK} and not entry.is_file(follow_symlinks=False):
            raise refuse(f"{path / entry.name}: is not a regular file; parse-sim opens only regular files in a "
                         f"{what}")


def _scan(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as e:
        raise refuse(f"{path}: cannot read the directory: {e.strerror or e}") from None


def _link_inside(path: Path, name: str, what: str) -> Exception:
    return refuse(f"{path / name}: is a symbolic link inside a {what}; parse-sim never reads, writes or "
                  "deletes through one (remove the link, or copy the files in)")


def check_sweep_entries(path: Path) -> None:
    """Every run directory in a sweep directory (a report reads them all; `check_entries`
    checks the sweep directory itself)."""
    for entry in _scan(path):
        if entry.is_dir(follow_symlinks=False):
            check_entries(Path(entry.path))


# ------------------------------------------------------------------ marker

def has_marker(dfd: int) -> bool:
    """Whether the directory (a descriptor) carries parse-sim's marker: a regular file
    whose first line names a parse-sim run directory."""
    try:
        fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, 256).startswith(MARKER_TEXT.split(", format")[0].encode())
    finally:
        os.close(fd)


def has_marker_at(path: Path) -> bool:
    try:
        dfd = atomic.open_dir(path)
    except OSError:
        return False
    try:
        return has_marker(dfd)
    finally:
        os.close(dfd)


def require_run_dir(path: Path, dfd: int, what: str = "run directory") -> None:
    """Before writing anything into an existing directory to work on what is there (resume,
    audit): it carries the marker, or it is a run of a parse-sim older than the marker
    (a regular scenario.yaml)."""
    if has_marker(dfd):
        return
    try:
        st = os.stat("scenario.yaml", dir_fd=dfd, follow_symlinks=False)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise refuse(f"{path}: not a {what} (no scenario.yaml)")


def write_marker(path: Path) -> None:
    atomic.write_text(path / MARKER, MARKER_TEXT)


# ------------------------------------------------------------------ lock

_held: dict[tuple[int, int], list] = {}  # (st_dev, st_ino) of a locked directory -> [lock fd, holders]


class Lock:
    """An exclusive lock on a run directory for as long as this object is held
    (re-entrant within the process). `release` is idempotent."""

    def __init__(self, path: Path, dfd: int):
        st = os.fstat(dfd)
        self.key = (st.st_dev, st.st_ino)
        self.path = path
        held = _held.get(self.key)
        if held is not None:
            held[1] += 1
        else:
            _held[self.key] = [_take(path, dfd), 1]
        self.released = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        held = _held[self.key]
        held[1] -= 1
        if held[1] == 0:
            del _held[self.key]
            os.close(held[0])  # closing the descriptor drops the flock


def _take(path: Path, dfd: int) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(LOCK, flags, 0o644, dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _link_inside(path, LOCK, "run directory") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse(f"{path / LOCK}: is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise refuse(f"{path}: in use by a running parse-sim{f' (pid {pid})' if pid.isdigit() else ''}; "
                         "wait for it to end or choose another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def hold(path: Path, what: str = "run directory"):
    """For a tool working in an existing run directory (`parse-sim audit`): refuse
    links, take the lock. A context manager."""
    return _Held(Path(path), what)


class _Held:
    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        self.lock: Lock | None = None

    def __enter__(self):
        check_entries(self.path, self.what)
        if not self.path.is_dir():
            raise refuse(f"{self.path}: not a {self.what} (no such directory)")
        try:
            dfd = atomic.open_dir(self.path)
        except OSError as e:
            raise refuse(f"{self.path}: cannot open the {self.what}: {e.strerror or e}") from None
        try:
            require_run_dir(self.path, dfd, self.what)
            self.lock = Lock(self.path, dfd)
        finally:
            os.close(dfd)
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()
        return False


# ------------------------------------------------------------------ --force

def clean(path: Path, dfd: int) -> None:
    """Delete what the contract names (never the marker, the lock, or anything else):
    contract files, the figures of plots/ and report/ (each removed when left empty)."""
    for entry in _scan(path):
        name = entry.name
        if name in (MARKER, LOCK):
            continue
        if is_contract_file(name):
            if not entry.is_file(follow_symlinks=False):
                raise refuse(f"{path / name}: is not a regular file; not deleting it, even with --force")
            os.unlink(name, dir_fd=dfd)
        elif name in CONTRACT_DIRS and entry.is_dir(follow_symlinks=False):
            _clean_figures(path, dfd, name)


def _clean_figures(path: Path, dfd: int, sub: str) -> None:
    sfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        left = 0
        for entry in _scan(path / sub):
            if is_figure(sub, entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=sfd)
            else:
                left += 1
    finally:
        os.close(sfd)
    if not left:
        os.rmdir(sub, dir_fd=dfd)


def remove_stale_figures(directory: Path, sub: str, keep: set[str]) -> None:
    """`parse-sim report`: delete the figures of an earlier report that this one no
    longer has: only names `sub` may hold (REPORT_FIGURES), only regular files,
    never through a link (the directory was checked; it is opened without following one)."""
    try:
        sfd = atomic.open_dir(directory / sub)
    except FileNotFoundError:
        return
    try:
        for entry in _scan(directory / sub):
            if (entry.name.endswith(".png") and entry.name not in keep and is_figure(sub, entry.name)
                    and entry.is_file(follow_symlinks=False)):
                os.unlink(entry.name, dir_fd=sfd)
    finally:
        os.close(sfd)
