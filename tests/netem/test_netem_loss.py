"""Packet loss, Gilbert-Elliott bursts, outages and the two transports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from netem_helpers import build, send_at

from netem.loss import GilbertElliottChannel, n_packets


def _spaced(env, net, n, nbytes, gap=1.0, src=0, dst=1):
    for i in range(n):
        send_at(env, net, i * gap, src, dst, nbytes)


def test_packet_count():
    assert [n_packets(b, 1500) for b in (0, 1, 1500, 1501, 15000)] == [1, 1, 1, 2, 10]


@pytest.mark.parametrize("p,nbytes", [(0.02, 15_000), (0.005, 150_001)])
def test_bernoulli_message_loss_rate(p, nbytes):
    n = 20_000
    env, net, log = build({"loss": {"model": "bernoulli", "p_packet": p}}, n=2, seed=11)
    _spaced(env, net, n, nbytes)
    env.run()
    lost = sum(r.reason == "loss" for r in log.records)
    k = math.ceil(nbytes / 1500)
    q = 1 - (1 - p) ** k
    se = math.sqrt(q * (1 - q) / n)
    assert abs(lost / n - q) < 3 * se
    assert all(r.t_done == r.t_send + nbytes * 8 / 100e6 + 0.01 for r in log.records if r.status == "dropped")


def test_mtu_changes_the_packet_count():
    env, net, log = build({"loss": {"model": "bernoulli", "p_packet": 0.05, "mtu_bytes": 500}}, n=2, seed=1)
    _spaced(env, net, 20_000, 1500)  # 3 packets of 500 bytes
    env.run()
    q = 1 - 0.95**3
    rate = sum(r.status == "dropped" for r in log.records) / 20_000
    assert abs(rate - q) < 3 * math.sqrt(q * (1 - q) / 20_000)


def _runs(mask: np.ndarray) -> np.ndarray:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(padded)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def test_gilbert_elliott_burst_length_and_loss_rate():
    p_gb, p_bg = 0.02, 0.25
    ch = GilbertElliottChannel(p_gb, p_bg, 0.0, 1.0, np.random.default_rng(5))
    mask = np.concatenate([ch.sample(100_000) for _ in range(10)])
    assert _runs(mask).mean() == pytest.approx(1 / p_bg, rel=0.05)
    assert mask.mean() == pytest.approx(ch.stationary_loss, rel=0.05)
    # Counting without materialising the mask follows the same law.
    lost = sum(ch.lost(1000) for _ in range(1000))
    assert lost / 1e6 == pytest.approx(ch.stationary_loss, rel=0.05)


def test_gilbert_elliott_messages_lose_in_bursts():
    doc = {"loss": {"model": "gilbert_elliott", "p_gb": 0.01, "p_bg": 0.1}}
    env, net, log = build(doc, n=2, seed=4)
    _spaced(env, net, 60_000, 1500)  # one packet per message: message loss = packet loss
    env.run()
    mask = np.array([r.status == "dropped" for r in sorted(log.records, key=lambda r: r.msg_id)])
    assert mask.mean() == pytest.approx(0.01 / 0.11, rel=0.15)
    assert _runs(mask).mean() == pytest.approx(10, rel=0.15)  # ~550 bursts: SE about 4%


def _reliable_delays(p, n=5000, nbytes=15_000, timeout_ms=100, seed=3):
    doc = {
        "link": {"latency": {"dist": "constant", "ms": 10}, "bandwidth_mbps": 1e5},
        "loss": {"model": "bernoulli", "p_packet": p},
        "transport": {"mode": "reliable", "retry_timeout_ms": timeout_ms, "max_retries": 30},
    }
    env, net, log = build(doc, n=2, seed=seed)
    _spaced(env, net, n, nbytes, gap=10.0)  # far apart: no head-of-line effects
    env.run()
    return log, np.array([r.delay for r in log.records])


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_reliable_transport_turns_loss_into_the_expected_delay(p):
    log, d = _reliable_delays(p)
    assert all(r.status == "delivered" for r in log.records)
    k, timeout, pkt, bps = 10, 0.1, 1500 * 8, 1e11
    rounds = sum(1 - (1 - p**j) ** k for j in range(1, 200))  # E[retransmission rounds]
    resent = k * p / (1 - p)  # E[retransmitted packets]
    expected = 15_000 * 8 / bps + 0.010 + timeout * rounds + resent * pkt / bps
    assert abs(d.mean() - expected) < 3 * d.std() / math.sqrt(len(d))
    assert np.mean([r.retries for r in log.records]) == pytest.approx(rounds, rel=0.1)


def test_reliable_delay_grows_with_loss():
    assert _reliable_delays(0.01, n=2000)[1].mean() < _reliable_delays(0.1, n=2000)[1].mean()


def test_reliable_transport_gives_up_after_max_retries():
    doc = {
        "loss": {"model": "bernoulli", "p_packet": 0.9},
        "transport": {"mode": "reliable", "retry_timeout_ms": 50, "max_retries": 2},
    }
    env, net, log = build(doc, n=2, seed=2)
    _spaced(env, net, 300, 15_000)
    env.run()
    dropped = [r for r in log.records if r.status == "dropped"]
    assert dropped and all(r.reason == "retries" and r.retries == 2 for r in dropped)


def test_reliable_transport_delivers_in_order_per_link():
    doc = {
        "link": {"latency": {"dist": "uniform", "low_ms": 1, "high_ms": 50}},
        "loss": {"model": "bernoulli", "p_packet": 0.1},
        "transport": {"mode": "reliable"},
    }
    env, net, log = build(doc, n=2, seed=9)
    _spaced(env, net, 2000, 3000, gap=0.001)
    env.run()
    arrivals = [r.t_arrive for r in sorted(log.records, key=lambda r: r.msg_id)]
    assert arrivals == sorted(arrivals)


def test_datagram_latency_jitter_may_reorder():
    doc = {"link": {"latency": {"dist": "uniform", "low_ms": 1, "high_ms": 50}}}
    env, net, log = build(doc, n=2, seed=9)
    _spaced(env, net, 200, 100, gap=0.001)
    env.run()
    arrivals = [r.t_arrive for r in sorted(log.records, key=lambda r: r.msg_id)]
    assert arrivals != sorted(arrivals)


def _outage_doc(mode):
    return {
        "link": {"latency": {"dist": "constant", "ms": 10}, "bandwidth_mbps": 8},
        "loss": {"outages": [{"src": 0, "dst": 1, "start_s": 1.0, "end_s": 2.0}]},
        "transport": {"mode": mode, "retry_timeout_ms": 200},
    }


def test_outage_drops_datagrams():
    env, net, log = build(_outage_doc("datagram"), n=3)
    for t in (0.5, 0.995, 1.5, 2.5):
        send_at(env, net, t, 0, 1, 10_000)  # 10 ms serialization + 10 ms latency
    send_at(env, net, 1.5, 1, 0, 10_000)  # both directions by default
    send_at(env, net, 1.5, 1, 2, 10_000)  # other links unaffected
    env.run()
    got = {(r.src, r.dst, r.t_send): (r.status, r.reason, r.t_done) for r in log.records}
    assert got[(0, 1, 0.5)][0] == "delivered"
    assert got[(0, 1, 0.995)] == ("dropped", "outage", 1.0)  # in flight when the link went down
    assert got[(0, 1, 1.5)] == ("dropped", "outage", 1.5)
    assert got[(0, 1, 2.5)][0] == "delivered"
    assert got[(1, 0, 1.5)][1] == "outage"
    assert got[(1, 2, 1.5)][0] == "delivered"


def test_outage_delays_reliable_messages_until_the_link_is_back():
    env, net, log = build(_outage_doc("reliable"), n=3)
    send_at(env, net, 1.5, 0, 1, 10_000)
    env.run()
    r = log.records[0]
    # Fails at 1.5, retries every 200 ms: 1.7, 1.9 are down, 2.1 goes through.
    assert r.status == "delivered" and r.retries == 3
    assert r.t_arrive == pytest.approx(2.1 + 0.01 + 0.01)


def test_gilbert_elliott_long_messages_are_vectorised_and_exact_in_law():
    ch = GilbertElliottChannel(0.3, 0.2, 0.0, 1.0, np.random.default_rng(8))
    good, bad = ch.occupancy(2_000_000)
    assert good + bad == 2_000_000
    assert bad / 2e6 == pytest.approx(0.3 / 0.5, rel=0.01)
