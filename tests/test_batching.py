"""engine/batching.py: calls due at one virtual instant reach each host as one call,
in submission order, and the run's results do not change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parse_actors.engine import batching, run_scenario
from parse_actors.engine.batching import CallBatcher, Pending, run_batch
from parse_actors.scenario import load_scenario
from run_helpers import summary_sans_wall

ROOT = Path(__file__).resolve().parents[1]


class FakeHosts:
    """Runs calls eagerly like the inline backend and records what was sent."""

    def __init__(self):
        self.sent: list[tuple] = []

    def submit(self, host, method, *args, num_returns=1):
        self.sent.append((host, method, args))
        if method == "run_batch":
            return run_batch(self, args[0], args[1:])
        return getattr(self, method)(*args)

    def train(self, aid):
        return f"stats{aid}", f"payload{aid}"

    def merge(self, aid, *payloads):
        return f"merged{aid}<-{'+'.join(payloads)}"


def test_one_call_per_host_per_instant_in_order():
    hosts, clock = FakeHosts(), [0.0]
    b = CallBatcher(hosts.submit, lambda: clock[0])
    out = {aid: b.call(aid % 2, "train", aid, num_returns=2) for aid in range(4)}
    assert hosts.sent == [] and all(isinstance(p, Pending) and not p.sent for pair in out.values() for p in pair)
    clock[0] = 1.0
    m0 = b.call(0, "merge", 0, out[1][1], out[3][1])  # the clock moved: the trains are sent first
    assert [(h, m) for h, m, _ in hosts.sent] == [(0, "run_batch"), (1, "run_batch")]
    assert hosts.sent[0][2][0] == [("train", 1, 2), ("train", 1, 2)]  # agents 0 and 2, in order
    m2 = b.call(0, "merge", 2, out[1][1])
    assert b.resolve([m0, m2, out[2][0]]) == ["merged0<-payload1+payload3", "merged2<-payload1", "stats2"]
    assert (b.calls, b.sent) == (6, 3)


def test_a_call_needing_a_held_result_sends_it_first():
    """Same instant, another host's held result as an argument: no cycle between two batches."""
    hosts, clock = FakeHosts(), [0.0]
    b = CallBatcher(hosts.submit, lambda: clock[0])
    _, p0 = b.call(0, "train", 0, num_returns=2)
    _, p1 = b.call(1, "train", 1, num_returns=2)
    m1 = b.call(1, "merge", 1, p0)
    m0 = b.call(0, "merge", 0, p1)
    assert [(h, m) for h, m, _ in hosts.sent] == [(0, "train"), (1, "train")]  # sent when m1 needed p0
    assert b.resolve([m1, m0]) == ["merged1<-payload0", "merged0<-payload1"]
    assert [(h, m) for h, m, _ in hosts.sent[2:]] == [(1, "merge"), (0, "merge")]


def test_a_full_batch_is_sent_at_once(monkeypatch):
    monkeypatch.setattr(CallBatcher, "MAX_BATCH", 3)
    hosts = FakeHosts()
    b = CallBatcher(hosts.submit, lambda: 0.0)
    outs = [b.call(0, "train", aid, num_returns=2) for aid in range(7)]
    assert [len(args[0]) for _, m, args in hosts.sent] == [3, 3]  # two full batches; the 7th still held
    assert b.resolve([outs[6][0], outs[0][1]]) == ["stats6", "payload0"]
    assert (b.calls, b.sent) == (7, 3)


def test_run_batch_flattens_returns():
    hosts = FakeHosts()
    assert run_batch(hosts, [("train", 1, 2), ("merge", 2, 1)], (5, 6, "x")) == ("stats5", "payload5", "merged6<-x")


def _unbatched(monkeypatch):
    """Every call sent at once: the engine as it was before batching."""
    orig = CallBatcher.call

    def call(self, *a, **k):
        out = orig(self, *a, **k)
        self.flush()
        return out

    monkeypatch.setattr(batching.CallBatcher, "call", call)


