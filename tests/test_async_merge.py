"""Async gossip merges each branch from the export that carried it.

An async receiver keeps the newest delivered copy of each (sender, branch). On a
thin link those copies can come from different exports of one sender (a branch
still in flight is not sent again with `send_buffer: latest`; a budget defers
some branches), so a merge must read every branch from the payload of the
message that brought it, never from a sibling's."""

from __future__ import annotations

from pathlib import Path

import pytest

from parse_actors.engine import run_scenario
from parse_actors.engine.batching import Pending
from parse_actors.engine.coordinator import Simulation
from parse_actors.agents import Agent
from parse_actors.scenario import load_scenario

QUICK = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


def _value(p):
    return p.ref if isinstance(p, Pending) else p


@pytest.mark.parametrize("extra", [[], ["protocol.payload_budget=60000"]], ids=["send_buffer_latest", "budget"])
def test_async_merge_reads_each_branch_from_the_export_that_carried_it(tmp_path, monkeypatch, extra):
    """Exports and merges are observed on the agents (plain torch, inline), so the
    check holds whatever the host calls look like: each exported branch is one dict
    object, kept alive here, whose id says which export (sender, n-th) it is."""
    exports: dict[int, int] = {}
    version: dict[int, tuple[int, int]] = {}  # id(exported branch dict) -> (sender, n-th export)
    alive: list = []
    arrived: list[tuple[int, object]] = []  # (receiver, branch message) delivered
    merged: list[tuple[int, int, str, tuple]] = []  # (receiver, sender, key, export it was read from)
    export, aggregate, on_message = Agent.export, Agent.aggregate, Simulation.on_message

    def tagged_export(self, keys):
        out = export(self, keys)
        exports[self.id] = exports.get(self.id, 0) + 1
        for tensors in out.values():
            version[id(tensors)] = (self.id, exports[self.id])
        alive.append(out)
        return out

    def recording_aggregate(self, incoming, *args, **kw):
        for inc in incoming:
            for k, tensors in inc.branches.items():
                merged.append((self.id, inc.sender, k, version.get(id(tensors))))
        return aggregate(self, incoming, *args, **kw)

    def recording_on_message(self, rec):
        if rec.status == "delivered" and hasattr(rec.payload, "degree"):
            arrived.append((rec.dst, rec.payload))
        return on_message(self, rec)

    monkeypatch.setattr(Agent, "export", tagged_export)
    monkeypatch.setattr(Agent, "aggregate", recording_aggregate)
    monkeypatch.setattr(Simulation, "on_message", recording_on_message)
    sc = load_scenario(QUICK, ["protocol.mode=async", "protocol.eval_every_s=0.25", "protocol.rounds=2",
                               "network.link.bandwidth_mbps=10", "aggregation.staleness=3", "engine.hosts=1",
                               "engine.batched_stepping=off", "output.plots=false", "output.final_weights_max_mb=0",
                               *extra])
    run_scenario(sc, tmp_path / "run", backend="inline")
    # (receiver, sender, key, export) that arrived; placeholders are resolved by now
    delivered = {(dst, m.sender, m.key, version[id(_value(m.payload)[m.key])]) for dst, m in arrived}
    assert merged, "nothing was merged"
    # several exports per sender were merged, so the check below can tell versions apart
    assert len({m[3] for m in merged}) > 2 * len(exports)
    foreign = [m for m in merged if m not in delivered]
    assert not foreign, (f"{len(foreign)} of {len(merged)} merged branches read from an export the receiver "
                         f"never got for that branch, e.g. {foreign[:3]}")
