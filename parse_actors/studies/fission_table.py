"""The fission study's table: per preset, accuracy of PARSE and dsgd_full (multimodal
agents), the paired difference, rounds to 90% of final accuracy, convergence, and
PARSE's audit criteria beside its untrained null row (parse_actors.audit.criteria).

Definitions (docs/studies.md repeats them):
- accuracy: final accuracy of the multimodal agents on the common test set (the mean
  over groups seeing two or more modalities), mean and 95% CI over seeds (Student t);
  `diff`: PARSE minus dsgd_full paired by seed, mean and 95% CI;
- rounds to 90%: the first round whose multimodal accuracy reaches 90% of the run's
  final accuracy (mean over seeds);
- converged: the multimodal accuracy changed by under 0.5 points over the last 20% of
  the rounds (final minus the value just before that window), counted over seeds;
- at the validation stop: the multimodal accuracy at the round where the multimodal
  agents' own validation accuracy (`acc_val`, mean over them) was best, the earliest
  such round; the test set plays no part in the choice. Every network overfits its
  864 samples per agent before 100 rounds, so the final round alone misleads;
- audit columns: means over seeds of each PARSE run's criteria, the untrained
  network's value beside it, and in how many seeds the criterion passed under the
  null-row rule.
"""

from __future__ import annotations

import math
from pathlib import Path

from parse_actors import atomic
from parse_actors.studies.data import load_sweep, mean_ci

MD_NAME, CSV_NAME, PNG_NAME, JSON_NAME = "fission.md", "fission.csv", "fission.png", "fission.json"
CONVERGED_POINTS = 0.005
CONVERGED_WINDOW = 0.2
ACC_TOLERANCE, DIFF_CI_FLOOR, ROUNDS_RATIO = 0.01, -0.02, 1.5
AUDIT_COLUMNS = (  # (csv name, criterion, key of the trained value, key of the untrained value)
    ("own_column", "own_column", "wins", "untrained"),
    ("syn_own_column", "syn_own_column", "wins", "untrained"),
    ("fusion_sum", "fusion_sum", "trained", "untrained"),
    ("pid_syn_share_ratio", "pid_synergy_share", "trained", "untrained"),
    ("pid_syn_bits_ratio", "pid_synergy_share", "bits_ratio", "untrained_bits_ratio"),
    ("pid_red_share_ratio", "pid_redundancy_share", "trained", "untrained"),
    ("pid_red_bits_ratio", "pid_redundancy_share", "bits_ratio", "untrained_bits_ratio"),
)
PASSES = (("own_column", "own_column"), ("fusion_sum", "fusion_sum"), ("pid_syn", "pid_synergy_share"),
          ("pid_red", "pid_redundancy_share"))
DROP = ("acc", "acc_without_red", "acc_without_uni", "acc_without_syn")


# ----------------------------------------------------------------- per run


def multimodal_groups(run) -> list[str]:
    return [g for g in run.groups if "+" in g]


def mm_curve(run) -> list[tuple[int, float]]:
    """(round, mean accuracy over the multimodal groups) per evaluation."""
    curves = [{r: a for r, _, a in run.curve(g)} for g in multimodal_groups(run)]
    rounds = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return [(r, sum(c[r] for c in curves) / len(curves)) for r in rounds]


def mm_final(run) -> float | None:
    vals = [run.final(g) for g in multimodal_groups(run)]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def val_stop(run) -> tuple[int, float] | None:
    """(round, multimodal test accuracy) at the round of best multimodal validation
    accuracy (mean over the multimodal groups; the earliest on a tie); None when no
    round has a validation accuracy."""
    groups = multimodal_groups(run)
    if not groups:
        return None
    vals = [dict(run.score_curve("acc_val", g)) for g in groups]
    test = dict(mm_curve(run))
    best = None
    for r in sorted(test):
        vs = [v.get(r) for v in vals]
        if any(x is None for x in vs):
            continue
        v = sum(vs) / len(vs)
        if best is None or v > best[0]:
            best = (v, r)
    return None if best is None else (best[1], test[best[1]])


