"""The tuned part of a sweep's report: per setting, the tune values chosen on validation
accuracy (parse_actors.studies.tune), the test accuracy there, what the edge rule did,
and every candidate's validation accuracy."""

from __future__ import annotations

import statistics

from parse_actors.studies.data import SweepData, fmt_ci
from parse_actors.studies.grid import value_text
from parse_actors.studies.report_md import md_table
from parse_actors.studies.tune import Choice, choose


def setting_label(sd: SweepData, setting: dict) -> str:
    keys = [k for k in setting if k in sd.varied]
    if not keys:
        return "all runs"
    if keys == ["method"]:
        return value_text(setting["method"])
    return ", ".join(f"{sd.short_key(k)}={value_text(setting[k])}" for k in keys)


def tune_text(sd: SweepData, values: dict) -> str:
    return ", ".join(f"{sd.short_key(k) if len(sd.tune_keys) > 1 else k.split('.')[-1]}={value_text(v)}"
                     for k, v in values.items())


def tuned_choices(sd: SweepData) -> list[Choice]:
    return choose(sd.runs, sd.grid, sd.tune_keys, sd.extensions)


def _gval_size(sd: SweepData) -> int | None:
    sizes = [((r.summary.get("dataset") or {}).get("sizes") or {}).get("global_val") for r in sd.runs]
    sizes = [x for x in sizes if isinstance(x, int)]
    return sizes[0] if sizes and len(set(sizes)) == 1 else None


def _edge_text(sd: SweepData, c: Choice) -> str:
    """What the edge rule did for one setting: extended past an edge, still at one, or nothing."""
    parts = [f"extended {e['edge']}: {value_text(e['from'])} → {value_text(e['values'][e['key']])}"
             for e in c.extensions]
    parts += [f"still at the {c.at_edge(k)} edge of {k.split('.')[-1]}" for k in sd.tune_keys if c.at_edge(k)]
    return "; ".join(parts) or "inside the grid"


def _stop_text(runs: list) -> str:
    """Median round `runs` are read at (validation stop or time budget) of the last round they
    ran, e.g. `35 of 59`."""
    stops = [r.summary["stop"]["round"] for r in runs if r.summary.get("stop")]
    if not stops:
        return "end (no stop)"
    med = statistics.median(stops)
    last = max(r.summary["stop"]["last_round"] for r in runs if r.summary.get("stop"))
    return f"{med:g} of {last}"


def tuned_section(sd: SweepData, groups: list[str]) -> list[str]:
    """Per setting: the tune values chosen on validation accuracy and test accuracy there."""
    choices = tuned_choices(sd)
    keys = ", ".join(f"`{k}`" for k in sd.tune_keys)
    gval = bool(choices) and choices[0].on == "gval"
    protocol = gval or bool(sd.extensions)  # the comparison protocol's columns (docs/studies.md)
    stop_col = sd.early_stop or sd.time_budget is not None
    if gval:
        n = _gval_size(sd)
        on = (f"on the global validation set ({n} samples, the same count of every class, " if n else
              "on the global validation set (") + ("drawn from the pool: disjoint from the test set and from every "
                                                  "agent's data; `final_acc_gval`), mean over seeds")
    else:
        on = "`final_acc_val`, mean over seeds"
    lines = ["## Tuned: test accuracy at the value chosen on validation data", "",
             f"For each setting, {keys} took the value with the best validation accuracy (all agents, "
             f"{on}); ties go to the value listed first in `--tune`; a diverged run "
             "scores 0. Test accuracy never enters the choice. Test accuracy at the chosen value: mean ± 95% CI "
             "over seeds. The figures and the bytes, time-to-target, conflict and slice-drop tables below show each "
             "setting at its tuned values; the full table and the plots against numeric keys show every value.",
             ""]
    if sd.early_stop:
        lines += ["**Early stopping**: every run is read at its validation stop, the earliest evaluation with the "
                  "best mean validation accuracy of all agents on the set the choice is made on; the validation "
                  "and test accuracies here are those of that evaluation (`stop round`: the median over the "
                  "chosen value's seeds, of the evaluations the runs made).", ""]
    if sd.time_budget is not None:
        lines += [f"**Time budget**: every run is read {sd.budget_reading}, as if stopped there; the choice, "
                  "the validation "
                  "and the test accuracies here are those of that evaluation (`stop round`: the median over the "
                  "chosen value's seeds, of the rounds the runs made).", ""]
    if protocol:
        lines += ["A choice at the smallest or largest value of a numeric tune key means the grid did not bracket "
                  "the optimum: the sweep then ran one more step past that edge for that setting (the grid's "
                  "outermost ratio) and chose again, as many times as `sweep --extend` allows; `grid edge` says "
                  "what happened.", ""]
    header = (["setting", "chosen", "validation acc", "seeds", "all agents (95% CI)"]
              + [f"{g} (95% CI)" for g in groups] + (["agents' validation", "grid edge"] if protocol else [])
              + (["stop round"] if stop_col else []))
    rows = []
    for c in choices:
        label = setting_label(sd, c.setting)
        if c.chosen is None:
            rows.append([label, "none (no validation accuracy)", "n/a", 0, "n/a"] + ["n/a"] * len(groups)
                        + (["n/a", ""] if protocol else []) + (["n/a"] if stop_col else []))
            continue
        runs = c.runs
        av = c.chosen.agent_val
        rows.append([label, tune_text(sd, c.chosen.values), f"{c.chosen.val:.3f}", len(runs),
                     fmt_ci([r.final() for r in runs])] + [fmt_ci([r.final(g) for r in runs]) for g in groups]
                    + (["n/a" if av is None else f"{av:.3f}", _edge_text(sd, c)] if protocol else [])
                    + ([_stop_text(runs)] if stop_col else []))
    lines += md_table(header, rows)
    if not choices:
        return lines + ["No complete run yet.", ""]
    return lines + _candidates_table(sd, choices)


def _candidates_table(sd: SweepData, choices: list[Choice]) -> list[str]:
    """Validation accuracy of every candidate of every setting (an extension's value is a column
    of its own, empty for the settings that did not need it)."""
    cand_names: list[str] = []
    for c in choices:
        for x in c.candidates:
            t = tune_text(sd, x.values) + (" (extended)" if x.extension else "")
            if t not in cand_names:
                cand_names.append(t)
    lines = ["Validation accuracy of every candidate (mean over seeds; **bold**: chosen; (k) = only k seeds):", ""]
    vrows = []
    full = len(sd.manifest.get("seeds") or []) or None
    for c in choices:
        cells = {}
        for x in c.candidates:
            name = tune_text(sd, x.values) + (" (extended)" if x.extension else "")
            if x.val is None:
                cells[name] = "n/a"
                continue
            t = f"{x.val:.3f}" + (f" ({x.n})" if full and x.n < full else "")
            cells[name] = f"**{t}**" if x is c.chosen else t
        vrows.append([setting_label(sd, c.setting)] + [cells.get(n, "") for n in cand_names])
    return lines + md_table(["setting"] + cand_names, vrows)
