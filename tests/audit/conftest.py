"""A finished run directory built by hand (scenario.yaml + final_weights.pt
from briefly trained agents), until the engine writes final weights itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from parse_actors.agents import Agent
from parse_actors.audit import save_final_weights
from parse_actors.data import build_federated_data
from parse_actors.scenario import build_scenario, scenario_to_yaml
from parse_actors.engine.coordinator import agent_builds


def small_doc(method: str = "parse", preset: str = "mixed") -> dict:
    return {
        "name": "audit-test",
        "seed": 3,
        "method": method,
        "agents": {"groups": [{"modalities": ["image"], "count": 1},
                              {"modalities": ["image", "audio"], "count": 1}]},
        "data": {"name": "synthetic", "cache": False,
                 "synthetic": {"preset": preset, "n_samples": 2000, "dim": 16, "noise": 0.3}},
        "model": {"slice_width": 8, "backbone_width": 32, "fusion_hidden": 32},
        "engine": {"backend": "inline"},
    }


def make_run_dir(path: Path, doc: dict, steps: int = 200) -> Path:
    """Train each agent alone for `steps` steps and write the run directory."""
    sc = build_scenario(doc, base_dir=path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "scenario.yaml").write_text(scenario_to_yaml(sc))
    groups = sc.agent_groups()
    fd = build_federated_data(sc.data, [tuple(g.modalities) for g in groups], seed=sc.seed, base_dir=path)
    states = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    try:
        _train(sc, fd, groups, steps, states)
    finally:
        torch.set_num_threads(threads)
    save_final_weights(path, states)
    return path


def _train(sc, fd, groups, steps, states) -> None:
    for a, (spec, _, kwargs) in enumerate(agent_builds(sc, fd)):  # the agents a run starts from
        agent = Agent(spec, device="cpu", **kwargs)
        if steps:
            agent.train_steps(fd.agents[a].train, steps, 64)
        states[a] = agent.state_dict()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("audit_run"), small_doc(), steps=150)


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory) -> Path:
    """A run whose final weights are its initial ones (no step taken)."""
    return make_run_dir(tmp_path_factory.mktemp("untrained_run"), small_doc(), steps=0)
