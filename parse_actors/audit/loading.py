"""A finished run directory as the audit needs it: its scenario, final weights, and
agents rebuilt from them, plus the same agents untrained (the null row).

Agents are built as the run built them: `engine.coordinator.agent_builds` gives
the spec and keyword arguments hosts use (seed tree, common init, pairing), so
an untrained agent here holds exactly the parameters its run started from.
"""

from __future__ import annotations

from pathlib import Path

from parse_actors.errors import ScenarioError
from parse_actors.metrics.final_weights import load_final_weights, load_inference_state, path_of


def fail(path: Path, message: str) -> ScenarioError:
    return ScenarioError(str(path), "", message)


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (torch's span several), bounded."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def load_run(run_dir: Path):
    """(scenario, {agent id: inference state}) of a finished run; ScenarioError otherwise."""
    from parse_actors.scenario import load_scenario

    if not run_dir.is_dir():
        raise fail(run_dir, "not a run directory (no such directory)")
    if not (run_dir / "scenario.yaml").is_file():
        raise fail(run_dir, "not a run directory (no scenario.yaml)")
    try:
        states = load_final_weights(run_dir)
    except Exception as e:  # noqa: BLE001 - an unreadable or unsafe file is bad input
        raise fail(path_of(run_dir), f"cannot be loaded safely: {first_line(e)}") from None
    if states is None:
        raise fail(run_dir, "no final_weights.pt: the run did not finish, or it was written without final "
                            "weights (too large for output.final_weights_max_mb, or by an older parse-sim)")
    sc = load_scenario(run_dir / "scenario.yaml")
    return sc, states


def load_data(sc, run_dir: Path):
    """The run's federated data (deterministic in its scenario and seed)."""
    from parse_actors.data import DataError
    from parse_actors.engine.coordinator import build_data
    from parse_actors.scenario.checks import data_error

    try:
        return build_data(sc)
    except DataError as e:
        raise data_error(str(run_dir / "scenario.yaml"), e) from None


def selected(sc, max_agents_per_group: int | None) -> set[int] | None:
    """The agent ids to audit: all (None), or the first N of each group."""
    if max_agents_per_group is None:
        return None
    seen: dict[str, int] = {}
    only = set()
    for a, g in enumerate(sc.agent_groups()):
        if seen.get(g.label, 0) < max_agents_per_group:
            only.add(a)
            seen[g.label] = seen.get(g.label, 0) + 1
    return only


def build_agents(sc, fd, states: dict[int, dict], only: set[int] | None, weights: Path):
    """[(agent id, group label, trained agent, untrained agent)]: agents as the run built
    them; the first with the final weights loaded, the second left at its initial
    parameters (with the final state's active modalities: a branch's init depends on its
    key and the seed only, so a modality gained mid-run starts where it started then)."""
    from parse_actors.agents import Agent
    from parse_actors.engine.coordinator import agent_builds

    groups = sc.agent_groups()
    agents = []
    for a, (spec, data, kwargs) in enumerate(agent_builds(sc, fd)):
        if only is not None and a not in only:
            continue
        if a not in states:
            raise fail(weights, f"agent {a} missing (the scenario has {len(groups)} agents)")
        agent = Agent(spec, device="cpu", **kwargs)
        try:
            check_state(states[a], tuple(kwargs["input_shapes"]), fd.input_shapes)
            load_inference_state(agent, states[a])
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise fail(weights, f"agent {a} does not match the scenario: {first_line(e)}") from None
        untrained = Agent(spec, device="cpu", **kwargs)
        if tuple(sorted(untrained.net.mods)) != tuple(sorted(states[a]["modalities"])):
            untrained.net.activate(states[a]["modalities"])
        agents.append((a, groups[a].label, agent, untrained))
    return agents


def check_state(sd: dict, modalities: tuple[str, ...], input_shapes: dict) -> None:
    """What a state declares against the scenario and its data, before anything is built
    from it (a forged input shape would size the rebuilt encoder)."""
    from parse_actors.agents.config import ARCH_NAMES

    extra = [m for m in sd["modalities"] if m not in modalities]
    if extra:
        raise ValueError(f"active modality {extra[0]!r}, the scenario gives it only {', '.join(modalities)}")
    for m, shape in sd["input_shapes"].items():
        if m not in input_shapes:
            raise ValueError(f"input shape for modality {m!r}, which the data does not have")
        if tuple(shape) != tuple(input_shapes[m]):
            raise ValueError(f"input shape {tuple(shape)} for {m!r}, the data's is {tuple(input_shapes[m])}")
    for m, arch in sd["archs"].items():
        if arch not in ARCH_NAMES:
            raise ValueError(f"architecture {arch!r} for {m!r} (known: {', '.join(ARCH_NAMES)})")


def check_samples(sc, n_samples: int, states: int) -> None:
    """--samples (and --states) against the memory the held-out set implies, before drawing
    it: the synthetic task's samples and latents, one feature set in float64, the PID's
    joint table (states per source, capped by the fitted half, squared, x classes)."""
    from parse_actors import memory

    if sc.data.name != "synthetic":
        return  # other datasets use their global test set, already loaded
    syn = sc.data.synthetic
    widest = max([*sc.model.slice_widths().values(), sc.model.embedding_width()])

    def need(n: int) -> int:
        cells = min(states, n // 2)
        return syn.memory_bytes(n) + 8 * n * (widest + 1) + 8 * cells * cells * syn.num_classes

    why = memory.over_limit(need(n_samples), f"auditing {n_samples:,} samples")
    if why:
        fit = next((n for n in (10 ** k for k in range(9, 1, -1)) if not memory.over_limit(need(n), "")), None)
        raise ScenarioError("--samples", "", why + (f"; {fit:,} would fit" if fit else ""))
