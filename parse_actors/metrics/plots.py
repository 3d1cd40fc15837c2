"""The project's one plotting stack (matplotlib, Agg backend): figure helpers,
PNG writing, and the two per-run figures. A run directory's plots/ and the
run reports of `parse-sim report` are drawn by the same functions; reports,
sweeps and the audit add their own figures on top of these helpers."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

from parse_actors import atomic

KIND_COLORS = {"encoder": "#4c72b0", "red": "#c44e52", "uni": "#55a868", "syn": "#8172b2", "head": "#ccb974",
               "control": "#8c8c8c"}
MIB = 2 ** 20


def plt_():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, layout: bool = True) -> None:
    """Render to memory as a 256-colour PNG (plots need no more; files are ~4x
    smaller), then write atomically: no half-written PNG after a crash."""
    if layout:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt_().close(fig)
    data = buf.getvalue()
    try:
        from PIL import Image

        im = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        im.save(out, format="PNG", optimize=True)
        if len(out.getvalue()) < len(data):
            data = out.getvalue()
    except Exception:  # noqa: BLE001 - Pillow missing or failing: keep matplotlib's PNG
        pass
    atomic.write_bytes(path, data)


def new_figure(w: float = 6.4, h: float = 4.0, dpi: int = 100, ncols: int = 1, nrows: int = 1, **kw):
    fig, axes = plt_().subplots(nrows, ncols, figsize=(w, h), dpi=dpi, squeeze=False, **kw)
    return fig, axes


def colors(n: int):
    cmap = plt_().get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def legend(ax, n: int, **kw) -> None:
    if n == 0:
        return
    ax.legend(fontsize=7 if n > 6 else 8, **kw)


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and not math.isnan(v)


def _groups(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["group"] for r in rows))


def accuracy_vs_time(rows: list[dict], path: Path, title: str, target: float | None = None, dpi: int = 100) -> None:
    """Mean accuracy per agent group over virtual time (band: ±1 std over agents),
    all agents dashed, an optional target line. `rows`: metrics.csv rows."""
    fig, axes = new_figure(dpi=dpi)
    ax = axes[0][0]
    groups = _groups(rows)
    for g, c in zip(groups, colors(len(groups))):
        per_round: dict[int, list[float]] = defaultdict(list)
        ts: dict[int, float] = {}
        for r in rows:
            if r["group"] == g and _ok(r["acc"]):
                per_round[r["round"]].append(float(r["acc"]))
                ts[r["round"]] = float(r["t"])
        rounds = sorted(per_round)
        if not rounds:
            continue
        x = [ts[k] for k in rounds]
        m = [sum(per_round[k]) / len(per_round[k]) for k in rounds]
        sd = [math.sqrt(sum((a - mu) ** 2 for a in per_round[k]) / (len(per_round[k]) - 1))
              if len(per_round[k]) > 1 else 0.0 for k, mu in zip(rounds, m)]
        ax.plot(x, m, marker="o", ms=3, color=c, label=f"{g} ({len(per_round[rounds[-1]])} agents)")
        ax.fill_between(x, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], color=c, alpha=0.15)
    every: dict[int, list[float]] = defaultdict(list)
    ts_all: dict[int, float] = {}
    for r in rows:
        if _ok(r["acc"]):
            every[r["round"]].append(float(r["acc"]))
            ts_all[r["round"]] = float(r["t"])
    if every:
        ks = sorted(every)
        ax.plot([ts_all[k] for k in ks], [sum(every[k]) / len(every[k]) for k in ks], color="black", ls="--", lw=1,
                label="all agents")
    if target is not None:
        ax.axhline(target, color="gray", ls=":", lw=1, label=f"target {target:g}")
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("test accuracy (mean over agents)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend(ax, len(groups) + 2, title="agent group (band: ±1 std over agents)", title_fontsize=7)
    save_png(fig, path)


def bytes_by_kind(rows: list[dict], comm_rows: list[dict], path: Path, title: str, dpi: int = 100) -> None:
    """MiB sent per sending agent group, stacked by slice kind. `rows`: metrics.csv
    rows (agent -> group), `comm_rows`: comm.csv rows."""
    group_of = {r["agent"]: r["group"] for r in rows}
    kinds: list[str] = []
    data: dict[str, dict[str, float]] = {g: defaultdict(float) for g in _groups(rows)}
    for r in comm_rows:
        g = group_of.get(r["src"], "?")
        data.setdefault(g, defaultdict(float))[r["kind"]] += float(r["bytes_sent"]) / MIB
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    kinds = [k for k in KIND_COLORS if k in kinds] + [k for k in kinds if k not in KIND_COLORS]
    labels = [g for g in data if any(data[g].values())]
    fig, axes = new_figure(dpi=dpi)
    ax = axes[0][0]
    bottom = [0.0] * len(labels)
    for k in kinds:
        vals = [data[g].get(k, 0.0) for g in labels]
        ax.bar(labels, vals, bottom=bottom, color=KIND_COLORS.get(k), label=k)
        bottom = [a + b for a, b in zip(bottom, vals)]
    for i, b in enumerate(bottom):
        ax.annotate(f"{b:.1f}", (i, b), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("sending agent group")
    ax.set_ylabel("bytes sent (MiB)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(0, max(bottom + [1e-9]) * 1.1)
    legend(ax, len(kinds), title="slice kind", loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_png(fig, path)


def write_run_plots(plot_dir: Path, rows: list[dict], summary: dict, comm_rows: list[dict]) -> list[Path]:
    """plots/ of a finished run. A full disk stops the plotting (logged): the
    tables have been written, the figures can be drawn again by `parse-sim report`."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    out = []
    name = f"{summary['name']} ({summary['method']})"
    try:
        if rows:
            p = plot_dir / "accuracy_vs_time.png"
            accuracy_vs_time(rows, p, f"{name}: accuracy per agent group")
            out.append(p)
        if rows and summary["bytes_by_kind"]:
            p = plot_dir / "bytes_by_kind.png"
            bytes_by_kind(rows, comm_rows, p, f"{name}: bytes sent per slice kind")
            out.append(p)
    except OSError as e:
        if not atomic.is_no_space(e):
            raise
        from parse_actors import logs

        logs.get_logger().warning("plots_skipped", t=summary.get("virtual_time_s"), file=e.filename,
                                  reason="disk full")
    return out
