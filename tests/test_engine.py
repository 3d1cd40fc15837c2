"""The co-simulation engine: determinism at any parallelism, fault tolerance,
protocols, churn, sensor loss, capability discovery, resume and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from parse_actors.agents import capability_nbytes
from parse_actors.engine import resume_run, run_scenario
from parse_actors.engine.interrupted import Interrupted
from parse_actors.provenance import source_digest
from parse_actors.scenario import load_scenario
from run_helpers import kill_host_after_round, rows, run_full_and_cut, summary_sans_wall

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
SMALL = ["protocol.rounds=3", "train.local_steps=4"]


def scenario(*overrides):
    return load_scenario(QUICK, list(SMALL) + list(overrides))


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def inline_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine") / "inline"
    run_scenario(scenario(), out, backend="inline")
    return out


# ---------------------------------------------------------------- determinism
@pytest.mark.ray
@pytest.mark.parametrize("stepping", ["auto", "on"])
def test_same_metrics_inline_ray_1_and_2_hosts(inline_small, ray_instance, tmp_path, stepping):
    """Also with batched stepping on: which agents step together differs with the
    number of hosts (all 8 on one host, or split over two), the metrics do not."""
    runs = [("ray", 1), ("ray", 2)] + ([("inline", 1)] if stepping == "on" else [])
    for backend, hosts in runs:
        out = tmp_path / f"{backend}{hosts}"
        run_scenario(scenario(f"engine.hosts={hosts}", f"engine.batched_stepping={stepping}"), out, backend=backend)
        assert (out / "metrics.csv").read_text() == (inline_small / "metrics.csv").read_text(), hosts
        assert (out / "conflict.csv").read_text() == (inline_small / "conflict.csv").read_text(), hosts
        assert summary_sans_wall(out) == summary_sans_wall(inline_small), hosts
        info = json.loads((out / "run.json").read_text())
        assert info["hosts"] == hosts
        assert info["code"]["source"] == source_digest() and info["code"]["torch"] == torch.__version__
        if stepping == "on":  # agents of one kind on one host did step together
            assert info["batched_stepping"]["stepped"]["batched"] > 0, info["batched_stepping"]


def test_same_seed_same_events_other_seed_differs(inline_small, tmp_path):
    out = tmp_path / "again"
    run_scenario(scenario(), out, backend="inline")
    assert (out / "events.jsonl").read_text() == (inline_small / "events.jsonl").read_text()
    other = tmp_path / "other"
    run_scenario(scenario("seed=1"), other, backend="inline")
    assert (other / "metrics.csv").read_text() != (inline_small / "metrics.csv").read_text()


# ---------------------------------------------------------------- fault tolerance
@pytest.mark.ray
def test_killed_host_is_recovered_and_run_is_unchanged(inline_small, ray_instance, tmp_path):
    """Restarted in a new actor, or (when the loaded machine frees no CPU for one
    within engine.restart_timeout_s) its agents moved onto the other host: one
    recovery either way, and the metrics of a run where nothing died."""
    kill_after_round_0, killed = kill_host_after_round(0)
    out = tmp_path / "killed"
    run_scenario(scenario("engine.hosts=2"), out, backend="ray", hooks=[kill_after_round_0])
    assert killed == [0]
    recoveries = [e for e in events(out) if e["event"] in ("host_restart", "host_replaced")]
    assert len(recoveries) == 1 and recoveries[0]["host"] == 0
    run = json.loads((out / "run.json").read_text())
    assert run["host_restarts"] + run["hosts_replaced"] == 1, run
    # exact replay from the checkpoint: the same metrics as a run where nothing died
    assert (out / "metrics.csv").read_text() == (inline_small / "metrics.csv").read_text()


# ---------------------------------------------------------------- capability discovery
def test_capability_messages_are_counted_as_control(inline_small):
    ev = events(inline_small)
    control = [e for e in ev if e["event"] == "message" and e["kind"] == "control"]
    # a ring of 8: each agent introduces itself to its 2 neighbours once
    assert len(control) == 16
    assert all(e["branch"] == "capabilities" for e in control)
    # no branch is sent to a neighbour before its capability message arrived
    first_cap = {}
    for e in control:
        first_cap[(e["dst"], e["src"])] = e["t_arrive"]
    for e in ev:
        if e["event"] == "message" and e["kind"] != "control":
            assert e["t_send"] >= first_cap[(e["src"], e["dst"])]


def test_control_bytes_match_capability_sizes(inline_small):
    from parse_actors.agents import Agent, AgentSpec  # sizes from the agents' own capabilities

    sc = scenario()
    s = json.loads((inline_small / "summary.json").read_text())
    shapes = {m: tuple(v) for m, v in s["dataset"]["input_shapes"].items()}
    sizes = {}
    for i, g in enumerate(sc.agent_groups()):
        a = Agent(AgentSpec(i, tuple(g.modalities)), {m: shapes[m] for m in g.modalities}, s["dataset"]["num_classes"],
                  model=sc.model, method=sc.method, seed=0)
        sizes[i] = capability_nbytes(a.capabilities()) + sc.protocol.header_bytes
    control = [e for e in events(inline_small) if e["event"] == "message" and e["kind"] == "control"]
    assert sum(e["bytes"] for e in control) == sum(2 * v for v in sizes.values())
    assert s["bytes_by_kind"]["control"] == sum(2 * v for v in sizes.values())


# ---------------------------------------------------------------- protocols
def test_async_protocol_with_stragglers(tmp_path):
    out = tmp_path / "async"
    sc = scenario("protocol.mode=async", "protocol.eval_every_s=0.1", "protocol.rounds=4",
                  "network.link.bandwidth_mbps=1000",
                  "network.stragglers={model: list, speeds: [1, 1, 1, 1, 1, 1, 1, 0.25]}")
    summary, _ = run_scenario(sc, out, backend="inline")
    assert summary["protocol"] == "async" and summary["rounds"] == 4
    assert summary["virtual_time_s"] == pytest.approx(0.4)
    r = rows(out)
    assert len(r) == 8 * 4 and [float(x["t"]) for x in r[::8]] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    # no global round: each agent trains at its own pace; agents 6 and 7 are the
    # multimodal pair (same cost per sample), and 7 is 4x slower
    updates = {int(x["agent"]): int(x["updates"]) for x in r[-8:]}
    assert updates[7] == pytest.approx(updates[6] / 4, abs=1)
    assert updates[0] > updates[6]  # unimodal agents are cheaper per sample
    sends = {}
    for e in events(out):
        if e["event"] == "message" and e["kind"] != "control" and e["dst"] == 0:
            sends.setdefault(e["src"], set()).add(e["t_send"])
    assert len(sends[7]) <= updates[7] and len(sends[1]) > 2 * len(sends[7])


def test_sync_straggler_stretches_rounds(inline_small, tmp_path):
    out = tmp_path / "slow"
    base = json.loads((inline_small / "summary.json").read_text())["virtual_time_s"]
    summary, _ = run_scenario(scenario("network.stragglers={model: list, speeds: [1, 1, 1, 1, 1, 1, 1, 0.25]}"),
                              out, backend="inline")
    # the barrier waits for the slowest agent: agent 7 (multimodal, on the critical
    # path already) computes 4x longer, so each round grows by exactly 3x its compute
    sc = scenario()
    work7 = sc.train.local_steps * sc.train.batch_size * _cost_per_sample(out, 7)
    assert summary["virtual_time_s"] - base == pytest.approx(3 * 3 * work7, rel=1e-9)


def _cost_per_sample(out: Path, aid: int) -> float:
    from parse_actors.agents import Agent, AgentSpec

    sc = scenario()
    s = json.loads((out / "summary.json").read_text())
    g = sc.agent_groups()[aid]
    shapes = {m: tuple(s["dataset"]["input_shapes"][m]) for m in g.modalities}
    return Agent(AgentSpec(aid, tuple(g.modalities)), shapes, s["dataset"]["num_classes"], model=sc.model,
                 method=sc.method).cost_per_sample()


def test_churn_skips_offline_agents_and_drops_messages(tmp_path):
    out = tmp_path / "churn"
    sc = scenario("protocol.rounds=6",
                  "network.churn={model: sessions, online: {dist: exponential, mean_s: 0.05}, "
                  "offline: {dist: exponential, mean_s: 0.05}}")
    summary, _ = run_scenario(sc, out, backend="inline")
    ev = events(out)
    nodes = [e for e in ev if e["event"] == "node"]
    assert any(not e["online"] for e in nodes) and any(e["online"] for e in nodes)
    assert summary["messages"]["dropped"] > 0
    dropped = [e for e in ev if e["event"] == "message" and e["status"] == "dropped"]
    assert {e["reason"] for e in dropped} <= {"offline", "link_down"}
    assert all(e["t_arrive"] is None for e in dropped)
    active = [int(x["online"]) for x in rows(out)]
    assert 0 < sum(active) < len(active)


def test_sensor_loss_mid_run_stops_audio_branches(tmp_path):
    out = tmp_path / "loss"
    # agent 6 (image+audio) loses its audio sensor during round 1
    sc = scenario("protocol.rounds=4", "data.schedule=[{agent: 6, modality: audio, at_s: 0.15, action: lose}]")
    run_scenario(sc, out, backend="inline")
    ev = events(out)
    change = [e for e in ev if e["event"] == "modality"]
    assert len(change) == 1 and change[0]["agent"] == 6 and change[0]["modalities"] == ["image"]
    t_lost = change[0]["t"]
    # new capabilities are advertised to its neighbours (5 and 7) ...
    control_after = [e for e in ev if e["event"] == "message" and e["kind"] == "control" and e["src"] == 6
                     and e["t_send"] >= t_lost]
    assert {e["dst"] for e in control_after} == {5, 7}
    t_adv = max(e["t_arrive"] for e in control_after)
    # ... after which agent 6 sends no audio or synergy branch any more
    late = [e for e in ev if e["event"] == "message" and e["src"] == 6 and e["t_send"] > t_adv]
    assert late and not any("audio" in e["branch"] or e["kind"] == "syn" for e in late)


# ---------------------------------------------------------------- resume and signals
def test_interrupt_then_resume_gives_the_uninterrupted_result(inline_small, tmp_path):
    out = tmp_path / "interrupted"

    def stop_after_round_1(sim, rnd):
        if rnd == 1:
            sim.stop_signal = signal.SIGINT

    with pytest.raises(Interrupted):
        run_scenario(scenario("output.checkpoint_every=0"), out, backend="inline", hooks=[stop_after_round_1])
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and partial["rounds"] == 2
    assert (out / "checkpoint.pt").exists()
    assert len(rows(out)) == 8 * 2
    summary, _ = resume_run(out, backend="inline")
    assert summary["complete"] is True
    assert (out / "metrics.csv").read_text() == (inline_small / "metrics.csv").read_text()
    assert summary_sans_wall(out) == summary_sans_wall(inline_small)
    # the log continues where the checkpoint was taken: same events, plus a note of the resume
    resumed = [e for e in events(out) if e["event"] not in ("setup", "resume")]
    assert resumed == [e for e in events(inline_small) if e["event"] != "setup"]
    assert [e["event"] for e in events(out)].count("resume") == 1
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.slow
def test_sigterm_during_ray_run_exits_143_and_leaves_nothing(tmp_path):
    cache = tempfile.mkdtemp(prefix="pst", dir="/tmp")
    out = tmp_path / "sig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parse_actors.cli", "run", str(QUICK), "--out", str(out), "--backend", "ray",
         "--set", "protocol.rounds=40", "--set", "train.local_steps=20", "--set", "output.checkpoint_every=1"],
        env={**os.environ, "PARSE_SIM_CACHE": cache}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT,
    )
    deadline = time.time() + 180
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.2)
    assert (out / "checkpoint.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and 0 < summary["rounds"] < 40
    assert len(rows(out)) == 8 * summary["rounds"]
    left = subprocess.run(["pgrep", "-f", cache], capture_output=True, text=True).stdout.strip()
    assert left == "", f"Ray processes left behind: {left}"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/parse-sim-pwned",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path):
    import torch

    from parse_actors.errors import ScenarioError

    out = tmp_path / "evil"
    out.mkdir()
    (out / "scenario.yaml").write_text(QUICK.read_text())
    torch.save({"round": 0, "x": _Evil()}, out / "checkpoint.pt")
    with pytest.raises(ScenarioError) as ei:
        resume_run(out, backend="inline")
    assert "cannot be loaded safely" in str(ei.value)
    assert not Path("/tmp/parse-sim-pwned").exists()


def test_agents_offline_at_start_introduce_themselves_when_back(tmp_path):
    out = tmp_path / "stationary"
    sc = scenario("protocol.rounds=30", "network.churn={model: sessions, start: stationary, "
                  "online: {dist: exponential, mean_s: 0.5}, offline: {dist: exponential, mean_s: 0.5}}")
    run_scenario(sc, out, backend="inline")
    ev = events(out)
    first_change = {}
    for e in ev:
        if e["event"] == "node":
            first_change.setdefault(e["agent"], e["online"])
    first_offline = {a for a, online in first_change.items() if online}  # first change = coming online
    carried = {(e["src"], e["dst"]) for e in ev
               if e["event"] == "message" and e["kind"] != "control" and e["status"] == "delivered"}
    # agents that started offline still take part once back: they send and receive branches
    assert first_offline, "the seed should start some agents offline"
    # agents that started offline take part once back (before the fix only 2 of 16 links ever carried one)
    assert any(src in first_offline for src, _ in carried) and any(dst in first_offline for _, dst in carried)
    assert len(carried) >= 10


def test_divergence_is_reported(tmp_path):
    out = tmp_path / "diverge"
    summary, _ = run_scenario(scenario("optim.lr=1000000", "optim.momentum=0.99", "optim.clip_grad_norm=null"), out,
                              backend="inline")
    assert summary["diverged_agents"], "a huge learning rate must blow up"
    warned = [e for e in events(out) if e["event"] == "diverged"]
    assert {str(e["agent"]) for e in warned} == set(summary["diverged_agents"])


def test_async_send_buffer_keeps_queues_short(tmp_path):
    base = ["protocol.mode=async", "protocol.eval_every_s=0.1", "protocol.rounds=2", "network.link.bandwidth_mbps=5"]
    latest, _ = run_scenario(scenario(*base), tmp_path / "latest", backend="inline")
    queued, _ = run_scenario(scenario(*base, "protocol.send_buffer=all"), tmp_path / "all", backend="inline")
    assert latest["async_sends_skipped"] > 0 and queued["async_sends_skipped"] == 0
    assert latest["messages"]["sent"] < queued["messages"]["sent"]
    # with a send buffer of one, almost everything sent is delivered by the end
    assert latest["messages"]["delivered"] / latest["messages"]["sent"] > \
        queued["messages"]["delivered"] / queued["messages"]["sent"]


@pytest.mark.slow
def test_sigint_stops_an_inline_run_after_the_current_round(tmp_path):
    out = tmp_path / "int"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parse_actors.cli", "-q", "run", str(QUICK), "--out", str(out), "--backend", "inline",
         "--set", "protocol.rounds=500", "--set", "output.checkpoint_every=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["rounds"] < 500


@pytest.mark.parametrize("overrides", [
    ("protocol.mode=async", "protocol.eval_every_s=0.05", "protocol.rounds=4", "network.link.bandwidth_mbps=5"),
    ("protocol.round_timeout_s=0.03", "protocol.rounds=4"),
], ids=["async", "sync-timeout"])
def test_resume_with_messages_in_flight_at_the_checkpoint(tmp_path, overrides):
    """Exports still in flight (async) or arriving after a barrier (timeout) survive the checkpoint."""
    full, out = run_full_and_cut(scenario(*overrides), tmp_path)
    from parse_actors.engine import checkpoint as ckpt

    assert ckpt.load(out)["payloads"], "the scenario should leave messages in flight at the checkpoint"
    resume_run(out, backend="inline")
    assert (out / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    assert summary_sans_wall(out) == summary_sans_wall(full)


def test_measured_compute_time_uses_wall_time_and_says_so(inline_small, tmp_path):
    out = tmp_path / "measured"
    summary, _ = run_scenario(scenario("engine.compute_time=measured"), out, backend="inline")
    assert summary["compute_time"] == "measured"
    assert [e["event"] for e in events(out)].count("not_reproducible") == 1
    assert len(rows(out)) == 8 * 3
    # the virtual timeline now follows the wall clock, not the cost model
    cost = json.loads((inline_small / "summary.json").read_text())["virtual_time_s"]
    assert summary["virtual_time_s"] != cost


def test_measured_compute_time_needs_sync():
    from parse_actors.errors import ScenarioError

    with pytest.raises(ScenarioError) as ei:
        scenario("engine.compute_time=measured", "protocol.mode=async")
    assert ei.value.path == "engine.compute_time"


# ---------------------------------------------------------------- exchange plan in the engine
def test_async_harmony_phase_follows_virtual_time(tmp_path):
    """Async Harmony: the phase comes from virtual time, so every agent switches
    at the same instant: no encoder is sent after the switch, only encoders before."""
    out = tmp_path / "harmony"
    period, switch = 0.05, 4
    run_scenario(scenario("method=harmony", "protocol.mode=async", f"protocol.eval_every_s={period}",
                          "protocol.rounds=8", f"aggregation.harmony_switch={switch}"), out, backend="inline")
    sent = [(e["t_send"], e["kind"]) for e in events(out) if e["event"] == "message" and e["kind"] != "control"]
    t_switch = switch * period
    before = {k for t, k in sent if t < t_switch}
    after = {k for t, k in sent if t >= t_switch}
    assert before == {"encoder"} and after == {"head"}


def test_receiver_refuses_branches_its_policy_would_not_exchange(tmp_path):
    """Sync Harmony with a round timeout shorter than the exchange: encoders that
    miss the barrier of the last phase-1 round arrive in phase 2, where the
    receivers' policy no longer exchanges encoders: they are refused, not merged."""
    out = tmp_path / "late"
    summary, _ = run_scenario(scenario("method=harmony", "aggregation.harmony_switch=1", "protocol.rounds=4",
                                       "network.link.bandwidth_mbps=1", "protocol.round_timeout_s=0.2",
                                       "aggregation.staleness=5"), out, backend="inline")
    enc = [e for e in events(out) if e["event"] == "message" and e["kind"] == "encoder"]
    # every encoder was sent in round 0 and arrived after round 0's barrier (t = 0.2 s after the start)
    assert enc and all(e["status"] == "delivered" and e["t_arrive"] > 0.2 for e in enc)
    assert summary["refused_on_receipt"] == len(enc)


