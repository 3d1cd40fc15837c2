"""The one exchange plan (`exchange.py`): priority order, degrees, the check on
receipt, and Harmony's phase clock."""

from __future__ import annotations

import itertools

from parse_actors.agents import AggregationConfig, make_policy, prioritize
from parse_actors.agents.exchange import accepted, accepts, degrees, plan_exchange


def _caps(make_agent, types, method="parse", **kw):
    return {i: make_agent(t, method=method, agent_id=i, **kw).capabilities() for i, t in enumerate(types)}


def test_plan_priority_order_and_unknown_neighbours(make_agent):
    caps = _caps(make_agent, ["IA", "I", "IA", "A"])
    mine = caps[0]
    plan = plan_exchange(make_policy("parse"), mine, {3: caps[3], 1: caps[1], 2: caps[2], 9: None}, 0)
    assert list(plan) == [1, 2, 3]  # sorted, the unknown neighbour 9 left out
    for j, keys in plan.items():
        assert keys == prioritize(keys, mine)
        assert set(keys) == set(make_policy("parse").select(mine, caps[j], 0))
    kinds = [mine[k].kind for k in plan[2]]
    assert kinds[0] == "red" and kinds[-1] == "encoder"
    assert plan_exchange(make_policy("local"), mine, {1: caps[1]}, 0) == {}


def test_degrees(make_agent):
    caps = _caps(make_agent, ["IA", "I", "IA", "A"])
    plan = plan_exchange(make_policy("parse"), caps[0], {j: caps[j] for j in (1, 2, 3)}, 0)
    d = degrees(plan)
    assert d["head/red"] == 3 and d["backbone/image/cnn"] == 2 and d["fusion/audio+image"] == 1
    assert d == {k: sum(k in ks for ks in plan.values()) for k in set().union(*plan.values())}
    assert degrees({}) == {}


def test_accepts_refuses_what_the_policy_would_not_exchange(make_agent):
    ia, iat, i = (make_agent(t).capabilities() for t in ("IA", "IAT", "I"))
    parse = make_policy("parse")
    # both hold fission/image/syn with the same signature, but syn slices only go
    # to agents with the same modality set
    assert "fission/image/syn" in iat and iat["fission/image/syn"].signature == ia["fission/image/syn"].signature
    assert not accepts(parse, ia, iat, 0, "fission/image/syn")
    assert accepts(parse, ia, iat, 0, "fission/image/red")
    assert accepts(parse, ia, i, 0, "head/red")
    assert not accepts(parse, ia, i, 0, "head/uni/audio")  # the sender does not hold it
    assert not accepts(parse, ia, None, 0, "head/red")  # unknown sender
    assert not accepts(make_policy("local"), ia, ia, 0, "head/red")
    mono = make_agent("IA", method="dsgd_task").capabilities()
    assert not accepts(make_policy("dsgd_task"), mono, mono, 0, "backbone/image/cnn")
    assert accepts(make_policy("dsgd_task"), mono, mono, 0, "head/task")


def test_accepts_is_the_plan_seen_from_the_receiver(make_agent):
    """Every policy is symmetric: j accepts exactly what i's plan sends j."""
    types = ["I", "Im", "A", "IA", "IAT"]
    for method in ("parse", "parse_share_all", "dsgd_full", "dsgd_hybrid", "harmony"):
        caps = _caps(make_agent, types, method=method)
        policy = make_policy(method, AggregationConfig(harmony_switch=1))
        for clock in (0, 1):
            for i, j in itertools.permutations(caps, 2):
                sent = set(plan_exchange(policy, caps[i], {j: caps[j]}, clock).get(j, []))
                assert sent == {k for k in caps[j] if accepts(policy, caps[j], caps[i], clock, k)}
                assert sent == accepted(policy, caps[j], caps[i], clock)


def test_harmony_phase_from_the_shared_clock(make_agent):
    """Two agents given the same clock are in the same phase, whatever their own
    cycle counts; the phase switches at harmony_switch, not before."""
    agg = AggregationConfig(harmony_switch=3)
    a, b = make_agent("IA", method="harmony", aggregation=agg), make_agent("IA", method="harmony", agent_id=1, aggregation=agg)
    pa, pb = make_policy("harmony", agg), make_policy("harmony", agg)  # each agent's own instance
    for clock in range(6):
        assert pa.phase(clock) == pb.phase(clock) == (1 if clock < 3 else 2)
        sa = plan_exchange(pa, a.capabilities(), {1: b.capabilities()}, clock)[1]
        sb = plan_exchange(pb, b.capabilities(), {0: a.capabilities()}, clock)[0]
        assert set(sa) == set(sb)
        assert {k.split("/")[0] for k in sa} == ({"backbone"} if clock < 3 else {"fusion", "head"})
    # a receiver at clock 2 refuses a phase-2 branch; at clock 3 it takes it
    caps_a, caps_b = a.capabilities(), b.capabilities()
    assert not accepts(pa, caps_a, caps_b, 2, "head/task") and accepts(pa, caps_a, caps_b, 3, "head/task")
