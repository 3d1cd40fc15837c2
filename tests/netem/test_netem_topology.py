"""Topology generators, feasibility checks and time-varying topologies."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from netem.checks import check_network
from netem_helpers import build, send_at

from netem import ConfigError, EventLog, NetworkConfig


def _graph(topology, n, seed=0, base_dir=None):
    return build({"topology": topology}, n=n, seed=seed, base_dir=base_dir)[1].graph


def _degrees(g):
    return sorted({d for _, d in g.degree()})


@pytest.mark.parametrize(
    "topology,n,degrees",
    [
        ({"kind": "ring"}, 10, [2]),
        ({"kind": "chordal_ring", "chords": [3]}, 10, [4]),
        ({"kind": "chordal_ring", "chords": [2, 5]}, 10, [5]),  # chord n/2 joins opposite nodes once
        ({"kind": "k_regular", "degree": 3}, 20, [3]),
        ({"kind": "k_regular", "degree": 2}, 12, [2]),  # redrawn until it is one cycle
        ({"kind": "complete"}, 7, [6]),
        ({"kind": "grid", "rows": 3, "cols": 4}, 12, [2, 3, 4]),
        ({"kind": "grid", "periodic": True}, 16, [4]),
    ],
)
def test_regular_shapes(topology, n, degrees):
    g = _graph(topology, n)
    assert sorted(g.nodes()) == list(range(n))
    assert _degrees(g) == degrees
    assert nx.is_connected(g)


def test_random_generators_are_connected_and_seeded():
    for topo in (
        {"kind": "erdos_renyi", "p": 0.08},
        {"kind": "watts_strogatz", "k": 4, "p": 0.3},
        {"kind": "barabasi_albert", "m": 2},
    ):
        g = _graph(topo, 60, seed=1)
        assert nx.is_connected(g)
        assert sorted(g.edges()) == sorted(_graph(topo, 60, seed=1).edges())
        assert sorted(g.edges()) != sorted(_graph(topo, 60, seed=2).edges())
    assert _graph({"kind": "barabasi_albert", "m": 2}, 60).number_of_edges() == 2 * (60 - 2)
    assert _graph({"kind": "watts_strogatz", "k": 4, "p": 0.3}, 60).number_of_edges() == 120


def test_star_and_edge_list(tmp_path):
    g = _graph({"kind": "star", "center": 2}, 5)
    assert sorted(g.adj[2]) == [0, 1, 3, 4] and g.number_of_edges() == 4
    (tmp_path / "g.txt").write_text("# u v\n0 1\n1 2\n2 3 0.5\n")
    g = _graph({"kind": "edge_list", "path": "g.txt"}, 4, base_dir=tmp_path)
    assert sorted(g.edges()) == [(0, 1), (1, 2), (2, 3)]


def test_neighbors_are_sorted_lists():
    env, net, _ = build({"topology": {"kind": "chordal_ring", "chords": [3]}}, n=10)
    assert net.neighbors(0) == [1, 3, 7, 9]


@pytest.mark.parametrize(
    "topology,n,path,words",
    [
        ({"kind": "k_regular", "degree": 8}, 8, "topology.degree", "degree < n"),
        ({"kind": "k_regular", "degree": 3}, 7, "topology.degree", "even"),
        ({"kind": "k_regular", "degree": 1}, 6, "topology.degree", "never connected"),
        ({"kind": "watts_strogatz", "k": 3}, 10, "topology.k", "even"),
        ({"kind": "barabasi_albert", "m": 5}, 5, "topology.m", "< n"),
        ({"kind": "chordal_ring", "chords": [2, 12]}, 10, "topology.chords.1", "< n"),
        ({"kind": "grid", "rows": 3, "cols": 3}, 10, "topology.rows", "rows * cols"),
        ({"kind": "star", "center": 9}, 5, "topology.center", "does not exist"),
        ({"kind": "erdos_renyi", "p": 0.0}, 5, "topology.p", "connected"),
    ],
)
def test_check_rejects_impossible_topologies(topology, n, path, words):
    cfg = NetworkConfig.model_validate({"topology": topology})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, n_nodes=n)
    assert e.value.path == path and words in e.value.message
    assert str(e.value) == f"{path}: {e.value.message}"


def test_hopeless_connectivity_is_reported_with_the_threshold():
    cfg = NetworkConfig.model_validate({"topology": {"kind": "erdos_renyi", "p": 0.005, "max_tries": 20}})
    with pytest.raises(ConfigError) as e:
        build(cfg.model_dump(), n=200)
    assert e.value.path == "topology.p" and "ln(n)/n" in e.value.message


def test_disconnected_edge_list_is_rejected(tmp_path):
    (tmp_path / "g.txt").write_text("0 1\n2 3\n")
    cfg = NetworkConfig.model_validate({"topology": {"kind": "edge_list", "path": "g.txt"}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert e.value.path == "topology.path" and "disconnected" in e.value.message
    # Allowed when connectivity is not required.
    cfg = NetworkConfig.model_validate({"topology": {"kind": "edge_list", "path": "g.txt", "connected": False}})
    check_network(cfg, 4, base_dir=tmp_path)


def test_edge_list_errors_name_file_and_line(tmp_path):
    (tmp_path / "g.txt").write_text("0 1\n1 x\n")
    cfg = NetworkConfig.model_validate({"topology": {"kind": "edge_list", "path": "g.txt"}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert "g.txt:2" in e.value.message
    (tmp_path / "g.txt").write_text("0 1\n1 7\n")
    with pytest.raises(ConfigError, match="out of range"):
        check_network(cfg, 4, base_dir=tmp_path)


class GraphMirror:
    """Rebuilds the graph from on_topology diffs, to check observers see every change."""

    def __init__(self, g):
        self.g = g.copy()
        self.times = []

    def on_topology(self, t, added, removed, graph):
        self.times.append(t)
        self.g.remove_edges_from(removed)
        self.g.add_edges_from(added)
        assert sorted(self.g.edges()) == sorted((min(e), max(e)) for e in graph.edges())


def test_periodic_resampling_keeps_kind_and_tells_observers():
    doc = {"topology": {"kind": "k_regular", "degree": 4}, "dynamics": {"model": "resample", "period_s": 5}}
    env, net, _ = build(doc, n=30, seed=2, start=False)
    mirror = net.add_observer(GraphMirror(net.graph))
    first = sorted(net.graph.edges())
    net.start()
    env.run(until=26)
    assert mirror.times == [5.0, 10.0, 15.0, 20.0, 25.0]
    assert sorted(net.graph.edges()) != first
    assert _degrees(net.graph) == [4] and nx.is_connected(net.graph)


def test_resampling_a_fixed_shape_relabels_nodes():
    env, net, _ = build({"dynamics": {"model": "resample", "period_s": 1}}, n=12, seed=2)
    first = sorted(net.graph.edges())
    env.run(until=1.5)
    assert sorted(net.graph.edges()) != first and _degrees(net.graph) == [2] and nx.is_connected(net.graph)


def test_markov_edges_flip_within_the_base_graph():
    doc = {"topology": "complete", "dynamics": {"model": "markov", "p_off": 0.3, "p_on": 0.1, "period_s": 1}}
    env, net, _ = build(doc, n=12, seed=4, start=False)
    base = set(net.graph.edges())
    mirror = net.add_observer(GraphMirror(net.graph))
    net.start()
    counts = []

    def sample():
        while True:
            yield env.timeout(1.0)
            counts.append(net.graph.number_of_edges())

    env.process(sample())
    env.run(until=2000.5)
    assert set(mirror.g.edges()) <= base and len(mirror.times) > 100
    # Long-run share of edges up: p_on / (p_on + p_off) = 0.25.
    assert np.mean(counts[100:]) / len(base) == pytest.approx(0.25, rel=0.05)


def test_mobility_edges_follow_the_radius_and_link_quality_follows_distance():
    dyn = {
        "model": "mobility",
        "area_m": 500,
        "radius_m": 150,
        "speed_min_mps": 5,
        "speed_max_mps": 20,
        "step_s": 1,
        "latency_near_ms": 1,
        "latency_far_ms": 11,
        "bandwidth_near_mbps": 50,
        "bandwidth_far_mbps": 10,
    }
    env, net, log = build({"dynamics": dyn}, n=25, seed=6, start=False)
    checks = []

    class Check:
        def on_topology(self, t, added, removed, graph):
            pos = net.positions
            d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
            want = {(i, j) for i in range(25) for j in range(i + 1, 25) if d[i, j] <= 150}
            assert {(min(e), max(e)) for e in graph.edges()} == want
            checks.append(t)

    net.add_observer(Check())
    net.start()
    env.run(until=60.2)
    assert len(checks) > 10
    # A message over a current edge: latency and rate interpolate with distance.
    u, v = next(iter(net.graph.edges()))
    dist = float(np.linalg.norm(net.positions[u] - net.positions[v]))
    f = dist / 150
    lat = (1 + 10 * f) / 1000
    bps = (50 - 40 * f) * 1e6
    send_at(env, net, 60.3, u, v, 100_000)
    env.run(until=60.5)
    assert log.records[-1].delay == pytest.approx(100_000 * 8 / bps + lat, rel=1e-9)


def test_mobility_owns_the_topology():
    with pytest.raises(ValueError, match="mobility"):
        NetworkConfig.model_validate({"topology": "ring", "dynamics": "mobility"})


def test_in_flight_messages_can_be_dropped_when_their_link_goes():
    doc = {
        "topology": "complete",
        "link": {"bandwidth_mbps": 1},
        "dynamics": {"model": "markov", "p_off": 1.0, "p_on": 0.0, "period_s": 1, "inflight": "drop"},
    }
    env, net, log = build(doc, n=3)
    send_at(env, net, 0.5, 0, 1, 1_000_000)  # 8 s of serialization: still going at t=1
    send_at(env, net, 1.5, 0, 1, 10)  # after the edge is gone
    env.run(until=20)
    assert [(r.reason, r.t_done) for r in log.records] == [("link_down", 1.0), ("no_link", 1.5)]
    doc["dynamics"]["inflight"] = "complete"
    env, net, log = build(doc, n=3)
    send_at(env, net, 0.5, 0, 1, 1_000_000)
    env.run(until=20)
    assert log.records[0].status == "delivered"
