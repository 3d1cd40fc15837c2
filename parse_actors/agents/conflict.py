"""Gradient-conflict instrument: do uni- and multimodal agents pull a shared branch
in opposite directions? (The paper's claim: less so under PARSE.)"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

import torch


def _unit(v: torch.Tensor) -> torch.Tensor:
    n = v.norm(dim=-1, keepdim=True)
    return torch.where(n > 0, v / n.clamp_min(1e-300), torch.zeros_like(v))


def gradient_conflict(
    updates: Mapping[int, Mapping[str, torch.Tensor]], multimodal: Mapping[int, bool]
) -> dict[str, dict]:
    """Per branch held by at least one uni- and one multimodal agent:
    `cosine` between the mean uni update and the mean multi update,
    `frac_negative` of uni x multi pairs whose updates have negative cosine,
    `mean_pair_cosine`, `n_uni`, `n_multi`. Zero vectors count as cosine 0.
    Updates of a key whose size differs from the most common one are skipped."""
    prev = torch.get_num_threads()
    if prev != 1:  # the result's last bits depend on the thread count: the same on every backend
        torch.set_num_threads(1)
    try:
        return _conflict(updates, multimodal)
    finally:
        if prev != 1:
            torch.set_num_threads(prev)


def _conflict(updates: Mapping[int, Mapping[str, torch.Tensor]], multimodal: Mapping[int, bool]) -> dict[str, dict]:
    keys = sorted({k for u in updates.values() for k in u})
    out: dict[str, dict] = {}
    for key in keys:
        holders = [(a, updates[a][key].reshape(-1)) for a in sorted(updates) if key in updates[a]]
        size = Counter(v.numel() for _, v in holders).most_common(1)[0][0]
        holders = [(a, v.to(torch.float64)) for a, v in holders if v.numel() == size]
        uni = [v for a, v in holders if not multimodal[a]]
        multi = [v for a, v in holders if multimodal[a]]
        if not uni or not multi:
            continue
        u, m = torch.stack(uni), torch.stack(multi)
        cos = float(_unit(u.mean(0)) @ _unit(m.mean(0)))
        pair = _unit(u) @ _unit(m).T
        out[key] = {
            "cosine": cos,
            "frac_negative": float((pair < 0).double().mean()),
            "mean_pair_cosine": float(pair.mean()),
            "n_uni": len(uni),
            "n_multi": len(multi),
        }
    return out
