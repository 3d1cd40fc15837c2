"""Paired seeds: the same seed gives every method the same data (partition, modality
assignment, held-out sets) and the same network timeline (churn sessions, stragglers,
transient slowdowns), so a method comparison pairs runs by seed (studies/compare.py)."""

from __future__ import annotations

import json

import numpy as np

from parse_actors.engine import run_scenario
from parse_actors.engine.coordinator import build_data
from parse_actors.scenario import build_scenario

DOC = {
    "name": "paired", "seed": 3,
    "agents": {"groups": [{"modalities": ["image"], "count": 2}, {"modalities": ["audio"], "count": 2},
                          {"modalities": ["image", "audio"], "count": 2}]},
    "data": {"name": "synthetic", "synthetic": {"n_samples": 1200}, "global_val_size": 100,
             "partition": {"kind": "dirichlet", "alpha": 0.5}, "missing_modality_rate": 0.3},
    "train": {"local_steps": 2, "batch_size": 16},
    "protocol": {"rounds": 6},
    "network": {"topology": {"kind": "ring"},
                "churn": {"model": "sessions", "online": {"dist": "exponential", "mean_s": 0.02},
                          "offline": {"dist": "exponential", "mean_s": 0.01}},
                "stragglers": {"model": "fraction", "fraction": 0.34, "slowdown": 3.0,
                               "transient": {"mean_interval_s": 0.01, "mean_duration_s": 0.005}}},
    "engine": {"backend": "inline", "hosts": 1},
    "output": {"plots": False, "final_weights_max_mb": 0},
}


def scenario(method: str, seed: int = 3):
    return build_scenario({**DOC, "method": method, "seed": seed}, "paired.yaml")


def test_same_seed_same_data_for_every_method():
    a, b = build_data(scenario("parse")), build_data(scenario("dsgd_full"))
    other = build_data(scenario("parse", seed=4))
    for x, y in ((a.global_test, b.global_test), (a.global_val, b.global_val)):
        np.testing.assert_array_equal(x.y, y.y)
        for m in x.x:
            np.testing.assert_array_equal(x.x[m], y.x[m])
    assert a.info["partition"]["label_histograms"] == b.info["partition"]["label_histograms"]
    for p, q in zip(a.agents, b.agents):
        assert p.extra == q.extra  # modality assignment
        for split in ("train", "test", "val"):
            s, t = getattr(p, split), getattr(q, split)
            np.testing.assert_array_equal(s.y, t.y)
            for m in s.x:
                np.testing.assert_array_equal(s.x[m], t.x[m])
        if p.train.present is not None:  # the same samples miss the same modality
            for m in p.train.present:
                np.testing.assert_array_equal(p.train.present[m], q.train.present[m])
    # and the seed does move them (the check above could not pass by accident)
    assert a.info["partition"]["label_histograms"] != other.info["partition"]["label_histograms"]


class _Speeds:
    """Observer of netem speed changes (transient slowdowns), registered after round 0."""

    def __init__(self):
        self.since = None
        self.changes: list = []

    def on_speed(self, node, speed, t):
        self.changes.append((t, node, speed))


def _timeline(method: str, out):
    """(node on/off events, persistent speeds, speed changes seen, when watching began, end time)."""
    seen: dict = {}
    watch = _Speeds()

    def hook(sim, rnd):
        if "base" not in seen:
            seen["base"] = sim.net._stragglers.base.tolist()
            watch.since = sim.env.now
            sim.net.add_observer(watch)

    summary, _ = run_scenario(scenario(method), out, backend="inline", hooks=[hook])
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    nodes = [(e["t"], e["agent"], e["online"]) for e in events if e.get("event") == "node"]
    return nodes, seen["base"], watch, summary["virtual_time_s"]


def test_same_seed_same_network_timeline_for_every_method(tmp_path):
    n1, base1, w1, end1 = _timeline("parse", tmp_path / "parse")
    n2, base2, w2, end2 = _timeline("local", tmp_path / "local")  # sends nothing: other traffic, same network
    assert base1 == base2 and sorted(base1) != [1.0] * len(base1)  # the same stragglers, and there are some
    horizon = min(end1, end2)
    common1 = [e for e in n1 if e[0] <= horizon]
    common2 = [e for e in n2 if e[0] <= horizon]
    assert len(common1) >= 4  # churn happened inside the runs
    assert common1 == common2
    lo = max(w1.since, w2.since)
    s1 = [c for c in w1.changes if lo < c[0] <= horizon]
    s2 = [c for c in w2.changes if lo < c[0] <= horizon]
    assert len(s1) >= 2 and s1 == s2  # transient slowdowns: same nodes, same times, same speeds
