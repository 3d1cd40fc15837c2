"""`Interrupted`, in a module of its own: the CLI and the runner catch it without
importing the coordinator (torch, netem) before they need it."""

from __future__ import annotations

import signal
from pathlib import Path


class Interrupted(Exception):
    """The run was stopped by a signal before it completed. Its message says what is
    on disk: how many rounds finished, and the checkpoint `--resume` continues from
    (`checkpoint`: the round it holds, None when there is none)."""

    def __init__(self, signum: int, run_dir: Path | str | None = None, finished: int | None = None,
                 rounds: int | None = None, checkpoint: int | None = None, at_once: bool = False):
        self.signum = signum
        self.run_dir = run_dir
        self.finished = finished
        self.rounds = rounds
        self.checkpoint = checkpoint
        self.at_once = at_once
        super().__init__(self._message())

    def _message(self) -> str:
        name = signal.Signals(self.signum).name
        if self.finished is None:
            return f"interrupted by {name}"
        of = f" of {self.rounds}" if self.rounds is not None else ""
        if self.at_once:
            head = f"stopped at once by a second {name} with {self.finished}{of} rounds finished"
        else:
            head = f"interrupted by {name} after {self.finished}{of} rounds"
        where = f" in {self.run_dir}" if self.run_dir is not None else ""
        if self.checkpoint is None:
            return f"{head}; no checkpoint was written{where}: nothing to resume (run it again)"
        kept = (f"the last checkpoint (after {self.checkpoint + 1} rounds) is kept" if self.at_once
                else "the finished rounds and a checkpoint are saved")
        return f"{head}; {kept}{where}: continue with parse-sim run --resume {self.run_dir or 'RUN_DIR'}"
