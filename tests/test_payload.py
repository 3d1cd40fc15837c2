"""Issue 15 in the engine: per-link payload budgets, priorities and compressed gossip.

Small inline runs of the quickstart scenario (8 agents, PARSE), each a few seconds:
the budget is never exceeded on any link (exact, with bandwidth traces), wire sizes
are exact per codec, deferrals are counted and bounded, CHOCO-gossip keeps the
public copies bit-equal at both ends and learns where naive compressed averaging
does not, resume is exact, inline == Ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from parse_actors.agents.choco import _apply
from parse_actors.agents.compression import from_plain, wire_nbytes, wire_nbytes_for
from parse_actors.engine import resume_run, run_scenario
from parse_actors.engine.coordinator import Simulation
from parse_actors.engine.messages import BranchMessage, CapabilityMessage
from parse_actors.errors import ScenarioError
from parse_actors.scenario import load_scenario
from run_helpers import kill_host_after_round, rows, run_full_and_cut
from run_helpers import summary_sans_wall as summary

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
SMALL = ["protocol.rounds=3", "train.local_steps=4", "output.plots=false"]
TRACE = "network.link={bandwidth: {trace: norway-3g-bus}, latency: {dist: constant, ms: 10}}"
RANDOM = "network.topology={kind: erdos_renyi, p: 0.4}"
CODECS = "protocol.compression={encoder: {topk: 0.01}, red: int8, uni: fp16, syn: {randk: 0.1}}"


def scenario(*overrides):
    return load_scenario(QUICK, list(SMALL) + list(overrides))


def final_acc(out: Path) -> float:
    return json.loads((out / "summary.json").read_text())["final_acc"]["mean"]


class Tap:
    """Records every send (with the link's rate at that instant) and the simulation."""

    def __init__(self, monkeypatch):
        self.sends: list[dict] = []
        self.sim: Simulation | None = None
        orig = Simulation.send
        tap = self

        def send(sim, src, dst, nbytes, kind, msg):
            tap.sim = sim
            tap.sends.append({"src": src, "dst": dst, "nbytes": nbytes, "kind": kind, "msg": msg,
                              "t": sim.env.now, "rate": sim.net.link_rate(src, dst), "dry": sim.dry})
            return orig(sim, src, dst, nbytes, kind, msg)

        monkeypatch.setattr(Simulation, "send", send)


def exchanges(sends: list[dict]) -> dict[tuple[int, int, int], list[dict]]:
    """(src, dst, round) -> the messages of that exchange: its branch messages, plus the
    capability messages sent on the link since its previous exchange (they count
    against the next one)."""
    out: dict[tuple[int, int, int], list[dict]] = {}
    pending: dict[tuple[int, int], list[dict]] = {}
    for s in sends:
        link = (s["src"], s["dst"])
        if isinstance(s["msg"], CapabilityMessage):
            pending.setdefault(link, []).append(s)
            continue
        key = (*link, s["msg"].round)
        if key not in out:
            out[key] = pending.pop(link, [])
        out[key].append(s)
    return out


# ---------------------------------------------------------------- budgets
def test_budget_is_never_exceeded_on_any_link_with_traces(tmp_path, monkeypatch):
    tap = Tap(monkeypatch)
    seconds = 0.05
    out = tmp_path / "run"
    run_scenario(scenario(TRACE, RANDOM, f"protocol.payload_budget={{seconds: {seconds}}}"), out, backend="inline")
    sim = tap.sim
    header = sim.sc.protocol.header_bytes
    ex = exchanges(tap.sends)
    assert len(ex) > 20
    budgets = set()
    for (src, dst, rnd), msgs in ex.items():
        branch = [m for m in msgs if isinstance(m["msg"], BranchMessage)]
        assert len({m["t"] for m in branch}) == 1  # one exchange: one instant
        budget = math.floor(seconds * branch[0]["rate"] / 8)
        budgets.add(budget)
        assert sum(m["nbytes"] for m in msgs) <= budget, (src, dst, rnd)
        for m in branch:  # every size is the codec's exact size (none here)
            info = sim.views[src].capabilities[m["msg"].key]
            assert m["nbytes"] == header + wire_nbytes_for(info, None) == header + info.nbytes
    assert len(budgets) > 10  # the trace moves the budget
    s = summary(out)
    # encoders (50 KB) never fit in 0.05 s of 3G; the slices do, some only later
    assert s["bytes_by_kind"]["encoder"] == 0 and s["oversize_by_kind"]["encoder"] > 0
    assert sum(s["deferred_by_kind"].values()) > 0
    assert s["longest_wait"] <= s["starvation_bound"]
    comm = rows(out, "comm.csv")
    assert list(comm[0])[-2:] == ["deferred", "oversize"]
    for col, key in (("deferred", "deferred_by_kind"), ("oversize", "oversize_by_kind")):
        per_kind: dict[str, int] = {}
        for r in comm:
            if int(r[col]):
                per_kind[r["kind"]] = per_kind.get(r["kind"], 0) + int(r[col])
        assert per_kind == s[key]
    ev = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    budget_ev = [e for e in ev if e["event"] == "budget"]
    assert sum(sum(e["deferred"].values()) for e in budget_ev) == sum(s["deferred_by_kind"].values())
    assert all(e["bytes"] <= e["budget"] for e in budget_ev)


def test_deferral_follows_priority_and_is_bounded(tmp_path):
    """A byte budget that carries everything a unimodal link shares (one encoder, its
    slices, the capability message) but not what the multimodal link 6-7 shares (two
    encoders, every slice): the default order defers encoders there, not slices; with
    defer_limit 1 an overdue encoder then goes first; every branch is sent within the
    stated bound."""
    budget = 61000
    out = tmp_path / "kinds"
    run_scenario(scenario(f"protocol.payload_budget={budget}", "protocol.rounds=6", "protocol.defer_limit=1"),
                 out, backend="inline")
    s = summary(out)
    assert s["deferred_by_kind"]["encoder"] > 0 and s["oversize_by_kind"] == {}
    assert s["longest_wait"] <= s["starvation_bound"]
    ev = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    budget_ev = [e for e in ev if e["event"] == "budget"]
    assert {(e["src"], e["dst"]) for e in budget_ev} == {(6, 7), (7, 6)}
    assert all(e["deferred"] == {"encoder": 2} for e in budget_ev if e["round"] == 0)  # slices first
    assert all(e["sent"][0].startswith("backbone/") for e in budget_ev if e["round"] == 1)  # overdue: first
    comm = {(int(r["src"]), int(r["dst"]), r["kind"]): r for r in rows(out, "comm.csv")}
    assert int(comm[(6, 7, "encoder")]["deferred"]) > 0 and int(comm[(6, 7, "encoder")]["messages"]) > 0
    assert int(comm[(0, 1, "encoder")]["deferred"]) == 0
    # encoders first: now slices wait instead
    out2 = tmp_path / "encoders-first"
    run_scenario(scenario(f"protocol.payload_budget={budget}", "protocol.rounds=6",
                          "protocol.priority=[encoder, head, syn, uni, red, control]"), out2, backend="inline")
    s2 = summary(out2)
    assert s2["deferred_by_kind"].get("encoder", 0) < s["deferred_by_kind"]["encoder"]
    assert set(s2["deferred_by_kind"]) & {"red", "uni", "syn"}


def test_staleness_priority_sends_the_longest_waiting_branch_first(tmp_path):
    out = tmp_path / "staleness"
    run_scenario(scenario("protocol.payload_budget=61000", "protocol.priority=staleness", "protocol.defer_limit=100"),
                 out, backend="inline")
    ev = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    budget_ev = [e for e in ev if e["event"] == "budget"]
    assert all(e["deferred"] == {"encoder": 2} for e in budget_ev if e["round"] == 0)  # none sent yet: kind order
    r1 = [e for e in budget_ev if e["round"] == 1]
    assert r1 and all(e["sent"][0].startswith("backbone/") for e in r1)  # never sent: oldest, first
    s = summary(out)
    assert s["longest_wait"] <= 2  # no aging needed (defer_limit 100): staleness alone rotates


def test_byte_budget_that_cannot_carry_a_branch_is_refused_with_a_codec(tmp_path):
    with pytest.raises(ScenarioError) as e:
        run_scenario(scenario("protocol.payload_budget=20000"), tmp_path / "x", backend="inline")
    msg = str(e.value)
    assert "protocol.payload_budget" in msg and "encoder" in msg and "compression encoder:" in msg
    assert "\n" not in msg
    # with the codec it names, the same budget runs
    run_scenario(scenario("protocol.payload_budget=20000", "protocol.compression={encoder: int8}"),
                 tmp_path / "y", backend="inline")


def test_change_priority_sends_the_branch_that_moved_most_first(tmp_path):
    """priority: change (sync): the hosts measure each branch's relative change since it was
    last sent to that neighbour at the round's start; never-sent branches count as infinite;
    each link's messages go in decreasing change (first fit)."""
    out = tmp_path / "change"
    run_scenario(scenario("protocol.payload_budget=55000", "protocol.priority=change", "protocol.defer_limit=100",
                          "protocol.rounds=4"), out, backend="inline")
    ev = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    budget_ev = [e for e in ev if e["event"] == "budget"]
    later = [e for e in budget_ev if e["round"] >= 2]
    assert later
    for e in later:
        ch = {k: math.inf if x is None else x for k, x in e["change"].items()}
        order = sorted(ch, key=lambda k: -ch[k])
        assert e["sent"] == [k for k in order if k in e["sent"]], e
        assert any(math.isfinite(x) for x in ch.values())
    s = summary(out)
    assert s["longest_wait"] <= s["starvation_bound"]


def test_resume_with_change_priority_replays_the_same_schedule(tmp_path):
    over = ("protocol.payload_budget=55000", "protocol.priority=change", "protocol.rounds=4", TRACE)
    full, out = run_full_and_cut(scenario(*over), tmp_path)
    resume_run(out, backend="inline")
    for name in ("metrics.csv", "comm.csv"):
        assert (out / name).read_text() == (full / name).read_text(), name
    assert summary(out) == summary(full)


def test_change_priority_needs_sync():
    with pytest.raises(ScenarioError, match="protocol.priority"):
        scenario("protocol.priority=change", "protocol.mode=async")


# ---------------------------------------------------------------- compression
@pytest.mark.parametrize("averaging", ["naive", "choco"])
def test_wire_sizes_are_exact_per_codec(tmp_path, monkeypatch, averaging):
    """Every message's size is header + wire_nbytes_for(branch, codec), and the message
    actually encoded has exactly that many bytes."""
    seen = set()
    for i, codecs in enumerate((CODECS, "protocol.compression={encoder: fp16, syn: {topk: 0.1}}")):
        tap = Tap(monkeypatch)
        run_scenario(scenario(codecs, f"protocol.compressed_averaging={averaging}", "protocol.rounds=2"),
                     tmp_path / f"{averaging}{i}", backend="inline")
        seen |= _check_sizes(tap, averaging)
    assert seen == {"none", "topk", "int8", "fp16", "randk"}


def _check_sizes(tap, averaging) -> set:
    sim = tap.sim
    pc = sim.sc.protocol
    header = pc.header_bytes
    seen = set()
    for s in tap.sends:
        m = s["msg"]
        if not isinstance(m, BranchMessage):
            continue
        info = sim.views[s["src"]].capabilities[m.key]
        codec = pc.codec_of(info.kind)
        assert s["nbytes"] == header + wire_nbytes_for(info, codec)
        (p,) = sim.hosts.refs([m.payload])  # the export itself (inline); the message holds a placeholder
        if codec.name == "none":
            assert not m.choco and m.key in p["dense"]
        elif averaging == "choco":
            assert m.choco and wire_nbytes(from_plain(p["choco"][s["dst"]][m.key])) == s["nbytes"] - header
        else:
            assert not m.choco and wire_nbytes(from_plain(p["encoded"][m.key])) == s["nbytes"] - header
        seen.add(codec.name)
    return seen


def _choco_links(sim) -> list[tuple]:
    hosts = sim.hosts.backend.hosts
    out = []
    for h in hosts:
        for i, ch in h.choco.items():
            for (j, key), mine in ch.mine.items():
                theirs = next(hh.choco[j].theirs.get((i, key)) for hh in hosts if j in hh.choco)
                out.append((i, j, key, mine, theirs))
    return out


def test_choco_copies_stay_bit_equal_at_both_ends(tmp_path):
    """After every sync round every delivered difference is applied at both ends, in
    the same order: each link's public copy is the same bits at sender and receiver."""
    checked = []

    def check(sim, rnd):
        links = _choco_links(sim)
        assert links
        for i, j, key, mine, theirs in links:
            assert theirs is not None and all(mine[n].equal(theirs[n]) for n in mine), (i, j, key)
        checked.append(len(links))

    run_scenario(scenario("protocol.compression={encoder: {topk: 0.05}, red: {randk: 0.2}, uni: int8}",
                          TRACE, "protocol.payload_budget={seconds: 0.1}"),
                 tmp_path / "run", backend="inline", hooks=[check])
    assert len(checked) == 3


def test_choco_topk_learns_where_naive_topk_does_not(tmp_path):
    """Top-1% on every kind: CHOCO-gossip keeps most of the accuracy of uncompressed
    gossip at ~2% of its bytes, averaging the sparsified weights (the named baseline)
    loses it (measured on the common test set: plain 0.477, CHOCO 0.439, naive 0.249
    after 6 rounds; 0.559 / 0.533 / 0.251 after 12)."""
    over = ["protocol.rounds=6"]
    top1 = "protocol.compression={encoder: {topk: 0.01}, red: {topk: 0.01}, uni: {topk: 0.01}, " \
           "syn: {topk: 0.01}, head: {topk: 0.01}}"
    acc = {}
    for name, extra in (("plain", []), ("choco", [top1]), ("naive", [top1, "protocol.compressed_averaging=naive"])):
        run_scenario(scenario(*over, *extra), tmp_path / name, backend="inline")
        acc[name] = final_acc(tmp_path / name)
    assert acc["choco"] >= acc["plain"] - 0.05, acc
    assert acc["naive"] <= acc["choco"] - 0.1, acc
    s = summary(tmp_path / "choco")
    assert s["compression"]["encoder"] == "topk:0.01" and s["compressed_averaging"] == "choco"
    # far fewer bytes on the wire
    assert s["bytes_total"] < summary(tmp_path / "plain")["bytes_total"] / 5


def test_choco_async_with_churn_keeps_both_copies_of_each_link_equal(tmp_path):
    """Async, churn drops messages: every delivered CHOCO message reaches the receiver's
    copy and every outcome the sender's, in the same order, so at each evaluation the two
    copies of every link are the same bits once each end applies what it already got."""
    churn = ROOT / "scenarios" / "churn.yaml"
    sc = load_scenario(churn, ["protocol.mode=async", "protocol.rounds=2", "protocol.eval_every_s=0.15",
                               "train.local_steps=4", "output.plots=false", CODECS])
    checked = []

    def check(sim, rnd):
        p = sim.exchange
        for i, j, key, mine, theirs in _choco_links(sim):
            # what each end will hold once it has applied what it already got: the sender
            # the deliveries the coordinator saw, the receiver the messages in its inbox
            ch = sim.hosts.backend.hosts[sim.views[i].host].choco[i]
            a = {n: t.clone() for n, t in mine.items()}
            for seq, ok in p.outcomes.get(i, []):
                if ok and ch.pending[seq][:2] == (j, key):
                    _apply(a, ch.pending[seq][2])
            b = {n: (torch.zeros_like(t) if theirs is None else theirs[n].clone()) for n, t in mine.items()}
            for m in sim.views[j].inbox:
                if m.choco and m.sender == i and m.key == key:
                    _apply(b, from_plain(sim.hosts.refs([m.payload])[0]["choco"][j][key]))
            assert all(a[n].equal(b[n]) for n in a), (i, j, key)
            checked.append((i, j, key))
        for v in sim.views:  # the coordinator's numbering mirrors each host's
            ch = sim.hosts.backend.hosts[v.host].choco.get(v.aid)
            assert (0 if ch is None else ch.seq) == p.choco_seq.get(v.aid, 0)

    run_scenario(sc, tmp_path / "run", backend="inline", hooks=[check])
    s = summary(tmp_path / "run")
    assert s["messages"]["dropped"] > 0 and len(checked) > 50
    assert s["final_acc"]["mean"] > 0.3


# ---------------------------------------------------------------- determinism and resume
@pytest.mark.parametrize("over", [
    (CODECS, TRACE, "protocol.payload_budget={seconds: 0.05}", "protocol.rounds=4"),
    (CODECS, "protocol.payload_budget=30000", "protocol.mode=async", "protocol.eval_every_s=0.05",
     "protocol.rounds=4", "network.link.bandwidth_mbps=5"),
], ids=["sync-trace", "async-in-flight"])
def test_resume_of_a_budgeted_choco_run_is_exact(tmp_path, over):
    full, out = run_full_and_cut(scenario(*over), tmp_path)
    if "protocol.mode=async" in over:
        from parse_actors.engine import checkpoint as ckpt

        state = ckpt.load(out)
        assert state["payloads"] and state["protocol"]["links"]  # CHOCO payloads in flight, link states
    resume_run(out, backend="inline")
    for name in ("metrics.csv", "comm.csv"):
        assert (out / name).read_text() == (full / name).read_text(), name
    assert summary(out) == summary(full)


@pytest.mark.ray
@pytest.mark.parametrize("extra", [
    (CODECS, TRACE, "protocol.payload_budget={seconds: 0.05}"),
    ("protocol.payload_budget=55000", "protocol.priority=change"),
], ids=["choco-trace", "change"])
def test_compressed_budgeted_run_same_inline_and_ray(tmp_path, ray_instance, extra):
    over = (*extra, "engine.hosts=2")
    run_scenario(scenario(*over), tmp_path / "inline", backend="inline")
    run_scenario(scenario(*over), tmp_path / "ray", backend="ray")
    for name in ("metrics.csv", "comm.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "inline" / name).read_text(), name
    assert summary(tmp_path / "ray") == summary(tmp_path / "inline")


@pytest.mark.ray
def test_killed_host_restarts_with_its_choco_and_change_state(tmp_path, ray_instance):
    """A host lost mid-run is recovered from the last snapshot, which holds the CHOCO
    copies and change trackers: the run ends as if nothing died. Whether it is
    restarted in a new actor or its agents move onto the surviving host depends on
    whether the loaded machine frees a CPU for a new actor within
    engine.restart_timeout_s, so either counts; the metrics are identical both ways."""
    over = (CODECS, "protocol.payload_budget=30000", "protocol.priority=change", "engine.hosts=2",
            "protocol.rounds=4")
    run_scenario(scenario(*over), tmp_path / "inline", backend="inline")
    kill_after_round_1, killed = kill_host_after_round(1)
    run_scenario(scenario(*over), tmp_path / "ray", backend="ray", hooks=[kill_after_round_1])
    assert killed == [1]
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["host_restarts"] + run["hosts_replaced"] == 1, run
    for name in ("metrics.csv", "comm.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "inline" / name).read_text(), name


@pytest.mark.parametrize("overrides", [
    ["protocol.payload_budget=20000"],  # an encoder does not fit
    ["protocol.payload_budget=20000", "protocol.compression={encoder: int8}"],  # fits with the codec it names
    ["protocol.payload_budget=700"],  # a head fits, not the capability message
    ["protocol.payload_budget=20000", "method=dsgd_full"],  # the monolithic model's shapes
    ["protocol.payload_budget=60000", "model.mlp_hidden=[96, 64]"],
], ids=["encoder", "codec", "small", "dsgd_full", "widths"])
def test_validate_refuses_the_budgets_a_run_refuses(tmp_path, overrides):
    """`parse-sim validate` computes every branch's size from the model's shapes (meta
    device) and applies the run's own rule: same verdict, same message."""
    import subprocess
    import sys

    sets = [a for o in SMALL + overrides for a in ("--set", o)]
    v = subprocess.run([sys.executable, "-m", "parse_actors.cli", "validate", str(QUICK), *sets],
                       capture_output=True, text=True, cwd=ROOT)
    try:
        run_scenario(scenario(*overrides), tmp_path / "run", backend="inline")
        refused = None
    except ScenarioError as e:
        refused = str(e)
    if refused is None:
        assert v.returncode == 0, v.stderr
    else:
        assert v.returncode == 2 and "Traceback" not in v.stderr, v.stderr
        assert "protocol.payload_budget" in refused, refused
        assert refused.split("protocol.payload_budget", 1)[1] in v.stderr.strip(), (refused, v.stderr)
