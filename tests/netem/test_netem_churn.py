"""Node churn: availability, offline policies, in-flight drops, late joiners, permanent failures."""

from __future__ import annotations

from collections import defaultdict

import pytest

from netem.checks import check_network
from netem_helpers import build, send_at

from netem import EventLog, NetworkConfig
from netem.churn import expected_availability

TRACE = """# node start_s end_s  (online sessions)
0 0 100
1 0 10
1 20 100
2 0 100
"""

LINK = {"latency": {"dist": "constant", "ms": 10}, "bandwidth_mbps": 8}  # 1 MB takes 1 s


def _trace_net(tmp_path, text=TRACE, **churn):
    (tmp_path / "avail.txt").write_text(text)
    doc = {"topology": "complete", "link": LINK, "churn": {"model": "trace", "file": "avail.txt", **churn}}
    env, net, log = build(doc, n=3, base_dir=tmp_path)
    events = net.add_observer(EventLog())
    return env, net, log, events


class Uptime:
    """Integrates each node's online time from on_node notifications."""

    def __init__(self, net):
        self.since = {v: (0.0 if net.is_online(v) else None) for v in range(net.n_nodes)}
        self.total = defaultdict(float)

    def on_node(self, node, online, t):
        if online:
            self.since[node] = t
        else:
            self.total[node] += t - self.since[node]
            self.since[node] = None

    def fractions(self, horizon):
        return [(self.total[v] + (horizon - s if s is not None else 0.0)) / horizon for v, s in self.since.items()]


@pytest.mark.parametrize(
    "online,offline",
    [
        ({"dist": "exponential", "mean_s": 10}, {"dist": "exponential", "mean_s": 5}),
        ({"dist": "weibull", "mean_s": 10, "shape": 0.7}, {"dist": "lognormal", "mean_s": 5, "sigma": 0.8}),
        ({"dist": "lognormal", "mean_s": 3, "sigma": 1.2}, {"dist": "weibull", "mean_s": 9, "shape": 2.0}),
    ],
)
def test_long_run_availability_matches_session_means(online, offline):
    doc = {"churn": {"model": "sessions", "online": online, "offline": offline}}
    env, net, _ = build(doc, n=20, seed=8, start=False)
    up = net.add_observer(Uptime(net))
    net.start()
    horizon = 20_000.0
    env.run(until=horizon)
    expected = expected_availability(NetworkConfig.model_validate(doc).churn)
    assert expected == online["mean_s"] / (online["mean_s"] + offline["mean_s"])
    frac = sum(up.fractions(horizon)) / 20
    assert frac == pytest.approx(expected, rel=0.02)


def test_stationary_start_matches_availability():
    doc = {"churn": {"model": "sessions", "start": "stationary", "online": {"mean_s": 30}, "offline": {"mean_s": 10}}}
    env, net, _ = build(doc, n=2000, seed=1)
    assert sum(net.is_online(v) for v in range(2000)) / 2000 == pytest.approx(0.75, abs=0.03)


def test_observers_see_every_availability_change(tmp_path):
    env, net, log, events = _trace_net(tmp_path)
    env.run()
    assert sorted(events.nodes) == [
        (10.0, 1, False),
        (20.0, 1, True),
        (100.0, 0, False),
        (100.0, 1, False),
        (100.0, 2, False),
    ]
    assert net.online_nodes() == []


def test_messages_to_an_offline_node_are_dropped(tmp_path):
    env, net, log, _ = _trace_net(tmp_path)
    send_at(env, net, 15.0, 0, 1, 1000)
    send_at(env, net, 15.0, 1, 0, 1000)  # an offline sender cannot send either
    env.run()
    assert [(r.status, r.reason, r.t_done) for r in log.records] == [("dropped", "offline", 15.0)] * 2


def test_hold_policy_delivers_when_the_node_returns(tmp_path):
    env, net, log, _ = _trace_net(tmp_path, offline_policy="hold")
    send_at(env, net, 15.0, 0, 1, 1_000_000)
    env.run()
    r = log.records[0]
    assert r.status == "delivered" and r.t_send == 15.0
    assert r.t_arrive == 20.0 + 0.0 + 1_000_000 * 8 / 8e6 + 0.01


def test_held_messages_are_dropped_when_the_sender_leaves(tmp_path):
    text = TRACE.replace("0 0 100", "0 0 18")
    env, net, log, _ = _trace_net(tmp_path, text=text, offline_policy="hold")
    send_at(env, net, 15.0, 0, 1, 1000)
    env.run()
    assert [(r.status, r.reason, r.t_done) for r in log.records] == [("dropped", "offline", 18.0)]


