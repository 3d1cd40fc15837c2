"""structlog, configured once: JSON lines to events.jsonl, readable lines on the console.

Simulation events carry `t` (virtual seconds) and go to the run's
events.jsonl; the console shows INFO and above (`-v`: DEBUG, `-q`: warnings).
The events file has no wall-clock fields, so the same scenario and seed give
the same file.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import IO, Any

import structlog

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _Router:
    """Last processor: writes the event to events.jsonl, then renders it for the console."""

    def __init__(self) -> None:
        self.events: IO[str] | None = None
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
    """Send simulation events to `path` (line-buffered, so a crash loses at most a line)."""
    if not _configured:
        configure()
    close_events()
    _router.events = open(path, "a", encoding="utf-8", buffering=1)


def pause_events(paused: bool) -> None:
    _router.paused = paused


def events_offset() -> int | None:
    """Where the events file ends now (stored in checkpoints; resume truncates back to it)."""
    if _router.events is None:
        return None
    _router.events.flush()
    return _router.events.tell()


def truncate_events(path: Path, offset: int | None) -> None:
    if offset is not None and path.exists() and path.stat().st_size > offset:
        with open(path, "r+b") as f:
            f.truncate(offset)


def close_events() -> None:
    if _router.events is not None:
        _router.events.close()
        _router.events = None


def get_logger(**bind: Any):
    return structlog.get_logger("parse_sim").bind(**bind)
