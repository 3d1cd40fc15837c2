"""Per-branch gossip averaging.

Each branch is averaged over self and the neighbours that sent it, on that
branch's own subgraph (only agents holding the branch take part). Metropolis-
Hastings weights make the mixing matrix symmetric and doubly stochastic, so
repeated gossip drives every holder to the holders' mean; uniform weights reach
consensus but not necessarily the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch



@dataclass
class Incoming:
    """Branches one neighbour sent, as of its round `round`; `degree[key]` is the
    sender's degree on that branch's subgraph (for Metropolis-Hastings). What the
    receiver's policy accepts is checked before (engine/exchange.py)."""

    sender: int
    round: int
    branches: dict[str, dict[str, torch.Tensor]]
    degree: dict[str, int] = field(default_factory=dict)


def mixing_weights(my_degree: int, sender_degrees: Sequence[int], scheme: str = "metropolis") -> tuple[float, list[float]]:
    """(self weight, weight per sender). Non-negative, summing to 1.

    Metropolis-Hastings: w_ij = 1/(1+max(d_i, d_j)), self gets the rest. A degree
    below the number of actual senders is raised to it, so the self weight never
    goes negative even when the caller's degree is out of date."""
    s = len(sender_degrees)
    if s == 0:
        return 1.0, []
    if scheme == "uniform":
        w = 1.0 / (1 + s)
        return w, [w] * s
    if scheme != "metropolis":
        raise ValueError(f"unknown weighting {scheme!r}")
    di = max(int(my_degree), s)
    ws = [1.0 / (1 + max(di, int(dj))) for dj in sender_degrees]
    return 1.0 - sum(ws), ws


def collect(
    incoming: Sequence[Incoming], round: int, staleness: int | None
) -> tuple[dict[str, list[tuple[int, Incoming]]], int]:
    """Per branch key, the freshest entry of each sender (sorted by sender id so the
    sum is order independent), and the number of entries ignored as stale (more
    than `staleness` rounds behind `round`; None: none is)."""
    newest: dict[tuple[str, int], Incoming] = {}
    stale = 0
    for inc in incoming:
        for key in inc.branches:
            if staleness is not None and inc.round < round - staleness:
                stale += 1
                continue
            prev = newest.get((key, inc.sender))
            if prev is None or inc.round > prev.round:
                newest[(key, inc.sender)] = inc
    per_key: dict[str, list[tuple[int, Incoming]]] = {}
    for (key, sender), inc in sorted(newest.items()):
        per_key.setdefault(key, []).append((sender, inc))
    return per_key, stale


@torch.no_grad()
def merge_branch(
    params: Mapping[str, torch.Tensor], received: Sequence[Mapping[str, torch.Tensor]], self_w: float, ws: Sequence[float]
) -> None:
    """params <- self_w * params + sum_j ws[j] * received[j], in place, in sender order."""
    for name, p in params.items():
        acc = p.mul(self_w)
        for w, r in zip(ws, received):
            acc.add_(r[name].to(device=p.device, dtype=p.dtype), alpha=w)
        p.copy_(acc)
