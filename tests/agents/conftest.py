"""Fixtures for the agent tests: an agent factory over a few agent types."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import SHAPES, SMALL, TYPES, random_data
from parse_actors.agents import Agent, AgentSpec


@pytest.fixture
def make_agent():
    def make(type_name="IA", method="parse", seed=0, agent_id=0, model=SMALL, **kw) -> Agent:
        archs = TYPES[type_name]
        spec = AgentSpec(agent_id=agent_id, modalities=tuple(archs), archs=archs)
        return Agent(spec, input_shapes=SHAPES, num_classes=5, model=model, method=method, seed=seed, **kw)

    return make


@pytest.fixture
def data():
    return random_data


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """These models are tiny: with several intra-op threads and other processes
    on the cores, OpenMP barriers make each small matmul ~10x slower. Restored
    afterwards so other suites keep the host's setting."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
