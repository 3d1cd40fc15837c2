"""Reading a run at its validation stop (`sweep --early-stop`, `report --early-stop`).

A run trained for a fixed budget past its best round is judged at its end, where
a learning rate that overfits early loses to a smaller one still climbing: the
fixed budget, not the method, decides. Early stopping reads each run where its
validation accuracy peaked instead. The **validation stop** is the earliest
evaluated round at which the mean validation accuracy of all agents is highest
(the global validation set, `acc_gval`, when the run has one, else the agents'
own splits, `acc_val`); rounds where that mean is not finite (a diverged agent)
never qualify. The test set plays no part in finding it.

A stopped summary is the run's summary.json with every `final_acc*` entry taken
at that round (metrics.summary.final_accuracy of the rows up to it) and a `stop`
entry saying which round and on what. Everything else (bytes, conflict,
slice drop) stays the whole run's: the curves show bytes at every round.
"""

from __future__ import annotations

import math
from collections import defaultdict

from parse_actors.metrics.summary import final_accuracy

STOP_COLUMNS = {"final_acc": "acc", "final_acc_val": "acc_val", "final_acc_local": "acc_local",
                "final_acc_gval": "acc_gval"}
"""summary.json entry -> the metrics.csv column it is the last round's mean of."""


def stop_column(summary: dict) -> str:
    """The validation score a run is stopped on: the global set when it has one."""
    return "acc_gval" if isinstance(summary.get("final_acc_gval"), dict) else "acc_val"


def validation_stop(rows: list[dict], column: str) -> int | None:
    """The earliest round with the highest finite mean of `column` over the agents evaluated
    then (means compared to 12 decimals); None when no round has one."""
    by_round: dict[int, list[float]] = defaultdict(list)
    bad: set[int] = set()
    for r in rows:
        v = r.get(column)
        if v is None:
            continue
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            bad.add(int(r["round"]))
            continue
        by_round[int(r["round"])].append(float(v))
    best, best_round = None, None
    for k in sorted(by_round):
        if k in bad:
            continue
        m = round(sum(by_round[k]) / len(by_round[k]), 12)
        if best is None or m > best:
            best, best_round = m, k
    return best_round


def stopped_summary(summary: dict, rows: list[dict]) -> dict:
    """`summary` read at its validation stop (a copy; `summary` itself when no round qualifies,
    e.g. every round diverged: the run is then judged at its end, where a diverged run scores 0)."""
    column = stop_column(summary)
    k = validation_stop(rows, column)
    if k is None:
        return summary
    upto = [r for r in rows if int(r["round"]) <= k]
    out = dict(summary)
    for key, col in STOP_COLUMNS.items():
        if key in summary:
            out[key] = final_accuracy(upto, col)
    last = max(int(r["round"]) for r in rows)
    out["stop"] = {"rule": "validation", "on": column, "round": k, "last_round": last}
    return out


__all__ = ["STOP_COLUMNS", "stop_column", "stopped_summary", "validation_stop"]
