"""`Interrupted`, in a module of its own: the CLI and the runner catch it without
importing the coordinator (torch, netem) before they need it."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """The run was stopped by a signal; finished rows and a checkpoint were written."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
