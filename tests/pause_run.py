"""The parse-sim CLI with a pause point, so a test can send real signals to a run
at a known place instead of after a guessed sleep:

    python tests/pause_run.py HOOK_DIR WHERE -- CLI ARGS...

WHERE is `round:K` (inside round K, counted from 0: trained and merged, not yet
evaluated nor checkpointed), `setup` (set-up about to start) or `nowhere`. There the run
creates HOOK_DIR/paused and waits until HOOK_DIR/go exists. The wait is Python
code in the coordinator's thread, so signals are handled during it exactly as
during the round's own work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


# run as a script, its folder (tests/, with tests/netem/) would shadow the packages
sys.path[0] = str(Path(__file__).resolve().parents[1])


def _wait(hook: Path) -> None:
    (hook / "paused").touch()
    while not (hook / "go").exists():
        time.sleep(0.02)


def main() -> int:
    hook, where = Path(sys.argv[1]), sys.argv[2]
    assert sys.argv[3] == "--", sys.argv
    from parse_actors.cli import main as cli
    from parse_actors.engine.coordinator import Simulation

    if where == "setup":
        setup = Simulation.setup

        async def paused_setup(self):
            _wait(hook)
            await setup(self)

        Simulation.setup = paused_setup
    elif where.startswith("round:"):
        k = int(where.split(":")[1])
        close_period = Simulation.close_period

        async def paused_close(self, rnd, *args, **kwargs):
            if rnd == k:
                _wait(hook)
            await close_period(self, rnd, *args, **kwargs)

        Simulation.close_period = paused_close
    return cli(sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
