"""The agents' local optimizer: `torch.optim.SGD(foreach=True)`, bit for bit, without torch.optim.

Why not torch.optim: building any `torch.optim.Optimizer` imports
`torch._dynamo` (about a second of CPU, more on a loaded machine), once per
process: in the driver of an inline run and in every Ray actor, where it sat
on the start-up path of the first agent built. The agents use plain SGD with
momentum and weight decay only, which is a few foreach calls; this class
runs the same calls in the same order as torch's `_multi_tensor_sgd`, keeps
momentum buffers in the same place and has the same `state_dict` format, so
checkpoints written with either load in the other (tested against
torch.optim.SGD in tests/agents/test_sgd.py).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch


class SGD:
    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        self.defaults = {"lr": float(lr), "momentum": float(momentum), "dampening": 0, "weight_decay": float(weight_decay),
                         "nesterov": False, "maximize": False, "foreach": True, "differentiable": False, "fused": None}
        self.param_groups = [{"params": self.params, **self.defaults}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        g = self.param_groups[0]
        lr, momentum, wd = g["lr"], g["momentum"], g["weight_decay"]
        by_kind: dict[tuple, list[torch.Tensor]] = {}  # torch groups tensors by device and dtype, in order
        for p in self.params:
            if p.grad is not None:
                by_kind.setdefault((p.device, p.dtype), []).append(p)
        for params in by_kind.values():
            grads = [p.grad for p in params]
            if wd != 0:
                grads = torch._foreach_add(grads, params, alpha=wd)
            if momentum != 0:
                bufs = [self.state.get(p, {}).get("momentum_buffer") for p in params]
                if all(b is not None for b in bufs):
                    torch._foreach_mul_(bufs, momentum)
                    torch._foreach_add_(bufs, grads, alpha=1)
                else:
                    for i, (b, gr) in enumerate(zip(bufs, grads)):
                        if b is None:
                            bufs[i] = gr.detach().clone()
                        else:
                            b.mul_(momentum).add_(gr, alpha=1)
                for p, b in zip(params, bufs):
                    self.state.setdefault(p, {})["momentum_buffer"] = b
                grads = bufs
            torch._foreach_add_(params, grads, alpha=-lr)

    # -- checkpoints: torch.optim's format ------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {index[id(p)]: dict(st) for p, st in self.state.items() if id(p) in index}
        group = {**{k: v for k, v in self.param_groups[0].items() if k != "params"},
                 "params": list(range(len(self.params)))}
        return {"state": dict(sorted(state.items())), "param_groups": [group]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        groups = sd["param_groups"]
        n = sum(len(g["params"]) for g in groups)
        if len(groups) != 1 or n != len(self.params):
            raise ValueError(f"optimizer state for {n} parameters in {len(groups)} groups, expected "
                             f"{len(self.params)} in 1")
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
        self.state = {}
        for i, st in sd["state"].items():
            p = self.params[int(i)]
            self.state[p] = {k: (v.to(dtype=p.dtype, device=p.device) if torch.is_tensor(v) else v)
                             for k, v in st.items()}
