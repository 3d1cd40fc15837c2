"""Atomic file writes: a reader (or a crash) never sees half a file, nothing is
written through a link, and a full disk never destroys the previous version.

The temporary file is created next to the target through a descriptor of the
target's directory, opened without following a link (a directory that is a
symbolic link is refused: writing `plots/x.png` must never land in whatever
`plots` points to), fsynced and renamed over the target in one step. A write
that fails at any point removes its temporary file and leaves the target as
it was.

Disk full (ENOSPC, EDQUOT): the watchers registered with `watch` are told
(the run directory releases its reserve, the event log starts holding its
lines); when one of them freed space the write is tried again, else the
error goes up with the file's name in it. Watchers also hear of every write
that succeeded (the reserve is sized from them).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors that mean the filesystem is full (or the user's quota is)."""



class Watcher(Protocol):
    def no_space(self, path: Path, nbytes: int) -> bool:
        """Writing `nbytes` to `path` found the disk full; True when space was freed."""

    def written(self, path: Path, nbytes: int) -> None:
        """`nbytes` were written to `path`."""


_watchers: list[Watcher] = []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give: results stay readable by others


def watch(watcher: Watcher) -> Callable[[], None]:
    """Tell `watcher` of every write and of every full disk; returns the function that stops it."""
    _watchers.append(watcher)

    def remove() -> None:
        if watcher in _watchers:
            _watchers.remove(watcher)

    return remove


def no_space(path: str | os.PathLike, nbytes: int) -> bool:
    """Tell every watcher that writing `nbytes` to `path` found the disk full; True
    when one of them freed space. (Also for the writer that is not atomic: the event log.)"""
    freed = False
    for w in list(_watchers):
        freed = bool(w.no_space(Path(path), nbytes)) or freed
    return freed


def written(path: str | os.PathLike, nbytes: int) -> None:
    """Tell every watcher that `nbytes` were written to `path`."""
    for w in list(_watchers):
        w.written(Path(path), nbytes)


def is_no_space(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in NO_SPACE


def open_dir(directory: str | os.PathLike) -> int:
    """A descriptor of `directory`, refusing a symbolic link (OSError ELOOP naming it)."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(directory):
            raise link_error(directory) from None
        raise


def _is_link(p) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(p).st_mode)
    except OSError:
        return False


def link_error(path: str | os.PathLike) -> OSError:
    return OSError(errno.ELOOP, "is a symbolic link (parse-sim never reads, writes or deletes through one)",
                   str(path))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            _write(path, data)
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            if attempt == 2 or not no_space(path, len(data)):
                raise OSError(e.errno, e.strerror, str(path)) from None
        else:
            written(path, len(data))
            return


def _write(path: Path, data: bytes) -> None:
    dfd = open_dir(path.parent)
    try:
        fd, tmp = _temp_file(dfd, path.name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), _MODE)
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            try:  # make the rename itself durable (best effort: not every filesystem allows it)
                os.fsync(dfd)
            except OSError:
                pass
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dfd)


def temp_name(name: str) -> str:
    """The name of a temporary file for `name` (matched by `is_temp_of`)."""
    return f".{name}.{secrets.token_hex(4)}.tmp"


def is_temp_of(entry: str, name_ok: Callable[[str], bool]) -> bool:
    """Whether `entry` is a temporary file `temp_name` made for a name `name_ok` accepts."""
    if not (entry.startswith(".") and entry.endswith(".tmp")):
        return False
    base = entry[1:-4].rsplit(".", 1)[0]
    return bool(base) and name_ok(base)


def _temp_file(dfd: int, name: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = temp_name(name)
        try:
            return os.open(tmp, flags, 0o600, dir_fd=dfd), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", name)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make renames in `directory` durable (best effort: not every filesystem allows it);
    a link in its place is refused (OSError ELOOP)."""
    dfd = open_dir(directory)
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence]) -> str:
    """CSV lines (\\n-terminated) of `rows`, after a `header` line unless it is None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    write_text(path, csv_text(header, rows))