def rounds_to_90(curve: list[tuple[int, float]]) -> int | None:
    """Rounds run until the accuracy first reached 90% of its final value."""
    if not curve or not math.isfinite(curve[-1][1]):
        return None
    goal = 0.9 * curve[-1][1]
    return next(r + 1 for r, a in curve if a >= goal)


def converged(curve: list[tuple[int, float]]) -> bool | None:
    """Under 0.5 points of change over the last 20% of the evaluations."""
    if len(curve) < 2:
        return None
    k = max(1, math.ceil(CONVERGED_WINDOW * len(curve)))
    before = curve[max(0, len(curve) - k - 1)][1]
    return bool(abs(curve[-1][1] - before) < CONVERGED_POINTS)


def run_audit(run) -> dict | None:
    """The run's fission criteria, recomputed from its pid_audit.csv with today's
    criteria (parse_actors.audit.criteria), so a change of the criteria needs no new
    audit; None without a readable audit."""
    from parse_actors.audit import CSV_NAME as AUDIT_CSV
    from parse_actors.audit import JSON_NAME as AUDIT_JSON
    from parse_actors.audit import fission_criteria
    from parse_actors.audit.records import read_records
    from parse_actors.data import DataError
    from parse_actors.studies.readers import ReportError, read_json

    if not (run.dir / AUDIT_JSON).is_file() or not (run.dir / AUDIT_CSV).is_file():
        return None
    try:
        info = read_json(run.dir / AUDIT_JSON, {})
        records = read_records(run.dir / AUDIT_CSV)
    except (ReportError, DataError, OSError, ValueError, KeyError, UnicodeDecodeError):
        return None
    return fission_criteria(records, (info.get("ground_truth") or {}).get("mix"))


# ----------------------------------------------------------------- per preset


def _by_seed(runs, preset: str, method: str) -> dict[int, object]:
    return {r.seed: r for r in runs if r.params.get("data.synthetic.preset") == preset
            and r.params.get("method") == method}


def _count(flags) -> str:
    flags = [f for f in flags if f is not None]
    return f"{sum(flags)}/{len(flags)}" if flags else "n/a"


def preset_row(runs, preset: str) -> dict:
    parse, dsgd = _by_seed(runs, preset, "parse"), _by_seed(runs, preset, "dsgd_full")
    row: dict = {"preset": preset, "seeds": len(parse), "seeds_dsgd_full": len(dsgd)}
    stop = {name: {s: val_stop(r) for s, r in by.items()} for name, by in (("parse", parse), ("dsgd_full", dsgd))}
    for name, by in (("parse", parse), ("dsgd_full", dsgd)):
        m, h, _ = mean_ci([mm_final(r) for r in by.values()])
        row[f"{name}_acc"], row[f"{name}_acc_ci95"] = m, h
        row[f"{name}_acc_all"] = mean_ci([r.final() for r in by.values()])[0]
        curves = [mm_curve(r) for r in by.values()]
        row[f"{name}_rounds90"] = mean_ci([rounds_to_90(c) for c in curves])[0]
        row[f"{name}_converged"] = _count(converged(c) for c in curves)
        stops = list(stop[name].values())
        row[f"{name}_acc_valstop"] = mean_ci([st[1] for st in stops if st is not None])[0]
        row[f"{name}_round_valstop"] = mean_ci([st[0] + 1 for st in stops if st is not None])[0]
    paired = sorted(set(parse) & set(dsgd))
    diffs = [mm_final(parse[s]) - mm_final(dsgd[s]) for s in paired
             if mm_final(parse[s]) is not None and mm_final(dsgd[s]) is not None]
    row["diff"], row["diff_ci95"], row["paired_seeds"] = mean_ci(diffs)
    stop_pairs = [(stop["parse"][s], stop["dsgd_full"][s]) for s in paired]
    row["diff_valstop"], row["diff_valstop_ci95"], _ = mean_ci(
        [p[1] - d[1] for p, d in stop_pairs if p is not None and d is not None])
    p90, d90 = row["parse_rounds90"], row["dsgd_full_rounds90"]
    row["rounds90_ratio"] = p90 / d90 if p90 is not None and d90 else None
    row["accuracy_pass"] = _accuracy_pass(row)
    _audit_columns(row, [run_audit(r) for r in parse.values()])
    return row


