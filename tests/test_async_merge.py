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
from parse_actors.engine.host import AgentHost
from parse_actors.scenario import load_scenario

QUICK = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
VERSION = "__export__"  # marker put into every export by the test: (sender, its n-th export)


def _value(p):
    return p.ref if isinstance(p, Pending) else p


@pytest.mark.parametrize("extra", [[], ["protocol.payload_budget=60000"]],
                         ids=["send_buffer_latest", "budget"])
def test_async_merge_reads_each_branch_from_the_export_that_carried_it(tmp_path, monkeypatch, extra):
    exports: dict[int, int] = {}
    arrived: list[tuple[int, object]] = []  # (receiver, branch message) delivered
    merged: list[tuple[int, int, str, tuple | None]] = []  # (receiver, sender, key, export it was read from)

    train_and_export = AgentHost.train_and_export

    def tagged_export(self, aid, steps, batch_size, keys):
        stats, payload = train_and_export(self, aid, steps, batch_size, keys)
        exports[aid] = exports.get(aid, 0) + 1
        payload[VERSION] = (aid, exports[aid])
        return stats, payload

    def recording_aggregate(self, aid, rnd, my_degree, metas, *payloads, **kw):
        for meta, payload in zip(metas, payloads):
            for k in meta["keys"]:
                merged.append((aid, meta["sender"], k, payload[VERSION] if k in payload else None))
        return aggregate(self, aid, rnd, my_degree, metas, *payloads, **kw)

    on_message = Simulation.on_message

    def recording_on_message(self, rec):
        msg = rec.payload
        if rec.status == "delivered" and hasattr(msg, "degree"):
            arrived.append((rec.dst, msg))
        return on_message(self, rec)

    aggregate = AgentHost.aggregate
    monkeypatch.setattr(AgentHost, "train_and_export", tagged_export)
    monkeypatch.setattr(AgentHost, "aggregate", recording_aggregate)
    monkeypatch.setattr(Simulation, "on_message", recording_on_message)
    sc = load_scenario(QUICK, ["protocol.mode=async", "protocol.eval_every_s=0.25", "protocol.rounds=2",
                               "network.link.bandwidth_mbps=10", "aggregation.staleness=3", "engine.hosts=1", "output.plots=false", "output.final_weights_max_mb=0", *extra])
    run_scenario(sc, tmp_path / "run", backend="inline")
    # (receiver, sender, key, export) that arrived; placeholders are resolved by now
    delivered = {(dst, m.sender, m.key, _value(m.payload)[VERSION]) for dst, m in arrived}
    assert merged, "nothing was merged"
    # several exports per sender were merged, so the check below can tell versions apart
    assert len({m[3] for m in merged if m[3] is not None}) > len(exports)
    missing = [m for m in merged if m[3] is None]
    assert not missing, f"{len(missing)} of {len(merged)} merged branches read from an export lacking them"
    foreign = [m for m in merged if m not in delivered]
    assert not foreign, (f"{len(foreign)} of {len(merged)} merged branches read from an export the receiver "
                         f"never got for that branch, e.g. {foreign[:3]}")
