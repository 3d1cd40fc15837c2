"""Cost of the branch machinery on the training hot path.

Times one local SGD step of a PARSE `Agent` against the same layers written as a
plain `nn.Module` (no branch registry, no policies), same loss, same optimizer,
same minibatch sampling, in the same process and interleaved so machine noise
hits both alike (CPU time, one intra-op thread, glibc malloc thresholds pinned;
see `fix_malloc_thresholds`). Both start from the same parameters and see the same
batches, so they must end bit-identical: the printed max param diff proves the
two loops did the same work. Prints the median per-step times and the median of
the paired ratios (target <= 1.05) for an MLP agent and a CNN agent.

    .venv/bin/python bench/agent_step.py [--steps 25] [--reps 30] [--threads 1] [--malloc default]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from parse_actors.agents import Agent, AgentSpec, ModelConfig
from parse_actors.agents.archs import build_encoder
from parse_actors.agents.losses import fission_terms, term_weights, total_loss
from parse_actors.agents.model import FissionOut, _head
from parse_actors.data.types import ModalData
from parse_actors.seeding import rng as seed_rng
from parse_actors.tuning import fix_malloc_thresholds


class PlainParse(nn.Module):
    """The PARSE layers as one ordinary module."""

    def __init__(self, cfg: ModelConfig, shapes, archs, num_classes: int) -> None:
        super().__init__()
        w = cfg.slice_widths()
        self.mods = sorted(shapes)
        self.encs = nn.ModuleList(build_encoder(archs[m], shapes[m], cfg.width_of(m), cfg) for m in self.mods)
        self.reds = nn.ModuleList(nn.Linear(cfg.width_of(m), w["red"]) for m in self.mods)
        self.unis = nn.ModuleList(nn.Linear(cfg.width_of(m), w["uni"]) for m in self.mods)
        self.syns = nn.ModuleList(nn.Linear(cfg.width_of(m), w["syn"]) for m in self.mods)
        self.red_head = _head(w["red"], num_classes, cfg.head_hidden)
        self.uni_heads = nn.ModuleList(_head(w["uni"], num_classes, cfg.head_hidden) for _ in self.mods)
        self.fusion = nn.Sequential(nn.Linear(len(self.mods) * w["syn"], cfg.fusion_hidden), nn.ReLU())
        self.syn_head = _head(cfg.fusion_hidden, num_classes, cfg.head_hidden)

    def forward(self, xs: list[torch.Tensor]) -> FissionOut:
        reds, unis, syns = [], [], []
        for x, enc, r, u, s in zip(xs, self.encs, self.reds, self.unis, self.syns):
            h = enc(x)
            reds.append(r(h))
            unis.append(u(h))
            syns.append(s(h))
        red_logits = self.red_head(torch.stack(reds))
        uni_logits = [head(z) for head, z in zip(self.uni_heads, unis)]
        syn_logits = self.syn_head(self.fusion(torch.cat(syns, 1)))
        return FissionOut(reds, unis, syns, red_logits, uni_logits, syn_logits)

    def max_diff(self, agent: Agent) -> float:
        """Largest parameter difference to the agent (0.0: both did the same work)."""
        mine = [p.detach().clone() for p in self.parameters()]
        self.load_from(agent)
        theirs = [p.detach().clone() for p in self.parameters()]
        with torch.no_grad():
            for p, v in zip(self.parameters(), mine):
                p.copy_(v)
        return max(float((a - b).abs().max()) for a, b in zip(mine, theirs))

    def load_from(self, agent: Agent) -> None:
        """Copy the agent's parameters so both compute the same numbers."""
        b = agent.net.branches
        for i, m in enumerate(self.mods):
            self.encs[i].load_state_dict(b[f"backbone/{m}/{agent.net.archs[m]}"].state_dict())
            for k, mods in (("red", self.reds), ("uni", self.unis), ("syn", self.syns)):
                mods[i].load_state_dict(b[f"fission/{m}/{k}"].state_dict())
            self.uni_heads[i].load_state_dict(b[f"head/uni/{m}"].state_dict())
        ms = "+".join(self.mods)
        self.red_head.load_state_dict(b["head/red"].state_dict())
        self.fusion.load_state_dict(b[f"fusion/{ms}"].state_dict())
        self.syn_head.load_state_dict(b[f"head/syn/{ms}"].state_dict())


