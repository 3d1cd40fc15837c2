"""The comparison-protocol part of a sweep's report (docs/studies.md): paired
differences against a reference method, convergence by the plateau rule, and
accuracy-vs-rounds / accuracy-vs-bytes curves with bands over seeds.

It appears when the sweep's runs have a global validation set (the protocol's
sweeps: `sweep --tune` gives them one) or a reference method is named; reports of
other sweeps stay as they were.
"""

from __future__ import annotations


from parse_actors.studies import plots
from parse_actors.studies.compare import (
    PLATEAU_MIN_ROUNDS,
    PLATEAU_MIN_WINDOW,
    PLATEAU_TOL,
    PLATEAU_WINDOW,
    differences,
    fmt_paired,
    paired,
    plateau_round,
)
from parse_actors.studies.data import ReportError, RunData, SweepData, fmt_ci
from parse_actors.studies.grid import dump_value
from parse_actors.studies.report_md import SweepView, fig_link, md_table
from parse_actors.studies.report_tuned import setting_label, tune_text, tuned_choices

Unit = tuple[dict, str, list[RunData]]  # (setting, label, its runs: at the tuned values with --tune)


def has_protocol(sd: SweepData, reference: str | None) -> bool:
    return bool(reference) or any("final_acc_gval" in r.summary for r in sd.runs)


def check_reference(sd: SweepData, reference: str | None) -> str | None:
    """The reference method to pair with (`--reference`, else the sweep's), checked."""
    ref = reference or sd.reference
    if ref is None:
        return None
    methods = [dump_value(v) for v in sd.grid.get("method", [])]
    if len(methods) < 2:
        raise ReportError("--reference: the sweep does not vary method (no grid over method)")
    if ref not in methods:
        raise ReportError(f"--reference: {ref!r} is not one of the sweep's methods: {', '.join(methods)}")
    return ref


def units(sd: SweepData) -> list[Unit]:
    """Every setting (the non-tune keys' values) with the runs that stand for it."""
    if sd.tune_keys:
        return [(c.setting, setting_label(sd, c.setting), c.runs) for c in tuned_choices(sd) if c.runs]
    out = []
    for label, runs in sd.configs().items():
        out.append(({k: runs[0].params.get(k) for k in sd.varied}, label, runs))
    return out


def val_column(runs: list[RunData]) -> str | None:
    """The validation score the plateau rule watches: the global set, else the agents' splits."""
    for col in ("acc_gval", "acc_val"):
        if any(r.get(col) is not None for run in runs for r in run.metrics):
            return col
    return None


def sections(v: SweepView, reference: str | None) -> list[str]:
    sd = v.sd
    us = units(sd)
    lines = _protocol_note(sd, us, reference)
    if reference is not None:
        lines += _paired_section(v, us, reference)
        lines += _paired_conflict_section(us, reference)
        lines += _paired_by_value_section(v, reference)
    lines += _two_level_sections(v, us, reference)
    lines += _convergence_section(us, sd)
    lines += _curves(v, us)
    return lines


def _protocol_note(sd: SweepData, us: list[Unit], reference: str | None) -> list[str]:
    sizes = {((r.summary.get("dataset") or {}).get("sizes") or {}).get("global_val") for r in sd.runs}
    sizes.discard(None)
    gv = (f"a global validation set of {', '.join(str(s) for s in sorted(sizes))} samples (balanced by class, "
          "drawn from the pool, disjoint from the test set and from every agent's data)" if sizes
          else "no global validation set (the agents' own validation splits)")
    return ["## Comparison protocol", "",
            f"Every method ran on the same seeds {sd.manifest.get('seeds')}; a seed fixes the data partition, the "
            "modality assignment, the held-out sets and the network timeline (churn, stragglers, topology) whatever "
            f"the method, so runs are paired by seed. Tuning chose on {gv}. "
            + (f"Differences are paired against `{reference}`. " if reference else "")
            + f"Convergence: a run counts as converged at the first evaluation where, after at least "
            f"{PLATEAU_MIN_ROUNDS} evaluations, its validation accuracy spanned less than {100 * PLATEAU_TOL:g} "
            f"point over the last {100 * PLATEAU_WINDOW:g}% of its evaluations, at least {PLATEAU_MIN_WINDOW} "
            "(plateau rule, studies/compare.py); "
            "the budget is the scenario's `protocol.rounds`, the same for every method."
            + (" **Early stopping**: every run is read at its validation stop, the earliest evaluation with the "
               "best mean validation accuracy of all agents (the set tuning chose on); choices, tables and "
               "differences use the accuracies there (studies/early_stop.py), the curves the whole run."
               if sd.early_stop else "")
            + (f" **Time budget**: every run is read {sd.budget_reading}, as if every run had been stopped "
               f"{sd.time_budget:g} s of virtual time after the start (studies/time_budget.py); the plateau rule "
               "and the curves use the whole run." + _short_runs_note(sd) if sd.time_budget is not None else "")
            + _code_note(sd.runs), ""]


