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
from pathlib import Path

from parse_actors.metrics import dirguard
from parse_actors.studies.data import ReportError, SweepData, fmt_ci, is_run_dir, is_sweep_dir, load_run, load_sweep
from parse_actors.studies.report_md import FIG_DIR  # noqa: F401 - where the figures go, importable from here
from parse_actors.studies.report_run import run_report
from parse_actors.studies.report_sweep import sweep_report
from parse_actors.studies.report_tuned import setting_label, tune_text, tuned_choices


def default_target(finals: list[float | None]) -> float:
    """80% of the best final mean accuracy, rounded down to 0.05 (at least 0.05)."""
    vals = [v for v in finals if v is not None and math.isfinite(v)]  # NaN: a diverged run
    if not vals:
        return 0.5
    return max(0.05, math.floor(0.8 * max(vals) * 20 + 1e-9) / 20)


def write_report(path: str | Path, target: float | None = None, dpi: int = 100,
                 budget: float | None = None, reference: str | None = None,
                 early_stop: bool | None = None, time_budget: float | None = None) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such directory")
    if target is not None and not 0 < target <= 1:
        raise ReportError(f"--target: expected an accuracy in (0, 1], got {target}")
    if not 20 <= dpi <= 600:
        raise ReportError(f"--dpi: expected 20..600, got {dpi}")
    if budget is not None and not budget > 0:
        raise ReportError(f"--budget: expected a positive number of virtual seconds, got {budget}")
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise ReportError(f"--time-budget: expected a positive number of virtual seconds, got {time_budget}")
    dirguard.check_entries(path, "report directory")  # before anything in it is read or written
    if is_sweep_dir(path):
        dirguard.check_sweep_entries(path)
        return sweep_report(load_sweep(path, early_stop, time_budget), target, dpi, budget, default_target,
                            reference)
    if time_budget is not None:
        raise ReportError("--time-budget: only for a sweep directory (each of its runs is read within the budget)")
    if early_stop:
        raise ReportError("--early-stop: only for a sweep directory (each of its runs is read at its validation stop)")
    if reference is not None:
        raise ReportError("--reference: only for a sweep directory (paired differences are between its methods)")
    if is_run_dir(path):
        run = load_run(path)
        t = default_target([run.summary.get("final_acc", {}).get("mean")]) if target is None else target
        return run_report(run, t, dpi)
    raise ReportError(f"{path}: neither a run directory (summary.json) nor a sweep directory (sweep.json)")


def sweep_console_table(sd: SweepData) -> str:
    """The accuracy tables printed at the end of `parse-sim sweep`: tuned first (with --tune),
    then every setting; mean ± 95% CI over seeds."""
    groups = sd.groups()
    out = []
    if sd.tune_keys:
        choices = tuned_choices(sd)
        labels = [setting_label(sd, c.setting) for c in choices]
        chosen = [tune_text(sd, c.chosen.values) + f" (val {c.chosen.val:.3f})" if c.chosen else "none"
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
    if sd.reference:
        out += ([""] if out else []) + _console_paired(sd, sd.reference)
    if sd.tune_keys:
        out += ["", "every run setting (test accuracy, mean ± 95% CI over seeds)"]
    elif sd.reference:
        out += [""]
    configs = sd.configs()
    width = max([len("setting")] + [len(k) for k in configs]) + 2
    head = f"{'setting':<{width}}{'seeds':>6}{'all (95% CI)':>16}" + "".join(f"{g[:15]:>17}" for g in groups)
    out += [head, "-" * len(head)]
    for label, runs in configs.items():
        out.append(f"{label:<{width}}{len(runs):>6}{fmt_ci([r.final() for r in runs]):>16}"
                   + "".join(f"{fmt_ci([r.final(g) for r in runs]):>17}" for g in groups))
    return "\n".join(out)


__all__ = ["ReportError", "default_target", "sweep_console_table", "write_report"]


def _console_paired(sd: SweepData, reference: str) -> list[str]:
    """Paired differences against `reference` (report_compare), for the console."""
    from parse_actors.studies.compare import fmt_paired, paired
    from parse_actors.studies.grid import dump_value
    from parse_actors.studies.report_compare import units

    us = units(sd)
    ref = {tuple((k, dump_value(v)) for k, v in st.items() if k != "method"): runs for st, _, runs in us
           if dump_value(st.get("method")) == reference}
    rows = []
    for st, label, runs in us:
        base = ref.get(tuple((k, dump_value(v)) for k, v in st.items() if k != "method"))
        if base is None or dump_value(st.get("method")) == reference:
            continue
        p = paired({r.seed: r.final() for r in base}, {r.seed: r.final() for r in runs})
        need = p.seeds_needed()
        rows.append((label, p, "n/a" if need is None else str(need)))
    if not rows:
        return []
    w = max([len("setting")] + [len(x[0]) for x in rows]) + 2
    head = f"{'setting':<{w}}{'paired seeds':>13}{'delta all (95% CI)':>22}{'resolved':>10}{'seeds for 80% power':>21}"
    out = [f"paired differences vs {reference} (test accuracy, seed by seed)", head, "-" * len(head)]
    for label, p, need in rows:
        res = "yes" if p.resolved else ("no" if p.half is not None else "n/a")
        out.append(f"{label:<{w}}{p.n:>13}{fmt_paired(p):>22}{res:>10}{need:>21}")
    return out