def _accuracy_pass(row: dict) -> bool | None:
    """Issue 20: PARSE >= dsgd_full - 1 point, paired CI of the difference above -2 points,
    rounds to 90% <= 1.5x dsgd_full's (the CI needs two seeds)."""
    if row["diff"] is None or row["rounds90_ratio"] is None:
        return None
    low = row["diff"] - (row["diff_ci95"] or 0.0) if row["diff_ci95"] is not None else None
    return bool(row["diff"] >= -ACC_TOLERANCE and low is not None and low > DIFF_CI_FLOOR
                and row["rounds90_ratio"] <= ROUNDS_RATIO)


def _audit_columns(row: dict, audits: list[dict | None]) -> None:
    got = [a for a in audits if a]
    row["audited"] = len(got)
    for col, crit, key, null_key in AUDIT_COLUMNS:
        m, h, _ = mean_ci([a[crit].get(key) for a in got])
        row[col], row[f"{col}_ci95"] = m, h
        row[f"{col}_untrained"] = mean_ci([a[crit].get(null_key) for a in got])[0]
    row["fusion_sum_threshold"] = next((a["fusion_sum"]["threshold"] for a in got), None)
    for col, crit in PASSES:
        row[f"{col}_pass"] = _count(a[crit]["pass"] for a in got)
    groups = [g for a in got for g in a.get("slice_drop", {}) if "+" in g and not g.startswith("untrained:")]
    for k in DROP:
        row[f"drop_{k}"] = mean_ci([a["slice_drop"][g].get(k) for a in got for g in groups
                                    if g in a.get("slice_drop", {})])[0]


def table_rows(sweep_dir: Path, presets: list[str]) -> tuple[list[dict], object]:
    sd = load_sweep(sweep_dir)
    return [preset_row(sd.runs, p) for p in presets], sd


HEADER = (["preset", "seeds", "seeds_dsgd_full", "parse_acc", "parse_acc_ci95", "dsgd_full_acc", "dsgd_full_acc_ci95",
           "diff", "diff_ci95", "paired_seeds", "parse_acc_all", "dsgd_full_acc_all", "parse_rounds90",
           "dsgd_full_rounds90", "rounds90_ratio", "parse_converged", "dsgd_full_converged", "accuracy_pass",
           "parse_acc_valstop", "dsgd_full_acc_valstop", "diff_valstop", "diff_valstop_ci95", "parse_round_valstop",
           "dsgd_full_round_valstop", "audited"]
          + [x for col, *_ in AUDIT_COLUMNS for x in (col, f"{col}_ci95", f"{col}_untrained")]
          + ["fusion_sum_threshold"] + [f"{c}_pass" for c, _ in PASSES] + [f"drop_{k}" for k in DROP])


# ----------------------------------------------------------------- outputs


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 6))
    return v


