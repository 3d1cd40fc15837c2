"""Same seed, same events; named streams keep components independent."""

from __future__ import annotations

import numpy as np
from netem_helpers import build

from netem import EventLog

RICH = {
    "topology": {"kind": "erdos_renyi", "p": 0.3},
    "link": {"latency": {"dist": "lognormal", "mean_ms": 20, "std_ms": 8}, "bandwidth": {"trace": "norway-3g-car"}},
    "access": {"uplink_mbps": 5, "downlink_mbps": 8},
    "loss": {"model": "bernoulli", "p_packet": 0.01},
    "transport": {"mode": "reliable", "retry_timeout_ms": 100, "max_retries": 3},
    "churn": {
        "model": "sessions",
        "online": {"dist": "weibull", "mean_s": 40},
        "offline": {"mean_s": 10},
        "offline_policy": "hold",
    },
    "stragglers": {"model": "fraction", "fraction": 0.25, "transient": {"mean_interval_s": 20, "mean_duration_s": 5}},
    "dynamics": {"model": "markov", "p_off": 0.2, "p_on": 0.5, "period_s": 5},
}


def run(doc, seed, n=12, horizon=300.0):
    env, net, log = build(doc, n=n, seed=seed, start=False)
    events = net.add_observer(EventLog())
    net.start()
    rng = np.random.default_rng(99)  # the traffic itself is fixed

    def traffic():
        while env.now < horizon - 20:
            yield env.timeout(float(rng.exponential(0.05)))
            src = int(rng.integers(n))
            nbrs = net.neighbors(src)
            if nbrs:
                net.send(src, nbrs[int(rng.integers(len(nbrs)))], int(rng.integers(1, 200_000)), "t")

    env.process(traffic())
    env.run(until=horizon)
    recs = [r.as_dict() for r in log.records]
    return recs, events, net


def test_same_seed_same_event_sequence():
    a, ea, na = run(RICH, seed=5)
    b, eb, nb = run(RICH, seed=5)
    assert len(a) > 1000 and a == b
    assert (ea.nodes, ea.topology, ea.speeds) == (eb.nodes, eb.topology, eb.speeds)
    assert na.accounting.rows() == nb.accounting.rows()
    reasons = {r["reason"] for r in a}
    assert {None, "offline"} <= reasons


def test_different_seed_differs():
    a, ea, _ = run(RICH, seed=5)
    b, eb, _ = run(RICH, seed=6)
    assert a != b and ea.nodes != eb.nodes


def test_adding_a_component_does_not_shift_the_others():
    base = {
        "topology": {"kind": "erdos_renyi", "p": 0.3},
        "link": {"latency": {"dist": "normal", "mean_ms": 20, "std_ms": 5}},
    }
    plain, _, n1 = run(base, seed=3, horizon=60)
    slow, _, n2 = run({**base, "stragglers": {"model": "dist"}}, seed=3, horizon=60)
    assert sorted(n1.graph.edges()) == sorted(n2.graph.edges())
    assert plain == slow
    # Churn on top changes who is online, not the topology or the latency draws of the first message.
    churn, _, n3 = run({**base, "churn": {"model": "sessions"}}, seed=3, horizon=60)
    assert sorted(n1.graph.edges()) == sorted(n3.graph.edges())
    assert churn[0]["t_arrive"] == plain[0]["t_arrive"]
