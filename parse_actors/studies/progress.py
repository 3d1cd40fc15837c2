"""What a running sweep shows: cells done / running / failed, elapsed time and an
estimate of the time left, on the console and in `<out>/progress.json`.

Console: on a terminal, one status line redrawn in place (stderr); elsewhere
(a log file, CI) the status line is printed when a cell ends, at most every
STATUS_EVERY_S seconds, and at the end. With `-v`, one line per finished cell
too. Failed cells, cells re-run after their node was lost, and a stop are
always said, one line each. `-q`: none of it.

progress.json (rewritten atomically at each change) says the same to another
program, with where each running cell is (node, host, pid, attempt), where and
when each finished one ran (on a cluster), and the errors of failed cells;
tests watch it to act when a cell has started.
The estimate is the time the cells finished so far took per cell, in this
invocation, times the cells left: it includes the parallelism the sweep gets.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

from parse_actors import atomic

PROGRESS_JSON = "progress.json"
STATUS_EVERY_S = 30.0


def clock(seconds: float | None) -> str:
    """1:05:09, 4:07, 0:09."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class SweepProgress:
    def __init__(self, out: Path, total: int, skipped: int, echo: Callable[[str], None], verbose: bool = False,
                 status: bool = True, stream=None):
        self.out, self.total, self.skipped, self.echo = out, total, skipped, echo
        self.verbose, self.status = verbose, status
        self.stream = stream or sys.stderr
        self.tty = status and bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("CI")
        self.t0 = time.monotonic()
        self.done = skipped  # complete cells, this invocation's and earlier ones
        self.ended = 0  # cells that ended in this invocation (complete or failed)
        self.failed: dict[str, str] = {}
        self.running: dict[str, dict] = {}
        self.retries = 0
        self.per_node: dict[str, int] = {}  # cells started per node (with their re-runs)
        self.history: dict[str, dict] = {}  # cell -> node, pid, attempt, started, ended (Ray)
        self.where_text, self.driver_node = "a local process pool", None
        self.stopped: int | None = None
        self._last_status = 0.0
        self._shown = False

    # -- events ---------------------------------------------------------------
    def where(self, text: str, driver_node: str | None = None) -> None:
        self.where_text, self.driver_node = text, driver_node
        self.echo(f"cells run on {text}")
        self._write()

    def started(self, name: str, where: dict | None = None) -> None:
        self.running[name] = dict(where or {})
        node = self.running[name].get("node")
        if node:
            self.per_node[node] = self.per_node.get(node, 0) + 1
        self._changed()

    def ran(self, name: str, span: dict) -> None:
        """Where and when (on its node's clock) a cell's last attempt ran, kept in progress.json."""
        self.history[name] = {**self.running.get(name, {}), **span}

    def finished(self, name: str, line: str, complete: bool, error: str | None = None) -> None:
        """A cell ended: `line` is its one-line account (shown at -v, or always when it failed)."""
        self.running.pop(name, None)
        self.ended += 1
        if complete:
            self.done += 1
        if error is not None:
            self.failed[name] = error
        if self.verbose or error is not None:
            self.say(line)
        self._changed(ended=True)

    def stopped_early(self, name: str) -> None:
        """A running cell stopped with a checkpoint (or never started)."""
        self.running.pop(name, None)
        self._changed()

    def say(self, line: str) -> None:
        """A line that is always shown (the status line is redrawn under it)."""
        self._clear()
        self.echo(line)
        self._draw()

    def retry(self, line: str) -> None:
        self.retries += 1
        self.say(line)
        self._changed()

    def stopping(self, signum: int, line: str) -> None:
        self.stopped = signum
        self.say(line)
        self._write()

    def tick(self) -> None:
        """Called while waiting: keeps elapsed time fresh on a terminal."""
        if self.tty:
            self._draw()

    def close(self) -> None:
        if self.status and not self.tty and self.ended:
            self.echo(self.status_line())
        self._clear()
        self._write(final=True)

    # -- what is shown ----------------------------------------------------------
    def eta_s(self) -> float | None:
        left = self.total - self.done - len(self.failed)
        if left <= 0:
            return 0.0
        if not self.ended:
            return None
        return (time.monotonic() - self.t0) / self.ended * left

    def status_line(self) -> str:
        return (f"sweep: {self.done}/{self.total} done, {len(self.running)} running, {len(self.failed)} failed; "
                f"elapsed {clock(time.monotonic() - self.t0)}, about {clock(self.eta_s())} left")

    def _changed(self, ended: bool = False) -> None:
        self._write()
        if self.tty:
            self._draw()
        elif self.status and ended and self.total - self.done - len(self.failed) > 0:  # close() says the last
            now = time.monotonic()
            if now - self._last_status >= STATUS_EVERY_S:
                self._last_status = now
                self.echo(self.status_line())

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.status_line() + "\033[K")
            self.stream.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def _write(self, final: bool = False) -> None:
        atomic.write_json(self.out / PROGRESS_JSON, {
            "where": self.where_text, "driver_node": self.driver_node, "total": self.total,
            "done": self.done, "skipped": self.skipped, "failed": len(self.failed),
            "running": [{"cell": n, **w} for n, w in self.running.items()], "errors": self.failed,
            "retries": self.retries, "cells_per_node": self.per_node, "cells": self.history, "elapsed_s": round(time.monotonic() - self.t0, 3),
            "eta_s": None if self.eta_s() is None else round(self.eta_s(), 3),
            "finished": final, "stopped_by_signal": self.stopped,
        })
