"""`parse-sim sweep --tune KEY=V1,V2,...`: per-setting hyperparameter choice on validation data.

Tune keys are swept like grid keys. For every setting (a combination of the
other grid keys' values, the method among them) the tune value with the best
mean over seeds of the validation accuracy of all agents
(`summary.json: final_acc_val.mean`) is chosen, and the setting is then
reported by its *test* accuracy at that value. Test accuracy never enters the
choice: this is the fair comparison papers make when they tune each method.

Rules, so that a choice can be checked by hand:
- a run whose validation accuracy is not a number (the model diverged) counts
  as 0.0 for its tune value: diverging is a failure, not missing data;
- a run that is not complete counts for nothing (`n` says how many seeds a
  candidate had);
- ties (mean validation accuracies equal to 12 decimals) go to the value listed first in
  `--tune` (the first tune key varying slowest): list values in order of
  preference, e.g. the smallest learning rate first.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from parse_actors.studies.grid import dump_value


class _Run(Protocol):
    params: dict
    seed: int
    summary: dict


@dataclass
class Candidate:
    values: dict[str, Any]  # tune key -> value
    val: float | None  # mean over seeds of final_acc_val.mean (None: no run has one)
    n: int  # seeds it was scored on
    runs: list = field(default_factory=list)


@dataclass
class Choice:
    """The tune values chosen for one setting and the runs made with them."""

    setting: dict[str, Any]  # the other grid keys' values
    candidates: list[Candidate]
    chosen: Candidate | None  # None: no candidate had a validation accuracy

    @property
    def runs(self) -> list:
        return self.chosen.runs if self.chosen else []


def val_score(summary: dict) -> float | None:
    """Validation accuracy of all agents at the end of a run; NaN (diverged) -> 0.0;
    None when the run has no validation split."""
    fa = summary.get("final_acc_val")
    if not isinstance(fa, dict) or "mean" not in fa:
        return None
    v = fa.get("mean")
    if v is None:
        return None
    v = float(v)
    return 0.0 if not math.isfinite(v) else v


def choose(runs: list[_Run], grid: dict[str, list], tune_keys: list[str]) -> list[Choice]:
    """One Choice per setting of the non-tune grid keys, in grid order."""
    other = [k for k in grid if k not in tune_keys]
    text = {k: [dump_value(v) for v in grid[k]] for k in grid}

    def key_of(r: _Run, keys: list[str]) -> tuple:
        return tuple(dump_value(r.params.get(k)) for k in keys)

    by_cell: dict[tuple, dict[tuple, list]] = {}
    for r in runs:
        if not r.summary.get("complete", True):
            continue
        by_cell.setdefault(key_of(r, other), {}).setdefault(key_of(r, tune_keys), []).append(r)
    out = []
    for combo in itertools.product(*(range(len(grid[k])) for k in other)):
        cell_key = tuple(text[k][i] for k, i in zip(other, combo))
        setting = {k: grid[k][i] for k, i in zip(other, combo)}
        cell = by_cell.get(cell_key, {})
        cands = []
        for tcombo in itertools.product(*(range(len(grid[k])) for k in tune_keys)):
            tkey = tuple(text[k][i] for k, i in zip(tune_keys, tcombo))
            rs = sorted(cell.get(tkey, []), key=lambda r: r.seed)
            scores = [s for s in (val_score(r.summary) for r in rs) if s is not None]
            cands.append(Candidate({k: grid[k][i] for k, i in zip(tune_keys, tcombo)},
                                   sum(scores) / len(scores) if scores else None, len(scores), rs))
        scored = [(i, c) for i, c in enumerate(cands) if c.val is not None]
        best = min(scored, key=lambda ic: (-round(ic[1].val, 12), ic[0]))[1] if scored else None
        if not cell:
            continue  # no complete run of this setting yet
        out.append(Choice(setting, cands, best))
    return out


__all__ = ["Candidate", "Choice", "choose", "val_score"]