def _host_calls(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["host_calls"]


CHURN = ("network.churn={model: sessions, online: {dist: exponential, mean_s: 0.1}, "
         "offline: {dist: exponential, mean_s: 0.05}, offline_policy: drop}")


@pytest.mark.parametrize("scenario, overrides", [
    ("quickstart", []),
    ("quickstart", ["protocol.mode=async", "protocol.eval_every_s=0.05"]),
    ("quickstart", [CHURN]),
    ("quickstart", ["engine.hosts=3", "protocol.payload_budget=55000", "protocol.priority=change",
                    "protocol.compression={encoder: {topk: 0.05}, red: int8, syn: {randk: 0.2}}"]),
    ("quickstart", ["protocol.mode=async", "protocol.eval_every_s=0.05", CHURN,
                    "protocol.compression={encoder: {topk: 0.05}, uni: fp16}", "protocol.compressed_averaging=naive"]),
    ("modality_loss", ["protocol.rounds=6", "data.schedule=[{agent: 6, modality: audio, at_s: 0.1, action: lose}, "
                       "{agent: 7, modality: audio, at_s: 0.1, action: lose}, "
                       "{agent: 7, modality: audio, at_s: 0.25, action: gain}]"]),
    # batched stepping on (the unbatched run trains every agent alone): CHOCO outcomes are
    # applied after a batch's training, and a regained modality mixes momentum states
    ("quickstart", ["engine.batched_stepping=on", "protocol.payload_budget=55000", "protocol.priority=change",
                    "protocol.compression={encoder: {topk: 0.05}, red: int8, syn: {randk: 0.2}}"]),
    ("modality_loss", ["engine.batched_stepping=on", "protocol.rounds=6",
                       "data.schedule=[{agent: 6, modality: audio, at_s: 0.1, action: lose}, "
                       "{agent: 7, modality: audio, at_s: 0.1, action: lose}, "
                       "{agent: 7, modality: audio, at_s: 0.25, action: gain}]"]),
])
def test_batched_run_gives_the_same_tables(tmp_path, monkeypatch, scenario, overrides):
    sc = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml",
                       ["protocol.rounds=3", "train.local_steps=4", "output.plots=false", *overrides])
    run_scenario(sc, tmp_path / "batched", backend="inline")
    calls = _host_calls(tmp_path / "batched")
    assert calls["sent"] < calls["submitted"], calls  # calls of several agents of a host did travel together
    with monkeypatch.context() as m:
        _unbatched(m)
        run_scenario(sc, tmp_path / "plain", backend="inline")
    plain = _host_calls(tmp_path / "plain")
    assert plain["sent"] == plain["submitted"] == calls["submitted"], (plain, calls)
    for f in ("metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv", "events.jsonl"):
        a, b = tmp_path / "batched" / f, tmp_path / "plain" / f
        assert a.exists() == b.exists(), f
        if a.exists():
            assert a.read_text() == b.read_text(), f
    assert summary_sans_wall(tmp_path / "batched") == summary_sans_wall(tmp_path / "plain")
    if "engine.batched_stepping=on" in overrides:  # agents did step together in the batched run
        assert json.loads((tmp_path / "batched" / "run.json").read_text())["batched_stepping"]["stepped"]["batched"] > 0
    if scenario == "modality_loss":  # the sensor changes did happen within the run
        assert (tmp_path / "batched" / "events.jsonl").read_text().count('"event": "modality"') == 3


def test_resume_after_a_sensor_change_is_exact(tmp_path):
    """Resume replays the finished rounds dry; the sensor changes among them are
    real host calls, held and sent like any other (before the saved states go back)."""
    from parse_actors.engine import resume_run
    from run_helpers import run_full_and_cut

    sc = load_scenario(ROOT / "scenarios" / "modality_loss.yaml", [
        "protocol.rounds=5", "train.local_steps=4", "output.plots=false",
        "data.schedule=[{agent: 6, modality: audio, at_s: 0.1, action: lose}, "
        "{agent: 7, modality: audio, at_s: 0.1, action: lose}, {agent: 7, modality: audio, at_s: 0.25, action: gain}]"])
    full, out = run_full_and_cut(sc, tmp_path, stop_after=3)
    resume_run(out, backend="inline")
    for f in ("metrics.csv", "comm.csv", "conflict.csv"):
        assert (out / f).read_text() == (full / f).read_text(), f
    assert summary_sans_wall(out) == summary_sans_wall(full)
