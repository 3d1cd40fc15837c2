"""structlog, configured once: JSON lines to events.jsonl, readable lines on the console.

Simulation events carry `t` (virtual seconds) and go to the run's
events.jsonl; the console shows INFO and above (`-v`: DEBUG, `-q`: warnings).
The events file has no wall-clock fields, so the same scenario and seed give
the same file.

events.jsonl is opened in place (appended to, truncated on resume) without
following a link, and each line goes out in one write: a line that finds the
disk full is cut back off, so the file never ends in half a line. From the
first full disk on (anywhere: see atomic.watch) lines are held in memory and
written when the log closes, after the run's checkpoint and tables had the
space first (metrics/reserve.py).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import structlog

from parse_actors import atomic

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
HELD_MAX_BYTES = 64 * 2 ** 20
"""Lines held in memory after a full disk, at most (later ones are counted, not kept)."""


class _EventFile:
    """events.jsonl: whole lines appended with one write each; see the module docstring."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = _open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.pos = os.fstat(self.fd).st_size  # the end of the last complete line
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.dropped = 0  # bytes of lines neither written nor held
        self.holding = False
        self._unwatch = atomic.watch(self)

    def write(self, line: str) -> None:
        data = line.encode("utf-8")
        if self.holding or not self._append(data):
            self._hold(data)

    def _append(self, data: bytes) -> bool:
        """False when the disk is full (the partial line is cut off again)."""
        try:
            _write_all(self.fd, data)
        except OSError as e:
            os.ftruncate(self.fd, self.pos)
            if not atomic.is_no_space(e):
                raise
            self.holding = True
            atomic.no_space(self.path, len(data))
            return False
        self.pos += len(data)
        return True

    def _hold(self, data: bytes) -> None:
        if self.held_bytes + len(data) > HELD_MAX_BYTES:
            self.dropped += len(data)
            return
        self.held.append(data)
        self.held_bytes += len(data)

    def offset(self) -> int:
        """Where the file ends once the held lines are written (what a checkpoint stores)."""
        return self.pos + self.held_bytes

    def close(self) -> None:
        """Write the held lines (all or none), then close."""
        self._unwatch()
        try:
            if self.held:
                data = b"".join(self.held)
                self.held, self.held_bytes, self.holding = [], 0, False
                if self._append(data) and not self.dropped:
                    atomic.written(self.path, len(data))
            if self.dropped:
                atomic.no_space(self.path, self.dropped)  # lines that were never kept: the run says so
        finally:
            os.close(self.fd)

    # atomic.watch: another write found the disk full: hold lines from now on
    def no_space(self, path: Path, nbytes: int) -> bool:
        self.holding = True
        return False

    def written(self, path: Path, nbytes: int) -> None:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_regular(path: Path, flags: int) -> int:
    """Open `path` without following a link, and only a regular file (not a FIFO, not a device)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise atomic.link_error(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "is not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


class _Router:
    """Last processor: writes the event to events.jsonl, then renders it for the console."""

    def __init__(self) -> None:
        self.events: _EventFile | None = None
        self.paused = False  # replaying already-logged virtual time (resume)
        self.console_level = logging.INFO
        self.console = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=12)

    def __call__(self, logger: Any, method: str, event: dict) -> str:
        level = _LEVELS.get(method, 20)
        to_file = event.pop("_file", True)
        to_console = event.pop("_console", True)
        if self.events is not None and to_file and not self.paused and "t" in event:
            line = {"event": event["event"], **{k: v for k, v in event.items() if k not in ("event", "level")}}
            self.events.write(json.dumps(line, default=_json_default, allow_nan=True) + "\n")
        if level < self.console_level or to_console is False:
            raise structlog.DropEvent
        return self.console(logger, method, dict(event))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


class _StderrLogger:
    """Writes to whatever sys.stderr is *now* (test harnesses swap it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg


_router = _Router()
_configured = False


def configure(verbosity: int = 0) -> None:
    """verbosity: -1 quiet, 0 normal, 1 verbose (debug)."""
    global _configured
    _configured = True
    _router.console_level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    structlog.configure(
        processors=[structlog.processors.add_log_level, _router],
        logger_factory=lambda *args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )


def open_events(path: Path) -> None:
    """Send simulation events to `path` (one write per line, so a crash loses at most a line)."""
    if not _configured:
        configure()
    close_events()
    _router.events = _EventFile(path)


def pause_events(paused: bool) -> None:
    _router.paused = paused


def events_offset() -> int | None:
    """Where the events file ends now (stored in checkpoints; resume truncates back to it)."""
    if _router.events is None:
        return None
    return _router.events.offset()


def truncate_events(path: Path, offset: int | None) -> None:
    """Cut `path` back to `offset` (resume), never through a link."""
    if offset is None or not os.path.lexists(path):
        return
    fd = _open_regular(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size > offset:
            os.ftruncate(fd, offset)
    finally:
        os.close(fd)


def close_events() -> None:
    if _router.events is not None:
        _router.events.close()
        _router.events = None


def get_logger(**bind: Any):
    return structlog.get_logger("parse_sim").bind(**bind)
