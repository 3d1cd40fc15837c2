"""Per-branch gossip averaging: weights, consensus on the holders' mean, staleness.

The gossip rounds here use `exchange.plan_exchange` / `degrees` and check every
branch on receipt (`Incoming.caps`), as runs do."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from parse_actors.agents import AggregationConfig, Incoming, make_policy, mixing_weights
from parse_actors.agents.exchange import degrees, plan_exchange

TYPES_ON_GRAPH = ["I", "A", "IA", "IAT", "Im", "IA", "I"]
# ring 0..6 plus chords: connected, every branch subgraph has a few components
EDGES = [(i, (i + 1) % 7) for i in range(7)] + [(0, 3), (2, 5)]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 20),
    st.lists(st.integers(0, 20), max_size=12),
    st.sampled_from(["metropolis", "uniform"]),
)
def test_weights_nonnegative_sum_to_one(my_deg, sender_degs, scheme):
    self_w, ws = mixing_weights(my_deg, sender_degs, scheme)
    assert len(ws) == len(sender_degs)
    assert self_w >= -1e-12 and all(w >= 0 for w in ws)
    assert abs(self_w + sum(ws) - 1.0) < 1e-12


def test_metropolis_values():
    self_w, ws = mixing_weights(2, [1, 3])
    assert ws == [1 / 3, 1 / 4] and abs(self_w - (1 - 1 / 3 - 1 / 4)) < 1e-15
    assert mixing_weights(0, []) == (1.0, [])
    assert mixing_weights(2, [5, 5], "uniform") == (1 / 3, [1 / 3, 1 / 3])


def _neighbors():
    nb = {i: set() for i in range(len(TYPES_ON_GRAPH))}
    for a, b in EDGES:
        nb[a].add(b)
        nb[b].add(a)
    return nb


def _gossip_round(agents, nb, rnd, method="parse"):
    policy = make_policy(method)
    caps = {i: a.capabilities() for i, a in agents.items()}
    plans = {i: plan_exchange(policy, caps[i], {j: caps[j] for j in nb[i]}, rnd) for i in agents}
    deg = {i: degrees(plans[i]) for i in agents}
    inbox = {i: [] for i in agents}
    for i, a in agents.items():
        for j, keys in plans[i].items():
            inbox[j].append(Incoming(sender=i, round=rnd, branches=a.export(keys), degree=deg[i]))
    return [agents[i].aggregate(inbox[i], deg[i], rnd) for i in agents]


def _components(agents, nb, key, method="parse"):
    """Connected components of the subgraph of agents that exchange `key`."""
    policy = make_policy(method)
    holders = {i for i, a in agents.items() if key in a.capabilities()}

    def exchanges(u, v):
        plan = plan_exchange(policy, agents[u].capabilities(), {v: agents[v].capabilities()}, 0)
        return key in plan.get(v, [])

    comps, seen = [], set()
    for s in sorted(holders):
        if s in seen:
            continue
        comp, stack = set(), [s]
        while stack:
            u = stack.pop()
            if u in comp:
                continue
            comp.add(u)
            stack += [v for v in nb[u] if v in holders and exchanges(u, v)]
        seen |= comp
        comps.append(sorted(comp))
    return comps


def _flat(agent, key):
    return torch.cat([t.reshape(-1) for t in agent.export([key])[key].values()]).double()


def _run(make_agent, scheme, rounds, method="parse"):
    agents = {
        i: make_agent(t, method=method, seed=100 + i, agent_id=i, aggregation=AggregationConfig(weights=scheme))
        for i, t in enumerate(TYPES_ON_GRAPH)
    }
    nb = _neighbors()
    keys = sorted({k for a in agents.values() for k in a.capabilities()})
    start = {(i, k): _flat(a, k) for i, a in agents.items() for k in a.capabilities()}
    comps = {k: _components(agents, nb, k, method) for k in keys}
    for r in range(rounds):
        stats = _gossip_round(agents, nb, r, method)
        assert all(s["stale_ignored"] == s["mismatched_ignored"] == 0 for s in stats)
    return agents, keys, start, comps


@pytest.mark.parametrize("method", ["parse", "parse_share_all"])
def test_metropolis_gossip_reaches_holders_mean(make_agent, method):
    agents, keys, start, comps = _run(make_agent, "metropolis", 250, method)
    assert any(len(c) >= 3 for cs in comps.values() for c in cs)
    for k in keys:
        for comp in comps[k]:
            target = torch.stack([start[(i, k)] for i in comp]).mean(0)
            for i in comp:
                err = (_flat(agents[i], k) - target).abs().max().item()
                assert err < 1e-5, (k, comp, i, err)


def test_uniform_gossip_reaches_consensus(make_agent):
    agents, keys, _, comps = _run(make_agent, "uniform", 250)
    for k in keys:
        for comp in comps[k]:
            ref = _flat(agents[comp[0]], k)
            for i in comp[1:]:
                assert (_flat(agents[i], k) - ref).abs().max().item() < 1e-5


def test_staleness_and_freshest_entry(make_agent):
    a = make_agent("I", seed=1, aggregation=AggregationConfig(staleness=2))
    b = make_agent("I", seed=2)
    keys = ["head/red"]
    before = _flat(a, "head/red")
    old = Incoming(sender=1, round=7, branches=b.export(keys), degree={"head/red": 1})
    stats = a.aggregate([old], {"head/red": 1}, round=10)
    assert stats["stale_ignored"] == 1 and stats["branches_merged"] == 0
    assert torch.equal(_flat(a, "head/red"), before)
    # round - staleness is still fresh; of two entries from one sender the newer wins
    newer = b.export(keys)
    for t in newer["head/red"].values():
        t.fill_(1.0)
    stats = a.aggregate(
        [Incoming(1, 9, newer, {"head/red": 1}), Incoming(1, 8, b.export(keys), {"head/red": 1})],
        {"head/red": 1},
        round=10,
    )
    assert stats["branches_merged"] == 1 and stats["entries_merged"] == 1
    assert torch.allclose(_flat(a, "head/red"), 0.5 * before + 0.5)


def test_unknown_and_mismatched_entries_ignored(make_agent):
    a = make_agent("I", seed=1)
    b = make_agent("A", seed=2)
    bad = a.export(["head/red"])
    bad["head/red"]["weight"] = torch.zeros(3, 3)
    stats = a.aggregate(
        [Incoming(1, 0, b.export(["backbone/audio/conv1d"]), {}), Incoming(2, 0, bad, {})], {}, round=0
    )
    assert stats["unknown_ignored"] == 1 and stats["mismatched_ignored"] == 1 and stats["branches_merged"] == 0


def test_merge_is_order_independent(make_agent):
    outs = []
    for order in ([1, 2, 3], [3, 1, 2]):
        a = make_agent("IA", seed=0)
        senders = {s: make_agent("IA", seed=s) for s in (1, 2, 3)}
        keys = sorted(a.capabilities())
        inc = [Incoming(s, 0, senders[s].export(keys), {k: 3 for k in keys}) for s in order]
        a.aggregate(inc, {k: 3 for k in keys}, 0)
        outs.append(a.export(keys))
    for k in outs[0]:
        for n in outs[0][k]:
            assert torch.equal(outs[0][k][n], outs[1][k][n])