def test_complete_run_keeps_final_weights_within_the_cap(tmp_path, monkeypatch):
    """final_weights.pt (what `parse-sim audit` reads) is written at the end of a complete
    run and holds every agent; a cap below its size writes nothing. When the advertised
    parameters alone are over the cap, no agent state is even fetched from the hosts."""
    from parse_actors.engine.backends import InlineBackend
    from parse_actors.metrics.final_weights import load_final_weights, path_of

    calls: list[str] = []
    plain = InlineBackend.call
    monkeypatch.setattr(InlineBackend, "call", lambda self, h, m, *a, **kw: calls.append(m) or plain(self, h, m, *a,
                                                                                                          **kw))
    out = tmp_path / "kept"
    run_scenario(scenario(), out, backend="inline")
    states = load_final_weights(out)
    assert sorted(states) == list(range(8))
    size = path_of(out).stat().st_size
    small = tmp_path / "capped"
    calls.clear()
    run_scenario(scenario("output.final_weights_max_mb=0.001"), small, backend="inline")
    assert not (small / "final_weights.pt").exists()
    skipped = [e for e in events(small) if e["event"] == "final_weights_skipped"]
    assert skipped and skipped[0]["bytes_at_least"] > 1000 and "checkpoint" not in calls
    assert skipped[0]["bytes_at_least"] < size  # a lower bound of the file's size
    # a cap between the parameters and the file: fetched, measured exactly, skipped
    tight = tmp_path / "tight"
    run_scenario(scenario(f"output.final_weights_max_mb={(size - 1) / 1e6}"), tight, backend="inline")
    assert not (tight / "final_weights.pt").exists()
    assert [e["bytes"] for e in events(tight) if e["event"] == "final_weights_skipped"] == [size]


