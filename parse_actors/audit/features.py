"""What an agent's network computes on held-out samples, slice by slice, and
the same rows built from the synthetic task's true latents (the oracle).

Row names: `red/<m>`, `uni/<m>`, `syn/<m>` (the fission slices of modality m),
`fusion/<modset>` (the fused syn slices the syn head reads; multimodal
agents), `backbone/<m>` (the encoder output, a reference carrying everything
the slices were cut from) and, for monolithic models, `embedding`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from parse_actors.agents.model import FissionModel, FissionOut


@torch.no_grad()
def agent_features(net, x: Mapping[str, np.ndarray], batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Rows (see module docstring) of a built, activated model on inputs `x`.
    Backbone and fusion outputs are taken with forward hooks, so this follows
    whatever the model's forward does."""
    f = net._fast
    mods = list(net.mods)
    grabbed: dict[str, list] = {}
    hooks = []

    def keep(name):
        def hook(_module, _inp, out):
            grabbed.setdefault(name, []).append(out.detach().reshape(len(out), -1).cpu())
        return hook

    for entry in f.enc:
        hooks.append(entry[1].register_forward_hook(keep(f"backbone/{entry[0]}")))
    fusion = getattr(f, "fusion", None) if isinstance(net, FissionModel) else None  # monolithic: = embedding
    if fusion is not None:
        hooks.append(fusion.register_forward_hook(keep(f"fusion/{'+'.join(mods)}")))
    was = net.training
    net.eval()
    rows: dict[str, list] = {}
    dev = next(net.parameters()).device
    n = len(next(iter(x.values())))
    try:
        for s in range(0, n, batch_size):
            xb = {m: torch.as_tensor(np.asarray(x[m][s : s + batch_size]), dtype=torch.float32, device=dev)
                  for m in mods}
            out = net(xb)
            if isinstance(out, FissionOut):
                for kind in ("red", "uni", "syn"):
                    for m, t in zip(mods, getattr(out, kind) or []):
                        rows.setdefault(f"{kind}/{m}", []).append(t.detach().cpu())
            else:
                rows.setdefault("embedding", []).append(out.embedding.detach().cpu())
    finally:
        for h in hooks:
            h.remove()
        net.train(was)
    for k, v in grabbed.items():
        rows[k] = v
    return {k: torch.cat(v).double().numpy() for k, v in sorted(rows.items())}


def onehot(codes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[np.asarray(codes, dtype=np.int64)]


def latent_targets(task, lat: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
    """Probe columns of a synthetic task: name -> (metric, values).

    `z_R` the redundant latent, `z_U:<m>` each unique latent (R^2);
    `q:<S>:<m>` each synergy code (accuracy), `sum:<S>` each code sum mod C,
    the part of the label only the whole set S can read (accuracy)."""
    out: dict[str, tuple[str, np.ndarray]] = {}
    for p in task.parts.values():
        if p.role == "redundant":
            out["z_R"] = ("r2", lat[p.name])
        elif p.role == "unique":
            out[f"z_U:{p.owners[0]}"] = ("r2", lat[p.name])
    for p in task.parts.values():
        if p.role == "synergy":
            out["q:" + p.name.split(":", 1)[1]] = ("acc", lat[p.name])
    for t in task.terms:
        if t.role == "synergy":
            code = np.zeros(len(lat[t.parts[0]]), dtype=np.int64)
            for p in t.parts:
                code += lat[p]
            out["sum:" + t.name.split(":", 1)[1]] = ("acc", code % task.C)
    return out


def own_columns(row: str, columns) -> set[str]:
    """The probe columns a row should carry by its name: red -> z_R, uni/<m> ->
    z_U:<m>, syn/<m> -> the codes m holds, fusion/<modset> -> the code sums of
    subsets of modset. Backbone and embedding rows have none (references)."""
    kind, _, rest = row.partition("/")
    own = set()
    for c in columns:
        if kind == "red" and c == "z_R":
            own.add(c)
        elif kind == "uni" and c == f"z_U:{rest}":
            own.add(c)
        elif kind == "syn" and c.startswith("q:") and c.rsplit(":", 1)[1] == rest:
            own.add(c)
        elif kind == "fusion" and c.startswith("sum:") and set(c[4:].split("+")) <= set(rest.split("+")):
            own.add(c)
    return own


def oracle_features(task, lat: Mapping[str, np.ndarray], mods) -> dict[str, np.ndarray]:
    """Rows of an ideal fission of modality set `mods`, built from the true
    latents: red/<m> = z_R, uni/<m> = z_U,m, syn/<m> = one-hot of the codes m
    holds, fusion = one-hot of the code sums of the subsets inside `mods`,
    backbone/<m> = everything m sees."""
    C = task.C
    mods = sorted(mods)
    rows: dict[str, np.ndarray] = {}
    for m in mods:
        codes = [p.name for p in task.parts.values() if p.role == "synergy" and p.owners == (m,)]
        codes = [c for c in codes if set(c.split(":")[1].split("+")) <= set(mods)]
        rows[f"red/{m}"] = np.asarray(lat["red"], dtype=np.float64)
        rows[f"uni/{m}"] = np.asarray(lat[f"uni:{m}"], dtype=np.float64)
        if len(mods) >= 2:
            rows[f"syn/{m}"] = np.concatenate([onehot(lat[c], C) for c in codes], axis=1)
        rows[f"backbone/{m}"] = np.concatenate(
            [rows[f"red/{m}"], rows[f"uni/{m}"]] + [onehot(lat[c], C) for c in codes], axis=1)
    if len(mods) >= 2:
        sums = []
        for t in task.terms:
            if t.role == "synergy" and set(t.name.split(":", 1)[1].split("+")) <= set(mods):
                code = np.zeros(len(lat["red"]), dtype=np.int64)
                for p in t.parts:
                    code += lat[p]
                sums.append(onehot(code % C, C))
        rows[f"fusion/{'+'.join(mods)}"] = np.concatenate(sums, axis=1)
    return dict(sorted(rows.items()))


def slice_groups(rows: Mapping[str, np.ndarray], mods) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Source pairs for the PID of the label, name -> (source 1, source 2), for
    every pair of modalities (m1, m2) of the agent:
    `<kind>/<m1>|<kind>/<m2>` the same slice kind of the two modalities (red,
    uni, syn: what PARSE claims is redundant, unique, synergistic between the
    modalities), and `<m1>|<m2>` every slice of one modality against every
    slice of the other (monolithic models: the encoder outputs)."""
    mods = sorted(mods)

    def side(m):
        keys = [f"{k}/{m}" for k in ("red", "uni", "syn") if f"{k}/{m}" in rows]
        if not keys:  # monolithic: encoder outputs
            keys = [f"backbone/{m}"] if f"backbone/{m}" in rows else []
        return np.concatenate([rows[k] for k in keys], axis=1) if keys else None

    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, a in enumerate(mods):
        for b in mods[i + 1 :]:
            for kind in ("red", "uni", "syn"):
                if f"{kind}/{a}" in rows and f"{kind}/{b}" in rows:
                    pairs[f"{kind}/{a}|{kind}/{b}"] = (rows[f"{kind}/{a}"], rows[f"{kind}/{b}"])
            s1, s2 = side(a), side(b)
            if s1 is not None and s2 is not None:
                pairs[f"{a}|{b}"] = (s1, s2)
    return pairs
