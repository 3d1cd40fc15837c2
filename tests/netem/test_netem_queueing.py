"""A single link fed by Poisson arrivals is an M/D/1 queue: check Pollaczek-Khinchine."""

from __future__ import annotations

import numpy as np
import pytest
from netem_helpers import build

NBYTES = 10_000
MBPS = 8.0  # 1 byte per microsecond -> service time 10 ms


@pytest.mark.parametrize("rho,n_msgs", [(0.5, 120_000), (0.8, 300_000)])
def test_mean_wait_matches_pollaczek_khinchine(rho, n_msgs):
    service = NBYTES * 8 / (MBPS * 1e6)
    env, net, log = build({"link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth_mbps": MBPS}}, n=2)
    gaps = np.random.default_rng(2024).exponential(service / rho, n_msgs).tolist()
    send = net.send

    def arrivals():
        timeout = env.timeout
        for g in gaps:
            yield timeout(g)
            send(0, 1, NBYTES, "m")

    env.process(arrivals())
    env.run()
    waits = np.array([r.t_arrive - r.t_send - service for r in log.records])
    assert len(waits) == n_msgs and waits.min() > -1e-9
    pk = rho * service / (2 * (1 - rho))  # M/D/1 mean wait in queue
    assert waits[n_msgs // 100 :].mean() == pytest.approx(pk, rel=0.05)
