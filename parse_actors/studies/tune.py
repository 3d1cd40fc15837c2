"""`parse-sim sweep --tune KEY=V1,V2,...`: per-setting hyperparameter choice on validation data.

Tune keys are swept like grid keys. For every setting (a combination of the
other grid keys' values, the method among them) the tune value with the best
mean over seeds of the validation accuracy of all agents is chosen, and the
setting is then reported by its *test* accuracy at that value. Test accuracy
never enters the choice: this is the fair comparison papers make when they
tune each method.

What "validation accuracy" is: the **global validation set**
(`summary.json: final_acc_gval.mean`; data.global_val_size, which `sweep
--tune` sets to 300 samples when the scenario has none) when the sweep's runs
have one; otherwise the agents' own validation splits (`final_acc_val.mean`,
4-16 samples per agent on small datasets: too few to separate candidates).
The agents' validation accuracy stays beside it as a column.

Rules, so that a choice can be checked by hand:
- a run whose validation accuracy is not a number (the model diverged) counts
  as 0.0 for its tune value: diverging is a failure, not missing data;
- a run that is not complete counts for nothing (`n` says how many seeds a
  candidate had);
- ties (mean validation accuracies equal to 12 decimals) go to the value listed first in
  `--tune` (the first tune key varying slowest): list values in order of
  preference, e.g. the smallest learning rate first;
- **edge extension**: when the chosen value of a numeric tune key is the
  smallest or the largest of its values, the grid does not bracket the
  optimum: the sweep adds one more step beyond that edge for that setting
  (the grid's ratio between its two outermost values when all are positive,
  else their difference), runs it, and chooses again (`edge_extensions`). Up to
  `sweep --extend N` steps per setting and key (1 unless said): a choice that
  lands on the new value steps again; a choice still at the edge after the
  last step is said so (`at_edge` in tuned.csv).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from parse_actors.studies.grid import dump_value, is_numeric

SELECT_ON = {"gval": "final_acc_gval", "val": "final_acc_val"}
"""Which summary.json accuracy a choice is made on: global validation set, agents' validation splits."""


class _Run(Protocol):
    params: dict
    seed: int
    summary: dict


@dataclass
class Candidate:
    values: dict[str, Any]  # tune key -> value
    val: float | None  # mean over seeds of the selection accuracy (None: no run has one)
    n: int  # seeds it was scored on
    runs: list = field(default_factory=list)
    agent_val: float | None = None  # mean over seeds of final_acc_val.mean (agents' own splits)
    extension: dict | None = None  # the edge extension that added it (None: a value of the grid)


@dataclass
class Choice:
    """The tune values chosen for one setting and the runs made with them."""

    setting: dict[str, Any]  # the other grid keys' values
    candidates: list[Candidate]
    chosen: Candidate | None  # None: no candidate had a validation accuracy
    on: str = "val"  # SELECT_ON key the choice was made on

    @property
    def runs(self) -> list:
        return self.chosen.runs if self.chosen else []

    @property
    def extensions(self) -> list[dict]:
        return [c.extension for c in self.candidates if c.extension is not None]

    def at_edge(self, key: str) -> str:
        """'lower' / 'upper' when the chosen value of numeric tune key `key` is the smallest /
        largest of the values this setting had (its extension included), else ''."""
        if self.chosen is None:
            return ""
        vals = [c.values[key] for c in self.candidates if c.val is not None]
        if len(set(map(dump_value, vals))) < 2 or not is_numeric(vals):
            return ""
        v = self.chosen.values[key]
        return "upper" if v == max(vals) else "lower" if v == min(vals) else ""


def val_score(summary: dict, on: str = "val") -> float | None:
    """Validation accuracy of all agents at the end of a run (`on`: SELECT_ON); NaN
    (diverged) -> 0.0; None when the run has no such validation set."""
    fa = summary.get(SELECT_ON[on])
    if not isinstance(fa, dict) or "mean" not in fa:
        return None
    v = fa.get("mean")
    if v is None:
        return None
    v = float(v)
    return 0.0 if not math.isfinite(v) else v


def select_on(runs: list[_Run]) -> str:
    """'gval' when any complete run has a global validation accuracy, else 'val'."""
    return "gval" if any(r.summary.get("complete", True) and val_score(r.summary, "gval") is not None
                         for r in runs) else "val"


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def setting_key(setting: dict[str, Any], keys: list[str]) -> tuple:
    return tuple(dump_value(setting.get(k)) for k in keys)