def test_garbage_collection_is_paused_and_the_heap_frozen_until_close(tmp_path):
    """From set-up to close() the collector does not run by itself; after set-up every live
    object is frozen (never scanned again) and each period starts with one collection;
    close() thaws the heap and turns automatic collection back on."""
    import asyncio
    import gc

    from parse_actors.engine.coordinator import Simulation
    from parse_actors.metrics import RunDir

    assert gc.isenabled()
    collections: list[int] = []
    on_collect = lambda phase, info: phase == "start" and collections.append(info["generation"])  # noqa: E731
    sim = Simulation(scenario(), RunDir(tmp_path / "run"), "inline")
    try:
        asyncio.run(sim.setup())
        assert gc.get_freeze_count() > 0 and not gc.isenabled()
        gc.callbacks.append(on_collect)

        async def two_periods():
            async for _ in sim.periods(2):
                pass
        asyncio.run(two_periods())
        assert collections == [2, 2]
    finally:
        if on_collect in gc.callbacks:
            gc.callbacks.remove(on_collect)
        sim.close()
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_policy_answers_are_remembered_per_clock():
    """The exchange asks its sharing policy once per (my capabilities, theirs, clock):
    the same dicts again get the remembered keys, another dict or clock a fresh answer."""
    from parse_actors.engine.exchange import RememberedPolicy

    asked = []

    class Policy:
        name = "probe"

        def select(self, mine, theirs, clock=0):
            asked.append((id(mine), id(theirs), clock))
            return sorted(set(mine) & set(theirs))

    p = RememberedPolicy(Policy())
    a, b, b2 = {"x": 1, "y": 2}, {"y": 3}, {"y": 3}
    assert p.select(a, b, 0) == ["y"] and p.select(a, b, 0) == ["y"] and len(asked) == 1
    assert p.select(a, b2, 0) == ["y"] and len(asked) == 2  # equal content, another dict: asked
    assert p.select(a, b, 1) == ["y"] and len(asked) == 3  # a new clock: asked again
    p.select(a, b, 1).append("z")  # callers get their own list
    assert p.select(a, b, 1) == ["y"] and p.name == "probe"


def test_agents_of_one_kind_share_one_capability_dict(tmp_path):
    """Equal capability sets are interned: one dict per agent kind (quickstart: 3), and the
    plan each agent computes from them is the one the policy gives for those dicts."""
    import asyncio

    from parse_actors.agents import plan_exchange
    from parse_actors.engine.coordinator import Simulation
    from parse_actors.metrics import RunDir

    sim = Simulation(scenario(), RunDir(tmp_path / "run"), "inline")
    try:
        asyncio.run(sim.setup())
        caps = {v.group: v.capabilities for v in sim.views}
        assert len({id(v.capabilities) for v in sim.views}) == len(caps) == 3
        assert all(v.capabilities is caps[v.group] for v in sim.views)
        sim.run_until(sim.env.process(sim.discovery.exchange(sim.discovery.missing())))
        for v in sim.views:
            known = {j: v.known.get(j) for j in sim.net.neighbors(v.aid)}
            assert sim.exchange.plan(v, 0) == plan_exchange(sim.exchange.policy.policy, v.capabilities, known, 0)
    finally:
        sim.close()
