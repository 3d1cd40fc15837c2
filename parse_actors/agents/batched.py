"""Batched stepping: agents of one architecture take their SGD steps together.

A host with many small agents spends most of a training phase in per-op
overhead: each agent's forward, backward, clipping and optimizer step is a few
hundred tiny torch calls. Agents with the same `Agent.step_signature` (same
network, losses, modalities, encoders, input shapes, minibatch size) are stacked
instead: their parameters along a new leading dimension, their minibatches
likewise, and one `torch.func.vmap`-ed gradient (`functional_call` on one of
them as the template) steps them all; clipping and SGD run on the stacks.

Nothing here changes a result. Each agent draws its own minibatches from its own
RNG, as in `Agent.train_steps`. Under vmap, torch's gradient of a stack runs the
per-agent backward slice by slice, and on this CPU (one thread) that gives the
per-agent gradients bit for bit for MLP and GRU encoders, whoever else is in the
batch; the loss *values* are reduced in another order under vmap, so the reported
losses are recomputed per agent from its slice of the network's output; clipping
uses torch's own per-tensor norms of each slice. That is checked, not assumed: the
first time a signature is seen, `GroupStepper` steps copies of up to
`PROBE_AGENTS` of those agents both ways and compares parameters, momentum
buffers, updates and losses exactly, and steps that signature per agent where
anything differs (CNN and conv1d encoders today: a batched convolution is another
kernel). A probe of two steps stands for all of them because which kernels run
depends on shapes only, and the one data-dependent step (clipping binds or not) is
exact by construction. So the batch composition (which agents share a host, which
are due at one instant) never shows in the metrics, inline or on Ray, with any
number of hosts.

Modes (`engine.batched_stepping`): `off`, per agent always; `on`, batched
wherever exact; `auto` (default), batched where exact, for groups of at least
`AUTO_MIN_GROUP` agents, and where the probe's timing says it is faster (a batch
pays a fixed cost per step, so it wins from several agents up: see
bench/batched_step.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, Sequence

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from parse_actors.data.types import ModalData

from .agent import Agent
from .losses import total_loss

MODES = ("auto", "on", "off")
PROBE_AGENTS = 8
"""Agents copied for the exactness probe (and its timing) of a new signature."""
PROBE_STEPS = 2
AUTO_MIN_GROUP = 8
"""`auto` does not even probe smaller groups: a batched step costs about as much as
eight single ones of a small MLP (bench/batched_step.py), and the first batched
step in a process imports torch._dynamo (about a second, once)."""


@dataclass
class Plan:
    """What the probe found for one signature."""

    exact: bool
    faster: bool
    params: list[tuple[str, str]] = field(default_factory=list)
    """(branch key, parameter name) of the parameters a step changes, in clipping order."""
    single_s: float = 0.0
    """Probe: seconds per agent-step, per agent."""
    batched_s: float = 0.0
    """Probe: seconds per agent-step, batched."""
    why: str = ""
    local: list[bool] = field(default_factory=list)
    """Per entry of `params`: a local branch's (a CLUB critic), clipped apart from the model's."""


class GroupStepper:
    """Trains several agents for the same number of steps, in batches where that is
    exact (and, in `auto` mode, faster); one per host, since the plans it learns
    hold for the process they were probed in."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"batched stepping must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.plans: dict[tuple, Plan] = {}
        self.stepped = {"batched": 0, "single": 0}  # agent training phases, by path
        self._fns: dict[tuple, Callable] = {}
        self._warm = False

    def train(self, agents: Sequence[Agent], datas: Sequence[ModalData], steps: int, batch_size: int) -> list[dict]:
        """`agent.train_steps(data, steps, batch_size)` for each pair; the same results."""
        out: list[dict | None] = [None] * len(agents)
        groups: dict[tuple | None, list[int]] = {}
        for i, (a, d) in enumerate(zip(agents, datas, strict=True)):
            sig = a.step_signature(len(d), batch_size) if self.mode != "off" and steps > 0 else None
            groups.setdefault(sig, []).append(i)
        for sig, idx in groups.items():
            if sig is not None and len(idx) >= (AUTO_MIN_GROUP if self.mode == "auto" else 2):
                plan = self.plans.get(sig)
                if plan is None:
                    plan = self.plans[sig] = self._probe(sig, [agents[i] for i in idx], [datas[i] for i in idx],
                                                         steps, batch_size)
                if plan.exact and (plan.faster or self.mode == "on") and _uniform_momentum(agents[idx[0]], plan):
                    stats = self._batched(sig, plan, [agents[i] for i in idx], [datas[i] for i in idx], steps)
                    for i, st in zip(idx, stats):
                        out[i] = st
                    self.stepped["batched"] += len(idx)
                    continue
            for i in idx:
                out[i] = agents[i].train_steps(datas[i], steps, batch_size)
            self.stepped["single"] += len(idx)
        return out  # type: ignore[return-value]

    def prepare(self, agents: Iterable[Agent]) -> None:
        """Pay batched stepping's one-off cost now (at start-up) if it may be used: the
        first vmap-ed gradient in a process imports torch._dynamo (about a second)."""
        if self.mode == "off" or self._warm:
            return
        kinds: dict[tuple, int] = {}
        for a in agents:
            sig = a.step_signature(1, 1)
            kinds[sig] = kinds.get(sig, 0) + 1
        if max(kinds.values(), default=0) >= (AUTO_MIN_GROUP if self.mode == "auto" else 2):
            from torch.func import grad, vmap

            vmap(grad(lambda w: (w * w).sum()))(torch.ones(2, 1))
            self._warm = True

    def report(self) -> dict:
        """What was probed and how agents were stepped (for run.json)."""
        return {
            "mode": self.mode,
            "stepped": dict(self.stepped),
            "signatures": [
                {"modalities": list(sig[1]), "archs": list(sig[2]), "batch": sig[-2], "exact": p.exact,
                 "faster": p.faster, "single_ms": round(p.single_s * 1e3, 3),
                 "batched_ms": round(p.batched_s * 1e3, 3), **({"why": p.why} if p.why else {})}
                for sig, p in self.plans.items()
            ],
        }

    # -- the probe ---------------------------------------------------------------------
    def _probe(self, sig: tuple, agents: Sequence[Agent], datas: Sequence[ModalData], steps: int,
               batch_size: int) -> Plan:
        """Step copies of a few agents per agent and batched; compare bit for bit, time both."""
        k = min(len(agents), PROBE_AGENTS)
        n_steps = min(int(steps), PROBE_STEPS)
        singles = [copy.deepcopy(a) for a in agents[:k]]
        batch = [copy.deepcopy(a) for a in agents[:k]]
        t0 = time.perf_counter()
        want = [s.train_steps(d, n_steps, batch_size) for s, d in zip(singles, datas)]
        single_s = (time.perf_counter() - t0) / (k * n_steps)
        first = singles[0]
        params = [(key, name) for key in first._keys for name, p in first._named[key].items() if p.grad is not None]
        plan = Plan(exact=False, faster=False, params=params, single_s=single_s,
                    local=[first.net.is_local(key) for key, _ in params])
        try:
            got = self._batched(sig, plan, batch, datas[:k], n_steps)  # the first call pays set-up
        except Exception as e:  # an op without a batching rule, say: step this signature per agent
            plan.why = f"{type(e).__name__}: {e}"[:200]
            return plan
        plan.exact = got == want and all(_same(s, b) for s, b in zip(singles, batch))
        if not plan.exact:
            plan.why = "batched results differ from per-agent ones"
            return plan
        again = [copy.deepcopy(a) for a in agents[:k]]
        t0 = time.perf_counter()
        self._batched(sig, plan, again, datas[:k], n_steps)
        plan.batched_s = (time.perf_counter() - t0) / (k * n_steps)
        plan.faster = plan.batched_s < single_s
        return plan

    # -- batched steps -------------------------------------------------------------------
    def _grad_fn(self, sig: tuple, template: Agent, names: list[str]) -> Callable:
        """The vmap-ed gradient of one signature, built once. `template` lends only its
        module structure (functional_call swaps the stacked parameters in), so the
        probe's copy it is first built on serves every later batch of that signature."""
        fn = self._fns.get(sig)
        if fn is None:
            from torch.func import functional_call, grad_and_value, vmap

            net, cfg, weights, terms_fn = template.net, template.loss_cfg, template._weights, template._terms_fn
            shape: list = []  # how the network's output is laid out (the same every call)

            def loss(params, x, y):
                out = functional_call(net, params, (x,), strict=False)
                terms = terms_fn(out, y, cfg, True)
                leaves, spec = tree_flatten({f.name: v for f in fields(out) if (v := getattr(out, f.name)) is not None})
                shape[:] = [type(out), spec, list(terms)]
                return total_loss(terms, weights), leaves

            fn = vmap(grad_and_value(loss, has_aux=True))
            fn.out_shape = shape  # type: ignore[attr-defined]
            self._fns[sig] = fn
        return fn

    @staticmethod
    def _stats_of(agent: Agent, fn: Callable, leaves: list[torch.Tensor], i: int, y: torch.Tensor) -> torch.Tensor:
        """[total, *terms] of agent `i`'s step, as `train_steps` reports them: the
        loss terms recomputed from agent `i`'s slice of the network's output with the
        per-agent ops. (A loss value computed under vmap is reduced in another order
        than torch's kernels reduce it for one agent, e.g. a cross-entropy's mean;
        its gradient is not, so the step itself is exact.)"""
        cls, spec, _ = fn.out_shape  # type: ignore[attr-defined]
        out = cls(**{f.name: None for f in fields(cls)} | tree_unflatten([t[i] for t in leaves], spec))
        terms = agent._terms_fn(out, y, agent.loss_cfg, True)
        return torch.stack([total_loss(terms, agent._weights), *terms.values()])

    def _batched(self, sig: tuple, plan: Plan, agents: Sequence[Agent], datas: Sequence[ModalData],
                 steps: int) -> list[dict]:
        """`train_steps` for agents of one signature, as one stacked computation."""
        template = agents[0]
        o = template.optim_cfg
        lr, momentum, wd, clip = o.lr, o.momentum, o.weight_decay, o.clip_grad_norm
        g = len(agents)
        starts = [a._start_training(d, sig[-2]) for a, d in zip(agents, datas)]
        b = starts[0][2]
        names = [f"branches.{key}.{name}" for key, name in plan.params]
        tensors = [[a._named[key][name] for key, name in plan.params] for a in agents]  # [agent][param]
        with torch.no_grad():
            stacked = [torch.stack([t[j].detach() for t in tensors]) for j in range(len(names))]
            bufs = None
            if momentum != 0 and all(t[0] in a._opt.state for a, t in zip(agents, tensors)):
                bufs = [torch.stack([a._opt.state[t[j]]["momentum_buffer"] for a, t in zip(agents, tensors)])
                        for j in range(len(names))]
        fn = self._grad_fn(sig, template, names)
        sums = None
        for _ in range(int(steps)):
            xs, ys = {}, []
            for a, (x, y, _), d in zip(agents, starts, datas):
                idx = torch.from_numpy(a._next_batch(len(d), b)).to(a.device)
                for m, t in x.items():
                    xs.setdefault(m, []).append(t.index_select(0, idx))
                ys.append(y.index_select(0, idx))
            grads, (_, leaves) = fn(dict(zip(names, stacked)), {m: torch.stack(v) for m, v in xs.items()},
                                    torch.stack(ys))
            with torch.no_grad():
                vals = torch.stack([self._stats_of(a, fn, leaves, i, yb)
                                    for i, (a, yb) in enumerate(zip(agents, ys))])
                grads = [grads[n] for n in names]
                if clip is not None:  # the model's parameters and the local critics' apart, as train_steps does
                    _clip_([gr for gr, local in zip(grads, plan.local) if not local], clip, g)
                    if any(plan.local):
                        _clip_([gr for gr, local in zip(grads, plan.local) if local], clip, g)
                if wd != 0:
                    grads = torch._foreach_add(grads, stacked, alpha=wd)
                if momentum != 0:
                    if bufs is None:
                        bufs = [gr.detach().clone() for gr in grads]
                    else:
                        torch._foreach_mul_(bufs, momentum)
                        torch._foreach_add_(bufs, grads, alpha=1)
                    grads = bufs
                torch._foreach_add_(stacked, grads, alpha=-lr)
                sums = vals.clone() if sums is None else sums.add_(vals)
        with torch.no_grad():
            for i, (a, t) in enumerate(zip(agents, tensors)):
                for j, p in enumerate(t):
                    p.copy_(stacked[j][i])
                    if bufs is not None:
                        st = a._opt.state.setdefault(p, {})
                        if "momentum_buffer" in st:
                            st["momentum_buffer"].copy_(bufs[j][i])
                        else:
                            st["momentum_buffer"] = bufs[j][i].clone()
        term_names = fn.out_shape[2]  # type: ignore[attr-defined]
        return [a._finish_training(sums[i], term_names, steps, b) for i, a in enumerate(agents)]


