"""The co-simulation engine: coordinator, agent hosts and the backends they run on."""

from parse_actors.engine.runner import resume_run, run_scenario

__all__ = ["resume_run", "run_scenario"]
