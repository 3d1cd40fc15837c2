"""Compute speeds: fraction, list, distribution and transient slowdowns."""

from __future__ import annotations

import numpy as np
import pytest
from netem_helpers import build

from netem import EventLog


def test_fraction_of_nodes_is_k_times_slower():
    env, net, _ = build({"stragglers": {"model": "fraction", "fraction": 0.25, "slowdown": 4}}, n=20)
    speeds = [net.speed(v) for v in range(20)]
    assert sorted(speeds) == [0.25] * 5 + [1.0] * 15
    slow = speeds.index(0.25)
    assert net.compute_time(slow, 2.0) == 8.0 and net.compute_time(speeds.index(1.0), 2.0) == 2.0


def test_explicit_speed_list():
    env, net, _ = build({"stragglers": {"model": "list", "speeds": [1, 0.5, 2, 1]}}, n=4)
    assert [net.compute_time(v, 1.0) for v in range(4)] == [1.0, 2.0, 0.5, 1.0]


def test_speed_distributions():
    env, net, _ = build({"stragglers": {"model": "dist", "speed": {"dist": "uniform", "low": 0.5, "high": 1.0}}}, n=500)
    s = np.array([net.speed(v) for v in range(500)])
    assert s.min() >= 0.5 and s.max() <= 1.0
    doc = {"stragglers": {"model": "dist", "speed": {"dist": "lognormal", "mean": 2.0, "sigma": 0.3}}}
    env, net, _ = build(doc, n=4000)
    assert np.mean([net.speed(v) for v in range(4000)]) == pytest.approx(2.0, rel=0.03)


def test_no_stragglers_by_default():
    env, net, _ = build({}, n=3)
    assert [net.compute_time(v, 1.5) for v in range(3)] == [1.5] * 3


def test_transient_slowdowns_come_and_go():
    tr = {"mean_interval_s": 30, "mean_duration_s": 10, "slowdown": 5}
    env, net, _ = build({"stragglers": {"model": "list", "speeds": [1, 0.5], "transient": tr}}, n=2, start=False)
    events = net.add_observer(EventLog())
    net.start()
    slow_time = {0: 0.0, 1: 0.0}
    last = {0: None, 1: None}

    class Track:
        def on_speed(self, node, speed, t):
            base = [1, 0.5][node]
            if speed < base:
                last[node] = t
            else:
                slow_time[node] += t - last[node]
                assert net.speed(node) == base

    net.add_observer(Track())
    env.run(until=20_000)
    assert {s for _, n, s in events.speeds if n == 1} == {0.5, 0.1}
    # Long-run share of time slowed: 10 / (30 + 10).
    assert slow_time[0] / 20_000 == pytest.approx(0.25, abs=0.03)
