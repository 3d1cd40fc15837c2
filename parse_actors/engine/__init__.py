"""The co-simulation engine: coordinator, agent hosts and the backends they run on.

Imports are lazy: every Ray actor imports `parse_actors.engine.host`, which
must not pay for SimPy, netem, the scenario schema or the coordinator.
"""

from __future__ import annotations

__all__ = ["resume_run", "run_scenario"]


def __getattr__(name: str):
    if name in __all__:
        from parse_actors.engine import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'parse_actors.engine' has no attribute {name!r}")