def _short_runs_note(sd: SweepData) -> str:
    short = [r for r in sd.runs if (r.summary.get("stop") or {}).get("ended_before_budget")]
    if not short:
        return ""
    labels = sorted({setting_label(sd, {k: r.params.get(k) for k in sd.varied}) for r in short})
    return (f" **{len(short)} of {len(sd.runs)} runs ended before the budget** ({'; '.join(labels)}): they are read "
            "at their end, where a longer run might have gained more by then; raise `protocol.rounds` for them.")


def _code_note(runs: list[RunData]) -> str:
    """Which parse-sim source made the runs (run.json `code.source`): a table mixing code
    versions says so, since its differences may then come from the code."""
    from parse_actors.provenance import recorded_sources

    def runs_(n: int) -> str:
        return f"{n} run{'' if n == 1 else 's'}"

    made = recorded_sources(r.dir for r in runs)
    none = made.pop(None, 0)
    unrecorded = f"{runs_(none)} recorded no source (made before parse-sim recorded it)."
    if not made:
        return " Code: no run recorded its parse-sim source (made before parse-sim recorded it)."
    if len(made) == 1:
        text = f" Code: {'every run' if not none else runs_(sum(made.values()))} recorded parse-sim source " \
               f"`{next(iter(made))}` (run.json)."
    else:
        text = (f" **Code: the runs were made by {len(made)} parse-sim sources** ("
                + ", ".join(f"`{s}`: {runs_(n)}" for s, n in sorted(made.items()))
                + "): differences between their runs may come from the code as well as from the settings.")
    return text + (f" {unrecorded}" if none else "")


def _by_seed(runs: list[RunData], group: str | None = None) -> dict[int, float | None]:
    return {r.seed: r.final(group) for r in runs}


def _paired_section(v: SweepView, us: list[Unit], reference: str) -> list[str]:
    groups = v.groups
    header = (["setting", "paired seeds", "Δ all agents (95% CI)"] + [f"Δ {g} (95% CI)" for g in groups]
              + ["SD of Δ", "resolved", "seeds for 80% power"])
    rows = []
    for label, runs, ref in _against_reference(us, reference):
        p = paired(_by_seed(ref), _by_seed(runs))
        per_g = [paired(_by_seed(ref, g), _by_seed(runs, g)) for g in groups]
        need = p.seeds_needed()
        rows.append([label, p.n, fmt_paired(p)] + [fmt_paired(x) for x in per_g]
                    + ["n/a" if p.sd is None else f"{p.sd:.3f}",
                       _resolved(p),
                       "n/a" if need is None else (f"{need} (have {p.n})")])
    lines = [f"## Paired differences vs {reference}", "",
             f"Δ = a setting's {v.sd.reading}"
             f" minus `{reference}`'s with the same other keys, seed by seed; "
             "mean ± half-width of the 95% t-interval of the per-seed differences (n-1 degrees of freedom). "
             "Resolved: the interval excludes 0. Seeds for 80% power: the fewest paired seeds that detect a true "
             "difference of the observed size at alpha 0.05 given the observed SD of Δ "
             "(sqrt(n) |Δ| / SD >= t(0.975, n-1) + z(0.8)).", ""]
    if not rows:
        return lines + [f"No setting pairs with `{reference}` (no run of it, or no other method).", ""]
    return lines + md_table(header, rows)


