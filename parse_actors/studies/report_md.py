"""What every report uses: Markdown tables, figure links, writing report.md, and the
context every section of a sweep's report reads (SweepView)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from parse_actors import atomic
from parse_actors.metrics import dirguard
from parse_actors.studies.data import RunData, SweepData

FIG_DIR = "report"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.2f}"


def fig_link(lines: list[str], name: str, alt: str) -> None:
    lines += [f"![{alt}]({FIG_DIR}/{name})", ""]


def finish(dir_: Path, lines: list[str]) -> Path:
    """Write report.md; remove figures of an earlier report that this one no longer has."""
    text = "\n".join(lines)
    keep = set(re.findall(rf"\]\({FIG_DIR}/([^)]+)\)", text))
    dirguard.remove_stale_figures(dir_, FIG_DIR, keep)  # only figure names a report writes, never through a link
    out = dir_ / "report.md"
    atomic.write_text(out, text)
    return out


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")


@dataclass
class SweepView:
    """What every section of a sweep's report needs: the data, where figures go, and
    which runs the figures and later tables show (`plot_configs`: each setting at its
    tuned values with --tune)."""

    sd: SweepData
    figs: Path
    name: str
    dpi: int
    groups: list[str]
    configs: dict[str, list[RunData]]
    target: float
    budget: float | None
    plot_configs: dict[str, list[RunData]]
    plot_note: str
