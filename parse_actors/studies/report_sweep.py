"""`parse-sim report SWEEP_DIR`: the sections of a sweep's report, one function each.

Header (grid, overrides, what is missing), the tuned table (with `--tune`),
final accuracy per setting, accuracy vs every numeric key, bytes per slice
kind, time to target, gradient conflict and slice drop per setting.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from parse_actors.names import SLICE_KINDS as DROP
from parse_actors.studies import plots, report_compare
from parse_actors.studies.data import RunData, SweepData, fmt_ci, mean_std
from parse_actors.studies.report_md import FIG_DIR, SweepView, fig_link, finish, md_table, slug
from parse_actors.studies.report_tuned import setting_label, tuned_choices, tuned_section

MAX_LINES = 16
DERIVED = {
    "offline_frac": ("nominal offline time (% of each agent's time)", 100.0),
    "straggler_frac": ("straggler agents (% of agents)", 100.0),
}


def sweep_report(sd: SweepData, target: float | None, dpi: int, budget: float | None, default_target,
                 reference: str | None = None) -> Path:
    """report.md and report/*.png of a sweep directory; `reference`: the method paired
    differences are taken against (default: the sweep's `--reference`)."""
    reference = report_compare.check_reference(sd, reference)
    figs = sd.dir / FIG_DIR
    figs.mkdir(parents=True, exist_ok=True)
    name = sd.manifest.get("name", sd.dir.name)
    lines = _header(sd, name)
    if not sd.runs:
        lines += ["No complete run yet: nothing to report.", ""]
        return finish(sd.dir, lines)
    target = default_target([r.final() for r in sd.runs]) if target is None else target
    v = _view(sd, figs, name, dpi, target, budget)
    lines += ["Accuracy is each agent's accuracy on the common test set restricted to its modalities, averaged "
              "over the agents of a group; ± is the half-width of the 95% confidence interval of the mean over "
              "seeds (Student t, n-1 degrees of freedom; none for one seed). Target accuracy for 'time to "
              f"target': {target:g}.", ""]
    if sd.tune_keys:
        lines += tuned_section(sd, v.groups)
    if report_compare.has_protocol(sd, reference):
        lines += report_compare.sections(v, reference)
    for section in (_final_table, _vs_keys, _bytes, _time_to_target, _conflict, _slice_drop):
        lines += section(v)
    return finish(sd.dir, lines)


def _header(sd: SweepData, name: str) -> list[str]:
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
    return lines


def _view(sd: SweepData, figs: Path, name: str, dpi: int, target: float, budget: float | None) -> SweepView:
    configs = sd.configs()
    plot_configs, plot_note = configs, ""
    if sd.tune_keys:  # figures and later tables: each setting at its tuned values, not a mix of them
        plot_configs = {setting_label(sd, c.setting): c.runs for c in tuned_choices(sd) if c.runs}
        plot_note = " (each setting at its tuned values)"
    elif len(configs) > MAX_LINES and sd.categorical_keys():
        plot_configs = sd.configs(sd.categorical_keys())
        plot_note = f" (lines: mean over {', '.join(sd.short_key(k) for k in sd.numeric_keys())} and seeds)"
    return SweepView(sd, figs, name, dpi, sd.groups(), configs, target, budget, plot_configs, plot_note)


# ---------------------------------------------------------------- final accuracy


def _where(sd: SweepData) -> str:
    """Where runs are read, when not at their end: `at the validation stop`, `within 6 s`, both."""
    if sd.time_budget is None:
        return "at the validation stop"
    return f"{'at the validation stop ' if sd.early_stop else ''}within {sd.time_budget:g} s virtual"


def _final_table(v: SweepView) -> list[str]:
    sd, groups, target, budget = v.sd, v.groups, v.target, v.budget
    header = (["setting", "seeds", "all agents (95% CI)"] + [f"{g} (95% CI)" for g in groups]
              + [f"time to {target:g} (s)", "MiB sent", "virtual s"])
    if budget is not None:
        header.insert(3 + len(groups), f"all @ {budget:.2f} s (95% CI)")
    rows = []
    for label, runs in v.configs.items():
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
    title = ((f"## Accuracy {_where(sd)} per setting" if sd.early_stop or sd.time_budget is not None
              else "## Final accuracy per setting")
             + (" (every tune value)" if sd.tune_keys else ""))
    lines = [title, ""] + md_table(header, rows)
    if budget is not None:
        lines += [f"Runs lasted different virtual times; `all @ {budget:.2f} s` is the accuracy of the last "
                  f"evaluation at or before {budget:.2f} s virtual (`--budget`: a common time budget).",
                  ""]
    plots.sweep_accuracy(sd, v.plot_configs, groups, v.figs / "accuracy_vs_time.png",
                         f"{v.name}: accuracy vs virtual time (mean over seeds){v.plot_note}", target, v.dpi)
    fig_link(lines, "accuracy_vs_time.png", "accuracy vs virtual time per agent group")
    return lines


# ---------------------------------------------------------------- accuracy vs numeric keys


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


def _vs_keys(v: SweepView) -> list[str]:
    sd = v.sd
    derived = _derived_x(sd)
    xs = [(k, k, 1.0, True) for k in sd.numeric_keys() if not any(_one_to_one(sd, k, d) for d in derived)]
    xs += [(d, DERIVED[d][0], DERIVED[d][1], False) for d in derived]
    lines: list[str] = []
    for key, xlabel, scale, is_grid in xs:
        lines += _vs_key(v, key, xlabel, scale, is_grid)
    return lines


def _vs_key_series(v: SweepView, key: str, scale: float, is_grid: bool, line_keys: list[str], panels: list[str]):
    """(final accuracy, accuracy at the budget, line names): panel -> line -> x -> values over seeds."""
    series: dict[str, dict[str, dict[float, list]]] = {p: defaultdict(lambda: defaultdict(list)) for p in panels}
    series_b: dict[str, dict[str, dict[float, list]]] = {p: defaultdict(lambda: defaultdict(list)) for p in panels}
    names: dict[str, None] = {}
    for r in v.sd.runs:
        x = r.params.get(key) if is_grid else r.derived.get(key)
        if x is None:
            continue
        x = round(float(x) * scale, 6)
        ln = v.sd.label(r, line_keys)
        names[ln] = None
        for p in panels:
            g = None if p == "all agents" else p
            series[p][ln][x].append(r.final(g))
            if v.budget is not None:
                series_b[p][ln][x].append(r.acc_at(v.budget, g))
    return series, series_b, names


def _vs_key(v: SweepView, key: str, xlabel: str, scale: float, is_grid: bool) -> list[str]:
    sd, budget, name, dpi = v.sd, v.budget, v.name, v.dpi
    line_keys = [k for k in sd.varied if k != key] if is_grid else sd.categorical_keys()
    panels = ["all agents"] + v.groups
    series, series_b, names = _vs_key_series(v, key, scale, is_grid, line_keys, panels)
    s = slug(key)
    legend = ", ".join(sd.short_key(k) for k in line_keys)
    read = sd.early_stop or sd.time_budget is not None
    what = f"accuracy {_where(sd)}" if read else "final accuracy"
    plots.sweep_vs_key(xlabel, {n: {} for n in names}, panels, series, v.figs / f"final_acc_vs_{s}.png",
                       f"{name}: {what} vs {xlabel} (error bars: 95% CI over seeds)",
                       f"test accuracy {_where(sd)}" if read else "final test accuracy",
                       dpi, legend_title=legend)
    lines = [f"## {what[0].upper() + what[1:]} vs {xlabel}", ""]
    xs_sorted = sorted({x for p in series.values() for d in p.values() for x in d})
    tab_rows = [[ln] + [fmt_ci(series["all agents"][ln].get(x, [])) for x in xs_sorted] for ln in names]
    lines += ["All agents, mean ± 95% CI over seeds:", ""]
    lines += md_table([legend or "setting"] + [f"{x:.3g}" for x in xs_sorted], tab_rows)
    fig_link(lines, f"final_acc_vs_{s}.png", f"{what} vs {xlabel}")
    if budget is not None:
        plots.sweep_vs_key(xlabel, {n: {} for n in names}, panels, series_b, v.figs / f"acc_at_budget_vs_{s}.png",
                           f"{name}: accuracy at {budget:.2f} s virtual vs {xlabel}", "test accuracy at budget",
                           dpi, legend_title=legend)
        tab_rows = [[ln] + [fmt_ci(series_b["all agents"][ln].get(x, [])) for x in xs_sorted] for ln in names]
        lines += [f"All agents at the common budget of {budget:.2f} s virtual:", ""]
        lines += md_table([legend or "setting"] + [f"{x:.3g}" for x in xs_sorted], tab_rows)
        fig_link(lines, f"acc_at_budget_vs_{s}.png", f"accuracy at a common virtual-time budget vs {xlabel}")
    return lines


# ---------------------------------------------------------------- bytes, time to target


def _bytes(v: SweepView) -> list[str]:
    kinds: list[str] = []
    for r in v.sd.runs:
        for k in (r.summary.get("bytes_by_kind") or {}):
            if k not in kinds:
                kinds.append(k)
    kinds = [k for k in plots.KIND_COLORS if k in kinds] + [k for k in kinds if k not in plots.KIND_COLORS]
    byte_configs = v.plot_configs
    per_kind = {k: [mean_std([(r.summary.get("bytes_by_kind") or {}).get(k, 0) / 2**20 for r in runs])[0] or 0.0
                    for runs in byte_configs.values()] for k in kinds}
    lines = ["## Bytes per slice kind", "", "MiB sent per run (all agents), mean over seeds:", ""]
    lines += md_table(["setting"] + kinds + ["total"],
                      [[label] + [f"{per_kind[k][i]:.2f}" for k in kinds] + [f"{sum(per_kind[k][i] for k in kinds):.2f}"]
                       for i, label in enumerate(byte_configs)])
    plots.stacked_bytes(list(byte_configs), per_kind, v.figs / "bytes_by_kind.png",
                        f"{v.name}: bytes per slice kind{v.plot_note}", v.dpi)
    fig_link(lines, "bytes_by_kind.png", "bytes per slice kind per setting")
    return lines


def _time_to_target(v: SweepView) -> list[str]:
    target, groups = v.target, v.groups
    panels = [None] + groups
    ttt_series = {("all agents" if g is None else g): [] for g in panels}
    ttt_rows = []
    for label, runs in v.plot_configs.items():
        row = [label]
        for g in panels:
            vals = [r.time_to(target, g) for r in runs]
            reached = [x for x in vals if x is not None]
            m = sum(reached) / len(reached) if reached else None
            ttt_series["all agents" if g is None else g].append(m)
            row.append("not reached" if m is None else f"{m:.2f}" + (f" ({len(reached)}/{len(vals)})"
                                                                       if len(reached) < len(vals) else ""))
        ttt_rows.append(row)
    lines = [f"## Time to accuracy {target:g}", "",
             "Virtual seconds until the group's mean accuracy first reached the target, mean over the seeds that "
             "reached it (k/n: only k of n seeds did).", ""]
    lines += md_table(["setting", "all agents"] + groups, ttt_rows)
    if len(v.plot_configs) * len(ttt_series) > 32:  # too many bars: all agents only (groups are in the table)
        ttt_series = {"all agents": ttt_series["all agents"]}
    plots.grouped_bars(list(v.plot_configs), ttt_series, v.figs / "time_to_target.png",
                       f"{v.name}: virtual time to reach accuracy {target:g}", "virtual time (s)", v.dpi,
                       missing_text="not reached", legend_title="agent group")
    fig_link(lines, "time_to_target.png", "time to target accuracy")
    return lines


# ---------------------------------------------------------------- conflict, slice drop


def _conflict(v: SweepView) -> list[str]:
    conf_configs = {lab: runs for lab, runs in v.plot_configs.items() if any(r.conflict for r in runs)}
    lines = ["## Gradient conflict per shared branch", ""]
    if not conf_configs:
        return lines + ["No conflict.csv in these runs.", ""]
    branches = sorted({b for runs in conf_configs.values() for r in runs
                       for b in (r.summary.get("gradient_conflict") or {})})
    vals = [[mean_std([(r.summary.get("gradient_conflict") or {}).get(b, {}).get("mean_cosine") for r in runs])[0]
             for runs in conf_configs.values()] for b in branches]
    lines += ["Mean over the run (and seeds) of the cosine between the mean unimodal and the mean multimodal "
              "update of each branch both kinds of agents hold; lower (negative) = more conflict.", ""]
    lines += md_table(["branch"] + list(conf_configs),
                      [[b] + ["" if x is None else f"{x:.3f}" for x in row] for b, row in zip(branches, vals)])
    plots.conflict_heatmap(branches, list(conf_configs), vals, v.figs / "gradient_conflict.png",
                           f"{v.name}: uni- vs multimodal update cosine per branch", v.dpi)
    fig_link(lines, "gradient_conflict.png", "gradient conflict per shared branch and setting")
    plots.conflict_lines(conf_configs, v.figs / "gradient_conflict_vs_time.png",
                         f"{v.name}: mean conflict cosine over time (mean over seeds)", v.dpi)
    fig_link(lines, "gradient_conflict_vs_time.png", "gradient conflict over time")
    return lines


def _drop_per_run(runs: list[RunData]) -> list[dict]:
    """Per run with slice_drop.csv: mean accuracy of all agents at its last drop evaluation, full and per kind."""
    per_run = []
    for r in runs:
        if not r.slice_drop:
            continue
        last = max(x["round"] for x in r.slice_drop)
        fin = [x for x in r.slice_drop if x["round"] == last]
        per_run.append({"full": sum(x["acc"] for x in fin) / len(fin),
                        **{f"without {k}": sum(x.get(f"acc_without_{k}") or 0 for x in fin) / len(fin)
                           for k in DROP}})
    return per_run


def _slice_drop(v: SweepView) -> list[str]:
    lines = ["## Accuracy with a slice kind dropped", ""]
    drop_rows, drop_series = [], {"full": [], **{f"without {k}": [] for k in DROP}}
    drop_labels = []
    for label, runs in v.plot_configs.items():
        per_run = _drop_per_run(runs)
        if not per_run:
            continue
        drop_labels.append(label)
        row = [label]
        for col in drop_series:
            m = mean_std([p[col] for p in per_run])[0]
            drop_series[col].append(m)
            row.append(f"{m:.3f}")
        drop_rows.append(row)
    if not drop_rows:
        return lines + ["No slice_drop.csv in these runs.", ""]
    lines += ["Final accuracy of all agents with the logits of one slice kind removed (monolithic baselines "
              "have no slices: their columns equal `full`).", ""]
    lines += md_table(["setting"] + list(drop_series), drop_rows)
    plots.grouped_bars(drop_labels, drop_series, v.figs / "slice_drop.png",
                       f"{v.name}: accuracy with a slice kind dropped", "test accuracy (all agents)", v.dpi,
                       legend_title="prediction")
    fig_link(lines, "slice_drop.png", "slice-drop accuracy per setting")
    return lines