def _two_level_sections(v: SweepView, us: list[Unit], reference: str | None) -> list[str]:
    """For each grid key besides method with exactly two values (a network condition
    on and off, say): every setting's change from the first value to the second, paired
    by seed, and, with a reference method, how much larger or smaller that change is than
    the reference's (a difference of differences, also paired by seed: robustness)."""
    sd = v.sd
    lines: list[str] = []
    for key in [k for k in sd.varied if k != "method" and k not in sd.tune_keys and len(sd.grid[k]) == 2]:
        lo, hi = (dump_value(x) for x in sd.grid[key])
        by_rest = {}
        for st, _, runs in us:
            rest = tuple((k, dump_value(x)) for k, x in st.items() if k != key)
            by_rest.setdefault(rest, {})[dump_value(st.get(key))] = runs
        groups = [None, *v.groups]
        changes = {}  # rest -> per group (None: all agents) {seed: value at hi - value at lo}
        for rest, at in by_rest.items():
            if lo in at and hi in at:
                changes[rest] = {g: differences(_by_seed(at[lo], g), _by_seed(at[hi], g)) for g in groups}
        if not changes:
            continue
        short = sd.short_key(key)
        cols = ["all agents", *v.groups]
        rows = []
        for rest, ch in changes.items():
            ps = [paired({s: 0.0 for s in ch[g]}, ch[g]) for g in groups]
            rows.append([_rest_label(sd, rest), ps[0].n, *(fmt_paired(p) for p in ps),
                         _resolved(ps[0])])
        lines += [f"## Effect of {short}: {hi} vs {lo}, paired by seed", "",
                  f"Per setting, its accuracy with {short}={hi} minus with {short}={lo}, seed by seed (the same "
                  "partition and timeline otherwise), mean ± 95% t-interval"
                  + (", each at its own tuned values" if sd.tune_keys else "") + ". Resolved: the interval "
                  "excludes 0.", ""]
        lines += md_table(["setting", "paired seeds", *(f"Δ {c} (95% CI)" for c in cols), "resolved"], rows)
        if reference is None:
            continue
        ref_of = {tuple(kv for kv in rest if kv[0] != "method"): ch for rest, ch in changes.items()
                  if dict(rest).get("method") == reference}
        rows = []
        for rest, ch in changes.items():
            other = tuple(kv for kv in rest if kv[0] != "method")
            if dict(rest).get("method") == reference or other not in ref_of:
                continue
            ps = [paired(ref_of[other][g], ch[g]) for g in groups]
            rows.append([_rest_label(sd, rest), ps[0].n, *(fmt_paired(p) for p in ps),
                         _resolved(ps[0])])
        if rows:
            lines += [f"## Effect of {short}, against {reference}: difference of the differences", "",
                      f"A setting's change from {short}={lo} to {hi} (the table above) minus `{reference}`'s with "
                      "the same other keys, seed by seed: positive, the setting loses less (or gains more) than "
                      f"`{reference}`.", ""]
            lines += md_table(["setting", "paired seeds", *(f"ΔΔ {c} (95% CI)" for c in cols), "resolved"], rows)
    return lines


def _resolved(p) -> str:
    """The `resolved` column: yes / no, n/a without an interval (under 2 seeds)."""
    return "yes" if p.resolved else ("no" if p.half is not None else "n/a")


def _rest_label(sd: SweepData, rest: tuple) -> str:
    return setting_label(sd, {k: v for k, v in rest})


def _cosine(run: RunData, branch: str) -> float | None:
    return ((run.summary.get("gradient_conflict") or {}).get(branch) or {}).get("mean_cosine")


def _branches(runs: list[RunData]) -> set[str]:
    """The branches every one of `runs` measured a conflict cosine on."""
    sets = [set((r.summary.get("gradient_conflict") or {})) for r in runs]
    return set.intersection(*sets) if sets else set()


def _paired_conflict_section(us: list[Unit], reference: str) -> list[str]:
    """The paper's second claim, less gradient conflict, as paired differences: per branch
    the reference and a setting both hold (the backbones, for every method), the run-mean
    cosine between unimodal and multimodal agents' updates, setting minus reference."""
    rows = []
    for label, runs, ref in _against_reference(us, reference):
        for b in sorted(_branches(ref) & _branches(runs)):
            p = paired({r.seed: _cosine(r, b) for r in ref}, {r.seed: _cosine(r, b) for r in runs})
            if p.n == 0:
                continue
            rows.append([label, b, fmt_ci([_cosine(r, b) for r in ref]), fmt_ci([_cosine(r, b) for r in runs]),
                         fmt_paired(p), _resolved(p)])
    if not rows:
        return []
    lines = [f"## Gradient conflict, paired vs {reference}", "",
             "Per branch both hold: the cosine between the mean update of the unimodal agents and that of the "
             "multimodal agents, averaged over the run's rounds (summary.json `gradient_conflict`; lower, "
             "negative, is more conflict), mean ± 95% CI over seeds, and Δ = the setting's minus "
             f"`{reference}`'s, seed by seed (negative Δ: more conflict than `{reference}`). Whole runs, at "
             "each setting's tuned values, also with early stopping.", ""]
    return lines + md_table(["setting", "branch", f"{reference} cosine", "setting cosine", "Δ cosine (95% CI)",
                             "resolved"], rows)


