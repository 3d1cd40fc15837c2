"""Messages per second through netem vs a bare SimPy model of the same traffic.

1,000 nodes on a random 4-regular graph, 1e5 messages between random
neighbour pairs at Poisson times, constant links. The bare model is what one
would write without netem: one Store per node as inbox and one delay process
per message (timeout, then put), plus a receiver process per node. netem must
reach at least 0.7x the bare rate (it also queues per link and counts bytes).

Run: .venv/bin/python bench/netem_rate.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netem import Network, NetworkConfig  # noqa: E402

N_NODES = 1000
N_MSG = 100_000
NBYTES = 100_000
RATE = 1000.0  # messages per virtual second
REPEATS = 3
TARGET = 0.7

CFG = NetworkConfig.model_validate(
    {
        "topology": {"kind": "k_regular", "degree": 4},
        "link": {"latency": {"dist": "constant", "ms": 20}, "bandwidth_mbps": 100},
    }
)


def workload(graph):
    g = np.random.default_rng(12345)
    nbrs = [sorted(graph.adj[v]) for v in range(N_NODES)]
    src = g.integers(0, N_NODES, N_MSG)
    pick = g.integers(0, 1 << 30, N_MSG)
    dst = np.array([nbrs[s][p % len(nbrs[s])] for s, p in zip(src, pick)])
    gaps = g.exponential(1.0 / RATE, N_MSG)
    return src.tolist(), dst.tolist(), gaps.tolist()


def run_netem(src, dst, gaps) -> tuple[float, int]:
    env = simpy.Environment()
    net = Network.from_config(env, CFG, n_nodes=N_NODES, seed=np.random.SeedSequence(7))
    net.start()
    got = [0]

    def on_delivery(ev):
        got[0] += 1

    def driver():
        timeout, send = env.timeout, net.send
        for s, d, gap in zip(src, dst, gaps):
            yield timeout(gap)
            send(s, d, NBYTES, "bench").callbacks.append(on_delivery)

    env.process(driver())
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0, got[0]


def run_bare(src, dst, gaps) -> tuple[float, int]:
    env = simpy.Environment()
    inbox = [simpy.Store(env) for _ in range(N_NODES)]
    got = [0]
    latency = 0.020
    bps = 100e6

    def deliver(msg, d, delay):
        yield env.timeout(delay)
        yield inbox[d].put(msg)

    def receiver(store):
        while True:
            yield store.get()
            got[0] += 1

    def driver():
        for i, (s, d, gap) in enumerate(zip(src, dst, gaps)):
            yield env.timeout(gap)
            env.process(deliver((i, s, d), d, NBYTES * 8 / bps + latency))

    for st in inbox:
        env.process(receiver(st))
    env.process(driver())
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0, got[0]


def main() -> int:
    env = simpy.Environment()
    graph = Network.from_config(env, CFG, n_nodes=N_NODES, seed=np.random.SeedSequence(7)).graph
    src, dst, gaps = workload(graph)
    best_netem = best_bare = float("inf")
    for _ in range(REPEATS):
        t, n = run_netem(src, dst, gaps)
        assert n == N_MSG, n
        best_netem = min(best_netem, t)
        t, n = run_bare(src, dst, gaps)
        assert n == N_MSG, n
        best_bare = min(best_bare, t)
    netem_rate = N_MSG / best_netem
    bare_rate = N_MSG / best_bare
    ratio = netem_rate / bare_rate
    print(f"netem: {netem_rate:,.0f} msg/s ({N_MSG:,} messages, {N_NODES} nodes, best of {REPEATS})")
    print(f"bare simpy: {bare_rate:,.0f} msg/s")
    print(f"ratio netem/bare: {ratio:.2f} (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
