"""SIGINT/SIGTERM during a run: the first stops it at the next safe point, a second at once.

- First signal: noted the moment it arrives. A plain `signal.signal` handler runs
  in the main thread between two bytecodes whatever the event loop is doing
  (inline hosts train inside the coordinator's process and never yield to the
  loop during a round, so a loop signal handler ran only rounds later). The
  coordinator acts on it at the end of the round in progress (`_end_of_round`):
  a checkpoint of that round and the tables, exit 128 + signal; when that round
  is the last one, the run simply completes. A signal during set-up stops the
  run when set-up ends. One line on stderr says so at once, written with
  `os.write` (a handler must not re-enter a buffered stream the main thread may
  be writing).
- Second signal: `StopNow` is raised in the main thread wherever it is (within a
  bytecode, or a Ray wait's 0.25 s poll). Every file is written atomically, so
  what is on disk stays whole, the last checkpoint included.
- Signals after that are ignored, so the clean-up (hosts and Ray shut down, Ray's
  processes killed) runs to its end.
- `RELAY` (SIGUSR1) is how a supervisor passes on a stop it received (the sweep, to
  its workers): a first SIGTERM if the run has had no signal yet, and never a second
  one. A terminal's Ctrl-C reaches the sweep and its workers at once, and the
  sweep's relay must not turn it into a stop at once.

Handlers are installed only in the main thread (signal.signal refuses others)
and the previous ones are restored on exit; in the CLI (`ignore_after`) the two
signals are ignored from then on instead, since the process only exits after
the run: a late second Ctrl-C would kill it mid-exit, with an exit code that no
longer says what happened to the run. `ray.init` replaces the SIGTERM
handler with its own, so the runner installs them again after it (`install`
keeps the handlers found first as the ones to restore).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELAY = signal.SIGUSR1


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM: stop at once (a KeyboardInterrupt, so that nothing
    catching `Exception` swallows it and asyncio lets it out of the loop)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(self.signum)  # args = (signum,): a copy or an unpickling rebuilds it as StopNow(signum)

    def __str__(self) -> str:
        return f"second {signal.Signals(self.signum).name}"


class StopSignals:
    """Where a run's SIGINT/SIGTERM are noted (`signum`, the first one). The
    coordinator sets `at` to (round in progress, rounds) for the message."""

    ignore_after = False
    """Set by the CLI: after the run, ignore SIGINT/SIGTERM instead of restoring the handlers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at: tuple[int, int] | None = None
        self.stopping_now = False
        self._saved: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (*SIGNALS, RELAY):
            self._saved.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, h in self._saved.items():
            signal.signal(sig, signal.SIG_IGN if self.ignore_after else h if h is not None else signal.SIG_DFL)
        self._saved = {}

    def __enter__(self) -> "StopSignals":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _handle(self, signum: int, frame) -> None:
        if self.stopping_now:
            return
        if signum == RELAY:
            if self.signum is not None:  # the stop it passes on is the one the run has
                return
            signum = signal.SIGTERM
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            _say(f"parse-sim: {name}: {self._plan()} (send it again to stop at once)")
            return
        self.stopping_now = True
        _say(f"parse-sim: second {name}: stopping at once")
        raise StopNow(signum)

    def _plan(self) -> str:
        if self.at is None:
            return "stopping when set-up ends"
        rnd, rounds = self.at
        if rnd >= rounds - 1:
            return f"round {rnd + 1} of {rounds} is the last: the run completes"
        return f"stopping after round {rnd + 1} of {rounds}, with a checkpoint"


def _say(line: str) -> None:
    try:
        os.write(sys.stderr.fileno(), (line + "\n").encode("utf-8", "replace"))
    except (OSError, ValueError, AttributeError):  # no usable stderr (closed, replaced by a harness)
        pass
