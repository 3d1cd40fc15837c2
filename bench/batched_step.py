"""Batched stepping: 1,000 agents' local SGD, per agent vs batched, in one process.

The agents of bench/scale.py (a third image-only, a third audio-only, a third
image+audio PARSE agents on the synthetic task, MLP encoders, 5 steps of 32 per
round) train for a few rounds twice from the same state: once with
`Agent.train_steps` one agent after another (the baseline, measured in the same
run), once through `GroupStepper("on")` in groups of 64 (the calls a host gets
in one batch). Prints both times, their ratio, and checks that every agent ends
bit for bit where the per-agent loop put it. The first batched round includes
the probes and torch._dynamo's import (once per process); it is timed apart.

    .venv/bin/python bench/batched_step.py [--agents 1000] [--rounds 3] [--group 64]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from parse_actors.agents import Agent, AgentSpec
from parse_actors.agents.batched import GroupStepper, _same
from parse_actors.data import build_federated_data
from parse_actors.scenario import build_scenario
from parse_actors.seeding import torch_seed


def build(n: int):
    third = n // 3
    doc = {"name": "bench-batched", "seed": 0,
           "agents": {"groups": [{"modalities": ["image"], "count": third}, {"modalities": ["audio"], "count": third},
                                 {"modalities": ["image", "audio"], "count": n - 2 * third}]},
           "data": {"name": "synthetic", "synthetic": {"n_samples": max(12000, 60 * n)}},
           "train": {"local_steps": 5, "batch_size": 32}}
    sc = build_scenario(doc, "bench/batched_step.py")
    mods = [tuple(g.modalities) for g in sc.agent_groups()]
    fd = build_federated_data(sc.data, mods, seed=sc.seed)
    init = torch_seed(sc.seed, "init")
    agents = [Agent(AgentSpec(i, mods[i]), {m: fd.input_shapes[m] for m in mods[i]}, fd.num_classes,
                    model=sc.model, loss=sc.loss, optim=sc.optim, method=sc.method,
                    seed=torch_seed(sc.seed, "agent", i), init_seed=init) for i in range(n)]
    return sc, agents, [fd.agents[i].train for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--group", type=int, default=64, help="agents per batch (a host's calls per batch)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sc, alone, datas = build(args.agents)
    together = [copy.deepcopy(a) for a in alone]
    steps, b = sc.train.local_steps, sc.train.batch_size
    stepper = GroupStepper("on")
    n, g = args.agents, args.group
    single, batched = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for a, d in zip(alone, datas):
            a.train_steps(d, steps, b)
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for s in range(0, n, g):
            stepper.train(together[s:s + g], datas[s:s + g], steps, b)
        batched.append(time.perf_counter() - t0)
        print(f"round {r}: per agent {single[-1]:6.2f} s   batched {batched[-1]:6.2f} s"
              f"{'   (probes, first batched step)' if r == 0 else ''}")
    same = all(_same(x, y) for x, y in zip(alone, together))
    steady_single, steady_batched = sum(single[1:]), sum(batched[1:])
    rep = stepper.report()
    print(f"{n} agents, {steps} steps of {b}, groups of {g}: stepped {rep['stepped']}; "
          f"{sum(s['exact'] for s in rep['signatures'])}/{len(rep['signatures'])} signatures exact")
    if args.rounds > 1:
        print(f"per agent {steady_single / (args.rounds - 1) / n * 1e3:.2f} ms/agent-round   "
              f"batched {steady_batched / (args.rounds - 1) / n * 1e3:.2f} ms/agent-round   "
              f"speed-up {steady_single / steady_batched:.2f}x (rounds 1..{args.rounds - 1}; target >= 2x)")
    print(f"every agent bit-identical to the per-agent loop: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
