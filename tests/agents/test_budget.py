"""Per-link budget scheduler: the budget is never exceeded (exact), deferral order
follows the priority rule, no branch waits past the stated bound, scenario models."""

from __future__ import annotations

import io
import math

import numpy as np
import pydantic
import pytest
import torch

from parse_actors.agents.budget import (
    Candidate,
    ChangeTracker,
    LinkState,
    check_fits,
    kind_order,
    schedule,
    starvation_bound,
)
from parse_actors.agents.compression import Codec, wire_nbytes_for
from parse_actors.scenario.protocol import ExchangeConfig, SecondsBudget

H = 64


def _cands(spec):
    return [Candidate(k, kind, n) for k, kind, n in spec]


BRANCHES = _cands([
    ("backbone/image/cnn", "encoder", 9000),
    ("backbone/audio/mlp", "encoder", 7000),
    ("fission/image/red", "red", 400),
    ("fission/audio/red", "red", 400),
    ("head/red", "red", 300),
    ("fission/image/uni", "uni", 400),
    ("head/uni/image", "uni", 300),
    ("fusion/audio+image", "syn", 1200),
    ("head/syn/audio+image", "syn", 300),
    ("capabilities", "control", 500),
])


def test_kind_priority_order_and_exact_bytes():
    st = LinkState()
    s = schedule(BRANCHES, H, 3000, st)
    # control first, then red (by size), uni, syn; first-fit: what fits after the big ones are skipped
    assert [c.key for c in s.send] == ["capabilities", "head/red", "fission/audio/red", "fission/image/red",
                                       "head/uni/image", "fission/image/uni"]
    assert s.nbytes == sum(H + c.nbytes for c in s.send) == 2684
    # 316 bytes left: neither syn branch fits (deferred, in priority order); the encoders never fit (oversize)
    assert [c.key for c in s.deferred] == ["head/syn/audio+image", "fusion/audio+image"]
    assert [c.key for c in s.oversize] == ["backbone/audio/mlp", "backbone/image/cnn"]
    assert s.counts() == {"syn": 2} and s.counts("oversize") == {"encoder": 2}
    assert st.exchanges == 1 and st.waiting_since == {c.key: 0 for c in s.deferred}


def test_user_kind_order_and_unlisted_kinds_last():
    assert kind_order(["encoder", "red"]) == {"encoder": 0, "red": 1, "control": 2, "uni": 3, "syn": 4, "head": 5}
    s = schedule(BRANCHES, H, 9100, LinkState(), priority=["encoder"])
    assert [c.key for c in s.send][:1] == ["backbone/audio/mlp"]  # encoders first, smaller first
    assert s.send[1].key == "capabilities"  # then the default order for the rest


def test_no_budget_sends_everything_in_priority_order():
    s = schedule(BRANCHES, H, None, LinkState())
    assert len(s.send) == len(BRANCHES) and not s.deferred and s.send[-1].key == "backbone/image/cnn"


def test_budget_never_exceeded_over_many_random_exchanges():
    """10 links x 300 exchanges, random budgets, sizes, candidate subsets and rules: exact check."""
    r = np.random.default_rng(0)
    kinds = ["control", "red", "uni", "syn", "head", "encoder"]
    worst_fill = 1.0
    for link in range(10):
        st = LinkState()
        rule = ["kinds", "staleness", "change"][link % 3]
        pool = [Candidate(f"b{i}", kinds[i % 6], int(r.integers(1, 5000))) for i in range(12)]
        for ex in range(300):
            budget = int(r.integers(100, 12000))
            cands = [c for c in pool if r.random() < 0.8]
            change = {c.key: float(r.random()) for c in cands}
            s = schedule(cands, H, budget, st, "change" if rule == "change" else
                         ("staleness" if rule == "staleness" else list(kinds)), 2, change)
            assert s.nbytes == sum(H + c.nbytes for c in s.send) <= budget
            assert {c.key for c in s.send + s.deferred + s.oversize} == {c.key for c in cands}
            assert len(s.send + s.deferred + s.oversize) == len(cands)
            assert all(H + c.nbytes > budget for c in s.oversize)
            assert all(H + c.nbytes <= budget for c in s.deferred)
            if s.deferred:  # first-fit: whatever was deferred did not fit in what was left
                left = budget - s.nbytes
                assert all(H + c.nbytes > left for c in s.deferred)
                worst_fill = min(worst_fill, s.nbytes / budget)
    assert worst_fill < 1.0  # the budgets really were binding


