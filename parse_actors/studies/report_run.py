"""`parse-sim report RUN_DIR`: the sections of one run's report, one function each.

Accuracy per agent group (with time to target), bytes per slice kind, gradient
conflict per shared branch, accuracy with a slice kind dropped, availability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parse_actors.metrics import plots as run_plots
from parse_actors.names import SLICE_KINDS as DROP
from parse_actors.studies import plots
from parse_actors.studies.data import RunData, fmt_sd
from parse_actors.studies.report_md import FIG_DIR, fig_link, finish, md_table, mib


@dataclass
class _Run:
    """What every section of one run's report needs."""

    run: RunData
    figs: Path
    name: str
    target: float
    dpi: int


def run_report(run: RunData, target: float, dpi: int) -> Path:
    """report.md and report/*.png of one run directory; `target`: accuracy for time-to-target."""
    s = run.summary
    figs = run.dir / FIG_DIR
    figs.mkdir(parents=True, exist_ok=True)
    ctx = _Run(run, figs, f"{s.get('name', run.dir.name)} ({s.get('method')}, seed {s.get('seed')})", target, dpi)
    lines = [f"# Report: {ctx.name}", "",
             f"Run directory `{run.dir}`: {s.get('agents')} agents, method `{s.get('method')}`, protocol "
             f"`{s.get('protocol', 'sync')}`, {s.get('rounds')} rounds/evaluations, "
             f"{s.get('virtual_time_s', 0):.2f} s virtual, {s.get('wall_time_s', 0):.1f} s wall"
             f"{'' if s.get('complete') else ' — **incomplete run**'}.", ""]
    for section in (_accuracy, _communication, _conflict, _slice_drop, _availability):
        lines += section(ctx)
    return finish(run.dir, lines)


def _accuracy(ctx: _Run) -> list[str]:
    run, target = ctx.run, ctx.target
    groups = run.groups
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
    lines = ["## Accuracy", "",
             "Final accuracy on the common test set restricted to each agent's modalities (mean ± sample std "
             "over the group's agents: a spread, not a confidence interval)"
             + (", on the agents' " + " and ".join(h + "s" for _, h in extra) if extra else "")
             + f", and the virtual time at which the group's mean test accuracy first reached the target "
             f"{target:g}.", ""]
    lines += md_table(["agent group", "agents", "final accuracy (common test)"] + [h for _, h in extra]
                      + [f"time to {target:g} (virtual s)"], rows)
    if run.metrics:
        run_plots.accuracy_vs_time(run.metrics, ctx.figs / "accuracy_vs_time.png",
                                   f"{ctx.name}: accuracy per agent group", target, ctx.dpi)
        fig_link(lines, "accuracy_vs_time.png", "accuracy vs virtual time per agent group")
        plots.grouped_bars(groups + ["all"], {"time to target": [run.time_to(target, g) for g in groups]
                                             + [run.time_to(target)]},
                           ctx.figs / "time_to_target.png", f"{ctx.name}: virtual time to reach accuracy {target:g}",
                           "virtual time (s)", ctx.dpi, missing_text="not reached", horizontal=False,
                           xlabel="agent group")
        fig_link(lines, "time_to_target.png", "time to target accuracy")
    return lines


def _communication(ctx: _Run) -> list[str]:
    run, s = ctx.run, ctx.run.summary
    bk = s.get("bytes_by_kind") or {}
    total = s.get("bytes_total") or 0
    lines = ["## Communication per slice kind", ""]
    lines += md_table(["slice kind", "MiB sent", "share"],
                      [[k, mib(v), f"{100 * v / total:.1f}%" if total else "n/a"] for k, v in bk.items()]
                      + [["**total**", mib(total), "100%" if total else "n/a"]])
    m = s.get("messages") or {}
    lines += [f"Messages: {m.get('sent', 0)} sent, {m.get('delivered', 0)} delivered, {m.get('dropped', 0)} "
              "dropped.", ""]
    if run.comm:
        run_plots.bytes_by_kind(run.metrics, run.comm, ctx.figs / "bytes_by_kind.png",
                                f"{ctx.name}: bytes sent per slice kind", ctx.dpi)
        fig_link(lines, "bytes_by_kind.png", "bytes per slice kind per sending group")
    return lines


def _conflict(ctx: _Run) -> list[str]:
    run = ctx.run
    lines = ["## Gradient conflict per shared branch", ""]
    gc = run.summary.get("gradient_conflict") or {}
    if not run.conflict:
        return lines + ["No conflict.csv (no branch is held by both unimodal and multimodal agents, or "
                        "`output.gradient_conflict_every: 0`).", ""]
    lines += ["Cosine between the mean update of unimodal and of multimodal agents on each branch both hold "
              "(negative: they pull the shared parameters in opposite directions), over the run.", ""]
    lines += md_table(["branch", "mean cosine", "mean share of negative pairs", "evaluations"],
                      [[k, f"{v['mean_cosine']:.3f}", f"{v['mean_frac_negative']:.3f}", v["rounds"]]
                       for k, v in gc.items()])
    plots.run_conflict(run, ctx.figs / "gradient_conflict.png", f"{ctx.name}: uni- vs multimodal update conflict",
                       ctx.dpi)
    fig_link(lines, "gradient_conflict.png", "gradient conflict per shared branch over time")
    return lines


def _slice_drop(ctx: _Run) -> list[str]:
    lines = ["## Accuracy with a slice kind dropped", ""]
    sd = ctx.run.summary.get("slice_drop") or {}
    if not sd:
        return lines + ["No slice_drop.csv (`output.slice_drop: off`).", ""]
    lines += md_table(["agent group", "full"] + [f"without {k}" for k in DROP],
                      [[g, f"{v['acc']:.3f}"] + [f"{v.get(f'acc_without_{k}', float('nan')):.3f}" for k in DROP]
                       for g, v in sd.items()])
    plots.grouped_bars(list(sd), {lab: [v.get(key) for v in sd.values()] for lab, key in
                                  [("full", "acc")] + [(f"without {k}", f"acc_without_{k}") for k in DROP]},
                       ctx.figs / "slice_drop.png", f"{ctx.name}: accuracy with a slice kind's logits removed",
                       "test accuracy (final evaluation)", ctx.dpi, legend_title="prediction", horizontal=False,
                       xlabel="agent group")
    fig_link(lines, "slice_drop.png", "slice-drop accuracy")
    return lines


def _availability(ctx: _Run) -> list[str]:
    run = ctx.run
    online = [r.get("online") for r in run.metrics if r.get("online") is not None]
    if not online or min(online) >= 1:
        return []
    lines = ["## Availability", "",
             f"Agents were online at {100 * sum(online) / len(online):.1f}% of the (agent, evaluation) points.", ""]
    plots.run_online(run, ctx.figs / "online.png", f"{ctx.name}: agents online", ctx.dpi)
    fig_link(lines, "online.png", "agents online over time")
    return lines