def _clip_(grads: list[torch.Tensor], max_norm: float, g: int) -> None:
    """`torch.nn.utils.clip_grad_norm_(foreach=True)` on each agent's slice of the
    stacked gradients, with torch's own reductions on the same values: one
    `_foreach_norm` over every slice, then per agent the norm of its norms (a
    row-wise norm of the stacks rounds differently, and clipping is the one
    step whose outcome depends on the data, so it must be exact by construction,
    not only on the probe's steps)."""
    norms = torch._foreach_norm([gr[i] for i in range(g) for gr in grads], 2.0)
    per = len(grads)
    total = torch.stack([torch.linalg.vector_norm(torch.stack(norms[i * per:(i + 1) * per]), 2.0) for i in range(g)])
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for gr in grads:
        gr.mul_(coef.view(g, *([1] * (gr.dim() - 1))))


def _uniform_momentum(a: Agent, plan: Plan) -> bool:
    """Momentum buffers held for all of the stepped parameters or for none (a branch
    built mid-run has none yet while the others do: SGD then treats them apart)."""
    held = {a._named[key][name] in a._opt.state for key, name in plan.params}
    return len(held) <= 1


def _same(a: Agent, b: Agent) -> bool:
    """Parameters, momentum buffers, last updates and batch cursors equal bit for bit."""
    pa, pb = a._all_params(), b._all_params()
    if len(pa) != len(pb) or not all(torch.equal(x, y) for x, y in zip(pa, pb)):
        return False
    for x, y in zip(pa, pb):
        sx, sy = a._opt.state.get(x, {}), b._opt.state.get(y, {})
        if sx.keys() != sy.keys() or not all(torch.equal(sx[k], sy[k]) for k in sx):
            return False
    if a._update_keys != b._update_keys or not all(torch.equal(a._update[k], b._update[k]) for k in a._update_keys):
        return False
    return a._cursor == b._cursor