def test_hold_timeout(tmp_path):
    env, net, log, _ = _trace_net(tmp_path, offline_policy="hold", hold_timeout_s=2.0)
    send_at(env, net, 15.0, 0, 1, 1000)
    env.run()
    assert [(r.status, r.reason, r.t_done) for r in log.records] == [("dropped", "hold_timeout", 17.0)]


def test_in_flight_messages_are_dropped_when_an_endpoint_leaves(tmp_path):
    env, net, log, _ = _trace_net(tmp_path)
    send_at(env, net, 9.5, 0, 1, 1_000_000)  # would arrive at 10.51
    send_at(env, net, 9.5, 0, 1, 1_000)  # queued behind it
    send_at(env, net, 9.5, 0, 2, 1_000_000)  # unaffected
    send_at(env, net, 9.999, 1, 2, 1_000_000)  # sent by the node that leaves
    send_at(env, net, 20.5, 0, 1, 1_000_000)  # after the return the link is idle again
    env.run()
    got = [(r.src, r.dst, r.t_send, r.status, r.reason, r.t_done) for r in sorted(log.records, key=lambda r: r.msg_id)]
    assert got[:2] == [(0, 1, 9.5, "dropped", "offline", 10.0)] * 2
    assert got[2][3] == "delivered"
    assert got[3] == (1, 2, 9.999, "dropped", "offline", 10.0)
    assert got[4][3:] == ("delivered", None, 20.5 + 0.0 + 1.0 + 0.01)
    acct = net.accounting.totals()
    assert acct["bytes_dropped"] == 2_001_000 and acct["dropped"] == 3


def test_permanent_failures_never_return():
    doc = {
        "churn": {
            "model": "sessions",
            "online": {"dist": "exponential", "mean_s": 5},
            "offline": {"dist": "exponential", "mean_s": 5},
            "permanent_failure_p": 1.0,
        }
    }
    env, net, _ = build(doc, n=10, seed=3)
    events = net.add_observer(EventLog())
    env.run(until=1000)
    assert sorted(node for _, node, online in events.nodes if not online) == list(range(10))
    assert not any(online for _, _, online in events.nodes)


def test_late_joiners_start_offline_and_join_in_their_window():
    doc = {"churn": {"late_join": {"fraction": 0.3, "min_s": 5, "max_s": 15}}}
    env, net, _ = build(doc, n=10, seed=5, start=False)
    late = [v for v in range(10) if not net.is_online(v)]
    assert len(late) == 3
    events = net.add_observer(EventLog())
    net.start()
    env.run()
    assert sorted(node for _, node, _ in events.nodes) == late
    assert all(online and 5 <= t <= 15 for t, _, online in events.nodes)
    assert net.online_nodes() == list(range(10))


def test_trace_mapping_seeded_picks_labels(tmp_path):
    text = "\n".join(f"host{i} {i} {i + 50}" for i in range(10))
    (tmp_path / "a.txt").write_text(text)
    doc = {"churn": {"model": "trace", "file": "a.txt", "mapping": "seeded"}}
    env, net, _ = build(doc, n=4, base_dir=tmp_path, start=False)
    events = net.add_observer(EventLog())
    net.start()
    env.run()
    joins = sorted(t for t, _, online in events.nodes if online)
    assert len(joins) <= 4 and set(joins) <= set(range(10))


def test_trace_with_too_few_nodes_is_rejected(tmp_path):
    from netem import ConfigError

    (tmp_path / "a.txt").write_text("a 0 10\nb 0 10\n")
    cfg = NetworkConfig.model_validate({"churn": {"model": "trace", "file": "a.txt"}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, n_nodes=3, base_dir=tmp_path)
    assert e.value.path == "churn.file" and "2 nodes" in e.value.message


def test_dropped_transfer_frees_the_shared_uplink(tmp_path):
    (tmp_path / "avail.txt").write_text("0 0 100\n1 0 0.5\n2 0 100\n")
    doc = {
        "topology": "complete",
        "link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth_mbps": 100},
        "access": {"uplink_mbps": 10},
        "churn": {"model": "trace", "file": "avail.txt"},
    }
    env, net, log = build(doc, n=3, base_dir=tmp_path)
    send_at(env, net, 0.0, 0, 1, 1_250_000)  # 10 Mbit each, sharing 10 Mbit/s
    send_at(env, net, 0.0, 0, 2, 1_250_000)
    env.run()
    got = {r.dst: (r.status, r.t_done) for r in log.records}
    assert got[1] == ("dropped", 0.5)
    # 2.5 Mbit done by 0.5 s at 5 Mbit/s; the remaining 7.5 at the full 10 -> 1.25 s.
    assert got[2][0] == "delivered" and got[2][1] == pytest.approx(1.25, rel=1e-12)