def test_deferred_order_follows_priority():
    """Budget fits one branch per exchange: they go strictly in priority order."""
    cands = _cands([("e", "encoder", 100), ("r", "red", 100), ("s", "syn", 100), ("u", "uni", 100)])
    st = LinkState()
    sent = [schedule(cands, H, 164, st, defer_limit=100).send[0].key for _ in range(3)]
    assert sent == ["r", "r", "r"]  # without aging the top priority wins every time
    st = LinkState()
    sent = [schedule(cands, H, 164, st, priority="staleness").send[0].key for _ in range(8)]
    # staleness: never-sent first (by kind), then the one sent longest ago: a round robin
    assert sent == ["r", "u", "s", "e", "r", "u", "s", "e"]
    st = LinkState()
    ch = {"e": 0.1, "r": 0.2, "s": 0.9, "u": 0.5}
    assert [c.key for c in schedule(cands, H, 10_000, st, priority="change", change=ch).send] == ["s", "u", "r", "e"]
    del ch["e"]  # never sent: infinite change
    assert schedule(cands, H, 164, LinkState(), priority="change", change=ch).send[0].key == "e"


def test_aging_round_robin_exact():
    """B = 2, one branch fits per exchange: the exact sequence and deferral runs."""
    cands = _cands([("a", "red", 10), ("b", "uni", 10), ("c", "encoder", 10)])
    st = LinkState()
    seq = [schedule(cands, H, 74, st, defer_limit=2).send[0].key for _ in range(9)]
    assert st.longest_wait == 3  # c waited at exchanges 0, 1, 2: B + N - 2 here, bound B + N - 1
    # ex0 a (b, c wait from 0); ex1 a; ex2 b, c overdue -> b (a waits from 2); ex3 c (b waits from 3);
    # ex4 a is overdue -> a; from then on a round robin, each waiting exactly B exchanges
    assert seq == ["a", "a", "b", "c", "a", "b", "c", "a", "b"]


@pytest.mark.parametrize("rule", ["kinds", "staleness", "change"])
@pytest.mark.parametrize("B", [0, 1, 3, 6])
def test_no_starvation_past_the_bound(rule, B):
    r = np.random.default_rng(B * 7 + len(rule))
    kinds = ["control", "red", "uni", "syn", "head", "encoder"]
    n = 10
    pool = [Candidate(f"b{i}", kinds[i % 6], int(r.integers(50, 2000))) for i in range(n)]
    bound = starvation_bound(B, n)
    assert bound == max(B, 1) + n - 1
    st = LinkState()
    run = {c.key: 0 for c in pool}
    worst = 0
    for ex in range(400):
        budget = int(r.integers(2064, 4000))  # every branch fits alone; most exchanges send 2-3
        cands = [c for c in pool if r.random() < 0.9]
        # `change` adversarial: the same branches always look like they moved most
        change = {c.key: float(n - int(c.key[1:])) for c in cands}
        pr = list(kinds) if rule == "kinds" else rule
        s = schedule(cands, H, budget, st, pr, B, change)
        for c in s.deferred:
            run[c.key] += 1
            worst = max(worst, run[c.key])
        for c in s.send:
            run[c.key] = 0
        assert not s.oversize
    assert worst <= bound
    assert worst >= 2  # budgets were binding: there was something to bound
    assert st.longest_wait >= worst  # counts exchanges waited, absent ones included


def test_without_aging_a_branch_starves():
    """The aging is what prevents starvation: with it off, the encoder never goes."""
    cands = _cands([("r", "red", 100), ("u", "uni", 100), ("e", "encoder", 100)])
    st = LinkState()
    sent = set()
    for _ in range(50):
        sent |= {c.key for c in schedule(cands, H, 330, st, defer_limit=10**6).send}
    assert "e" not in sent
    st = LinkState()
    sent = set()
    for _ in range(starvation_bound(4, 3) + 1):
        sent |= {c.key for c in schedule(cands, H, 330, st, defer_limit=4).send}
    assert "e" in sent


def test_oversize_is_reported_not_deferred_and_never_blocks():
    cands = _cands([("big", "encoder", 5000), ("r", "red", 100)])
    st = LinkState()
    for _ in range(10):
        s = schedule(cands, H, 1000, st, defer_limit=0)
        assert [c.key for c in s.send] == ["r"] and [c.key for c in s.oversize] == ["big"] and not s.deferred
    assert "big" not in st.waiting_since


def test_state_roundtrip_and_duplicates():
    st = LinkState()
    schedule(BRANCHES, H, 2000, st)
    buf = io.BytesIO()
    torch.save(st.to_dict(), buf)
    buf.seek(0)
    again = LinkState.from_dict(torch.load(buf, weights_only=True))
    assert again == st
    with pytest.raises(ValueError, match="duplicate"):
        schedule(BRANCHES + BRANCHES[:1], H, 2000, LinkState())


