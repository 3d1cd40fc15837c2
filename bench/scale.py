"""Scale: 1,000 agents x 5 rounds on this machine, with per-message logging off.

Prints the wall time (set-up and steady state apart), the peak memory summed
over every process of the run (driver, Ray's processes and the agent hosts,
sampled from /proc every 0.5 s), and, as the baseline measured in the same
run, the time of the bare SimPy timeline of the same run (the netem messages
and compute delays, no training), so the ratio says what the learning costs
on top of the network emulation.

    .venv/bin/python bench/scale.py [--agents 1000] [--rounds 5] [--backend ray]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _procmem import PeakMemory

from parse_actors.engine import run_scenario
from parse_actors.scenario import build_scenario


def scenario(n: int, rounds: int, backend: str):
    third = n // 3
    doc = {
        "name": "bench-scale",
        "seed": 0,
        "agents": {"groups": [{"modalities": ["image"], "count": third},
                              {"modalities": ["audio"], "count": third},
                              {"modalities": ["image", "audio"], "count": n - 2 * third}]},
        "data": {"name": "synthetic", "synthetic": {"n_samples": max(12000, 60 * n)},
                 "global_test_size": 2000},
        "train": {"local_steps": 5, "batch_size": 32},
        "protocol": {"rounds": rounds},
        "network": {"topology": {"kind": "k_regular", "degree": 4}},
        "engine": {"backend": backend, "checkpoint_every": 0},
        "output": {"log_messages": False, "plots": False, "slice_drop": "off", "gradient_conflict_every": 0},
    }
    return build_scenario(doc, "bench/scale.py")


def bare_timeline(sc) -> float:
    """The same scenario's virtual timeline with every host call skipped (SimPy + netem only)."""
    import asyncio

    from parse_actors.engine.coordinator import Simulation
    from parse_actors.metrics import RunDir

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-bare-"))
    sc = sc.model_copy(deep=True)
    sc.engine.backend = "inline"
    sim = Simulation(sc, RunDir(tmp / "run"), "inline")

    async def go() -> float:
        await sim.setup()
        sim._set_dry(True)
        t0 = time.perf_counter()
        sim.run_until(sim.env.process(sim.discovery.exchange(sim.discovery.missing())))
        for rnd in range(sc.protocol.rounds):
            sim.run_until(sim.env.process(sim.protocol.round(rnd, {})))
        return time.perf_counter() - t0

    try:
        return asyncio.run(go())
    finally:
        sim.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", choices=["ray", "inline"], default="ray")
    args = ap.parse_args()
    sc = scenario(args.agents, args.rounds, args.backend)
    bare = bare_timeline(sc)
    out = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    mem = PeakMemory()
    mem.start()
    t0 = time.perf_counter()
    try:
        summary, _ = run_scenario(sc, out / "run", backend=args.backend)
        wall = time.perf_counter() - t0
        info = json.loads((out / "run" / "run.json").read_text())
    finally:
        peak = mem.stop()
        shutil.rmtree(out, ignore_errors=True)
    print(f"{args.agents} agents x {args.rounds} rounds on {args.backend} ({info['hosts']} hosts): "
          f"wall {wall:.1f} s (set-up {info['host_start_s'] + info['agents_start_s']:.1f} s, steady "
          f"{info['steady_s']:.1f} s), virtual {summary['virtual_time_s']:.2f} s, "
          f"messages {summary['messages']['sent']}, final acc {summary['final_acc']['mean']:.3f}")
    print(f"peak memory, all processes: {peak / 2**30:.2f} GiB   (target < 8 GiB; wall target < 600 s)")
    print(f"bare SimPy+netem timeline of the same run: {bare:.2f} s -> ratio full/bare steady {info['steady_s'] / bare:.1f}")


if __name__ == "__main__":
    main()
