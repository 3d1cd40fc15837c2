"""Link physics: exact arithmetic of one link, FIFO queueing, shared access links, traces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from netem_helpers import build, send_at

# A general-path variant of the same physics: a late joiner (node 3, unused)
# turns on churn handling, in-flight tracking and timers, which must not
# change any time.
PATHS = {
    "fast": {},
    "general": {"churn": {"late_join": {"nodes": [3], "min_s": 50, "max_s": 50}}},
}


@pytest.mark.parametrize("path", list(PATHS))
def test_one_message_is_exact(path):
    doc = {"link": {"latency": {"dist": "constant", "ms": 7}, "bandwidth_mbps": 40}, **PATHS[path]}
    env, net, log = build(doc, n=4)
    assert net._fast == (path == "fast")
    t_send, nbytes = 1.3, 123_457
    seen = []

    def proc():
        yield env.timeout(t_send)
        rec = yield net.send(0, 1, nbytes, "model")
        seen.append((env.now, rec))

    env.process(proc())
    env.run()
    now, rec = seen[0]
    expected = t_send + 0.0 + nbytes * 8 / (40 * 1e6) + 7 / 1000
    assert rec.t_arrive == expected and now == expected
    assert rec.status == "delivered" and rec.reason is None and rec.t_done == expected
    assert rec.t_send == t_send and rec.delay == expected - t_send


@pytest.mark.parametrize("path", list(PATHS))
def test_back_to_back_messages_queue_fifo_exactly(path):
    lat, mbps = 0.005, 10
    doc = {"link": {"latency": {"dist": "constant", "ms": 5}, "bandwidth_mbps": mbps}, **PATHS[path]}
    env, net, log = build(doc, n=4)
    plan = [(0.0, 500_000), (0.0, 20_000), (0.1, 1_000_000), (2.0, 1_000)]  # (send time, bytes)
    for t, b in plan:
        send_at(env, net, t, 0, 1, b)
    # An unrelated link is not affected by the queue on 0->1.
    send_at(env, net, 0.0, 1, 0, 1_000)
    env.run()
    recs = {(r.src, r.msg_id): r for r in log.records}
    free = 0.0
    expected = []
    for t, b in plan:
        wait = max(0.0, free - t)
        done = t + wait + b * 8 / (mbps * 1e6)
        free = done
        expected.append(done + lat)
    got = sorted((r.msg_id, r.t_arrive) for r in log.records if r.src == 0)
    assert [a for _, a in got] == expected
    other = [r for (s, _), r in recs.items() if s == 1][0]
    assert other.t_arrive == 0.0 + 0.0 + 1_000 * 8 / (mbps * 1e6) + lat


def _star_uplink(n_dst: int, uplink=10, link=100, nbytes=1_250_000):
    doc = {
        "topology": {"kind": "star"},
        "link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth_mbps": link},
        "access": {"uplink_mbps": uplink},
    }
    env, net, log = build(doc, n=5)
    for d in range(1, n_dst + 1):
        send_at(env, net, 0.0, 0, d, nbytes)
    env.run()
    return [r.t_arrive for r in log.records]


def test_shared_uplink_divides_its_capacity():
    one = _star_uplink(1)
    four = _star_uplink(4)
    assert one == [pytest.approx(1.0, rel=1e-12)]  # 10 Mbit over a 10 Mbit/s uplink
    assert four == [pytest.approx(4.0, rel=1e-12)] * 4  # four flows at 2.5 Mbit/s each


def test_link_rate_caps_a_flow_below_its_fair_share():
    # Uplink 100 shared by 4 flows would give 25 each, but each link carries only 10.
    assert _star_uplink(4, uplink=100, link=10) == [pytest.approx(1.0, rel=1e-12)] * 4


def test_shared_downlink_and_max_min_reallocation():
    doc = {
        "topology": {"kind": "star"},
        "link": {"latency": {"dist": "constant", "ms": 1}, "bandwidth_mbps": 100},
        "access": {"downlink_mbps": 10},
    }
    env, net, log = build(doc, n=3)
    send_at(env, net, 0.0, 1, 0, 125_000)  # 1 Mbit
    send_at(env, net, 0.0, 2, 0, 375_000)  # 3 Mbit
    env.run()
    t = {r.src: r.t_arrive for r in log.records}
    # Both at 5 Mbit/s until the small one ends at 0.2 s; the big one then gets 10.
    assert t[1] == pytest.approx(0.2 + 0.001, rel=1e-9)
    assert t[2] == pytest.approx(0.4 + 0.001, rel=1e-9)


def test_access_fifo_per_link_under_sharing():
    doc = {
        "topology": {"kind": "complete"},
        "link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth_mbps": 100},
        "access": {"uplink_mbps": [10, 100, 100]},
    }
    env, net, log = build(doc, n=3)
    send_at(env, net, 0.0, 0, 1, 1_250_000)  # 10 Mbit, alone on the uplink -> 1 s
    send_at(env, net, 0.0, 0, 1, 1_250_000)  # queued behind it on the same link -> 2 s
    env.run()
    assert sorted(r.t_arrive for r in log.records) == [pytest.approx(1.0), pytest.approx(2.0)]


def _trace_file(tmp_path, text="0 10\n1 20\n"):
    p = tmp_path / "step.tsv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("shared", [False, True], ids=["arithmetic", "fluid"])
def test_trace_transfer_across_a_rate_step(tmp_path, shared):
    _trace_file(tmp_path)
    doc = {
        "topology": {"kind": "complete"},
        "link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth": {"trace": "step.tsv", "offset_s": 0}},
    }
    if shared:
        doc["access"] = {"uplink_mbps": 1000}
    env, net, log = build(doc, n=3, base_dir=tmp_path)
    # 10 Mbit/s in [0,1), 20 Mbit/s in [1,2), period 2 s (last sample lasts the mean spacing).
    send_at(env, net, 0.5, 0, 1, 15_000_000 // 8)  # 5 Mbit by t=1, 10 Mbit more at 20 -> 1.5
    send_at(env, net, 0.0, 1, 2, 45_000_000 // 8)  # 10 + 20 + 10 by t=3, 5 more at 20 -> 3.25 (loops)
    env.run()
    t = {r.src: r.t_arrive for r in log.records}
    assert t[0] == pytest.approx(1.5, rel=1e-12)
    assert t[1] == pytest.approx(3.25, rel=1e-12)


def test_trace_loops_and_integrates(tmp_path):
    from netem.tracefiles import load_bandwidth_trace

    tr = load_bandwidth_trace(_trace_file(tmp_path, "# t  Mbit/s\n0 10\n1 0\n2 30\n"))
    assert tr.period == 3.0 and tr.bits_per_period == 40e6
    assert tr.rate_at(1.5) == 0.0 and tr.rate_at(3.5) == 10e6 and tr.rate_at(-0.5) == 30e6
    assert tr.finish_time(0.0, 10e6) == 1.0  # ends exactly as the rate drops to 0
    assert tr.finish_time(0.5, 10e6) == pytest.approx(2 + 5 / 30)  # waits through the zero segment
    assert tr.finish_time(0.0, 80e6) == pytest.approx(6.0)  # two whole periods
    assert tr.finish_time(0.0, 90e6) == pytest.approx(7.0)
    assert tr.bits_between(0.0, 7.0) == pytest.approx(90e6)
    assert tr.next_change(0.2) == 1.0 and tr.next_change(2.5) == 3.0
    for t0, bits in [(0.3, 1e6), (1.2, 55e6), (2.9, 123e6)]:
        assert tr.bits_between(t0, tr.finish_time(t0, bits)) == pytest.approx(bits)


def test_random_trace_offsets_differ_per_link_and_stay_put():
    doc = {"topology": {"kind": "complete"}, "link": {"bandwidth": {"trace": "norway-3g-bus"}}}
    env, net, log = build(doc, n=4)
    offs = {(u, v): net._link(u, v).offset for u in range(4) for v in range(4) if u != v}
    assert len(set(offs.values())) == len(offs)
    env2, net2, _ = build(doc, n=4)
    assert offs == {(u, v): net2._link(u, v).offset for (u, v) in offs}


@pytest.mark.parametrize(
    "lat",
    [
        {"dist": "normal", "mean_ms": 2, "std_ms": 5},
        {"dist": "lognormal", "mean_ms": 20, "std_ms": 10},
        {"dist": "uniform", "low_ms": 3, "high_ms": 9},
    ],
)
def test_latency_distributions_are_never_negative_and_have_their_mean(lat):
    doc = {"topology": {"kind": "complete"}, "link": {"latency": lat, "bandwidth_mbps": 1e6}}
    env, net, log = build(doc, n=2)
    for i in range(4000):
        send_at(env, net, i * 1.0, 0, 1, 0)
    env.run()
    d = np.array([r.delay for r in log.records])
    assert (d >= 0).all()
    if lat["dist"] == "normal":  # N(2, 5) ms redrawn below 0: mean 2 + 5 phi(0.4) / Phi(0.4) = 4.809 ms
        phi, Phi = math.exp(-0.08) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(0.4 / math.sqrt(2)))
        assert d.mean() == pytest.approx((2 + 5 * phi / Phi) / 1000, rel=0.03)
    if lat["dist"] == "lognormal":
        assert d.mean() == pytest.approx(0.020, rel=0.03)
        assert d.std() == pytest.approx(0.010, rel=0.08)
    if lat["dist"] == "uniform":
        assert d.min() >= 0.003 and d.max() <= 0.009
        assert d.mean() == pytest.approx(0.006, rel=0.02)


def test_per_link_latency_is_fixed_and_symmetric():
    doc = {
        "topology": {"kind": "complete"},
        "link": {"latency": {"dist": "uniform", "low_ms": 1, "high_ms": 100, "per": "link"}, "bandwidth_mbps": 1e6},
    }
    env, net, log = build(doc, n=5)
    for i in range(5):
        for u, v in [(0, 1), (1, 0), (2, 3)]:
            send_at(env, net, i * 1.0, u, v, 0)
    env.run()
    by = {}
    for r in log.records:
        by.setdefault((r.src, r.dst), set()).add(round(r.delay, 12))
    assert all(len(s) == 1 for s in by.values())
    assert by[(0, 1)] == by[(1, 0)] != by[(2, 3)]


def test_measured_latency_matrix_gives_half_the_round_trip():
    from netem.tracefiles import TRACE_DIR, load_latency_matrix

    doc = {
        "topology": {"kind": "complete"},
        "link": {"latency": {"dist": "trace", "mapping": "ordered", "jitter": False}, "bandwidth_mbps": 1e7},
    }
    env, net, log = build(doc, n=3)
    send_at(env, net, 0.0, 0, 1, 0)
    send_at(env, net, 0.0, 2, 0, 0)
    env.run()
    m = load_latency_matrix(TRACE_DIR / "latency/wonderproxy-excerpt-pings.csv")
    hosts = m.complete_hosts()
    for r in log.records:
        _, avg, _ = m.rtt_ms(hosts[r.src], hosts[r.dst])
        assert r.delay == pytest.approx(avg / 2000)


def test_measured_latency_jitter_respects_the_floor():
    doc = {"topology": {"kind": "complete"}, "link": {"latency": {"dist": "trace"}, "bandwidth_mbps": 1e7}}
    env, net, log = build(doc, n=6, seed=3)
    for i in range(300):
        send_at(env, net, float(i), i % 6, (i + 1) % 6, 0)
    env.run()
    model = net._latency
    for r in log.records:
        mean, std, floor = model.one_way(r.src, r.dst)
        assert r.delay >= floor - 1e-12
        assert abs(r.delay - mean) < 10 * std + 1e-9


def test_zero_byte_message_takes_just_the_latency():
    env, net, log = build({}, n=3)
    send_at(env, net, 0.25, 0, 1, 0)
    env.run()
    assert log.records[0].t_arrive == 0.25 + 0.0 + 0 * 8 / 100e6 + 0.01


def test_send_rejects_bad_endpoints():
    env, net, _ = build({}, n=3)
    with pytest.raises(ValueError):
        net.send(0, 0, 10, "x")
    with pytest.raises(ValueError):
        net.send(0, 3, 10, "x")
    with pytest.raises(ValueError):
        net.send(0, 1, -1, "x")


def test_non_neighbors_are_dropped_or_allowed():
    env, net, log = build({}, n=6)
    send_at(env, net, 1.0, 0, 3, 100)
    env.run()
    r = log.records[0]
    assert (r.status, r.reason, r.t_done) == ("dropped", "no_link", 1.0)
    env, net, log = build({"non_neighbor": "allow"}, n=6)
    send_at(env, net, 1.0, 0, 3, 100)
    env.run()
    assert log.records[0].status == "delivered"
    assert not math.isnan(log.records[0].t_arrive)
