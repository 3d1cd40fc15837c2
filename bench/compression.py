"""Cost of compressed exchange, per codec, against the uncompressed exchange.

One exchange of a PARSE agent (image + audio, default model): the uncompressed
exchange is the export copy of every branch (`Agent.export`, what the engine
ships today). A compressed exchange is that export plus encoding every branch
(sender) plus decoding it (receiver); the CHOCO lines are the export plus one
CHOCO message per branch (difference to the public copy, encode) plus applying
it at both ends (receiver copy, sender copy on delivery; per neighbour). All measured in the
same process, interleaved so machine noise hits every variant alike (CPU time,
one intra-op thread); prints per codec the wire bytes as a fraction of the
uncompressed payload and the median of the paired time ratios.

    .venv/bin/python bench/compression.py [--reps 30] [--inner 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from parse_actors.agents import Agent, AgentSpec, ModelConfig
from parse_actors.agents.choco import ChocoGossip
from parse_actors.agents.compression import decode, encode, parse_codec, wire_nbytes, wire_nbytes_for
from parse_actors.data.types import ModalData
from parse_actors.seeding import torch_seed
from parse_actors.tuning import fix_malloc_thresholds

CODECS = ["none", "fp16", "int8", {"topk": 0.1}, {"topk": 0.01}, {"randk": 0.1}, {"randk": 0.01}]
CHOCO = [{"topk": 0.01}, {"randk": 0.01}]


SHAPES = {"image": (3, 16, 16), "audio": (20, 16)}


def make_agent(archs: dict[str, str]) -> Agent:
    return Agent(AgentSpec(0, tuple(archs), archs), SHAPES, 10, model=ModelConfig(), method="parse", seed=0)


def sgd_step_time(agent: Agent, batch: int = 64, steps: int = 20) -> float:
    """CPU seconds of one local SGD step, for scale (an exchange follows local_steps of them)."""
    r = np.random.default_rng(0)
    data = ModalData({m: r.standard_normal((512, *SHAPES[m]), dtype=np.float32) for m in agent.modalities},
                     r.integers(0, 10, 512))
    agent.train_steps(data, 3, batch)
    t = time.process_time()
    agent.train_steps(data, steps, batch)
    return (time.process_time() - t) / steps


def codec_exchange(agent: Agent, keys: list[str], codec, rep: int) -> None:
    payload = agent.export(keys)
    for i, k in enumerate(keys):
        seed = torch_seed(0, "bench", rep, i) if codec.name == "randk" else None
        decode(encode(payload[k], codec, seed=seed))


def choco_exchange(agent: Agent, keys: list[str], codec, rep: int, sender: ChocoGossip, receiver: ChocoGossip) -> None:
    payload = agent.export(keys)
    for k in keys:
        m = sender.message(1, k, payload[k], codec, rep)
        receiver.receive(m, payload[k])
        sender.delivered(m.seq)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30, help="interleaved repetitions (median of the paired ratios)")
    ap.add_argument("--inner", type=int, default=5, help="exchanges per timed repetition")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    fix_malloc_thresholds()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.reps} interleaved reps x "
          f"{args.inner} exchanges, medians of CPU time; ratio = exchange time / uncompressed exchange time")
    for name, archs in (("mlp", {"image": "mlp", "audio": "mlp"}), ("cnn", {"image": "cnn", "audio": "mlp"})):
        agent = make_agent(archs)
        caps = agent.capabilities()
        keys = sorted(caps)
        raw = sum(i.nbytes for i in caps.values())
        variants = [("export", lambda rep: agent.export(keys))]
        for spec in CODECS:
            c = parse_codec(spec)
            variants.append((str(c), lambda rep, c=c: codec_exchange(agent, keys, c, rep)))
        for spec in CHOCO:
            c = parse_codec(spec)
            s, r = ChocoGossip(0, seed=0), ChocoGossip(1, seed=0)
            variants.append((f"choco {c}", lambda rep, c=c, s=s, r=r: choco_exchange(agent, keys, c, rep, s, r)))
        for _, fn in variants:  # warm-up
            fn(0)
        times: dict[str, list[float]] = {v: [] for v, _ in variants}
        for rep in range(args.reps):
            order = variants if rep % 2 == 0 else variants[::-1]
            for v, fn in order:
                t = time.process_time()
                for i in range(args.inner):
                    fn(rep * args.inner + i + 1)
                times[v].append((time.process_time() - t) / args.inner)
        base = times["export"]
        print(f"{name}: {len(keys)} branches, {agent.num_parameters()} params, {raw} bytes uncompressed; "
              f"export {statistics.median(base) * 1e3:.3f} ms/exchange")
        for v, _ in variants[1:]:
            spec = v.removeprefix("choco ")
            wire = sum(wire_nbytes_for(caps[k], spec) for k in keys)
            ratio = statistics.median(a / b for a, b in zip(times[v], base))
            print(f"  {v:15s} wire {wire:8d} B ({wire / raw:6.1%})   {statistics.median(times[v]) * 1e3:7.3f} ms   "
                  f"time ratio {ratio:5.2f}")
        print(f"  (for scale: one local SGD step, batch 64: {sgd_step_time(make_agent(archs)) * 1e3:.3f} ms)")
        # the sizes printed are the exact encoded ones
        p = agent.export(keys)
        exact = sum(wire_nbytes(encode(p[k], "int8")) for k in keys)
        assert exact == sum(wire_nbytes_for(caps[k], "int8") for k in keys)


if __name__ == "__main__":
    main()