def _f(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ci(m, h, digits=3) -> str:
    return "n/a" if m is None else (f"{m:.{digits}f}" if h is None else f"{m:.{digits}f} ± {h:.{digits}f}")


def markdown(study, rows: list[dict], sd) -> str:
    sweep = study.sweep
    lines = [f"# Fission study ({', '.join(study.presets)}; {len(sweep.seeds)} seeds {sweep.seeds}; "
             f"{study.rounds} rounds; scenario {sweep.scenario_file.name})", ""]
    if sd.missing:
        lines += [f"Missing or incomplete cells (not in the table): {', '.join(sd.missing)}", ""]
    lines += ["Multimodal agents' final accuracy on the common test set (mean ± 95% CI over seeds); diff = "
              "PARSE − dsgd_full paired by seed; rounds to 90% of final accuracy; converged = under 0.5 points "
              "of change over the last 20% of rounds; at the validation stop = at the round of the multimodal "
              "agents' best validation accuracy (mean round in brackets).", "",
              "| preset | PARSE | dsgd_full | diff (paired) | rounds to 90% P / D | converged P / D | accuracy "
              "criterion | at the validation stop: P / D (rounds) | diff there (paired) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {_ci(r['parse_acc'], r['parse_acc_ci95'])} | "
                     f"{_ci(r['dsgd_full_acc'], r['dsgd_full_acc_ci95'])} | {_ci(r['diff'], r['diff_ci95'])} | "
                     f"{_f(r['parse_rounds90'], 1)} / {_f(r['dsgd_full_rounds90'], 1)} | {r['parse_converged']} / "
                     f"{r['dsgd_full_converged']} | {_yes(r['accuracy_pass'])} | {_f(r['parse_acc_valstop'])} / "
                     f"{_f(r['dsgd_full_acc_valstop'])} ({_f(r['parse_round_valstop'], 0)} / "
                     f"{_f(r['dsgd_full_round_valstop'], 0)}) | {_ci(r['diff_valstop'], r['diff_valstop_ci95'])} |")
    lines += ["", "PARSE's audit (mean over seeds; in brackets the untrained network of the same seed, the null "
                  "row; `pass` counts seeds passing under the null-row rule).", "",
              "| preset | own-column wins (red+uni) | pass | syn rows win | fusion-sum | pass | syn-pair synergy "
              "share / oracle (bits / oracle) | pass | red-pair redundancy share / oracle (bits / oracle) | pass | "
              "slice drop: full / −red / −uni / −syn |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {_f(r['own_column'], 2)} ({_f(r['own_column_untrained'], 2)}) | "
            f"{r['own_column_pass']} | {_f(r['syn_own_column'], 2)} ({_f(r['syn_own_column_untrained'], 2)}) | "
            f"{_f(r['fusion_sum'], 2)} ({_f(r['fusion_sum_untrained'], 2)})"
            + (f" ≥ {r['fusion_sum_threshold']:.1f}" if r["fusion_sum_threshold"] is not None else "") + " | "
            f"{r['fusion_sum_pass']} | {_f(r['pid_syn_share_ratio'], 2)} "
            f"({_f(r['pid_syn_share_ratio_untrained'], 2)}); "
            f"{_f(r['pid_syn_bits_ratio'], 2)} ({_f(r['pid_syn_bits_ratio_untrained'], 2)}) | {r['pid_syn_pass']} | "
            f"{_f(r['pid_red_share_ratio'], 2)} ({_f(r['pid_red_share_ratio_untrained'], 2)}); "
            f"{_f(r['pid_red_bits_ratio'], 2)} ({_f(r['pid_red_bits_ratio_untrained'], 2)}) | {r['pid_red_pass']} | "
            + " / ".join(_f(r[f"drop_{k}"]) for k in DROP) + " |")
    lines += ["", "## Convergence", ""] + convergence_lines(rows) + ["", "## Where PARSE loses", ""] + loss_lines(rows)
    lines += ["", "Columns of fission.csv: docs/studies.md (section \"Fission study\"). Figure: fission.png.", ""]
    return "\n".join(lines)


def _yes(v) -> str:
    return {True: "pass", False: "fail", None: "n/a"}[v]


def convergence_lines(rows: list[dict]) -> list[str]:
    def total(key):
        got = [r[key] for r in rows if r[key] != "n/a"]
        return sum(int(x.split("/")[0]) for x in got), sum(int(x.split("/")[1]) for x in got)

    (pk, pn), (dk, dn) = total("parse_converged"), total("dsgd_full_converged")
    ok = pk == pn and dk == dn and pn > 0
    return [f"Converged (under {CONVERGED_POINTS * 100:.1f} points of change over the last "
            f"{CONVERGED_WINDOW:.0%} of rounds): PARSE {pk}/{pn} runs, dsgd_full {dk}/{dn} runs. "
            + ("Every run converged." if ok else "Not every run converged: the accuracies are not final values "
                                                 "and the issue's criteria are not settled by this table.")]


def loss_lines(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r["diff"] is not None and r["diff"] < -ACC_TOLERANCE:
            out.append(f"- {r['preset']}: multimodal accuracy {_ci(r['diff'], r['diff_ci95'])} below dsgd_full "
                       f"({_f(r['parse_acc'])} vs {_f(r['dsgd_full_acc'])}).")
        if r["rounds90_ratio"] is not None and r["rounds90_ratio"] > ROUNDS_RATIO:
            out.append(f"- {r['preset']}: {r['rounds90_ratio']:.2f}x dsgd_full's rounds to 90% of final accuracy.")
        for col, crit in PASSES:
            p = r[f"{col}_pass"]
            if p != "n/a" and not p.startswith(p.split("/")[1] + "/"):
                out.append(f"- {r['preset']}: {crit} passes in {p} seeds.")
    return out or ["- nowhere in this table."]


def write_figure(path: Path, rows: list[dict], dpi: int = 100) -> Path:
    from parse_actors.metrics.plots import plt_, save_png

    plt = plt_()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), dpi=dpi)
    xs = list(range(len(rows)))
    for i, (name, color) in enumerate((("parse", "C0"), ("dsgd_full", "C1"))):
        m = [r[f"{name}_acc"] or 0.0 for r in rows]
        e = [r[f"{name}_acc_ci95"] or 0.0 for r in rows]
        a1.bar([x + (i - 0.5) * 0.38 for x in xs], m, 0.38, yerr=e, capsize=3, color=color, label=name)
    a1.set_xticks(xs, [r["preset"] for r in rows])
    a1.set_ylim(0, 1)
    a1.set_ylabel("multimodal accuracy (95% CI over seeds)")
    a1.legend(fontsize=8)
    cols = [("own_column", "own-col wins"), ("fusion_sum", "fusion-sum"), ("pid_syn_bits_ratio", "syn bits/oracle"),
            ("pid_red_bits_ratio", "red bits/oracle")]
    w = 0.8 / len(cols)
    for j, (c, label) in enumerate(cols):
        pos = [x + (j - (len(cols) - 1) / 2) * w for x in xs]
        a2.bar(pos, [r[c] or 0.0 for r in rows], w, color=f"C{j + 2}", label=f"{label} (trained)")
        a2.bar(pos, [r[f"{c}_untrained"] or 0.0 for r in rows], w * 0.45, color="none", edgecolor="black",
               hatch="//", label="untrained (null row)" if j == 0 else None)
    a2.set_xticks(xs, [r["preset"] for r in rows])
    a2.set_ylim(0, 1.05)
    a2.set_ylabel("PARSE audit (mean over seeds)")
    a2.legend(fontsize=7, ncol=2)
    save_png(fig, path)
    return path


def write_fission_table(study) -> dict[str, Path]:
    rows, sd = table_rows(study.out, study.presets)
    out = study.out
    atomic.write_csv(out / CSV_NAME, HEADER, ([_cell(r.get(h)) for h in HEADER] for r in rows))
    atomic.write_text(out / MD_NAME, markdown(study, rows, sd))
    write_figure(out / PNG_NAME, rows)
    atomic.write_json(out / JSON_NAME, {"kind": "parse-sim study fission", "presets": study.presets,
                                        "rounds": study.rounds, "seeds": study.sweep.seeds,
                                        "samples": study.samples, "audit_failed": study.audit_failed})
    return {"md": out / MD_NAME, "csv": out / CSV_NAME, "png": out / PNG_NAME}
