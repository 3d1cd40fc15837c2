"""A one-line progress bar for long runs: rounds, virtual time, ETA, drops.

Shown only on a terminal (stderr is a TTY) and not in CI or with `-q`;
otherwise the per-round log lines carry the same information.
"""

from __future__ import annotations

import os
import sys
import time


class Progress:
    enabled_default: bool | None = None  # set by the CLI (-q turns it off)

    def __init__(self, total: int, enabled: bool | None = None, stream=None):
        self.total = max(1, total)
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = Progress.enabled_default
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("CI")
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self._shown = False

    def update(self, done: int, t_virtual: float, acc: float, dropped: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - done) if done else 0.0
        width = 24
        fill = int(width * done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        line = (f"\r[{bar}] round {done}/{self.total}  t={t_virtual:.2f}s  acc={acc:.3f}  "
                f"dropped={dropped}  ETA {eta:5.0f}s ")
        self.stream.write(line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
