"""Early stopping in the comparison protocol (studies/early_stop.py) and the multi-step edge
extension (`sweep --extend N`): the validation stop on constructed curves, exact; a real sweep
plan and tuner with a stub cell runner whose curves peak early for one learning rate, so that
reading at the end and reading at the stop choose differently; the CLI's bad values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from parse_actors.cli import main
from parse_actors.metrics.summary import final_accuracy
from parse_actors.studies.early_stop import stop_column, stopped_summary, validation_stop
from run_helpers import finish_stub_cell
from test_compare import _stub_runner  # parse's optimum (0.8) lies past the grid's upper edge, local's (0.05) past its lower one

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"


def _rows(curve: dict[int, tuple[float, float]], column: str = "acc_gval") -> list[dict]:
    """Two agents per round: (image, audio) values of `column`; acc = column - 0.1."""
    out = []
    for k, (a, b) in curve.items():
        for ag, (g, v) in enumerate((("image", a), ("audio", b))):
            out.append({"round": k, "t": k + 1.0, "agent": ag, "group": g, "acc": v - 0.1, column: v})
    return out


def test_validation_stop_is_the_earliest_round_of_the_best_mean():
    rows = _rows({0: (0.2, 0.2), 1: (0.6, 0.4), 2: (0.3, 0.7), 3: (0.5, 0.5), 4: (0.1, 0.1)})
    assert validation_stop(rows, "acc_gval") == 1  # rounds 1, 2, 3 all average 0.5: the earliest
    rows = _rows({0: (0.2, 0.2), 1: (0.9, float("nan")), 2: (0.4, 0.5)})
    assert validation_stop(rows, "acc_gval") == 2  # a round with a diverged agent never qualifies
    assert validation_stop(rows, "acc_val") is None  # no such column
    assert validation_stop([], "acc_gval") is None


def test_stopped_summary_reads_every_accuracy_at_the_stop():
    rows = _rows({0: (0.2, 0.3), 1: (0.7, 0.5), 2: (0.4, 0.4)})
    for r in rows:
        r["acc_val"] = r["acc_gval"] / 2
    summary = {"final_acc": final_accuracy(rows), "final_acc_gval": final_accuracy(rows, "acc_gval"),
               "final_acc_val": final_accuracy(rows, "acc_val"), "bytes_total": 7}
    assert stop_column(summary) == "acc_gval"
    s = stopped_summary(summary, rows)
    assert s["stop"] == {"rule": "validation", "on": "acc_gval", "round": 1, "last_round": 2}
    assert math.isclose(s["final_acc"]["mean"], 0.5) and s["final_acc"]["by_group"] == pytest.approx(
        {"image": 0.6, "audio": 0.4})
    assert math.isclose(s["final_acc_val"]["mean"], 0.3) and math.isclose(s["final_acc_gval"]["mean"], 0.6)
    assert s["bytes_total"] == 7 and "final_acc_local" not in s  # the rest is the whole run's; nothing added
    assert math.isclose(summary["final_acc"]["mean"], 0.3)  # the run's own summary is left as it was
    # without a global validation set the agents' splits decide; with no rows, nothing changes
    del summary["final_acc_gval"]
    assert stopped_summary(summary, [dict(r, acc_gval=None) for r in rows])["stop"]["on"] == "acc_val"
    assert stopped_summary(summary, []) is summary


# ---------------------------------------------------------------- sweeps, with a stub cell runner

ROUNDS = 10


def _gval(lr: float, k: int, seed: int) -> float:
    """lr 0.1 peaks at round 2 (0.8) and ends at 0.45; lr 0.01 climbs to 0.54 at the end."""
    base = 0.8 - 0.05 * abs(k - 2) if lr >= 0.1 else 0.06 * k
    return base + 0.001 * seed


def write_curve_cells(pending, tracker, round_s=lambda method: 1.0) -> None:
    """Each cell writes metrics.csv (two agents, ROUNDS evaluations, one every `round_s(method)`
    seconds of virtual time) and the summary a run would: test accuracy 0.1 (image) and 0.2
    (audio) under the global validation accuracy."""
    for run in pending:
        lr, seed, dt = run.point.params["optim.lr"], run.point.seed, round_s(run.point.params["method"])
        lines = ["round,t,agent,group,acc,loss,acc_gval,acc_val"]
        rows = []
        for r in range(ROUNDS):
            v = _gval(lr, r, seed)
            for ag, (g, drop) in enumerate((("image", 0.1), ("audio", 0.2))):
                lines.append(f"{r},{(r + 1) * dt},{ag},{g},{v - drop},1.0,{v},{v}")
                rows.append({"round": r, "group": g, "acc": v - drop, "acc_gval": v, "acc_val": v})
        finish_stub_cell(run, tracker, {
            "rounds": ROUNDS, "virtual_time_s": ROUNDS * dt, "agents": 2, "groups": {"image": 1, "audio": 1},
            "final_acc": final_accuracy(rows), "final_acc_val": final_accuracy(rows, "acc_val"),
            "final_acc_gval": final_accuracy(rows, "acc_gval")}, "\n".join(lines) + "\n")


def _curve_runner(sweep, pending, k, tracker, verbosity, sigs):
    write_curve_cells(pending, tracker)


def _tuned(out: Path) -> dict[str, dict]:
    with open(out / "tuned.csv") as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def test_early_stop_chooses_the_learning_rate_that_peaked(tmp_path):
    from parse_actors.studies.sweep import plan_sweep, resume_sweep, run_sweep

    kw = dict(tune_args=["optim.lr=0.01,0.1"], extend=0)
    end = plan_sweep(QUICK, ["method=parse,local"], 2, out=tmp_path / "end", **kw)
    run_sweep(end, 1, echo=lambda line: None, status=False, cell_runner=_curve_runner)
    stop = plan_sweep(QUICK, ["method=parse,local"], 2, out=tmp_path / "stop", early_stop=True, **kw)
    run_sweep(stop, 1, echo=lambda line: None, status=False, cell_runner=_curve_runner)
    assert json.loads((stop.out / "sweep.json").read_text())["early_stop"] is True
    assert "early_stop" not in json.loads((end.out / "sweep.json").read_text())
    at_end, at_stop = _tuned(end.out)["parse"], _tuned(stop.out)["parse"]
    # at the end lr 0.01 (0.54 + 0.0005 mean over seeds) beats lr 0.1 (0.45 + 0.0005)
    assert at_end["chosen.optim.lr"] == "0.01" and "stop_rounds" not in at_end
    assert math.isclose(float(at_end["val_acc_mean"]), 0.5405) and math.isclose(float(at_end["acc_mean"]), 0.3905)
    # at the stop lr 0.1 (0.8005 at round 2) beats lr 0.01 (its stop is its end)
    assert at_stop["chosen.optim.lr"] == "0.1" and at_stop["stop_rounds"] == "2;2"
    assert math.isclose(float(at_stop["val_acc_mean"]), 0.8005)
    assert math.isclose(float(at_stop["acc_mean"]), 0.6505)  # test accuracy of round 2, both groups
    assert math.isclose(float(at_stop["acc_image"]), 0.7005) and math.isclose(float(at_stop["acc_audio"]), 0.6005)
    assert resume_sweep(stop.out).early_stop and not resume_sweep(end.out).early_stop
    # the report reads as the sweep ran; --early-stop reads a sweep run without it the same way
    assert main(["report", str(stop.out)]) == 0
    md = (stop.out / "report.md").read_text()
    assert "**Early stopping**" in md and "| parse | lr=0.1 | 0.800 | 2 | 0.651 ± " in md and "| 2 of 9 |" in md
    assert main(["report", str(end.out)]) == 0
    assert "**Early stopping**" not in (end.out / "report.md").read_text()
    assert main(["report", str(end.out), "--early-stop"]) == 0
    assert "| parse | lr=0.1 | 0.800 | 2 | 0.651 ± " in (end.out / "report.md").read_text()


@pytest.mark.parametrize("steps, added, chosen, at_edge", [
    (1, [0.9], "0.9", "optim.lr: upper"),  # one step: 0.9 wins and is the new edge
    (3, [0.9, 2.7], "0.9", ""),  # the second step (2.7) loses: 0.9 is inside, no third step
    # local steps down the same way: 0.0333 wins, 0.0111 loses
])
def test_extension_steps_until_the_choice_is_inside(tmp_path, steps, added, chosen, at_edge):
    from parse_actors.studies.sweep import plan_sweep, resume_sweep, run_sweep

    sw = plan_sweep(QUICK, ["method=parse,local"], 1, out=tmp_path / "sw", tune_args=["optim.lr=0.1,0.3"],
                    extend=steps)
    res = run_sweep(sw, 1, echo=lambda line: None, status=False, cell_runner=_stub_runner)
    assert res.ran == 4 + 2 * len(added)  # parse steps up, local as many times down
    manifest = json.loads((sw.out / "sweep.json").read_text())
    assert manifest.get("extend", 1) == steps
    ext = [e for e in manifest["extensions"] if e["setting"] == {"method": "parse"}]
    assert [e["values"]["optim.lr"] for e in ext] == added
    assert [e["from"] for e in ext] == [0.3, 0.9][:len(added)]
    row = _tuned(sw.out)["parse"]
    assert row["chosen.optim.lr"] == chosen and row["at_edge"] == at_edge
    assert row["extended"] == "; ".join(f"optim.lr: upper {a} -> {b}" for a, b in zip([0.3, 0.9], added))
    down = [e["values"]["optim.lr"] for e in manifest["extensions"] if e["setting"] == {"method": "local"}]
    assert down == [0.0333, 0.0111][:len(added)] and _tuned(sw.out)["local"]["chosen.optim.lr"] == "0.0333"
    again = resume_sweep(sw.out)
    assert again.extend == steps and not again.pending and len(again.runs) == res.ran


@pytest.mark.parametrize("args, expect", [
    (["--extend", "-1"], "expected a number of steps >= 0"),
    (["--extend", "2", "--no-extend"], "--no-extend says 0 steps"),
])
def test_bad_extend_exits_2(tmp_path, capsys, args, expect):
    code = main(["sweep", str(QUICK), "--tune", "optim.lr=0.1,0.3", "--out", str(tmp_path / "sw")] + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--extend" in err[0] and expect in err[0], err
    assert not (tmp_path / "sw").exists()


def test_report_early_stop_needs_a_sweep(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"name": "x", "final_acc": {"mean": 0.5}}))
    assert main(["report", str(run), "--early-stop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--early-stop: only for a sweep directory" in err[0], err
