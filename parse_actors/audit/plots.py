"""Heatmaps of an audit: per agent group, the mean normalised probe matrix
(slices x latents) and the PID of the label (pairs x components, bits)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from parse_actors.metrics.plots import plt_ as _plt
from parse_actors.metrics.plots import save_png as _save

from .tables import group_matrix


def _pid_matrix(records: list[dict], group: str):
    recs = [r for r in records if r["measure"] == "pid" and r["group"] == group]
    pairs = list(dict.fromkeys(r["row"] for r in recs))
    comps = ["redundant", "unique:1", "unique:2", "synergy", "total"]
    m = np.zeros((len(pairs), len(comps)))
    k = np.zeros_like(m)
    for r in recs:
        i = pairs.index(r["row"])
        c = r["column"]
        j = comps.index(c) if c in comps else (1 if c == f"unique:{r['row'].split('|')[0]}" else 2)
        m[i, j] += r["value"]
        k[i, j] += 1
    return pairs, comps, m / np.maximum(k, 1)


def _heat(ax, m, rows, cols, title, vmax, fmt):
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 * vmax else "black")
    ax.set_title(title, fontsize=9)
    return im


def write_audit_plots(plot_dir: Path, records: list[dict], dpi: int = 100) -> list[Path]:
    """One PNG per agent group (and the oracle): plots/pid_audit_<group>.png."""
    plt = _plt()
    made = []
    for g in dict.fromkeys(r["group"] for r in records):
        rows, cols, m, k = group_matrix(records, g)
        pairs, comps, pm = _pid_matrix(records, g)
        panels = int(bool(rows)) + int(bool(pairs))
        if not panels:
            continue
        fig, axes = plt.subplots(1, panels, figsize=(4.5 + 0.7 * len(cols) if rows else 5, 1.2 + 0.45 *
                                 max(len(rows), len(pairs), 3)), squeeze=False, dpi=dpi)
        i = 0
        if rows:
            _heat(axes[0, i], m, rows, cols, f"{g}: latent probes (0 chance, 1 perfect; {k} agents)", 1.0,
                  "{:.2f}")
            i += 1
        if pairs:
            _heat(axes[0, i], pm, pairs, comps, f"{g}: PID of the label (bits, BROJA)",
                  max(float(pm.max()), 1e-6), "{:.2f}")
        slug = re.sub(r"[^A-Za-z0-9_.+-]", "_", str(g))
        path = Path(plot_dir) / f"pid_audit_{slug}.png"
        _save(fig, path)
        made.append(path)
    return made