def _paired_by_value_section(v: SweepView, reference: str) -> list[str]:
    """With tune keys: every tune value that a setting and the reference both ran, paired by
    seed at that value: accuracy per group and each shared branch's conflict cosine. Not a
    tuned comparison; it says whether the tuned ranking holds at equal hyperparameters, and
    how much of a conflict difference comes with the learning rate, which moves the cosine
    as much as the method does (docs/studies.md, claim 2)."""
    sd = v.sd
    if not sd.tune_keys:
        return []
    rest_keys = [k for k in sd.varied if k != "method" and k not in sd.tune_keys]
    cells: dict[tuple, dict[str, list[RunData]]] = {}  # (other keys, tune values) -> method -> runs
    for r in sd.runs:
        at = (tuple((k, dump_value(r.params.get(k))) for k in rest_keys),
              tuple((k, dump_value(r.params.get(k))) for k in sd.tune_keys))
        cells.setdefault(at, {}).setdefault(dump_value(r.params.get("method")), []).append(r)
    methods = [dump_value(m) for m in sd.grid.get("method", [])]
    found = []  # (method, other keys, tune values, runs, reference's runs)
    for (rest, tv), by_method in cells.items():
        if reference in by_method:
            found += [(m, rest, tv, runs, by_method[reference]) for m, runs in by_method.items() if m != reference]
    if not found:
        return []

    def order(item) -> tuple:
        m, rest, tv = item[:3]
        return (methods.index(m) if m in methods else len(methods), rest,
                tuple(_num_or_text(x) for _, x in tv))

    found.sort(key=order)
    branches = sorted(set().union(*(_branches(runs) & _branches(ref) for *_, runs, ref in found)))
    rows = []
    for m, rest, tv, runs, ref in found:
        p = paired(_by_seed(ref), _by_seed(runs))
        conf = []
        for b in branches:
            pb = paired({r.seed: _cosine(r, b) for r in ref}, {r.seed: _cosine(r, b) for r in runs})
            conf.append(fmt_paired(pb) if pb.n else "n/a")
        rows.append([setting_label(sd, {k: runs[0].params.get(k) for k in sd.varied if k not in sd.tune_keys}),
                     tune_text(sd, {k: runs[0].params.get(k) for k in sd.tune_keys}), p.n, fmt_paired(p)]
                    + [fmt_paired(paired(_by_seed(ref, g), _by_seed(runs, g))) for g in v.groups]
                    + conf + [_resolved(p)])
    return ([f"## Paired differences vs {reference} at equal tune values", "",
             f"Every value of {', '.join(f'`{k}`' for k in sd.tune_keys)} that a setting and `{reference}` both "
             "ran, paired by seed at that value: Δ accuracy (as above, "
             f"{sd.reading}) and Δ conflict cosine of each branch both hold (negative: more conflict than "
             f"`{reference}`). Not a tuned comparison: it shows whether the tuned ranking holds at equal "
             "hyperparameters, and how much of a conflict difference comes with the learning rate. Resolved: the "
             "accuracy interval (all agents) excludes 0.", ""]
            + md_table(["setting", "at", "paired seeds", "Δ all agents (95% CI)", *(f"Δ {g} (95% CI)" for g in v.groups),
                        *(f"Δ cosine {b}" for b in branches), "resolved"], rows))