class PlainLoop:
    """A minimal training loop over `PlainParse`: shuffled epochs, one SGD."""

    def __init__(self, model: PlainParse, agent: Agent, data: ModalData) -> None:
        o = agent.optim_cfg
        self.model, self.cfg = model, agent.loss_cfg
        self.weights = term_weights(self.cfg)
        self.opt = torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, foreach=True
        )
        self.x = [torch.from_numpy(data.x[m]) for m in model.mods]
        self.y = torch.from_numpy(data.y)
        self.rng = seed_rng(agent.seed, "agent", "batches")  # the agent's batch order: same numbers
        self.perm, self.cursor = None, 0

    def steps(self, steps: int, batch: int) -> float:
        n = len(self.y)
        total_sum = torch.zeros(())
        for _ in range(steps):
            if self.perm is None or self.cursor + batch > n:
                self.perm, self.cursor = self.rng.permutation(n), 0
            idx = torch.from_numpy(self.perm[self.cursor : self.cursor + batch])
            self.cursor += batch
            out = self.model([x.index_select(0, idx) for x in self.x])
            loss = total_loss(fission_terms(out, self.y.index_select(0, idx), self.cfg, True), self.weights)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total_sum += loss.detach()
        return float(total_sum) / steps


def make_case(name: str, archs: dict[str, str], shapes: dict[str, tuple[int, ...]], n: int = 2048):
    spec = AgentSpec(0, tuple(archs), archs)
    agent = Agent(spec, shapes, 10, model=ModelConfig(), method="parse", seed=0)
    r = np.random.default_rng(0)
    data = ModalData(
        {m: r.standard_normal((n, *shapes[m]), dtype=np.float32) for m in archs}, r.integers(0, 10, n)
    )
    plain = PlainParse(agent.model_cfg, {m: shapes[m] for m in archs}, archs, 10)
    plain.load_from(agent)
    # same layers, same numbers: the first loss agrees on the same batch
    x, y = agent._inputs(data.subset(np.arange(64)))
    with torch.no_grad():
        a = total_loss(fission_terms(agent.net(x), y, agent.loss_cfg, True), term_weights(agent.loss_cfg))
        out = plain([x[m] for m in plain.mods])
        p = total_loss(fission_terms(out, y, agent.loss_cfg, True), term_weights(agent.loss_cfg))
    assert torch.allclose(a, p), (float(a), float(p))
    assert sum(t.numel() for t in plain.parameters()) == agent.num_parameters()
    return name, agent, PlainLoop(plain, agent, data), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=25, help="steps per timed repetition (one train_steps call)")
    ap.add_argument("--reps", type=int, default=30, help="interleaved repetitions (median of the paired ratios)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--malloc", choices=["fixed", "default"], default="fixed", help="fixed: pin glibc malloc thresholds")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    malloc = "glibc default" if args.malloc == "default" else ("pinned" if fix_malloc_thresholds() else "unchanged")
    cases = [
        make_case("mlp", {"image": "mlp", "audio": "mlp"}, {"image": (1, 16, 16), "audio": (20, 16)}),
        make_case("cnn", {"image": "cnn", "audio": "mlp"}, {"image": (3, 16, 16), "audio": (20, 16)}),
    ]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, {args.steps} steps x "
        f"{args.reps} interleaved reps, medians of CPU time, malloc thresholds {malloc}"
    )
    worst = 0.0
    for name, agent, plain, data in cases:
        def plain_steps(_data, steps, batch, plain=plain):
            return plain.steps(steps, batch)

        agent.train_steps(data, 10, args.batch)  # warm-up
        plain.steps(10, args.batch)
        ta, tp = [], []
        for rep in range(args.reps):
            # alternate which runs first so drift in machine load cancels out
            order = [(agent.train_steps, ta), (plain_steps, tp)]
            for fn, out in order if rep % 2 == 0 else order[::-1]:
                t = time.process_time()
                fn(data, args.steps, args.batch)
                out.append((time.process_time() - t) / args.steps)
        a, p = statistics.median(ta), statistics.median(tp)
        plain_total = 10 + args.reps * args.steps
        ratio = statistics.median(x / y for x, y in zip(ta, tp))
        worst = max(worst, ratio)
        print(
            f"{name:4s} agent {a * 1e3:7.3f} ms/step   plain {p * 1e3:7.3f} ms/step   ratio {ratio:5.3f}   "
            f"({agent.num_parameters()} params; max param diff after {plain_total} steps "
            f"{plain.model.max_diff(agent):.1e}; cost model {agent.cost_per_sample() * 1e6:.1f} us/sample)"
        )
    print(f"worst ratio {worst:.3f} (target <= 1.05): {'OK' if worst <= 1.05 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
