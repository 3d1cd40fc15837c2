"""What each process imports on the start-up path (issue 14): checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded(code: str, names: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport sys; print(sorted(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # a list of str literals printed above


def test_loading_a_scenario_imports_no_torch():
    """`parse-sim validate` and a run's start-up up to `ray.init` need no torch."""
    code = ("from parse_actors.scenario import load_scenario\n"
            "load_scenario('scenarios/quickstart.yaml'); load_scenario('scenarios/three_modalities.yaml')\n"
            "load_scenario('scenarios/payload_budget.yaml', ['protocol.compression={encoder: {topk: 0.05}, "
            "red: int8}', 'protocol.priority=change'])\n"
            "import parse_actors.cli, parse_actors.engine.runner")
    assert _loaded(code, ("torch", "parse_actors.engine.coordinator", "parse_actors.agents.agent")) == []
    assert _loaded(code, ("parse_actors.scenario", "parse_actors.agents.config")) == [
        "parse_actors.agents.config", "parse_actors.scenario"]  # the probe does see what was loaded


def test_actor_imports_only_what_agents_need():
    code = "import parse_actors.engine.host"
    assert _loaded(code, ("torch._dynamo", "parse_actors.data.config", "parse_actors.data.registry",
                          "parse_actors.data.federated", "matplotlib", "scipy")) == []
    assert _loaded(code, ("torch", "parse_actors.agents.agent")) == ["parse_actors.agents.agent", "torch"]


def test_lazy_package_names_resolve():
    import parse_actors.agents as agents
    import parse_actors.data as data
    from parse_actors.agents.agent import Agent
    from parse_actors.data.federated import build_federated_data

    assert agents.Agent is Agent and data.build_federated_data is build_federated_data
    for pkg in (agents, data):
        assert sorted(pkg._WHERE) == sorted(pkg.__all__)
        assert all(getattr(pkg, n) is not None for n in pkg.__all__)
        try:
            getattr(pkg, "no_such_name")
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("unknown names must raise AttributeError")