def choose(runs: list[_Run], grid: dict[str, list], tune_keys: list[str],
           extensions: list[dict] | None = None) -> list[Choice]:
    """One Choice per setting of the non-tune grid keys, in grid order; `extensions`
    (edge_extensions, as recorded in sweep.json) add candidates to their settings."""
    other = [k for k in grid if k not in tune_keys]
    text = {k: [dump_value(v) for v in grid[k]] for k in grid}
    on = select_on(runs)

    def key_of(r: _Run, keys: list[str]) -> tuple:
        return tuple(dump_value(r.params.get(k)) for k in keys)

    by_cell: dict[tuple, dict[tuple, list]] = {}
    for r in runs:
        if not r.summary.get("complete", True):
            continue
        by_cell.setdefault(key_of(r, other), {}).setdefault(key_of(r, tune_keys), []).append(r)
    extra: dict[tuple, list[dict]] = {}
    for e in extensions or []:
        extra.setdefault(setting_key(e["setting"], other), []).append(e)

    def candidate(cell: dict, values: dict, ext: dict | None) -> Candidate:
        rs = sorted(cell.get(setting_key(values, tune_keys), []), key=lambda r: r.seed)
        scores = [s for s in (val_score(r.summary, on) for r in rs) if s is not None]
        agent = [s for s in (val_score(r.summary, "val") for r in rs) if s is not None]
        return Candidate(values, _mean(scores), len(scores), rs, _mean(agent), ext)

    out = []
    for combo in itertools.product(*(range(len(grid[k])) for k in other)):
        cell_key = tuple(text[k][i] for k, i in zip(other, combo))
        setting = {k: grid[k][i] for k, i in zip(other, combo)}
        cell = by_cell.get(cell_key, {})
        cands = [candidate(cell, {k: grid[k][i] for k, i in zip(tune_keys, tcombo)}, None)
                 for tcombo in itertools.product(*(range(len(grid[k])) for k in tune_keys))]
        cands += [candidate(cell, e["values"], e) for e in extra.get(cell_key, [])]
        scored = [(i, c) for i, c in enumerate(cands) if c.val is not None]
        best = min(scored, key=lambda ic: (-round(ic[1].val, 12), ic[0]))[1] if scored else None
        if not cell:
            continue  # no complete run of this setting yet
        out.append(Choice(setting, cands, best, on))
    return out


def step_beyond(values: list, edge: str) -> Any:
    """The next value past the `edge` ('lower'/'upper') of numeric `values`: the ratio of the two
    outermost values when all are positive (a log grid stays a log grid), else their difference;
    rounded to 3 significant digits (an integer grid stays integer)."""
    vs = sorted(values)
    a, b = (vs[0], vs[1]) if edge == "lower" else (vs[-1], vs[-2])
    if all(v > 0 for v in vs):
        x = a * (a / b)
    else:
        x = a + (a - b)
    if all(isinstance(v, int) for v in vs):
        x = int(round(x))
        return x if x != a else a + (1 if edge == "upper" else -1)
    return float(f"{x:.3g}")


def edge_extensions(choices: list[Choice], grid: dict[str, list], tune_keys: list[str],
                    max_steps: int = 1) -> list[dict]:
    """The candidates to add: for each setting whose chosen value of a numeric tune key sits at
    an edge of the values it has (the grid's and its earlier extensions'), one step beyond it
    (the other tune keys at their chosen values), while that setting has had fewer than
    `max_steps` extensions of that key. JSON-ready (sweep.json `extensions`)."""
    out = []
    for c in choices:
        if c.chosen is None:
            continue
        for k in tune_keys:
            vals = grid[k]
            if len(vals) < 2 or not is_numeric(vals):
                continue
            steps = [e for e in c.extensions if e["key"] == k]
            if len(steps) >= max_steps:
                continue
            have = list(vals) + [e["values"][k] for e in steps]
            v = c.chosen.values[k]
            edge = "upper" if v == max(have) else "lower" if v == min(have) else None
            if edge is None:
                continue
            new = step_beyond(have, edge)
            if edge == "lower" and all(x > 0 for x in have) and new <= 0:
                continue
            out.append({"setting": dict(c.setting), "key": k, "edge": edge, "from": v,
                        "values": {**c.chosen.values, k: new}})
    return out


__all__ = ["SELECT_ON", "Candidate", "Choice", "choose", "edge_extensions", "select_on", "step_beyond", "val_score"]
