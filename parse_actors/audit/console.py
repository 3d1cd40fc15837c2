"""The audit's console tables (`parse-sim audit` prints them)."""

from __future__ import annotations

from . import features as feat
from .criteria import format_criteria
from .tables import group_matrix


def probe_lines(records: list[dict]) -> list[str]:
    """Per group, the mean normalised probe matrix (own column marked *)."""
    lines = []
    for g in dict.fromkeys(r["group"] for r in records):
        rows, cols, m, k = group_matrix(records, g)
        if not rows:
            continue
        lines.append(f"latent probes, group {g} ({k} agent{'s' if k != 1 else ''}; normalised: 0 chance, 1 perfect; "
                     f"* own column)")
        w = max(len(r) for r in rows) + 1
        lines.append(" " * w + "".join(f"{c:>22}" for c in cols))
        for i, r in enumerate(rows):
            own = feat.own_columns(r, cols)
            lines.append(f"{r:<{w}}" + "".join(f"{m[i, j]:>21.2f}{'*' if c in own else ' '}"
                                              for j, c in enumerate(cols)))
        lines.append("")
    return lines


def pid_lines(records: list[dict]) -> list[str]:
    """Per multimodal agent and source pair, the PID of the label in bits."""
    pid = [r for r in records if r["measure"] == "pid"]
    if not pid:
        return []
    lines = ["PID of the label (bits; BROJA; in brackets: the same with the label shuffled)"]
    for key in dict.fromkeys((r["agent"], r["group"], r["row"]) for r in pid):
        comps = [r for r in pid if (r["agent"], r["group"], r["row"]) == key]
        text = ", ".join(f"{c['column']} {c['value']:.3f} ({c['null']:.3f})" for c in comps)
        lines.append(f"agent {key[0]} [{key[1]}] {key[2]}: {text}")
    return lines


def format_table(records: list[dict], criteria: dict | None = None) -> str:
    """Plain-text tables: probe matrices per group, the PID per multimodal agent, and
    with `criteria` (criteria.fission_criteria) the issue-20 criteria with their null row."""
    lines = probe_lines(records) + pid_lines(records)
    if criteria:
        lines += [""] + format_criteria(criteria)
    return "\n".join(lines).rstrip()
