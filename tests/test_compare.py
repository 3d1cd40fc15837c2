"""The comparison protocol's machinery: paired differences and the seeds they need,
the plateau rule, the log lr grid and its edge extension (a real sweep plan and tuner,
with a stub cell runner that scores a synthetic objective), tuning on the global
validation set, and the report sections. No method ordering is asserted."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from parse_actors.cli import main
from parse_actors.studies.compare import paired, plateau_round, seeds_needed
from parse_actors.studies.grid import LOG_GRID, log_grid, parse_tune_arg
from parse_actors.studies.tune import step_beyond
from run_helpers import finish_stub_cell

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
LR6 = [0.01, 0.0197, 0.039, 0.077, 0.152, 0.3]


# ---------------------------------------------------------------- statistics


def test_paired_difference_interval_exact():
    p = paired({0: 0.5, 1: 0.6, 2: 0.7, 9: 0.1}, {0: 0.55, 1: 0.7, 2: 0.75, 5: 0.9})  # seeds 9, 5: unpaired
    # differences 0.05, 0.10, 0.05: mean 1/15, SD sqrt(1/1200), half-width t(0.975, 2) * SD / sqrt(3)
    assert p.n == 3 and math.isclose(p.mean, 1 / 15) and math.isclose(p.sd, math.sqrt(1 / 1200))
    assert math.isclose(p.half, 4.302653 * math.sqrt(1 / 1200) / math.sqrt(3))
    assert not p.resolved  # 0.0667 < 0.0717: the interval holds 0
    assert p.seeds_needed() == 4  # sqrt(4) * 2.309 = 4.62 >= 3.182 + 0.842; n = 3 gives 4.00 < 5.14
    one = paired({0: 0.5}, {0: 0.6, 1: 0.7})
    assert (one.n, one.sd, one.half) == (1, None, None) and math.isclose(one.mean, 0.1)
    assert paired({0: float("nan")}, {0: 0.5}).n == 0


@pytest.mark.parametrize("d, sd, n", [(0.5, 1.0, 34), (1.0, 1.0, 10), (0.3, 0.3, 10), (0.0, 1.0, None),
                                      (0.1, None, None), (0.1, 0.0, 2)])
def test_seeds_for_80_percent_power(d, sd, n):
    # 34 and 10: the paired t-test sample sizes for effect sizes 0.5 and 1 at power 0.8, alpha 0.05 (G*Power)
    assert seeds_needed(d, sd) == n


def test_plateau_rule():
    rising = [0.1 * k for k in range(12)]
    assert plateau_round(rising) is None
    flat_after = [0.1, 0.3, 0.5, 0.6, 0.7, 0.71, 0.712, 0.713, 0.714, 0.714, 0.7141, 0.7142]
    # at 10 evaluations the last max(5, ceil(2.0)) = 5 span 0.714 - 0.71 = 0.004 < 0.005: stops at index 9
    assert plateau_round(flat_after) == 9
    assert plateau_round(flat_after, tol=0.004) == 10  # at 11 the last 5 (0.712 .. 0.7141) span 0.0021
    assert plateau_round(flat_after, min_rounds=12) == 11
    assert plateau_round([0.5] * 9) is None  # fewer than min_rounds evaluations
    assert plateau_round([0.5] * 9 + [None, 0.5, 0.5, 0.5, 0.5, 0.5]) == 14  # a missing value is not settled
    # one flat step is not a plateau: the window is at least 5 evaluations
    step = [0.1 * k for k in range(9)] + [0.8, 0.9, 1.0, 1.1, 1.2]  # flat only from index 8 to 9
    assert plateau_round(step) is None and plateau_round(step, min_window=2) == 9
    # a window of 20%: at 30 evaluations the last 6 must span < 0.005
    wobble = [0.5 + (0.004 if k % 2 else 0) for k in range(30)]
    assert plateau_round(wobble) == 9 and plateau_round(wobble, tol=0.004) is None


# ---------------------------------------------------------------- the lr grid


def test_log_grid_default_and_spec():
    assert LOG_GRID == (0.01, 0.3, 6) and log_grid(*LOG_GRID) == LR6
    assert parse_tune_arg("optim.lr") == ("optim.lr", LR6)
    assert parse_tune_arg("optim.lr=log:0.01:0.3:6") == ("optim.lr", LR6)
    assert parse_tune_arg("optim.lr=0.02,0.05") == ("optim.lr", [0.02, 0.05])
    assert step_beyond(LR6, "upper") == 0.592 and step_beyond(LR6, "lower") == 0.00508  # the grid's own ratio
    assert step_beyond([1, 2, 3], "upper") == 4 and step_beyond([-1.0, 0.0, 1.0], "lower") == -2.0


@pytest.mark.parametrize("arg, expect", [
    ("optim.lr=log:0.3:0.01:6", "0 < LO < HI"), ("optim.lr=log:0.01:0.3:1", "2 <= N <= 50"),
    ("optim.lr=log:a:0.3:6", "with numbers"), ("optim.lr=log:0.1:0.1001:9", "values repeat"),
])
def test_bad_log_grid_exits_2(tmp_path, capsys, arg, expect):
    code = main(["sweep", str(QUICK), "--tune", arg, "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--tune" in err[0] and expect in err[0], err
    assert not (tmp_path / "sw").exists()


def test_tune_gets_a_global_validation_set_unless_the_scenario_says(tmp_path):
    from parse_actors.studies.sweep import plan_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 1, out=tmp_path / "a", tune_args=["optim.lr=0.02,0.1"])
    assert sw.overrides == ["data.global_val_size=300"]
    assert all(r.scenario.data.global_val_size == 300 for r in sw.runs)
    sw = plan_sweep(QUICK, ["method=parse,local"], 1, ["data.global_val_size=400"], out=tmp_path / "b",
                    tune_args=["optim.lr=0.02,0.1"])
    assert sw.overrides == ["data.global_val_size=400"]
    sw = plan_sweep(QUICK, ["method=parse,local"], 1, out=tmp_path / "c")  # no tuning: nothing added
    assert sw.overrides == [] and sw.runs[0].scenario.data.global_val_size is None


# ---------------------------------------------------------------- edge extension, with a stub cell runner

OPTIMA = {"parse": 0.8, "local": 0.05}  # parse's optimum lies past the grid's upper edge (0.3)


def _objective(method: str, lr: float, seed: int) -> float:
    return 0.9 - 0.1 * (math.log10(lr) - math.log10(OPTIMA[method])) ** 2 + 0.001 * seed


def _stub_runner(sweep, pending, k, tracker, verbosity, sigs):
    """Stands in for the process pool: each cell 'runs' by writing the summary a run would,
    its validation accuracy from the synthetic objective (test accuracy elsewhere)."""
    for run in pending:
        val = _objective(run.point.params["method"], run.point.params["optim.lr"], run.point.seed)
        finish_stub_cell(run, tracker, {
            "rounds": 1, "virtual_time_s": 1.0, "agents": 1, "groups": {"image": 1},
            "final_acc": {"mean": 0.5, "by_group": {"image": 0.5}},
            "final_acc_val": {"mean": 0.1, "by_group": {"image": 0.1}},  # agents' splits: not what is chosen on
            "final_acc_gval": {"mean": val, "by_group": {"image": val}}})
    return None


def test_grid_extends_past_the_edge_the_choice_sits_at(tmp_path):
    from parse_actors.studies.sweep import plan_sweep, resume_sweep, run_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 2, out=tmp_path / "sw", tune_args=["optim.lr"])
    assert sw.grid["optim.lr"] == LR6 and len(sw.runs) == 2 * 6 * 2
    res = run_sweep(sw, 1, echo=lambda line: None, status=False, cell_runner=_stub_runner)
    assert (res.ran, res.failed) == (2 * 6 * 2 + 2, 0)  # + parse at lr 0.592, both seeds
    manifest = json.loads((sw.out / "sweep.json").read_text())
    assert manifest["extensions"] == [{"setting": {"method": "parse"}, "key": "optim.lr", "edge": "upper",
                                       "from": 0.3, "values": {"optim.lr": 0.592}}]
    assert [r["dir"] for r in manifest["runs"]][-2:] == ["method=parse__optim.lr=0.592__seed=0",
                                                         "method=parse__optim.lr=0.592__seed=1"]
    with open(sw.out / "tuned.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    p, loc = rows["parse"], rows["local"]
    assert p["chosen.optim.lr"] == "0.592" and p["select_on"] == "gval"
    assert p["extended"] == "optim.lr: upper 0.3 -> 0.592"
    assert p["at_edge"] == "optim.lr: upper"  # 0.8 is still further out: said, not hidden
    assert math.isclose(float(p["val_acc_mean"]), (_objective("parse", 0.592, 0) + _objective("parse", 0.592, 1)) / 2)
    assert float(p["agent_val_acc_mean"]) == 0.1
    assert loc["chosen.optim.lr"] == "0.039" and loc["extended"] == "" and loc["at_edge"] == ""
    # the same plan again from sweep.json: every cell done, extension included
    again = resume_sweep(sw.out)
    assert len(again.runs) == 26 and not again.pending and again.extensions == manifest["extensions"]
    # the report shows the choice on the global validation set and the extension
    assert main(["report", str(sw.out)]) == 0
    md = (sw.out / "report.md").read_text()
    assert "on the global validation set" in md
    assert "| parse | lr=0.592 | " in md and "extended upper: 0.3 → 0.592; still at the upper edge of lr |" in md
    assert "lr=0.592 (extended)" in md


def test_no_extend_keeps_the_grid(tmp_path):
    from parse_actors.studies.sweep import plan_sweep, run_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 1, out=tmp_path / "sw", tune_args=["optim.lr=0.1,0.3"],
                    extend=False)
    res = run_sweep(sw, 1, echo=lambda line: None, status=False, cell_runner=_stub_runner)
    assert res.ran == 4 and json.loads((sw.out / "sweep.json").read_text())["extend"] == 0
    with open(sw.out / "tuned.csv") as f:
        assert {r["method"]: r["at_edge"] for r in csv.DictReader(f)} == {"parse": "optim.lr: upper",
                                                                           "local": "optim.lr: lower"}


# ---------------------------------------------------------------- report sections


def _protocol_sweep(root: Path, acc: dict, gval: bool = True, key: str | None = None, tune: bool = False) -> Path:
    """A hand-made sweep over method x 3 seeds: metrics with acc/acc_gval over 12 evaluations.
    With `key`, over method x key: `acc` is keyed by (method, value of key); `tune`: the key
    is a tune key (chosen per method on acc_gval)."""
    seeds = (0, 1, 2)
    runs = []
    for mk, finals in acc.items():
        m, level = mk if key else (mk, None)
        for s, fin in zip(seeds, finals):
            name = f"method={m}__{key}={level}__seed={s}" if key else f"method={m}__seed={s}"
            d = root / name
            d.mkdir(parents=True)
            runs.append({"dir": name, "params": {"method": m, **({key: level} if key else {})}, "seed": s,
                         "derived": {}})
            rows = ["round,t,agent,group,acc,loss" + (",acc_gval" if gval else "")]
            for k in range(12):
                a = fin if k >= 6 else fin * (k + 1) / 7  # flat from evaluation 6 on
                for ag, g in enumerate(("image", "audio")):
                    rows.append(f"{k},{k + 1.0},{ag},{g},{a},1.0" + (f",{a}" if gval else ""))
            (d / "metrics.csv").write_text("\n".join(rows) + "\n")
            summ = {"name": "p", "seed": s, "method": m, "rounds": 12, "complete": True, "virtual_time_s": 12.0,
                    "wall_time_s": 1.0, "agents": 2, "groups": {"image": 1, "audio": 1},
                    "final_acc": {"mean": fin, "by_group": {"image": fin, "audio": fin}},
                    "bytes_by_kind": {"encoder": 10}, "bytes_total": 10,
                    "messages": {"sent": 1, "delivered": 1, "dropped": 0}}
            if gval:
                summ["final_acc_gval"] = {"mean": fin, "by_group": {"image": fin, "audio": fin}}
            (d / "summary.json").write_text(json.dumps(summ))
            (d / "events.jsonl").write_text("".join(
                json.dumps({"event": "message", "t": k + 0.5, "t_send": k + 0.5, "bytes": 2**20}) + "\n"
                for k in range(12)))
    grid = {"method": list(dict.fromkeys(mk[0] for mk in acc)), key: list(dict.fromkeys(mk[1] for mk in acc))} \
        if key else {"method": list(acc)}
    (root / "sweep.json").write_text(json.dumps({
        "kind": "parse-sim sweep", "scenario": "p.yaml", "name": "p", "grid": grid,
        "grid_text": {k: [str(x) for x in v] for k, v in grid.items()}, "numeric_keys": [k for k in grid if k != "method"],
        "tune": [key] if tune else [], "seeds": list(seeds), "overrides": [], "backend": "inline", "runs": runs}))
    return root


def test_report_differences_of_differences_for_a_two_level_key(tmp_path):
    """A key with two values besides method (stragglers off / on): each setting's change,
    paired by seed, and that change against the reference's. local: 0.5, 0.6, 0.7 -> 0.4,
    0.5, 0.5 (changes -0.1, -0.1, -0.2); parse: 0.55, 0.7, 0.75 -> 0.5, 0.65, 0.7 (-0.05 each);
    parse's change minus local's: +0.05, +0.05, +0.15 (the interval of test_paired_difference_interval_exact,
    doubled: mean 0.0833, SD 0.0577, half 0.1434)."""
    key = "network.stragglers.fraction"
    root = _protocol_sweep(tmp_path / "sw", {("local", 0): [0.5, 0.6, 0.7], ("local", 0.3): [0.4, 0.5, 0.5],
                                             ("parse", 0): [0.55, 0.7, 0.75], ("parse", 0.3): [0.5, 0.65, 0.7]},
                           key=key)
    assert main(["report", str(root), "--reference", "local"]) == 0
    md = (root / "report.md").read_text()
    a, b = md.index("## Effect of stragglers.fraction: 0.3 vs 0, paired by seed"), md.index(
        "## Effect of stragglers.fraction, against local: difference of the differences")
    assert md.index("## Paired differences vs local") < a < b < md.index("## Convergence")
    rows = [ln for ln in md[a:b].splitlines() if ln.startswith("| ")][1:]  # after the header
    assert rows == ["| local | 3 | -0.133 ± 0.143 | -0.133 ± 0.143 | -0.133 ± 0.143 | no |",
                    "| parse | 3 | -0.050 ± 0.000 | -0.050 ± 0.000 | -0.050 ± 0.000 | yes |"]
    rows = [ln for ln in md[b:].split("## Convergence")[0].splitlines() if ln.startswith("| ")][1:]
    assert rows == ["| parse | 3 | +0.083 ± 0.143 | +0.083 ± 0.143 | +0.083 ± 0.143 | no |"]
    # a method-only sweep has neither section
    root2 = _protocol_sweep(tmp_path / "sw2", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]})
    assert main(["report", str(root2), "--reference", "local"]) == 0
    assert "## Effect of" not in (root2 / "report.md").read_text()


def test_report_pairs_at_every_tune_value_both_ran(tmp_path):
    """parse - local at lr 0.01: 0.05, 0.10, 0.05 (+0.067 +- 0.072, as above); at lr 0.1: 0.10,
    0.15, 0.20 (mean 0.15, SD 0.05, half-width 4.303 x 0.05 / sqrt 3 = 0.124). A conflict cosine
    only the lr-0.1 runs measured is paired there and n/a at 0.01."""
    key = "optim.lr"
    root = _protocol_sweep(tmp_path / "sw", {("local", 0.01): [0.5, 0.6, 0.7], ("local", 0.1): [0.4, 0.5, 0.5],
                                             ("parse", 0.01): [0.55, 0.7, 0.75], ("parse", 0.1): [0.5, 0.65, 0.7]},
                           key=key, tune=True)
    for m, cos in (("local", [0.1, 0.2, 0.3]), ("parse", [0.2, 0.3, 0.4])):
        for s, c in enumerate(cos):
            f = root / f"method={m}__{key}=0.1__seed={s}" / "summary.json"
            summ = json.loads(f.read_text())
            summ["gradient_conflict"] = {"backbone/image/mlp": {"mean_cosine": c, "mean_frac_negative": 0.1,
                                                                "rounds": 12}}
            f.write_text(json.dumps(summ))
    assert main(["report", str(root), "--reference", "local"]) == 0
    md = (root / "report.md").read_text()
    a = md.index("## Paired differences vs local at equal tune values")
    assert md.index("## Paired differences vs local") < a < md.index("## Convergence")
    rows = [ln for ln in md[a:md.index("## Convergence")].splitlines() if ln.startswith("| ")]
    assert rows[0] == ("| setting | at | paired seeds | Δ all agents (95% CI) | Δ image (95% CI) | Δ audio (95% CI) "
                       "| Δ cosine backbone/image/mlp | resolved |")
    assert rows[1:] == ["| parse | lr=0.01 | 3 | +0.067 ± 0.072 | +0.067 ± 0.072 | +0.067 ± 0.072 | n/a | no |",
                        "| parse | lr=0.1 | 3 | +0.150 ± 0.124 | +0.150 ± 0.124 | +0.150 ± 0.124 | +0.100 ± 0.000 "
                        "| yes |"]
    # an untuned sweep has no such section
    root2 = _protocol_sweep(tmp_path / "sw2", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]})
    assert main(["report", str(root2), "--reference", "local"]) == 0
    assert "at equal tune values" not in (root2 / "report.md").read_text()


def test_report_paired_section_convergence_and_curves(tmp_path):
    root = _protocol_sweep(tmp_path / "sw", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]})
    assert main(["report", str(root), "--reference", "local"]) == 0
    md = (root / "report.md").read_text()
    assert md.index("## Comparison protocol") < md.index("## Paired differences vs local") \
        < md.index("## Convergence") < md.index("## Final accuracy per setting")
    # parse - local per seed: 0.05, 0.10, 0.05 (see test_paired_difference_interval_exact)
    assert "| parse | 3 | +0.067 ± 0.072 | +0.067 ± 0.072 | +0.067 ± 0.072 | 0.029 | no | 4 (have 3) |" in md
    assert "| local | 3/3 | 11.0 | 12 | 0.600 ± 0.248 | 0.600 ± 0.248 |" in md  # flat from index 6: 5 flat at the 11th
    assert (root / "report" / "accuracy_vs_rounds.png").stat().st_size > 0
    assert (root / "report" / "accuracy_vs_bytes.png").stat().st_size > 0
    assert " Code: no run recorded its parse-sim source (made before parse-sim recorded it)." in md
    # which code made the runs (run.json `code.source`): one source, then two
    cells = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("method="))
    for d in cells:
        (d / "run.json").write_text(json.dumps({"code": {"source": "a" * 16}}))
    assert main(["report", str(root), "--reference", "local"]) == 0
    assert f" Code: every run recorded parse-sim source `{'a' * 16}` (run.json)." in (root / "report.md").read_text()
    (cells[1] / "run.json").unlink()
    n = len(cells)
    assert main(["report", str(root), "--reference", "local"]) == 0
    assert (f" Code: {n - 1} runs recorded parse-sim source `{'a' * 16}` (run.json). 1 run recorded no source"
            " (made before parse-sim recorded it).") in (root / "report.md").read_text()
    (cells[0] / "run.json").write_text(json.dumps({"code": {"source": "b" * 16}}))
    assert main(["report", str(root), "--reference", "local"]) == 0
    assert (f" **Code: the runs were made by 2 parse-sim sources** (`{'a' * 16}`: {n - 2} runs, `{'b' * 16}`: 1 run)"
            ": differences between their runs may come from the code as well as from the settings. 1 run recorded"
            " no source (made before parse-sim recorded it).") in (root / "report.md").read_text()


def test_report_pairs_the_gradient_conflict_of_the_branches_both_hold(tmp_path):
    root = _protocol_sweep(tmp_path / "sw", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]})
    cos = {"local": [0.10, 0.20, 0.30], "parse": [0.15, 0.30, 0.35]}  # differences 0.05, 0.10, 0.05; SD of parse 0.104
    for m, vals in cos.items():
        for s, c in enumerate(vals):
            f = root / f"method={m}__seed={s}" / "summary.json"
            summ = json.loads(f.read_text())
            summ["gradient_conflict"] = {"backbone/image/mlp": {"mean_cosine": c, "mean_frac_negative": 0.1,
                                                                "rounds": 12}}
            if m == "parse":  # a branch only one method holds is not paired
                summ["gradient_conflict"]["head/red"] = {"mean_cosine": 0.9, "mean_frac_negative": 0.0, "rounds": 12}
            f.write_text(json.dumps(summ))
    assert main(["report", str(root), "--reference", "local"]) == 0
    md = (root / "report.md").read_text()
    assert md.index("## Paired differences vs local") < md.index("## Gradient conflict, paired vs local") \
        < md.index("## Convergence")
    sec = md[md.index("## Gradient conflict, paired vs local"):md.index("## Convergence")]
    rows = [ln for ln in sec.splitlines() if ln.startswith("| parse |")]
    assert rows == ["| parse | backbone/image/mlp | 0.200 ± 0.248 | 0.267 ± 0.259 | +0.067 ± 0.072 | no |"]
    # without the measurements there is no section
    root2 = _protocol_sweep(tmp_path / "sw2", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]})
    assert main(["report", str(root2), "--reference", "local"]) == 0
    assert "## Gradient conflict, paired" not in (root2 / "report.md").read_text()


def test_old_sweeps_report_as_before_and_reference_errors(tmp_path, capsys):
    root = _protocol_sweep(tmp_path / "sw", {"local": [0.5, 0.6, 0.7], "parse": [0.55, 0.7, 0.75]}, gval=False)
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    assert "## Comparison protocol" not in md and not (root / "report" / "accuracy_vs_rounds.png").exists()
    for args, expect in ((["--reference", "harmony"], "'harmony' is not one of the sweep's methods: local, parse"),
                         (["--reference", "local"], None)):
        code = main(["report", str(root), *args])
        err = capsys.readouterr().err.strip().splitlines()
        if expect is None:
            assert code == 0
        else:
            assert code == 2 and len(err) == 1 and expect in err[0], err
    code = main(["report", str(root / "method=local__seed=0"), "--reference", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "only for a sweep directory" in err[0]
    code = main(["sweep", str(QUICK), "--reference", "parse", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--reference" in err[0] and "grid over method" in err[0]
