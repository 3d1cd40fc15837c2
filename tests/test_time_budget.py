"""Reading runs at a common virtual-time budget (`report --time-budget`, studies/time_budget.py):
the reading on constructed curves, exact, alone and with early stopping; a real sweep plan and
tuner with a stub cell runner whose methods run at different speeds, so that the budget changes
both the choice and the paired difference; the CLI's bad values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from parse_actors.cli import main
from parse_actors.metrics.summary import final_accuracy
from parse_actors.studies.time_budget import budgeted_summary, within_budget
from test_early_stop import ROUNDS, _rows, write_curve_cells

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"


def _summary(rows: list[dict]) -> dict:
    return {"final_acc": final_accuracy(rows), "final_acc_gval": final_accuracy(rows, "acc_gval"), "bytes_total": 7}


def test_budget_reads_the_last_evaluation_within_it():
    rows = _rows({0: (0.2, 0.3), 1: (0.7, 0.5), 2: (0.4, 0.4), 3: (0.9, 0.9)})  # round k evaluated at t = k + 1
    summary = _summary(rows)
    s = budgeted_summary(summary, rows, 3.5)
    assert s["stop"] == {"rule": "time", "t_budget": 3.5, "round": 2, "last_round": 3}
    assert math.isclose(s["final_acc_gval"]["mean"], 0.4) and math.isclose(s["final_acc"]["mean"], 0.3)
    assert s["final_acc"]["by_group"] == pytest.approx({"image": 0.3, "audio": 0.3})
    assert s["bytes_total"] == 7 and "final_acc_val" not in s  # the rest is the whole run's; nothing added
    assert math.isclose(summary["final_acc"]["mean"], 0.8)  # the run's own summary is left as it was
    # an evaluation at the budget itself counts (within float rounding); one before every evaluation reads nothing
    assert budgeted_summary(summary, rows, 3.0)["stop"]["round"] == 2
    assert [r["round"] for r in within_budget(rows, 3.0 - 1e-10)] == [0, 0, 1, 1, 2, 2]
    assert budgeted_summary(summary, rows, 0.99) is None
    assert budgeted_summary(summary, rows, 100.0)["stop"]["round"] == 3
    # a run whose virtual time ran out before the budget is read at its end, and says so
    timed = dict(summary, virtual_time_s=4.0)
    assert "ended_before_budget" not in budgeted_summary(timed, rows, 4.0)["stop"]
    assert budgeted_summary(timed, rows, 4.5)["stop"] == {"rule": "time", "t_budget": 4.5, "round": 3, "last_round": 3,
                                                          "ended_before_budget": True}
    assert budgeted_summary(timed, rows, 4.5, early_stop=True)["stop"]["ended_before_budget"] is True


def test_budget_with_early_stop_stops_among_the_evaluations_within_it():
    rows = _rows({0: (0.2, 0.3), 1: (0.7, 0.5), 2: (0.4, 0.4), 3: (0.9, 0.9)})
    s = budgeted_summary(_summary(rows), rows, 3.5, early_stop=True)
    # the whole run's validation stop is round 3 (0.9); within 3.5 s it is round 1 (0.6)
    assert s["stop"] == {"rule": "validation", "on": "acc_gval", "round": 1, "last_round": 3, "t_budget": 3.5}
    assert math.isclose(s["final_acc_gval"]["mean"], 0.6) and math.isclose(s["final_acc"]["mean"], 0.5)
    # no validation score within the budget: read at the budget's last evaluation
    bare = [dict(r, acc_gval=None) for r in rows]
    assert budgeted_summary(_summary(bare), bare, 3.5, early_stop=True)["stop"]["rule"] == "time"


# ---------------------------------------------------------------- sweeps, with a stub cell runner

def _timed_runner(sweep, pending, k, tracker, verbosity, sigs):
    """test_early_stop's curves (lr 0.1 peaks at round 2, lr 0.01 climbs to the end), with
    `local`'s rounds 2 s of virtual time long and `parse`'s 1 s."""
    write_curve_cells(pending, tracker, lambda method: 2.0 if method == "local" else 1.0)


@pytest.fixture(scope="module")
def timed_sweep(tmp_path_factory) -> Path:
    from parse_actors.studies.sweep import plan_sweep, run_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 2, out=tmp_path_factory.mktemp("tb") / "sw",
                    tune_args=["optim.lr=0.01,0.1"], extend=0, reference="parse")
    run_sweep(sw, 1, echo=lambda line: None, status=False, cell_runner=_timed_runner)
    return sw.out


def test_report_at_a_time_budget_chooses_and_pairs_there(timed_sweep):
    assert main(["report", str(timed_sweep)]) == 0
    md = (timed_sweep / "report.md").read_text()
    assert "**Time budget**" not in md and "| parse | lr=0.01 | 0.540 | 2 | 0.391 ± " in md  # at the end lr 0.01 wins
    assert main(["report", str(timed_sweep), "--time-budget", "3"]) == 0
    md = (timed_sweep / "report.md").read_text()
    assert md.count("**Time budget**") == 2  # the protocol note and the tuned table
    # within 3 s parse reached round 2 (lr 0.1 at its peak, 0.8 + 0.001 seed), local round 0 (lr 0.1: 0.7)
    assert "| parse | lr=0.1 | 0.800 | 2 | 0.651 ± " in md and md.count("| 2 of 9 |") == 1
    assert "| local | lr=0.1 | 0.701 | 2 | 0.551 ± " in md and md.count("| 0 of 9 |") == 1
    # paired by seed, the seed terms cancel: local - parse = 0.5505 - 0.6505 on both seeds
    assert "Δ = a setting's test accuracy at the last evaluation within 3 s of virtual time" in md
    assert "| local | 2 | -0.100 ± 0.000 |" in md
    assert "## Accuracy within 3 s virtual per setting (every tune value)" in md
    assert "test acc within 3 s (95% CI)" in md  # the convergence table reads there too
    assert "ended before the budget" not in md
    # local's runs last 20 s of virtual time, parse's 10: at 15 s parse's are read at their end, and the report says so
    assert main(["report", str(timed_sweep), "--time-budget", "15"]) == 0
    md = (timed_sweep / "report.md").read_text()
    assert ("**4 of 8 runs ended before the budget** (method=parse, optim.lr=0.01; method=parse, optim.lr=0.1): "
            "they are read at their end") in md


def test_report_at_a_budget_before_every_evaluation_lists_the_runs_as_missing(timed_sweep):
    assert main(["report", str(timed_sweep), "--time-budget", "0.5"]) == 0
    md = (timed_sweep / "report.md").read_text()
    assert md.count("(no evaluation within 0.5 s)") == 8 and "No complete run yet: nothing to report." in md


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_time_budget_exits_2(timed_sweep, capsys, value):
    assert main(["report", str(timed_sweep), "--time-budget", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--time-budget: expected a positive number of virtual seconds" in err[0], err


def test_time_budget_needs_a_sweep(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"name": "x", "final_acc": {"mean": 0.5}}))
    assert main(["report", str(run), "--time-budget", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--time-budget: only for a sweep directory" in err[0], err


def test_sweep_at_a_time_budget_chooses_there_and_keeps_it(tmp_path):
    import csv

    from parse_actors.studies.sweep import plan_sweep, resume_sweep, run_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 2, out=tmp_path / "sw", tune_args=["optim.lr=0.01,0.1"],
                    extend=0, time_budget=3)
    run_sweep(sw, 1, echo=lambda line: None, status=False, cell_runner=_timed_runner)
    assert json.loads((sw.out / "sweep.json").read_text())["time_budget"] == 3.0
    with open(sw.out / "tuned.csv") as f:
        tuned = {r["method"]: r for r in csv.DictReader(f)}
    assert tuned["parse"]["chosen.optim.lr"] == "0.1" and tuned["parse"]["stop_rounds"] == "2;2"
    assert tuned["local"]["chosen.optim.lr"] == "0.1" and tuned["local"]["stop_rounds"] == "0;0"
    assert math.isclose(float(tuned["local"]["acc_mean"]), 0.5505)
    assert resume_sweep(sw.out).time_budget == 3.0
    assert main(["report", str(sw.out)]) == 0  # the report reads as the sweep ran
    assert "| local | lr=0.1 | 0.701 | 2 | 0.551 ± " in (sw.out / "report.md").read_text()


@pytest.mark.parametrize("value", ["0", "-2", "nan"])
def test_sweep_bad_time_budget_exits_2_and_writes_nothing(tmp_path, capsys, value):
    code = main(["sweep", str(QUICK), "--tune", "optim.lr=0.1,0.3", "--time-budget", value,
                 "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--time-budget" in err[0] and "positive number" in err[0], err
    assert not (tmp_path / "sw").exists()
