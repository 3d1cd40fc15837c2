"""Run one scenario end to end: run directory, event log, backend, coordinator.

Also the two ways a run ends early: a signal (signals.py: the first lets the
round in progress finish, then a checkpoint and the tables are written and
summary.json says `complete: false`, or the run completes when that round was
its last; a second stops at once) and `resume_run`, which checks the run's
checkpoint against its scenario before touching anything (resume_checks.py),
then continues it to the same final metrics as an uninterrupted run.

Nothing here imports torch (nor does loading a scenario): the coordinator
(torch, netem, SimPy) is imported when a run starts. (Importing it in a thread
while `ray.init` ran was measured: no gain on 2 cores, where Ray's start-up
keeps both busy; so it is not done.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from parse_actors import logs
from parse_actors.engine.backends import ray_session
from parse_actors.engine.failover import RESUME_HINT, RunStalled, StopRequested, check_reachable
from parse_actors.engine.interrupted import Interrupted
from parse_actors.engine.signals import StopNow, StopSignals
from parse_actors.errors import ScenarioError
from parse_actors.metrics import RunDir, RunDirError, dirguard
from parse_actors.metrics.rundir import NoSpaceStop
from parse_actors.scenario import Scenario, scenario_to_yaml

if TYPE_CHECKING:  # pragma: no cover
    from parse_actors.engine.coordinator import Simulation


def run_scenario(sc: Scenario, out_dir: Path, backend: str | None = None, force: bool = False,
                 hooks=()) -> tuple[dict, RunDir]:
    """Run `sc` into `out_dir`; returns (summary, run directory).

    The Ray backend starts a local Ray instance for the run (or joins
    `engine.ray_address`) and shuts it down afterwards, whatever happens.
    Raises `Interrupted` after a signal, with the run directory consistent.
    """
    backend = backend or sc.engine.backend
    sc = sc.model_copy(deep=True)
    sc.engine.backend = backend
    with RunDir(out_dir, force=force) as rd:  # checked, locked until the run ends (metrics/dirguard.py)
        rd.write_scenario(scenario_to_yaml(sc))
        return _execute(sc, rd, backend, None, hooks), rd


def resume_run(run_dir: Path, backend: str | None = None, hooks=(), ray_address: str | None = None
               ) -> tuple[dict, RunDir]:
    """Continue an interrupted run from its last checkpoint, on `backend` and
    `ray_address` ('local': a local Ray instance) when given, else as it ran.
    The run directory is checked (no links) and locked before anything in it is
    read, and the checkpoint is checked against the run's scenario before anything
    in it is written (ScenarioError)."""
    from parse_actors.engine.resume_checks import prepare_resume

    run_dir = Path(run_dir)
    with dirguard.hold(run_dir):
        sc, state, data = prepare_resume(run_dir)
        backend = backend or sc.engine.backend
        if ray_address is not None:
            sc.engine.ray_address = ray_address
        with RunDir(run_dir, reuse=True) as rd:  # the same process's lock: re-entrant
            logs.truncate_events(rd.events_path, state.get("events_offset"))
            return _execute(sc, rd, backend, state, hooks, data), rd


def _simulation(sc: Scenario, rd: RunDir, backend: str, resume: dict | None, hooks, data, stops) -> Simulation:
    from parse_actors.engine.coordinator import Simulation

    sim = Simulation(sc, rd, backend, resume=resume, data=data, stops=stops)
    sim.hooks.extend(hooks)
    return sim


def _execute(sc: Scenario, rd: RunDir, backend: str, resume: dict | None, hooks, data=None) -> dict:
    """Run; a run that found the disk full ends with DiskFull (one line: what was kept,
    what to free), after the event log wrote the lines it held."""
    try:
        logs.open_events(rd.events_path)
    except OSError as e:
        raise RunDirError(f"{rd.events_path}: cannot open: {e.strerror or e}") from None
    summary = None
    try:
        with StopSignals() as stops:
            sim = _simulation(sc, rd, backend, resume, hooks, data, stops)
            try:
                if backend == "ray":
                    check_reachable(sc.engine.ray_address)
                    with ray_session(sc.engine.ray_address):
                        stops.install()  # again: ray.init replaced the SIGTERM handler with its own
                        summary = _drive(sim, time.perf_counter())
                else:
                    summary = _drive(sim, time.perf_counter())
                if sc.output.pid_audit:
                    summary = _audit(sc, rd, summary)
            except StopNow as e:  # a second signal outside the rounds: Ray's start, its shut-down, the audit
                if summary is None:
                    raise sim.interrupted(e.signum, at_once=True) from None
        if stops.signum is not None:  # it came during the last round (or after it): the run completed
            logs.get_logger().warning("signal_in_last_round", signal=signal.Signals(stops.signum).name,
                                      note="the run completed: every round, table and final weights; "
                                           "nothing to resume")
    except (NoSpaceStop, OSError, RunDirError):
        if not rd.disk_full:
            raise
        logs.close_events()
        raise rd.disk_full_error() from None
    finally:
        logs.close_events()
    if rd.disk_full:
        if rd.space.unwritten:
            raise rd.disk_full_error()
        logs.get_logger().warning("disk_full", file=str(rd.space.full_at[0]), _file=False,
                                  note="the run finished and wrote everything into parse-sim's reserve; "
                                       "free space before the next run")
    return summary


def _audit(sc: Scenario, rd: RunDir, summary: dict) -> dict:
    """output.pid_audit: audit the finished run; its cost is reported apart from the
    simulation's. A failing audit is a warning: the simulation's results stand."""
    from parse_actors.audit import audit_run

    log = logs.get_logger()
    try:
        res = audit_run(rd.path, plots=sc.output.plots)
    except ScenarioError as e:
        log.warning("pid_audit_failed", t=summary["virtual_time_s"], reason=str(e))
        return summary
    summary = {**summary, "audit_wall_s": round(res.seconds, 3)}
    rd.write_summary(summary)
    log.info("pid_audit", t=summary["virtual_time_s"], seconds=summary["audit_wall_s"], file="pid_audit.csv")
    return summary


def _drive(sim: Simulation, wall0: float) -> dict:
    try:
        try:
            return asyncio.run(sim.run())
        except Interrupted as e:
            if e.finished is not None and e.finished > sim.resume.start:  # rounds finished here: their tables
                sim.finish_incomplete(wall0)
            raise
        except StopRequested as e:  # a first Ctrl-C while the round could not finish: the last snapshot
            _give_up(sim, wall0, "round_abandoned")
            raise sim.interrupted(e.signum) from None
        except RunStalled as e:
            saved = _give_up(sim, wall0, "stalled", str(e))
            msg = str(e).replace(RESUME_HINT, RESUME_HINT.replace("RUN_DIR", str(sim.run_dir.path)) if saved else
                                 "no round had finished, so there is nothing to resume (run it again)")
            raise RunStalled(msg) from None
        except (NoSpaceStop, OSError, RunDirError):  # the disk filled: the stop's tables, as far as they fit
            if not sim.run_dir.disk_full:
                raise
            try:
                if getattr(sim, "net", None) is not None and getattr(sim, "protocol", None) is not None:
                    sim.finish_incomplete(wall0)
            except (OSError, RunDirError):
                pass  # listed as not written in the message (metrics/reserve.py)
            raise
    except StopNow as e:  # a second signal: stop at once; what is on disk is whole (atomic writes)
        raise sim.interrupted(e.signum, at_once=True) from None
    finally:
        sim.close()


def _give_up(sim: Simulation, wall0: float, event: str, why: str = "") -> bool:
    """The round in progress cannot finish: tables and a checkpoint from the last
    snapshot (Ray runs take one every engine.checkpoint_every rounds)."""
    saved = sim.resume.write_last()
    sim.log.warning(event, t=sim.env.now, round=sim.round, checkpoint=saved, **({"error": why} if why else {}))
    if getattr(sim, "net", None) is not None and getattr(sim, "protocol", None) is not None:
        sim.finish_incomplete(wall0)
    return saved