def _num_or_text(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _against_reference(us: list[Unit], reference: str) -> list[tuple[str, list[RunData], list[RunData]]]:
    """(label, runs, the reference's runs with the same other keys) of every setting that
    is not the reference and has one to pair with, in the units' order."""
    ref_of = {_rest(st): runs for st, _, runs in us if dump_value(st.get("method")) == reference}
    return [(label, runs, ref_of[_rest(st)]) for st, label, runs in us
            if dump_value(st.get("method")) != reference and _rest(st) in ref_of]


def _rest(setting: dict) -> tuple:
    return tuple((k, dump_value(v)) for k, v in setting.items() if k != "method")


def _convergence_section(us: list[Unit], sd: SweepData) -> list[str]:
    col = val_column([r for _, _, runs in us for r in runs])
    lines = ["## Convergence", ""]
    if col is None:
        return lines + ["No validation scores in these runs: the plateau rule cannot be applied.", ""]
    rows = []
    for _, label, runs in us:
        stops, at_stop = [], []
        for r in runs:
            curve = [a for _, a in r.score_curve(col)]
            k = plateau_round(curve)
            if k is not None:
                stops.append(k + 1)
                test = dict((kk, a) for kk, _, a in r.curve())
                rounds = sorted({m["round"] for m in r.metrics})
                at_stop.append(test.get(rounds[k]) if k < len(rounds) else None)
        evals = [len({m["round"] for m in r.metrics}) for r in runs]
        rows.append([label, f"{len(stops)}/{len(runs)}",
                     f"{sum(stops) / len(stops):.1f}" if stops else "not reached",
                     f"{min(evals)}" if len(set(evals)) == 1 else f"{min(evals)}..{max(evals)}",
                     fmt_ci(at_stop) if stops else "n/a", fmt_ci([r.final() for r in runs])])
    which = "global validation set" if col == "acc_gval" else "agents' validation splits"
    lines += [f"Plateau rule on the {which} (all agents' mean). A setting with seeds that did not reach a plateau "
              "ran out of budget: its final numbers are not converged ones, and a longer budget may change them.",
              ""]
    return lines + md_table(["setting", "seeds converged", "mean stop (evaluation)", "evaluations run",
                             "test acc at stop (95% CI)",
                             _reading_header(sd)],
                            rows)


def _reading_header(sd: SweepData) -> str:
    if sd.time_budget is not None:
        return f"test acc {'at validation stop ' if sd.early_stop else ''}within {sd.time_budget:g} s (95% CI)"
    return "test acc at validation stop (95% CI)" if sd.early_stop else "test acc at end (95% CI)"


def _curves(v: SweepView, us: list[Unit]) -> list[str]:
    panels = ["all agents"] + v.groups
    by_round: dict[str, dict[str, list]] = {p: {} for p in panels}
    by_bytes: dict[str, dict[str, list]] = {p: {} for p in panels}
    no_bytes = []
    for _, label, runs in us:
        for p in panels:
            g = None if p == "all agents" else p
            by_round[p][label] = [[(k, float(k + 1), a) for k, _, a in r.curve(g)] for r in runs]
        seeds = []
        for r in runs:
            bc = r.bytes_curve()
            if bc is None:
                no_bytes.append(r.dir.name)
                continue
            seeds.append((r, dict(bc)))
        for p in panels:
            g = None if p == "all agents" else p
            by_bytes[p][label] = [[(k, b[k] / 2**20, a) for k, _, a in r.curve(g) if k in b] for r, b in seeds]
    lines = ["## Accuracy vs rounds and vs bytes", "",
             "Mean test accuracy over seeds at each evaluation, each setting at its tuned values; the band is the 95% "
             "confidence interval over seeds. Bytes: everything the run sent up to the evaluation (events.jsonl's "
             "messages, every slice kind and the control messages), mean over seeds.", ""]
    _plot(v, by_round, "accuracy_vs_rounds.png", "evaluation (round)", "accuracy vs rounds")
    fig_link(lines, "accuracy_vs_rounds.png", "accuracy vs rounds per setting, bands over seeds")
    if any(seeds for p in by_bytes.values() for seeds in p.values()):
        _plot(v, by_bytes, "accuracy_vs_bytes.png", "MiB sent (all agents)", "accuracy vs bytes sent")
        fig_link(lines, "accuracy_vs_bytes.png", "accuracy vs bytes sent per setting, bands over seeds")
    if no_bytes:
        lines += [f"No message events (output.log_messages off) in {len(no_bytes)} run(s): left out of the "
                  "bytes curve.", ""]
    return lines


def _plot(v: SweepView, panels: dict, name: str, xlabel: str, what: str) -> None:
    plots.curves_with_bands(panels, v.figs / name, f"{v.name}: {what} (mean over seeds, band: 95% CI)", xlabel,
                            "test accuracy", v.dpi)


__all__ = ["check_reference", "has_protocol", "sections", "units"]
