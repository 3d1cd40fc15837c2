"""PNG plots of a run: accuracy over virtual time per group, bytes per slice kind."""

from __future__ import annotations

from collections import defaultdict
import io
from pathlib import Path

from parse_actors import atomic


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically: no half-written PNG after a crash."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _plt().close(fig)
    atomic.write_bytes(path, buf.getvalue())


def accuracy_vs_time(rows: list[dict], path: Path, title: str) -> None:
    plt = _plt()
    series: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        series[r["group"]][r["t"]].append(r["acc"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for g, pts in series.items():
        ts = sorted(pts)
        ax.plot(ts, [sum(pts[t]) / len(pts[t]) for t in ts], marker="o", ms=3, label=g)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("test accuracy (mean over agents)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title="agent group")
    _save(fig, path)


def bytes_by_kind(bytes_by_kind: dict[str, int], path: Path, title: str) -> None:
    plt = _plt()
    kinds = list(bytes_by_kind)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    vals = [bytes_by_kind[k] / 2**20 for k in kinds]
    bars = ax.bar(kinds, vals, color="tab:blue")
    for b, v in zip(bars, vals):
        ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("slice kind")
    ax.set_ylabel("bytes sent (MiB)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def write_run_plots(plot_dir: Path, rows: list[dict], summary: dict) -> list[Path]:
    plot_dir.mkdir(parents=True, exist_ok=True)
    out = []
    if rows:
        p = plot_dir / "accuracy_vs_time.png"
        accuracy_vs_time(rows, p, f"{summary['name']} ({summary['method']}): accuracy per agent group")
        out.append(p)
    if summary["bytes_by_kind"]:
        p = plot_dir / "bytes_by_kind.png"
        bytes_by_kind(summary["bytes_by_kind"], p, f"{summary['name']} ({summary['method']}): bytes per slice kind")
        out.append(p)
    return out
