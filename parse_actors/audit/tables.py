"""The audit's records as matrices: per agent and per group (mean over the group's agents)."""

from __future__ import annotations

import numpy as np


def probe_matrix(records: list[dict], agent) -> tuple[list[str], list[str], np.ndarray]:
    """(rows, columns, normalised scores) of one agent's probes (or 'oracle')."""
    recs = [r for r in records if r["measure"] == "probe" and r["agent"] == agent]
    rows = list(dict.fromkeys(r["row"] for r in recs))
    cols = list(dict.fromkeys(r["column"] for r in recs))
    m = np.full((len(rows), len(cols)), np.nan)
    for r in recs:
        m[rows.index(r["row"]), cols.index(r["column"])] = r["normalised"]
    return rows, cols, m


def group_matrix(records: list[dict], group: str) -> tuple[list[str], list[str], np.ndarray, int]:
    """Mean normalised probe matrix over a group's agents (rows in the order met)."""
    agents = list(dict.fromkeys(r["agent"] for r in records if r["group"] == group and r["measure"] == "probe"))
    mats = [probe_matrix(records, a) for a in agents]
    if not mats:
        return [], [], np.zeros((0, 0)), 0
    rows, cols, _ = mats[0]
    return rows, cols, np.mean([m for _, _, m in mats], axis=0), len(agents)
