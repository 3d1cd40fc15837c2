"""What a run does when its disk fills: a reserve, a stop with a checkpoint, one line.

A run keeps ballast (`.parse-sim-reserve`, allocated with posix_fallocate) in
its directory. The first write that finds the disk full (any atomic write, or
the event log) deletes it and is tried again; from then on the event log
holds its lines in memory (logs.py), the periodic table flushes wait, and the
run stops at the end of the round (coordinator), writing into the reserve's
space what a stop needs: a checkpoint and the last version of every table.
A write that fails even then keeps its previous version (atomic.py) and is
listed in the final message.

The reserve must hold a temporary copy of the checkpoint (the old one stays
until the rename) and of every table: it starts at `MIN_BYTES`, is sized from
the agents' state before the first round (`expect_state`), and grows from the
sizes the run actually writes. A disk too full for it is refused before the
first round.
"""

from __future__ import annotations

import errno
import math
import os
import weakref
from pathlib import Path

from parse_actors import atomic
from parse_actors.metrics.dirguard import RESERVE

MIB = 2 ** 20
MIN_BYTES = 4 * MIB
MARGIN = 1 * MIB
"""Room beyond the files the reserve is sized for: summary.json and run.json of a stop, a round's growth."""
TABLES = ("metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv", "summary.json", "run.json")
"""What a stop writes besides the checkpoint (events held in memory are written last, when they fit)."""
STATE_FACTOR = 4
"""Checkpoint bytes per byte of agent parameters, before the first checkpoint is written: parameters, the
optimizer's buffers of the same size, exports of messages in flight (up to one per sender), batch orders."""
UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class Space:
    """Disk-full handling of one run directory (registered with `atomic.watch`)."""

    def __init__(self, path: Path):
        self.path = path
        self.dev = os.stat(path).st_dev
        self.full_at: tuple[Path, int] | None = None  # the first write that found the disk full
        self.unwritten: dict[Path, int] = {}  # writes that failed even after the reserve was released
        self.sizes: dict[str, int] = {}  # last size written of each table and of the checkpoint
        self.state_bytes = 0
        self.reserved = 0  # bytes the reserve holds now
        self.target_peak = MIN_BYTES
        self.closed = False
        self._unwatch = atomic.watch(_WeakWatcher(self))

    # ------------------------------------------------------------------ the reserve
    def create(self) -> None:
        """Allocate the initial reserve; OSError (ENOSPC) when the disk cannot hold it."""
        try:
            self._resize(MIN_BYTES)
        except OSError as e:
            if not atomic.is_no_space(e):
                raise
            raise OSError(e.errno, _why(e, MIN_BYTES), str(self.path / RESERVE)) from None

    def expect_state(self, param_bytes: int) -> None:
        """Size the reserve for a checkpoint of agents holding `param_bytes` of parameters,
        before the first round; raises OSError (ENOSPC) naming the reserve when it does not fit."""
        self.state_bytes = STATE_FACTOR * int(param_bytes)
        self._fit(strict=True)

    def target(self) -> int:
        ckpt = max(self.state_bytes, self.sizes.get("checkpoint.pt", 0))
        return max(MIN_BYTES, ckpt + sum(self.sizes.get(t, 0) for t in TABLES) + MARGIN)

    def _fit(self, strict: bool = False) -> None:
        if self.full_at is not None or self.closed:
            return
        want = self.target()
        self.target_peak = max(self.target_peak, want)
        if want <= self.reserved:
            return
        try:
            self._resize(want + MARGIN)  # a little ahead: tables grow every round
        except OSError as e:
            if strict:
                if atomic.is_no_space(e):
                    raise OSError(e.errno, _why(e, want), str(self.path / RESERVE)) from None
                raise
            if atomic.is_no_space(e):  # too tight to grow: stop at the round's end, with what it holds
                self._full(self.path / RESERVE, want - self.reserved)

    def _resize(self, size: int) -> None:
        dfd = atomic.open_dir(self.path)
        try:
            fd = os.open(RESERVE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        finally:
            os.close(dfd)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as e:
                if e.errno not in UNSUPPORTED:
                    os.ftruncate(fd, self.reserved)  # give back what a partial allocation took
                    raise
                _write_zeros(fd, self.reserved, size)
            self.reserved = size
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Delete the reserve; True when it held space."""
        if not self.reserved:
            return False
        try:
            dfd = atomic.open_dir(self.path)
            try:
                os.unlink(RESERVE, dir_fd=dfd)
            finally:
                os.close(dfd)
        except FileNotFoundError:
            pass
        self.reserved = 0
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._unwatch()
            try:
                self.release()
            except OSError:
                pass

    # ------------------------------------------------------------------ watcher (atomic.watch)
    def _ours(self, path: Path) -> bool:
        try:
            return os.stat(path.parent).st_dev == self.dev
        except OSError:
            return False

    def no_space(self, path: Path, nbytes: int) -> bool:
        if not self._ours(path):
            return False
        self._full(path, nbytes)
        if self.release():
            return True
        self.unwritten[path] = nbytes
        return False

    def _full(self, path: Path, nbytes: int) -> None:
        if self.full_at is None:
            self.full_at = (path, nbytes)
            from parse_actors import logs

            logs.get_logger().warning("disk_full", file=str(path), _file=False,
                                      note="the run stops at the end of this round (finishes, in the last); "
                                           "its tables and a checkpoint go into the space of parse-sim's reserve")

    def written(self, path: Path, nbytes: int) -> None:
        if path.parent != self.path and path.parent.parent != self.path:
            return
        self.unwritten.pop(path, None)
        if path.parent == self.path and (path.name in TABLES or path.name == "checkpoint.pt"):
            self.sizes[path.name] = nbytes
            self._fit()

    # ------------------------------------------------------------------ the message
    def message(self, state: str, next_step: str) -> str:
        """One line: which file found the disk full, what was kept (`state`), how much to
        free and where, then `next_step`."""
        first = self.full_at[0] if self.full_at else self.path
        lost = list(self.unwritten)
        need = sum(self.unwritten.values()) + self.target_peak + MARGIN
        where = f"the filesystem of {self.path}"
        mount = mount_point(self.path)
        free = free_bytes(self.path)
        facts = ", ".join(x for x in (f"mounted at {mount}" if mount else "",
                                      f"{free // MIB} MiB free now" if free is not None else "") if x)
        text = (f"{first}: no space left on device; {state}"
                + (f"; not written: {', '.join(p.name for p in lost)}" if lost else "")
                + f"; free at least {_mib(need)} MiB on {where}" + (f" ({facts})" if facts else "")
                + (f", then {next_step}" if next_step else ""))
        return text


class _WeakWatcher:
    """What atomic holds: a Space that nobody uses any more is not kept alive by it."""

    def __init__(self, space: Space):
        self.ref = weakref.ref(space)

    def no_space(self, path: Path, nbytes: int) -> bool:
        s = self.ref()
        return s.no_space(path, nbytes) if s is not None else False

    def written(self, path: Path, nbytes: int) -> None:
        s = self.ref()
        if s is not None:
            s.written(path, nbytes)


def _write_zeros(fd: int, start: int, end: int) -> None:
    """Where posix_fallocate is not supported: allocate by writing."""
    chunk = b"\0" * MIB
    os.lseek(fd, start, os.SEEK_SET)
    pos = start
    try:
        while pos < end:
            pos += os.write(fd, chunk[: min(MIB, end - pos)])
    except OSError:
        os.ftruncate(fd, start)
        raise


def _why(e: OSError, nbytes: int) -> str:
    return (f"{e.strerror} (parse-sim keeps a reserve of {_mib(nbytes)} MiB in the run directory, so that a "
            "full disk still leaves room for a checkpoint)")


def _mib(n: int) -> int:
    return max(1, math.ceil(n / MIB))


def free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def mount_point(path: Path) -> Path | None:
    """The mount point of the filesystem holding `path` (where space must be freed)."""
    try:
        p = Path(os.path.abspath(path))
        dev = os.stat(p).st_dev
        while p.parent != p and os.stat(p.parent).st_dev == dev:
            p = p.parent
        return p
    except OSError:
        return None
