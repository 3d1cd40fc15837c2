"""What `--resume` checks before it touches anything: events.jsonl is not
truncated, no table is rewritten and no Ray is started until the run's
scenario.yaml and checkpoint.pt have passed.

- Only regular files are read (regular_file.py): a link, a FIFO or a device in
  their place is refused, never followed or waited on.
- The checkpoint belongs to this scenario: its stored fingerprint
  (scenario/fingerprint.py: every key that can change a metric) equals the one of
  scenario.yaml now; otherwise the keys that differ are named. A checkpoint
  without a fingerprint (written before parse-sim stored one) is refused: it
  cannot be checked, and continuing a run under a changed scenario is exactly
  the silent wrong result this prevents; checkpoints only exist for unfinished
  runs, so the cost is running that scenario again.
- Its structure: every top-level key with its type, a round the scenario can
  resume after, every agent's state for the agents the scenario builds, with
  their branches and shapes (agents/state_check.py, against agents built here
  from the same data), a protocol state the protocol can load.

Every refusal is a `ScenarioError`: one line naming the file, exit 2.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from parse_actors.engine import checkpoint as ckpt
from parse_actors.errors import ScenarioError
from parse_actors.scenario import Scenario, load_scenario
from parse_actors.scenario.fingerprint import differences, fingerprint

MAX_NAMED = 8
"""Differing keys named in a refusal; more are counted."""


def prepare_resume(run_dir: Path) -> tuple[Scenario, dict, tuple[Any, float]]:
    """The run's scenario, its checked checkpoint, and (the federated data, seconds it
    took to build) for the run to use. ScenarioError (one line) for anything wrong."""
    run_dir = Path(run_dir)
    scenario_file = run_dir / "scenario.yaml"
    if not os.path.lexists(scenario_file):
        raise ScenarioError(str(run_dir), "", "not a run directory (no scenario.yaml)")
    sc = load_scenario(scenario_file, regular_only=True)
    state = _load(run_dir)
    where = str(ckpt.path_of(run_dir))
    check_fingerprint(state, sc, run_dir)
    check_layout(state, sc, where)
    t0 = time.perf_counter()
    from parse_actors.engine.coordinator import build_data

    fd = build_data(sc)
    data_s = time.perf_counter() - t0
    check_agents(state["states"], sc, fd, where)
    return sc, state, (fd, data_s)


def _load(run_dir: Path) -> dict:
    try:
        state = ckpt.load(run_dir)
    except ScenarioError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable or unsafe checkpoint is bad input
        raise ScenarioError(str(ckpt.path_of(run_dir)), "", f"cannot be loaded safely: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if state is None:
        raise ScenarioError(str(run_dir), "", "no checkpoint to resume from (the run finished, or never "
                                              "reached its first checkpoint)")
    if not isinstance(state, dict):
        raise ScenarioError(str(ckpt.path_of(run_dir)), "", f"expected a mapping of a checkpoint's keys, got "
                                                            f"{type(state).__name__}")
    return state


def check_fingerprint(state: dict, sc: Scenario, run_dir: Path) -> None:
    where = str(ckpt.path_of(run_dir))
    if "scenario" not in state or "format" not in state:
        raise ScenarioError(where, "", "written by an older parse-sim, without the scenario fingerprint resume "
                                       f"checks it against; run {run_dir / 'scenario.yaml'} again instead")
    if state["format"] != ckpt.FORMAT:
        raise ScenarioError(where, "format", f"expected checkpoint format {ckpt.FORMAT}, got {state['format']!r}")
    if not isinstance(state["scenario"], dict):
        raise ScenarioError(where, "scenario", f"expected the scenario's fingerprint (a mapping), got "
                                               f"{type(state['scenario']).__name__}")
    diff = differences(state["scenario"], fingerprint(sc))
    if diff:
        named = ", ".join(diff[:MAX_NAMED]) + (f" and {len(diff) - MAX_NAMED} more" if len(diff) > MAX_NAMED else "")
        raise ScenarioError(str(run_dir), "", f"cannot resume: scenario.yaml differs from the checkpoint in {named} "
                                              "(put the run's values back, or start a new run)")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _list_of(v: Any, kind: type) -> bool:
    return isinstance(v, list) and all(isinstance(x, kind) for x in v)


def check_layout(state: dict, sc: Scenario, where: str) -> None:
    """Every top-level key of a checkpoint (resume.py `state_at`) with its type."""
    def bad(key: str, expected: str) -> ScenarioError:
        got = type(state[key]).__name__ if key in state else "nothing"
        if key in state and isinstance(state[key], (int, float, str)):
            got = repr(state[key])[:60]
        return ScenarioError(where, key, f"expected {expected}, got {got}")

    rounds = sc.protocol.rounds
    if not _is_int(state.get("round")) or not 0 <= state["round"] <= rounds - 2:
        raise bad("round", f"the last finished round, 0..{rounds - 2} (the run has {rounds})")
    t = state.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
        raise bad("t", "the virtual time in seconds")
    if not isinstance(state.get("states"), dict):
        raise bad("states", "a mapping of agent to state")
    p = state.get("payloads")
    if not isinstance(p, list) or not all(isinstance(x, list) and len(x) == 3 and _is_int(x[0]) and _is_int(x[1])
                                          for x in p):
        raise bad("payloads", "a list of [sender, round, export]")
    for key in ("rows", "conflict_rows", "slice_rows"):
        if not _list_of(state.get(key), dict):
            raise bad(key, "a list of table rows")
    m = state.get("messages")
    if not isinstance(m, dict) or set(m) != {"sent", "delivered", "dropped"} or not all(map(_is_int, m.values())):
        raise bad("messages", "counts of sent, delivered and dropped messages")
    if not isinstance(state.get("protocol"), dict):
        raise bad("protocol", "the protocol's state (a mapping)")
    from parse_actors.engine.exchange import Exchange

    problem = Exchange.state_problem(state["protocol"])
    if problem:
        raise ScenarioError(where, "protocol", problem)
    if state.get("seed") != sc.seed:
        raise bad("seed", f"the scenario's seed {sc.seed}")
    off = state.get("events_offset")
    events = Path(where).parent / "events.jsonl"
    if off is not None:
        size = events.lstat().st_size if os.path.lexists(events) else None
        if not _is_int(off) or off < 0 or (size is not None and off > size):
            raise bad("events_offset", f"a position in events.jsonl (0..{size if size is not None else '?'})")


def check_agents(states: dict, sc: Scenario, fd: Any, where: str) -> None:
    """Every agent the scenario builds has a state it can take back, and no other."""
    from parse_actors.agents import Agent
    from parse_actors.agents.state_check import StateCheck
    from parse_actors.engine.coordinator import agent_builds

    builds = agent_builds(sc, fd)
    extra = sorted((a for a in states if not (_is_int(a) and 0 <= a < len(builds))), key=repr)
    if extra:
        raise ScenarioError(where, "states", f"state of agent {extra[0]!r}, but the scenario has agents "
                                             f"0..{len(builds) - 1}")
    refs: dict[tuple, StateCheck] = {}
    for spec, data, kwargs in builds:
        aid = spec.agent_id
        if aid not in states:
            raise ScenarioError(where, "states", f"no state for agent {aid} (the scenario has {len(builds)} agents)")
        sig = (spec.modalities, tuple(sorted(spec.archs.items())), tuple(sorted(kwargs["input_shapes"].items())))
        ref = refs.get(sig)
        if ref is None:
            ref = refs[sig] = StateCheck(Agent(spec, device="cpu", **kwargs))
        problem = ref.problem(states[aid], aid, len(data.train))
        if problem:
            raise ScenarioError(where, f"states.{aid}", f"agent {aid}: {problem}")