def test_check_fits_names_branch_and_codec(make_agent):
    caps = make_agent("IA").capabilities()
    biggest = max(caps.values(), key=lambda i: i.nbytes)
    check_fits(H + biggest.nbytes, H, caps, {})
    with pytest.raises(ValueError) as e:
        check_fits(H + biggest.nbytes // 3, H, caps, {})
    msg = str(e.value)
    assert msg.startswith(f"protocol.payload_budget: {H + biggest.nbytes // 3} bytes cannot carry branch {biggest.key} (and ")
    assert msg.endswith("compression encoder: int8 fits, or a larger budget")
    assert H + wire_nbytes_for(biggest, Codec("int8")) <= H + biggest.nbytes // 3
    with pytest.raises(ValueError, match=r"encoder: fp16 fits"):
        check_fits(H + biggest.nbytes // 2, H, caps, {})
    with pytest.raises(ValueError, match=r"encoder: \{topk: 0.05\} fits") as e:
        check_fits(H + biggest.nbytes // 10, H, caps, {})
    # 5% with 1-2 byte indices fits a tenth of the dense size; 10% would not
    assert H + wire_nbytes_for(biggest, Codec("topk", 0.05)) <= H + biggest.nbytes // 10
    assert H + wire_nbytes_for(biggest, Codec("topk", 0.1)) > H + biggest.nbytes // 10
    with pytest.raises(ValueError, match=r"no codec fits: raise the budget$"):
        check_fits(H + 2, H, caps, {})
    check_fits(H + biggest.nbytes // 3, H, caps, {k: Codec("topk", 0.01) for k in ("encoder", "red", "uni", "syn")})
    check_fits(None, H, caps, {})


def test_change_tracker_shares_snapshots():
    t = ChangeTracker()
    x = torch.ones(100)
    assert t.change(1, "k", x) == math.inf
    t.sent([1, 2], "k", x)
    assert t.change(1, "k", x) == 0.0
    y = x.clone()
    y[:25] += 2.0  # ||dx|| = 2 * 5 = 10, ||x|| = 10
    assert t.change(2, "k", y) == pytest.approx(1.0)
    t.sent([1], "k", y)
    assert len(t._versions["k"]) == 2  # neighbour 2 still refers to the first version
    t.sent([2], "k", y)
    assert sorted(t._versions["k"]) == [1, 2]  # the first version is referenced no more: freed
    t2 = ChangeTracker()
    buf = io.BytesIO()
    torch.save(t.state_dict(), buf)
    buf.seek(0)
    t2.load_state_dict(torch.load(buf, weights_only=True))
    assert t2.change(2, "k", x) == t.change(2, "k", x)


def test_scenario_models():
    c = ExchangeConfig()
    assert c.payload_budget is None and c.priority == ["control", "red", "uni", "syn", "head", "encoder"]
    assert c.choco_gamma is None and c.gamma_of("encoder") == 1.0 and not c.lossy() and c.codec_of("encoder") == Codec("none")
    c = ExchangeConfig.model_validate({"payload_budget": {"seconds": 0.5}, "priority": "change",
                                       "compression": {"encoder": {"topk": 0.01}, "red": "fp16", "uni": {"randk": 0.1}}})
    assert c.payload_budget.nbytes(8e6) == 500_000
    assert c.codec_of("encoder") == Codec("topk", 0.01) and c.codec_of("red") == Codec("fp16")
    assert c.codec_of("uni") == Codec("randk", 0.1) and c.codec_of("syn") == Codec("none") and c.lossy()
    assert (c.gamma_of("encoder"), c.gamma_of("uni"), c.gamma_of("red")) == (0.03, 0.1, 1.0)
    assert ExchangeConfig(choco_gamma=0.2).gamma_of("encoder") == 0.2
    assert ExchangeConfig.model_validate({"payload_budget": 4096}).payload_budget == 4096
    assert SecondsBudget(seconds=1.0).nbytes(1001.0) == 125
    for bad in ({"payload_budget": 0}, {"payload_budget": True}, {"payload_budget": {"seconds": 0}},
                {"priority": ["red", "red"]}, {"priority": ["bogus"]}, {"priority": []}, {"priority": "size"},
                {"compression": {"encoder": {"topk": 0}}}, {"compression": {"encoder": "zip"}},
                {"compression": {"bogus": "fp16"}}, {"choco_gamma": 0}, {"defer_limit": -1}):
        with pytest.raises(pydantic.ValidationError):
            ExchangeConfig.model_validate(bad)
