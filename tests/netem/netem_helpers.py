"""Helpers shared by the netem tests (imported as a plain module: tests/netem is on sys.path)."""

from __future__ import annotations

import numpy as np
import simpy

from netem import MessageLog, Network, NetworkConfig


def build(doc: dict | None = None, n: int = 4, seed: int = 0, base_dir=None, start: bool = True):
    """(env, net, log) for a config document; the log collects resolved records."""
    env = simpy.Environment()
    cfg = NetworkConfig.model_validate(doc or {})
    net = Network.from_config(env, cfg, n_nodes=n, seed=np.random.SeedSequence(seed), base_dir=base_dir)
    log = net.add_observer(MessageLog())
    if start:
        net.start()
    return env, net, log


def send_at(env, net, t: float, src: int, dst: int, nbytes: int, tag: str = "m", out: list | None = None):
    """Send at virtual time t (from a callback, no process); appends the event to `out`."""

    def fire(_ev):
        ev = net.send(src, dst, nbytes, tag)
        if out is not None:
            out.append(ev)

    ev = env.timeout(t - env.now)
    ev.callbacks.append(fire)
    return ev


