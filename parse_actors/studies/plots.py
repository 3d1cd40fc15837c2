"""Figures of reports (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from parse_actors.metrics.plots import KIND_COLORS, colors as _colors, legend as _legend, new_figure as _fig
from parse_actors.metrics.plots import plt_ as _plt, save_png
from parse_actors.studies.data import RunData, SweepData, mean_ci


def _save(fig, path: Path, layout: bool = True) -> None:
    save_png(fig, path, layout)


def _save_no_layout(fig, path: Path) -> None:
    save_png(fig, path, layout=False)


def _line_styles(n: int) -> list[tuple]:
    """(color, linestyle) per line: tab10 colours, then the same colours dashed, dotted..."""
    cmap = _plt().get_cmap("tab10")
    return [(cmap(i % 10), ("-", "--", ":", "-.")[(i // 10) % 4]) for i in range(n)]


# ------------------------------------------------------------------- one run


def run_conflict(run: RunData, path: Path, title: str, dpi: int) -> None:
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in run.conflict:
        if isinstance(r["cosine"], (int, float)) and math.isfinite(r["cosine"]):
            series[r["branch"]].append((float(r["t"]), float(r["cosine"])))
    fig, axes = _fig(w=7.2, h=4.2, dpi=dpi)
    ax = axes[0][0]
    for (b, pts), (c, ls) in zip(sorted(series.items()), _line_styles(len(series))):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", ms=3, color=c, ls=ls, label=b)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("cosine (unimodal vs multimodal update)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, len(series), title="shared branch", loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def run_online(run: RunData, path: Path, title: str, dpi: int) -> None:
    per_round: dict[int, list[float]] = defaultdict(list)
    ts: dict[int, float] = {}
    for r in run.metrics:
        if r.get("online") is not None:
            per_round[r["round"]].append(float(r["online"]))
            ts[r["round"]] = float(r["t"])
    rounds = sorted(per_round)
    fig, axes = _fig(h=3.2, dpi=dpi)
    ax = axes[0][0]
    ax.step([ts[k] for k in rounds], [100 * sum(per_round[k]) / len(per_round[k]) for k in rounds], where="post",
            color="tab:blue", label="online at evaluation")
    ax.set_ylim(0, 105)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("agents online (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


# ------------------------------------------------------------------- shared


def grouped_bars(labels: list[str], series: dict[str, list[float | None]], path: Path, title: str, ylabel: str,
                 dpi: int, errors: dict[str, list[float | None]] | None = None, missing_text: str = "",
                 legend_title: str = "", horizontal: bool | None = None, xlabel: str = "") -> None:
    """One cluster per label, one bar per series (None: no bar, `missing_text` written instead)."""
    n, k = len(labels), max(1, len(series))
    horizontal = n > 6 if horizontal is None else horizontal
    width = 0.8 / k
    if horizontal:
        longest = max((len(x) for x in labels), default=10)
        fig, axes = _fig(w=min(12.0, 5.6 + 0.06 * longest), h=max(3.0, 0.22 * n * max(1.0, 0.6 * k) + 1.2),
                         dpi=dpi)
    else:
        fig, axes = _fig(w=max(6.4, 0.5 * n * k + 2), h=4.0, dpi=dpi)
    ax = axes[0][0]
    for j, ((name, vals), c) in enumerate(zip(series.items(), _colors(k))):
        pos = [i - 0.4 + width * (j + 0.5) for i in range(n)]
        err = (errors or {}).get(name)
        v = [x if x is not None else 0.0 for x in vals]
        e = None if err is None else [x or 0.0 for x in err]
        if horizontal:
            ax.barh(pos, v, height=width, color=c, label=name, xerr=e, capsize=2)
        else:
            ax.bar(pos, v, width=width, color=c, label=name, yerr=e, capsize=2)
        if missing_text:
            for p, x in zip(pos, vals):
                if x is None:
                    if horizontal:
                        ax.text(0, p, f" {missing_text}", va="center", fontsize=6, color=c)
                    else:
                        ax.text(p, 0, missing_text, ha="center", va="bottom", rotation=90, fontsize=6, color=c)
    if horizontal:
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        if xlabel:
            ax.set_ylabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(range(n), labels, rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center",
                      fontsize=8)
        ax.set_ylabel(ylabel)
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    _legend(ax, k, title=legend_title or None, title_fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


# ------------------------------------------------------------------- sweeps


def sweep_accuracy(sd: SweepData, configs: dict[str, list[RunData]], groups: list[str], path: Path, title: str,
                   target: float | None, dpi: int) -> None:
    panels = ["all agents"] + groups
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    ncol, leg_h = _legend_layout(list(configs))
    fig, axes = _fig(w=5.0 * ncols, h=3.1 * nrows + 0.5 + leg_h, dpi=dpi, ncols=ncols, nrows=nrows, sharey=True)
    styles = _line_styles(len(configs))
    for idx, panel in enumerate(panels):
        ax = axes[idx // ncols][idx % ncols]
        g = None if panel == "all agents" else panel
        for (label, runs), (c, ls) in zip(configs.items(), styles):
            by_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for r in runs:
                for k, t, a in r.curve(g):
                    by_round[k].append((t, a))
            ks = sorted(by_round)
            if not ks:
                continue
            x = [sum(p[0] for p in by_round[k]) / len(by_round[k]) for k in ks]
            y = [sum(p[1] for p in by_round[k]) / len(by_round[k]) for k in ks]
            ax.plot(x, y, color=c, ls=ls, lw=1.2, label=label)
        if target is not None:
            ax.axhline(target, color="gray", ls=":", lw=1)
        _label_panel(ax, idx, ncols, panel, "virtual time (s)", "test accuracy")
    _hide_unused(axes, len(panels), nrows, ncols)
    handles, labels = axes[0][0].get_legend_handles_labels()
    bottom = _fig_legend(fig, handles, labels, ncol, leg_h)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save_no_layout(fig, path)


def _legend_layout(labels: list[str], title: str = "") -> tuple[int, float]:
    """(columns, height in inches) of a legend below the panels for these labels."""
    if not labels:
        return 1, 0.0
    longest = max(len(x) for x in labels)
    ncol = max(1, min(4, len(labels), int(110 // max(1, longest + 6))))
    rows = math.ceil(len(labels) / ncol) + (1 if title else 0)
    return ncol, 0.16 * rows + 0.2


def _fig_legend(fig, handles, labels, ncol: int, height_in: float, title: str = "") -> float:
    """Place the legend below the panels; returns the share of the figure height it takes."""
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, title=title or None, title_fontsize=7,
               bbox_to_anchor=(0.5, 0.0))
    return height_in / fig.get_figheight()



def _label_panel(ax, idx: int, ncols: int, title: str, xlabel: str, ylabel: str) -> None:
    """Title, x label and grid of one panel of a grid; the y label only in the first column
    (panels share their y axis)."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    if idx % ncols == 0:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _hide_unused(axes, used: int, nrows: int, ncols: int) -> None:
    """Blank the grid's cells past the last panel."""
    for idx in range(used, nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")

def sweep_vs_key(xs_label: str, lines: dict[str, dict[float, list[float | None]]], panels: list[str],
                 panel_lines: dict[str, dict[str, dict[float, list[float | None]]]], path: Path, title: str,
                 ylabel: str, dpi: int, legend_title: str = "") -> None:
    """Accuracy vs a numeric quantity: one panel per agent group, one line per other setting,
    error bars = 95% confidence interval over seeds (Student t)."""
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    names = list(lines)
    show_legend = bool(names) and names != ["all runs"]
    ncol, leg_h = _legend_layout(names, legend_title) if show_legend else (1, 0.0)
    fig, axes = _fig(w=5.0 * ncols, h=3.1 * nrows + 0.5 + leg_h, dpi=dpi, ncols=ncols, nrows=nrows, sharey=True)
    styles = _line_styles(len(names))
    for idx, panel in enumerate(panels):
        ax = axes[idx // ncols][idx % ncols]
        data = panel_lines[panel]
        for name, (c, ls) in zip(names, styles):
            pts = data.get(name, {})
            xs = sorted(pts)
            stats = [mean_ci(pts[x]) for x in xs]
            keep = [(x, s) for x, s in zip(xs, stats) if s[0] is not None]
            if not keep:
                continue
            ax.errorbar([x for x, _ in keep], [s[0] for _, s in keep], yerr=[s[1] or 0.0 for _, s in keep],
                        color=c, ls=ls, marker="o", ms=4, capsize=3, lw=1.2, label=name)
        _label_panel(ax, idx, ncols, panel, xs_label, ylabel)
    _hide_unused(axes, len(panels), nrows, ncols)
    handles, labels = axes[0][0].get_legend_handles_labels()
    bottom = 0.0
    if show_legend and labels:
        bottom = _fig_legend(fig, handles, labels, ncol, leg_h, legend_title)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save_no_layout(fig, path)


def stacked_bytes(labels: list[str], per_kind: dict[str, list[float]], path: Path, title: str, dpi: int,
                  xlabel: str = "") -> None:
    n = len(labels)
    horizontal = n > 6
    fig, axes = _fig(w=7.2 if horizontal else max(6.4, 0.7 * n + 2), h=max(3.2, 0.3 * n + 1.4) if horizontal
                     else 4.0, dpi=dpi)
    ax = axes[0][0]
    base = [0.0] * n
    for k, vals in per_kind.items():
        if not any(vals):
            continue
        if horizontal:
            ax.barh(range(n), vals, left=base, color=KIND_COLORS.get(k), label=k)
        else:
            ax.bar(range(n), vals, bottom=base, color=KIND_COLORS.get(k), label=k)
        base = [a + b for a, b in zip(base, vals)]
    for i, b in enumerate(base):
        if horizontal:
            ax.text(b, i, f" {b:.1f}", va="center", fontsize=7)
        else:
            ax.annotate(f"{b:.1f}", (i, b), ha="center", va="bottom", fontsize=7)
    if horizontal:
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("bytes sent per run (MiB, mean over seeds)")
        ax.set_xlim(0, max(base + [1e-9]) * 1.15)
        if xlabel:
            ax.set_ylabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(range(n), labels, rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=8)
        ax.set_ylabel("bytes sent per run (MiB, mean over seeds)")
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(title="slice kind", fontsize=7, title_fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def conflict_heatmap(rows: list[str], cols: list[str], values: list[list[float | None]], path: Path, title: str,
                     dpi: int) -> None:
    import numpy as np

    arr = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    fig, axes = _fig(w=max(5.0, 0.75 * len(cols) + 3.2), h=max(3.0, 0.3 * len(rows) + 1.8), dpi=dpi)
    ax = axes[0][0]
    lim = max(0.05, float(np.nanmax(np.abs(arr)))) if np.isfinite(arr).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(arr), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(arr[i, j]):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=6)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("mean cosine (uni vs multi update)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("setting")
    ax.set_ylabel("shared branch")
    _save(fig, path)


def conflict_lines(configs: dict[str, list[RunData]], path: Path, title: str, dpi: int) -> None:
    fig, axes = _fig(w=7.2, h=4.0, dpi=dpi)
    ax = axes[0][0]
    n = 0
    for (label, runs), (c, ls) in zip(configs.items(), _line_styles(len(configs))):
        by_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for r in runs:
            per: dict[int, list[float]] = defaultdict(list)
            ts: dict[int, float] = {}
            for row in r.conflict:
                if not isinstance(row["cosine"], (int, float)) or not math.isfinite(row["cosine"]):
                    continue
                per[row["round"]].append(float(row["cosine"]))
                ts[row["round"]] = float(row["t"])
            for k, v in per.items():
                by_round[k].append((ts[k], sum(v) / len(v)))
        ks = sorted(by_round)
        if not ks:
            continue
        n += 1
        ax.plot([sum(p[0] for p in by_round[k]) / len(by_round[k]) for k in ks],
                [sum(p[1] for p in by_round[k]) / len(by_round[k]) for k in ks], color=c, ls=ls, lw=1.2,
                label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("mean cosine over shared branches")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, n, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def curves_with_bands(panels: dict[str, dict[str, list[list[tuple[int, float, float | None]]]]], path: Path,
                      title: str, xlabel: str, ylabel: str, dpi: int) -> None:
    """One panel per agent group, one line per setting: at each evaluation (round), the mean
    over seeds of y against the mean over seeds of x, with a band of the 95% confidence
    interval of y over seeds (Student t; no band where one seed has the round).
    `panels`: panel -> setting -> one [(round, x, y)] per seed."""
    names = list(dict.fromkeys(n for p in panels.values() for n in p))
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    ncol, leg_h = _legend_layout(names)
    fig, axes = _fig(w=5.0 * ncols, h=3.1 * nrows + 0.5 + leg_h, dpi=dpi, ncols=ncols, nrows=nrows, sharey=True)
    styles = dict(zip(names, _line_styles(len(names))))
    for idx, (panel, lines) in enumerate(panels.items()):
        ax = axes[idx // ncols][idx % ncols]
        for name, seeds in lines.items():
            by_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for curve in seeds:
                for k, x, y in curve:
                    if y is not None and math.isfinite(y):
                        by_round[k].append((x, y))
            ks = sorted(by_round)
            if not ks:
                continue
            xs = [sum(p[0] for p in by_round[k]) / len(by_round[k]) for k in ks]
            stats = [mean_ci([p[1] for p in by_round[k]]) for k in ks]
            ys = [s[0] for s in stats]
            c, ls = styles[name]
            ax.plot(xs, ys, color=c, ls=ls, lw=1.2, label=name)
            lo = [max(0.0, m - (h or 0.0)) for m, h, _ in stats]  # an accuracy band stays in [0, 1]
            hi = [min(1.0, m + (h or 0.0)) for m, h, _ in stats]
            ax.fill_between(xs, lo, hi, color=c, alpha=0.15, lw=0)
        _label_panel(ax, idx, ncols, panel, xlabel, ylabel)
    _hide_unused(axes, len(panels), nrows, ncols)
    handles, labels = axes[0][0].get_legend_handles_labels()
    bottom = _fig_legend(fig, handles, labels, ncol, leg_h) if labels else 0.0
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save_no_layout(fig, path)
