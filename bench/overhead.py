"""Engine overhead: the full co-simulation vs a plain torch loop doing the same work.

Default: 16 MLP agents x 10 rounds through the whole engine (Ray hosts, netem,
observers, run directory) against a plain-torch loop in one process that does the
identical SGD steps and the same gossip averaging (same Agent objects, same
exchanges, no SimPy, no Ray) with the same total number of torch threads (hosts x threads), and with
1 thread (on small models, intra-op threads gain little, and on a loaded
2-core machine two threads were 10x slower than one, so both are shown).
Prints Ray and host start-up separately, then the steady-state wall time
(first round start to last round end) of both and their ratio.

`--agents 1000 --backend inline`: the issue-14 scale check. bench/scale.py's
agents (thirds image / audio / image+audio PARSE agents, 5 steps of 32, a
4-regular graph, per-message logging off) in one process, the engine (netem,
aggregation, evaluation on the common test set and the agents' own splits,
tables) against the plain loop doing the same steps, averaging and evaluations;
the engine runs twice, with batched stepping (`auto`) and without (`off`).

    .venv/bin/python bench/overhead.py [--rounds 10] [--steps 60] [--hosts 2]
    .venv/bin/python bench/overhead.py --agents 1000 --rounds 3 --backend inline
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from parse_actors.agents import Agent, AgentSpec, Incoming, make_policy
from parse_actors.data import build_federated_data
from parse_actors.engine import run_scenario
from parse_actors.scenario import build_scenario
from parse_actors.seeding import rng as seeded_rng
from parse_actors.seeding import torch_seed
from netem.topology import build_topology


def scenario(args, batched: str = "auto"):
    if args.agents == 16:
        doc = {
            "name": "bench-overhead",
            "seed": 0,
            "agents": {"groups": [{"modalities": ["image"], "count": 6}, {"modalities": ["audio"], "count": 6},
                                  {"modalities": ["image", "audio"], "count": 4}]},
            "data": {"name": "synthetic", "synthetic": {"n_samples": 16000, "dim": 64}},
            "model": {"backbone_width": 256, "mlp_hidden": [512], "slice_width": 32},
            "train": {"local_steps": args.steps, "batch_size": 128},
            "protocol": {"rounds": args.rounds},
            "network": {"topology": {"kind": "ring"}, "link": {"bandwidth_mbps": 100}},
            "engine": {"backend": args.backend, "hosts": args.hosts, "torch_threads": 1, "checkpoint_every": 1},
            "output": {"log_messages": True, "plots": False},
        }
    else:  # bench/scale.py's scenario
        n = args.agents
        third = n // 3
        doc = {
            "name": "bench-overhead",
            "seed": 0,
            "agents": {"groups": [{"modalities": ["image"], "count": third}, {"modalities": ["audio"], "count": third},
                                  {"modalities": ["image", "audio"], "count": n - 2 * third}]},
            "data": {"name": "synthetic", "synthetic": {"n_samples": max(12000, 60 * n)}, "global_test_size": 2000},
            "train": {"local_steps": 5, "batch_size": 32},
            "protocol": {"rounds": args.rounds},
            "network": {"topology": {"kind": "k_regular", "degree": 4}},
            "engine": {"backend": args.backend, "hosts": args.hosts, "checkpoint_every": 0},
            "output": {"log_messages": False, "plots": False, "slice_drop": "off", "gradient_conflict_every": 0,
                       "final_weights_max_mb": 0},
        }
    doc["engine"]["batched_stepping"] = batched
    return build_scenario(doc, "bench/overhead.py")


def plain_loop(sc, threads: int) -> float:
    """The same agents, steps and averaging, as a plain loop; returns steady-state seconds."""
    torch.set_num_threads(threads)
    groups = sc.agent_groups()
    mods = [tuple(g.modalities) for g in groups]
    fd = build_federated_data(sc.data, mods, seed=sc.seed)
    init = torch_seed(sc.seed, "init")
    agents = [Agent(AgentSpec(i, mods[i]), {m: fd.input_shapes[m] for m in mods[i]}, fd.num_classes,
                    model=sc.model, loss=sc.loss, optim=sc.optim, aggregation=sc.aggregation, method=sc.method,
                    seed=torch_seed(sc.seed, "agent", i), init_seed=init) for i in range(len(mods))]
    policy = make_policy(sc.method, sc.aggregation)
    n = len(agents)
    caps = [a.capabilities() for a in agents]
    graph = build_topology(sc.network.topology, n, seeded_rng(sc.seed, "bench", "topology"))
    neigh = {i: sorted(graph.neighbors(i)) for i in range(n)}
    plan = {i: {j: policy.select(caps[i], caps[j], 0) for j in neigh[i]} for i in range(n)}
    deg = {i: {} for i in range(n)}
    for i in range(n):
        for keys in plan[i].values():
            for k in keys:
                deg[i][k] = deg[i].get(k, 0) + 1
    t0 = time.perf_counter()
    for rnd in range(sc.protocol.rounds):
        exports = {}
        for i, a in enumerate(agents):
            a.train_steps(fd.agents[i].train, sc.train.local_steps, sc.train.batch_size)
            exports[i] = a.export(sorted({k for ks in plan[i].values() for k in ks}))
        for i, a in enumerate(agents):
            inc = [Incoming(sender=j, round=rnd, branches={k: exports[j][k] for k in plan[j][i]},
                            degree={k: deg[j][k] for k in plan[j][i]}) for j in neigh[i] if plan[j].get(i)]
            a.aggregate(inc, deg[i], rnd)
        for i, a in enumerate(agents):  # what the engine's hosts score each round
            a.evaluate(fd.global_test)
            a.evaluate(fd.agents[i].test)
            if fd.agents[i].val is not None and len(fd.agents[i].val):
                a.evaluate(fd.agents[i].val)
    return time.perf_counter() - t0


def engine_run(sc, backend: str) -> dict:
    """One run of `sc` through the whole engine; its run.json."""
    import json

    out = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        run_scenario(sc, out / "run", backend=backend)
        return json.loads((out / "run" / "run.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=16, help="16 (the small check) or more (bench/scale.py's agents)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40, help="local steps (16-agent check only)")
    ap.add_argument("--backend", choices=["ray", "inline"], default="ray")
    ap.add_argument("--skip-same-threads", action="store_true",
                    help="skip the plain loop with hosts x threads torch threads (slow on 2 cores)")
    ap.add_argument("--hosts", type=int, default=None, help="default: 2 on Ray, 1 inline")
    args = ap.parse_args()
    args.hosts = args.hosts or (2 if args.backend == "ray" else 1)
    sc = scenario(args)
    threads = args.hosts * sc.engine.torch_threads if args.backend == "ray" else 1
    plain1 = plain_loop(sc, 1)
    print(f"plain torch loop (1 thread, {args.agents} agents x {args.rounds} rounds): {plain1:.2f} s")
    plain_same = None
    if threads != 1 and not args.skip_same_threads:
        plain_same = plain_loop(sc, threads)
        print(f"plain torch loop ({threads} threads = same total as the engine): {plain_same:.2f} s")
    torch.set_num_threads(1)

    if args.backend == "inline":
        for mode in ("auto", "off"):
            info = engine_run(scenario(args, mode), "inline")
            steady = info["steady_s"]
            print(f"engine steady state (inline, batched stepping {mode}: netem, aggregation, evaluation, tables): "
                  f"{steady:.2f} s   ratio engine/plain: {steady / plain1:.3f}   (target <= 1.25)")
        return

    import ray

    from parse_actors.engine.backends import ray_session

    t0 = time.perf_counter()
    with ray_session():
        ray_start = time.perf_counter() - t0
        info = engine_run(sc, "ray")
    steady = info["steady_s"]
    print(f"ray start-up: {ray_start:.2f} s; host start-up: {info['host_start_s']:.2f} s; "
          f"agents built on hosts: {info['agents_start_s']:.2f} s")
    print(f"engine steady state ({args.hosts} hosts x {sc.engine.torch_threads} thread, netem, observers, "
          f"checkpoints): {steady:.2f} s")
    print(f"ratio engine/plain-1-thread (steady state): {steady / plain1:.3f}   (target <= 1.10)")
    if plain_same is not None:
        print(f"ratio engine/plain-{threads}-threads (steady state): {steady / plain_same:.3f}")
    assert not ray.is_initialized()


if __name__ == "__main__":
    main()
