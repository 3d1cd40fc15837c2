"""`parse-sim report DIR`: a Markdown summary (DIR/report.md) and PNG figures (DIR/report/)
of one run directory or of a sweep directory.

Run: accuracy vs virtual time per agent group, bytes per slice kind per
sending group, time to a target accuracy, gradient conflict per shared branch
over time (conflict.csv), accuracy with a slice kind dropped (slice_drop.csv),
agents online over time (when churn took some offline).

Sweep: the same questions across the grid: accuracy vs virtual time per
setting, final accuracy vs every varied numeric key (and the nominal offline
fraction / straggler fraction when the grid changes them indirectly), one line
per value of the other keys with error bars = 95% confidence interval over
seeds, bytes per slice kind per setting (stacked), time to target, conflict
and slice drop per setting. A sweep with `--tune` keys starts with the tuned
table: per setting, test accuracy at the tune value chosen on validation
accuracy (parse_actors.studies.tune).

Accuracy is the agents' accuracy on the common test set restricted to their
modalities (`acc` in metrics.csv); tables over seeds give the mean and the
half-width of its 95% confidence interval (Student t, n-1 degrees of freedom;
none for one seed).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

from parse_actors import atomic
from parse_actors.metrics import dirguard
from parse_actors.studies import plots
from parse_actors.studies.data import (
    ReportError,
    RunData,
    SweepData,
    fmt_ci,
    fmt_sd,
    is_run_dir,
    is_sweep_dir,
    load_run,
    load_sweep,
    mean_std,
)
from parse_actors.metrics import plots as run_plots
from parse_actors.names import SLICE_KINDS as DROP
from parse_actors.studies.grid import value_text
from parse_actors.studies.tune import Choice, choose

FIG_DIR = "report"
MAX_LINES = 16
DERIVED = {
    "offline_frac": ("nominal offline time (% of each agent's time)", 100.0),
    "straggler_frac": ("straggler agents (% of agents)", 100.0),
}


def default_target(finals: list[float | None]) -> float:
    """80% of the best final mean accuracy, rounded down to 0.05 (at least 0.05)."""
    vals = [v for v in finals if v is not None and math.isfinite(v)]  # NaN: a diverged run
    if not vals:
        return 0.5
    return max(0.05, math.floor(0.8 * max(vals) * 20 + 1e-9) / 20)


def write_report(path: str | Path, target: float | None = None, dpi: int = 100,
                 budget: float | None = None) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such directory")
    if target is not None and not 0 < target <= 1:
        raise ReportError(f"--target: expected an accuracy in (0, 1], got {target}")
    if not 20 <= dpi <= 600:
        raise ReportError(f"--dpi: expected 20..600, got {dpi}")
    if budget is not None and not budget > 0:
        raise ReportError(f"--budget: expected a positive number of virtual seconds, got {budget}")
    dirguard.check_entries(path, "report directory")  # before anything in it is read or written
    if is_sweep_dir(path):
        dirguard.check_sweep_entries(path)
        return _sweep_report(load_sweep(path), target, dpi, budget)
    if is_run_dir(path):
        return _run_report(load_run(path), target, dpi)
    raise ReportError(f"{path}: neither a run directory (summary.json) nor a sweep directory (sweep.json)")


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.2f}"


def _fig_link(lines: list[str], name: str, alt: str) -> None:
    lines += [f"![{alt}]({FIG_DIR}/{name})", ""]


def _finish(dir_: Path, lines: list[str]) -> Path:
    """Write report.md; remove figures of an earlier report that this one no longer has."""
    text = "\n".join(lines)
    keep = set(re.findall(rf"\]\({FIG_DIR}/([^)]+)\)", text))
    dirguard.remove_stale_figures(dir_, FIG_DIR, keep)  # only figure names a report writes, never through a link
    out = dir_ / "report.md"
    atomic.write_text(out, text)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")


# ---------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------


def _run_report(run: RunData, target: float | None, dpi: int) -> Path:
    s = run.summary
    figs = run.dir / FIG_DIR
    figs.mkdir(parents=True, exist_ok=True)
    target = default_target([s.get("final_acc", {}).get("mean")]) if target is None else target
    name = f"{s.get('name', run.dir.name)} ({s.get('method')}, seed {s.get('seed')})"
    groups = run.groups
    lines = [f"# Report: {name}", "",
             f"Run directory `{run.dir}`: {s.get('agents')} agents, method `{s.get('method')}`, protocol "
             f"`{s.get('protocol', 'sync')}`, {s.get('rounds')} rounds/evaluations, "
             f"{s.get('virtual_time_s', 0):.2f} s virtual, {s.get('wall_time_s', 0):.1f} s wall"
             f"{'' if s.get('complete') else ' — **incomplete run**'}.", ""]

    # accuracy
    last = max((r["round"] for r in run.metrics), default=None)
    extra = [(c, h) for c, h in (("acc_val", "validation split"), ("acc_local", "own test split"))
             if any(r.get(c) is not None for r in run.metrics)]
    rows = []
    for g in groups + [None]:
        fin = [r for r in run.metrics if r["round"] == last and (g is None or r["group"] == g)]
        ttt = run.time_to(target, g)
        rows.append([g or "**all**", len(fin), fmt_sd([r["acc"] for r in fin])]
                    + [fmt_sd([r.get(c) for r in fin]) for c, _ in extra]
                    + ["not reached" if ttt is None else f"{ttt:.2f}"])
    lines += ["## Accuracy", "",
              "Final accuracy on the common test set restricted to each agent's modalities (mean ± sample std "
              "over the group's agents: a spread, not a confidence interval)"
              + (", on the agents' " + " and ".join(h + "s" for _, h in extra) if extra else "")
              + f", and the virtual time at which the group's mean test accuracy first reached the target "
              f"{target:g}.", ""]
    lines += _md_table(["agent group", "agents", "final accuracy (common test)"] + [h for _, h in extra]
                       + [f"time to {target:g} (virtual s)"], rows)
    if run.metrics:
        run_plots.accuracy_vs_time(run.metrics, figs / "accuracy_vs_time.png", f"{name}: accuracy per agent group",
                                   target, dpi)
        _fig_link(lines, "accuracy_vs_time.png", "accuracy vs virtual time per agent group")
        plots.grouped_bars(groups + ["all"], {"time to target": [run.time_to(target, g) for g in groups]
                                             + [run.time_to(target)]},
                           figs / "time_to_target.png", f"{name}: virtual time to reach accuracy {target:g}",
                           "virtual time (s)", dpi, missing_text="not reached", horizontal=False,
                           xlabel="agent group")
        _fig_link(lines, "time_to_target.png", "time to target accuracy")

    # communication
    bk = s.get("bytes_by_kind") or {}
    total = s.get("bytes_total") or 0
    lines += ["## Communication per slice kind", ""]
    lines += _md_table(["slice kind", "MiB sent", "share"],
                       [[k, _mib(v), f"{100 * v / total:.1f}%" if total else "n/a"] for k, v in bk.items()]
                       + [["**total**", _mib(total), "100%" if total else "n/a"]])
    m = s.get("messages") or {}
    lines += [f"Messages: {m.get('sent', 0)} sent, {m.get('delivered', 0)} delivered, {m.get('dropped', 0)} "
              "dropped.", ""]
    if run.comm:
        run_plots.bytes_by_kind(run.metrics, run.comm, figs / "bytes_by_kind.png", f"{name}: bytes sent per slice kind", dpi)
        _fig_link(lines, "bytes_by_kind.png", "bytes per slice kind per sending group")

    # conflict
    lines += ["## Gradient conflict per shared branch", ""]
    gc = s.get("gradient_conflict") or {}
    if run.conflict:
        lines += ["Cosine between the mean update of unimodal and of multimodal agents on each branch both hold "
                  "(negative: they pull the shared parameters in opposite directions), over the run.", ""]
        lines += _md_table(["branch", "mean cosine", "mean share of negative pairs", "evaluations"],
                           [[k, f"{v['mean_cosine']:.3f}", f"{v['mean_frac_negative']:.3f}", v["rounds"]]
                            for k, v in gc.items()])
        plots.run_conflict(run, figs / "gradient_conflict.png", f"{name}: uni- vs multimodal update conflict", dpi)
        _fig_link(lines, "gradient_conflict.png", "gradient conflict per shared branch over time")
    else:
        lines += ["No conflict.csv (no branch is held by both unimodal and multimodal agents, or "
                  "`output.gradient_conflict_every: 0`).", ""]

    # slice drop
    lines += ["## Accuracy with a slice kind dropped", ""]
    sd = s.get("slice_drop") or {}
    if sd:
        lines += _md_table(["agent group", "full"] + [f"without {k}" for k in DROP],
                           [[g, f"{v['acc']:.3f}"] + [f"{v.get(f'acc_without_{k}', float('nan')):.3f}" for k in DROP]
                            for g, v in sd.items()])
        plots.grouped_bars(list(sd), {lab: [v.get(key) for v in sd.values()] for lab, key in
                                      [("full", "acc")] + [(f"without {k}", f"acc_without_{k}") for k in DROP]},
                           figs / "slice_drop.png", f"{name}: accuracy with a slice kind's logits removed",
                           "test accuracy (final evaluation)", dpi, legend_title="prediction", horizontal=False,
                           xlabel="agent group")
        _fig_link(lines, "slice_drop.png", "slice-drop accuracy")
    else:
        lines += ["No slice_drop.csv (`output.slice_drop: off`).", ""]

    # availability
    online = [r.get("online") for r in run.metrics if r.get("online") is not None]
    if online and min(online) < 1:
        lines += ["## Availability", "",
                  f"Agents were online at {100 * sum(online) / len(online):.1f}% of the (agent, evaluation) "
                  "points.", ""]
        plots.run_online(run, figs / "online.png", f"{name}: agents online", dpi)
        _fig_link(lines, "online.png", "agents online over time")
    return _finish(run.dir, lines)


# ---------------------------------------------------------------------------
# sweeps
# ---------------------------------------------------------------------------


def _derived_x(sd: SweepData) -> list[str]:
    out = []
    for d in DERIVED:
        vals = [r.derived.get(d) for r in sd.runs]
        if any(v is None for v in vals) or len(set(vals)) < 2:
            continue
        if any(all(r.params.get(k) == r.derived.get(d) for r in sd.runs) for k in sd.numeric_keys()):
            continue  # the grid key itself
        out.append(d)
    return out


def _one_to_one(sd: SweepData, key: str, derived: str) -> bool:
    """The grid key and the derived quantity determine each other (e.g. offline mean vs offline fraction)."""
    fwd: dict = {}
    back: dict = {}
    for r in sd.runs:
        a, b = r.params.get(key), r.derived.get(derived)
        if fwd.setdefault(a, b) != b or back.setdefault(b, a) != a:
            return False
    return True


def _budget(sd: SweepData, budget: float | None) -> float | None:
    """Virtual-time budget at which to compare runs too (`--budget`), when one is given."""
    return budget


def _sweep_report(sd: SweepData, target: float | None, dpi: int, budget: float | None = None) -> Path:
    figs = sd.dir / FIG_DIR
    figs.mkdir(parents=True, exist_ok=True)
    name = sd.manifest.get("name", sd.dir.name)
    n_total = len(sd.manifest.get("runs", []))
    lines = [f"# Sweep report: {name}", "",
             f"Sweep directory `{sd.dir}`, scenario `{sd.manifest.get('scenario')}`, "
             f"{len(sd.runs)} of {n_total} runs complete, seeds {sd.manifest.get('seeds')}.", ""]
    if sd.manifest.get("overrides"):
        lines += [f"Overrides: `{'`, `'.join(sd.manifest['overrides'])}`.", ""]
    grid_text = sd.manifest.get("grid_text") or {}
    if grid_text:
        lines += ["Grid:", ""] + [f"- `{k}`: {', '.join(f'`{v}`' for v in vs)}" for k, vs in grid_text.items()] + [""]
    if sd.missing:
        lines += [f"Not included (missing or incomplete): {', '.join(sd.missing)}.", ""]
    if not sd.runs:
        lines += ["No complete run yet: nothing to report.", ""]
        return _finish(sd.dir, lines)

    groups = sd.groups()
    configs = sd.configs()
    target = default_target([r.final() for r in sd.runs]) if target is None else target
    budget = _budget(sd, budget)
    plot_configs = configs
    plot_note = ""
    if sd.tune_keys:  # figures and later tables: each setting at its tuned values, not a mix of them
        plot_configs = {_setting_label(sd, c.setting): c.runs for c in tuned_choices(sd) if c.runs}
        plot_note = " (each setting at its tuned values)"
    elif len(configs) > MAX_LINES and sd.categorical_keys():
        plot_configs = sd.configs(sd.categorical_keys())
        plot_note = f" (lines: mean over {', '.join(sd.short_key(k) for k in sd.numeric_keys())} and seeds)"
    lines += ["Accuracy is each agent's accuracy on the common test set restricted to its modalities, averaged "
              "over the agents of a group; ± is the half-width of the 95% confidence interval of the mean over "
              "seeds (Student t, n-1 degrees of freedom; none for one seed). Target accuracy for 'time to "
              f"target': {target:g}.", ""]
    if sd.tune_keys:
        lines += _tuned_section(sd, groups)

    # ---- main table
    header = (["setting", "seeds", "all agents (95% CI)"] + [f"{g} (95% CI)" for g in groups]
              + [f"time to {target:g} (s)", "MiB sent", "virtual s"])
    if budget is not None:
        header.insert(3 + len(groups), f"all @ {budget:.2f} s (95% CI)")
    rows = []
    for label, runs in configs.items():
        ttt = [r.time_to(target) for r in runs]
        reached = [t for t in ttt if t is not None]
        row = [label, len(runs), fmt_ci([r.final() for r in runs])] + [fmt_ci([r.final(g) for r in runs])
                                                                     for g in groups]
        if budget is not None:
            row.append(fmt_ci([r.acc_at(budget) for r in runs]))
        row += [(f"{sum(reached) / len(reached):.2f}" + (f" ({len(reached)}/{len(runs)})" if len(reached) < len(runs)
                                                          else "")) if reached else "not reached",
                fmt_ci([r.summary.get("bytes_total", 0) / 2**20 for r in runs], 1),
                fmt_ci([r.summary.get("virtual_time_s") for r in runs], 2)]
        rows.append(row)
    title = "## Final accuracy per setting" + (" (every tune value)" if sd.tune_keys else "")
    lines += [title, ""] + _md_table(header, rows)
    if budget is not None:
        lines += [f"Runs lasted different virtual times; `all @ {budget:.2f} s` is the accuracy of the last "
                  f"evaluation at or before {budget:.2f} s virtual (`--budget`: a common time budget).",
                  ""]
    plots.sweep_accuracy(sd, plot_configs, groups, figs / "accuracy_vs_time.png",
                         f"{name}: accuracy vs virtual time (mean over seeds){plot_note}", target, dpi)
    _fig_link(lines, "accuracy_vs_time.png", "accuracy vs virtual time per agent group")

    # ---- accuracy vs numeric keys
    derived = _derived_x(sd)
    xs = [(k, k, 1.0, True) for k in sd.numeric_keys() if not any(_one_to_one(sd, k, d) for d in derived)]
    xs += [(d, DERIVED[d][0], DERIVED[d][1], False) for d in derived]
    for key, xlabel, scale, is_grid in xs:
        line_keys = [k for k in sd.varied if k != key] if is_grid else sd.categorical_keys()
        panels = ["all agents"] + groups
        series: dict[str, dict[str, dict[float, list]]] = {p: defaultdict(lambda: defaultdict(list)) for p in panels}
        series_b: dict[str, dict[str, dict[float, list]]] = {p: defaultdict(lambda: defaultdict(list)) for p in panels}
        names: dict[str, None] = {}
        for r in sd.runs:
            x = r.params.get(key) if is_grid else r.derived.get(key)
            if x is None:
                continue
            x = round(float(x) * scale, 6)
            ln = sd.label(r, line_keys)
            names[ln] = None
            for p in panels:
                g = None if p == "all agents" else p
                series[p][ln][x].append(r.final(g))
                if budget is not None:
                    series_b[p][ln][x].append(r.acc_at(budget, g))
        slug = _slug(key)
        plots.sweep_vs_key(xlabel, {n: {} for n in names}, panels, series, figs / f"final_acc_vs_{slug}.png",
                           f"{name}: final accuracy vs {xlabel} (error bars: 95% CI over seeds)", "final test accuracy",
                           dpi, legend_title=", ".join(sd.short_key(k) for k in line_keys))
        lines += [f"## Final accuracy vs {xlabel}", ""]
        xs_sorted = sorted({x for p in series.values() for d in p.values() for x in d})
        tab_rows = []
        for ln in names:
            tab_rows.append([ln] + [fmt_ci(series["all agents"][ln].get(x, [])) for x in xs_sorted])
        lines += ["All agents, mean ± 95% CI over seeds:", ""]
        lines += _md_table([", ".join(sd.short_key(k) for k in line_keys) or "setting"]
                           + [f"{x:.3g}" for x in xs_sorted], tab_rows)
        _fig_link(lines, f"final_acc_vs_{slug}.png", f"final accuracy vs {xlabel}")
        if budget is not None:
            plots.sweep_vs_key(xlabel, {n: {} for n in names}, panels, series_b,
                               figs / f"acc_at_budget_vs_{slug}.png",
                               f"{name}: accuracy at {budget:.2f} s virtual vs {xlabel}", "test accuracy at budget",
                               dpi, legend_title=", ".join(sd.short_key(k) for k in line_keys))
            tab_rows = [[ln] + [fmt_ci(series_b["all agents"][ln].get(x, [])) for x in xs_sorted] for ln in names]
            lines += [f"All agents at the common budget of {budget:.2f} s virtual:", ""]
            lines += _md_table([", ".join(sd.short_key(k) for k in line_keys) or "setting"]
                               + [f"{x:.3g}" for x in xs_sorted], tab_rows)
            _fig_link(lines, f"acc_at_budget_vs_{slug}.png", f"accuracy at a common virtual-time budget vs {xlabel}")

    # ---- bytes per kind
    kinds: list[str] = []
    for r in sd.runs:
        for k in (r.summary.get("bytes_by_kind") or {}):
            if k not in kinds:
                kinds.append(k)
    kinds = [k for k in plots.KIND_COLORS if k in kinds] + [k for k in kinds if k not in plots.KIND_COLORS]
    byte_configs = plot_configs
    per_kind = {k: [mean_std([(r.summary.get("bytes_by_kind") or {}).get(k, 0) / 2**20 for r in runs])[0] or 0.0
                    for runs in byte_configs.values()] for k in kinds}
    lines += ["## Bytes per slice kind", "", "MiB sent per run (all agents), mean over seeds:", ""]
    lines += _md_table(["setting"] + kinds + ["total"],
                       [[label] + [f"{per_kind[k][i]:.2f}" for k in kinds] + [f"{sum(per_kind[k][i] for k in kinds):.2f}"]
                        for i, label in enumerate(byte_configs)])
    plots.stacked_bytes(list(byte_configs), per_kind, figs / "bytes_by_kind.png",
                        f"{name}: bytes per slice kind{plot_note}", dpi)
    _fig_link(lines, "bytes_by_kind.png", "bytes per slice kind per setting")

    # ---- time to target
    panels = [None] + groups
    ttt_series = {("all agents" if g is None else g): [] for g in panels}
    ttt_rows = []
    for label, runs in plot_configs.items():
        row = [label]
        for g in panels:
            vals = [r.time_to(target, g) for r in runs]
            reached = [v for v in vals if v is not None]
            m = sum(reached) / len(reached) if reached else None
            ttt_series["all agents" if g is None else g].append(m)
            row.append("not reached" if m is None else f"{m:.2f}" + (f" ({len(reached)}/{len(vals)})"
                                                                       if len(reached) < len(vals) else ""))
        ttt_rows.append(row)
    lines += [f"## Time to accuracy {target:g}", "",
              "Virtual seconds until the group's mean accuracy first reached the target, mean over the seeds that "
              "reached it (k/n: only k of n seeds did).", ""]
    lines += _md_table(["setting", "all agents"] + groups, ttt_rows)
    if len(plot_configs) * len(ttt_series) > 32:  # too many bars: all agents only (groups are in the table)
        ttt_series = {"all agents": ttt_series["all agents"]}
    plots.grouped_bars(list(plot_configs), ttt_series, figs / "time_to_target.png",
                       f"{name}: virtual time to reach accuracy {target:g}", "virtual time (s)", dpi,
                       missing_text="not reached", legend_title="agent group")
    _fig_link(lines, "time_to_target.png", "time to target accuracy")

    # ---- gradient conflict
    conf_configs = {lab: runs for lab, runs in plot_configs.items() if any(r.conflict for r in runs)}
    lines += ["## Gradient conflict per shared branch", ""]
    if conf_configs:
        branches = sorted({b for runs in conf_configs.values() for r in runs
                           for b in (r.summary.get("gradient_conflict") or {})})
        vals = [[mean_std([(r.summary.get("gradient_conflict") or {}).get(b, {}).get("mean_cosine") for r in runs])[0]
                 for runs in conf_configs.values()] for b in branches]
        lines += ["Mean over the run (and seeds) of the cosine between the mean unimodal and the mean multimodal "
                  "update of each branch both kinds of agents hold; lower (negative) = more conflict.", ""]
        lines += _md_table(["branch"] + list(conf_configs),
                           [[b] + ["" if v is None else f"{v:.3f}" for v in row] for b, row in zip(branches, vals)])
        plots.conflict_heatmap(branches, list(conf_configs), vals, figs / "gradient_conflict.png",
                               f"{name}: uni- vs multimodal update cosine per branch", dpi)
        _fig_link(lines, "gradient_conflict.png", "gradient conflict per shared branch and setting")
        plots.conflict_lines(conf_configs, figs / "gradient_conflict_vs_time.png",
                             f"{name}: mean conflict cosine over time (mean over seeds)", dpi)
        _fig_link(lines, "gradient_conflict_vs_time.png", "gradient conflict over time")
    else:
        lines += ["No conflict.csv in these runs.", ""]

    # ---- slice drop
    lines += ["## Accuracy with a slice kind dropped", ""]
    drop_rows, drop_series = [], {"full": [], **{f"without {k}": [] for k in DROP}}
    drop_labels = []
    for label, runs in plot_configs.items():
        per_run = []
        for r in runs:
            if not r.slice_drop:
                continue
            last = max(x["round"] for x in r.slice_drop)
            fin = [x for x in r.slice_drop if x["round"] == last]
            per_run.append({"full": sum(x["acc"] for x in fin) / len(fin),
                            **{f"without {k}": sum(x.get(f"acc_without_{k}") or 0 for x in fin) / len(fin)
                               for k in DROP}})
        if not per_run:
            continue
        drop_labels.append(label)
        row = [label]
        for col in drop_series:
            m = mean_std([p[col] for p in per_run])[0]
            drop_series[col].append(m)
            row.append(f"{m:.3f}")
        drop_rows.append(row)
    if drop_rows:
        lines += ["Final accuracy of all agents with the logits of one slice kind removed (monolithic baselines "
                  "have no slices: their columns equal `full`).", ""]
        lines += _md_table(["setting"] + list(drop_series), drop_rows)
        plots.grouped_bars(drop_labels, drop_series, figs / "slice_drop.png",
                           f"{name}: accuracy with a slice kind dropped", "test accuracy (all agents)", dpi,
                           legend_title="prediction")
        _fig_link(lines, "slice_drop.png", "slice-drop accuracy per setting")
    else:
        lines += ["No slice_drop.csv in these runs.", ""]

    return _finish(sd.dir, lines)


def _setting_label(sd: SweepData, setting: dict) -> str:
    keys = [k for k in setting if k in sd.varied]
    if not keys:
        return "all runs"
    if keys == ["method"]:
        return value_text(setting["method"])
    return ", ".join(f"{sd.short_key(k)}={value_text(setting[k])}" for k in keys)


def _tune_text(sd: SweepData, values: dict) -> str:
    return ", ".join(f"{sd.short_key(k) if len(sd.tune_keys) > 1 else k.split('.')[-1]}={value_text(v)}"
                     for k, v in values.items())


def tuned_choices(sd: SweepData) -> list[Choice]:
    return choose(sd.runs, sd.grid, sd.tune_keys)


def _tuned_section(sd: SweepData, groups: list[str]) -> list[str]:
    """Per setting: the tune values chosen on validation accuracy and test accuracy there."""
    choices = tuned_choices(sd)
    keys = ", ".join(f"`{k}`" for k in sd.tune_keys)
    lines = ["## Tuned: test accuracy at the value chosen on validation data", "",
             f"For each setting, {keys} took the value with the best validation accuracy (all agents, "
             "`final_acc_val`, mean over seeds); ties go to the value listed first in `--tune`; a diverged run "
             "scores 0. Test accuracy never enters the choice. Test accuracy at the chosen value: mean ± 95% CI "
             "over seeds. The figures and the bytes, time-to-target, conflict and slice-drop tables below show each "
             "setting at its tuned values; the full table and the plots against numeric keys show every value.",
             ""]
    header = (["setting", "chosen", "validation acc", "seeds", "all agents (95% CI)"]
              + [f"{g} (95% CI)" for g in groups])
    rows = []
    for c in choices:
        label = _setting_label(sd, c.setting)
        if c.chosen is None:
            rows.append([label, "none (no validation accuracy)", "n/a", 0, "n/a"] + ["n/a"] * len(groups))
            continue
        runs = c.runs
        rows.append([label, _tune_text(sd, c.chosen.values), f"{c.chosen.val:.3f}", len(runs),
                     fmt_ci([r.final() for r in runs])] + [fmt_ci([r.final(g) for r in runs]) for g in groups])
    lines += _md_table(header, rows)
    if not choices:
        return lines + ["No complete run yet.", ""]
    cand_names = [_tune_text(sd, x.values) for x in choices[0].candidates]
    lines += ["Validation accuracy of every candidate (mean over seeds; **bold**: chosen; (k) = only k seeds):", ""]
    vrows = []
    full = len(sd.manifest.get("seeds") or []) or None
    for c in choices:
        row = [_setting_label(sd, c.setting)]
        for x in c.candidates:
            if x.val is None:
                row.append("n/a")
                continue
            t = f"{x.val:.3f}" + (f" ({x.n})" if full and x.n < full else "")
            row.append(f"**{t}**" if x is c.chosen else t)
        vrows.append(row)
    return lines + _md_table(["setting"] + cand_names, vrows)


def sweep_console_table(sd: SweepData) -> str:
    """The accuracy tables printed at the end of `parse-sim sweep`: tuned first (with --tune),
    then every setting; mean ± 95% CI over seeds."""
    groups = sd.groups()
    out = []
    if sd.tune_keys:
        choices = tuned_choices(sd)
        labels = [_setting_label(sd, c.setting) for c in choices]
        chosen = [_tune_text(sd, c.chosen.values) + f" (val {c.chosen.val:.3f})" if c.chosen else "none"
                  for c in choices]
        w1 = max([len("setting")] + [len(x) for x in labels]) + 2
        w2 = max([len("chosen on validation")] + [len(x) for x in chosen]) + 2
        head = (f"{'setting':<{w1}}{'chosen on validation':<{w2}}{'seeds':>6}{'test all (95% CI)':>20}"
                + "".join(f"{g[:15]:>17}" for g in groups))
        out += ["tuned: test accuracy at the value with the best validation accuracy", head, "-" * len(head)]
        for c, lab, ch in zip(choices, labels, chosen):
            runs = c.runs
            out.append(f"{lab:<{w1}}{ch:<{w2}}{len(runs):>6}{fmt_ci([r.final() for r in runs]):>20}"
                       + "".join(f"{fmt_ci([r.final(g) for r in runs]):>17}" for g in groups))
        out += ["", "every run setting (test accuracy, mean ± 95% CI over seeds)"]
    configs = sd.configs()
    width = max([len("setting")] + [len(k) for k in configs]) + 2
    head = f"{'setting':<{width}}{'seeds':>6}{'all (95% CI)':>16}" + "".join(f"{g[:15]:>17}" for g in groups)
    out += [head, "-" * len(head)]
    for label, runs in configs.items():
        out.append(f"{label:<{width}}{len(runs):>6}{fmt_ci([r.final() for r in runs]):>16}"
                   + "".join(f"{fmt_ci([r.final(g) for r in runs]):>17}" for g in groups))
    return "\n".join(out)


__all__ = ["ReportError", "default_target", "sweep_console_table", "write_report"]
