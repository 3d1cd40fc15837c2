"""Reading a run at a common virtual-time budget (`report --time-budget`).

Runs that make the same updates at different speeds (synchronous rounds with
stragglers, sync against async) are not comparable at their last round: one
ran 40 rounds in 12 s of virtual time, another in 100 s. Read at a time budget,
every run is judged by what it had learned T seconds of virtual time after the
start: its last evaluation at or before T (with `--early-stop` too: its
validation stop among those evaluations). The choice of the tuned values, the
tables and the paired differences then use those accuracies, exactly as if
every run had been stopped at T. Bytes, conflict and slice drop stay the whole
run's, as with early stopping.

A budgeted summary is the run's summary.json with every `final_acc*` entry
taken at that evaluation and a `stop` entry saying which round, of how many,
and the budget (`ended_before_budget` when the run's virtual time ran out first: it is
then read at its end). A run with no evaluation within the budget has no reading.
"""

from __future__ import annotations

from parse_actors.metrics.summary import final_accuracy
from parse_actors.studies.early_stop import STOP_COLUMNS, stopped_summary

BUDGET_TOL_S = 1e-9
"""An evaluation at T + 1e-9 s still counts as within a budget of T s (float sums of durations)."""


def within_budget(rows: list[dict], t_budget: float) -> list[dict]:
    """The metrics rows of the evaluations made at or before `t_budget` seconds of virtual time."""
    return [r for r in rows if float(r["t"]) <= t_budget + BUDGET_TOL_S]


def budgeted_summary(summary: dict, rows: list[dict], t_budget: float, early_stop: bool = False) -> dict | None:
    """`summary` read at its last evaluation within `t_budget` (with `early_stop`: at its
    validation stop among the evaluations within it); a copy. None: no evaluation within it."""
    upto = within_budget(rows, t_budget)
    if not upto:
        return None
    last = max(int(r["round"]) for r in rows)
    k = max(int(r["round"]) for r in upto)
    out = dict(summary)
    for key, col in STOP_COLUMNS.items():
        if key in summary:
            out[key] = final_accuracy(upto, col)
    short = {"ended_before_budget": True} if ended_before(summary, t_budget) else {}
    out["stop"] = {"rule": "time", "t_budget": t_budget, "round": k, "last_round": last, **short}
    if early_stop:
        stopped = stopped_summary(out, upto)
        if stopped is not out:
            stopped["stop"] = dict(stopped["stop"], t_budget=t_budget, last_round=last, **short)
            return stopped
    return out


def ended_before(summary: dict, t_budget: float) -> bool:
    """Whether the run's virtual time ran out before the budget (`protocol.rounds` too few):
    it is then read at its end, where a longer run might have gained more by the budget."""
    vt = summary.get("virtual_time_s")
    return isinstance(vt, (int, float)) and vt < t_budget - BUDGET_TOL_S


__all__ = ["BUDGET_TOL_S", "budgeted_summary", "ended_before", "within_budget"]
