"""`parse-sim study fission` on a tiny configuration: the table has its columns, the
same command resumes (nothing re-runs, the table is unchanged), the same seeds give
the same table byte for byte, and bad input is one line with exit 2."""

from __future__ import annotations

import csv
import json

import pytest

from parse_actors.cli import main
from parse_actors.studies.fission_table import CSV_NAME, HEADER, MD_NAME, PNG_NAME

TINY = ["study", "fission", "--presets", "synergy,mixed", "--seeds", "1", "--rounds", "2", "--samples", "300",
        "--audit-agents", "1", "--set", "data.synthetic.n_samples=1200", "--set",
        "agents.groups=[{modalities: [image], count: 1}, {modalities: [image, audio], count: 2}]", "-q"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("fission") / "study"
    assert main(TINY + ["--out", str(out)]) == 0
    return out


def test_table_has_its_columns_and_rows(study):
    with open(study / CSV_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == HEADER
    assert [r["preset"] for r in rows] == ["synergy", "mixed"]
    for r in rows:
        assert r["seeds"] == "1" and r["seeds_dsgd_full"] == "1" and r["audited"] == "1"
        for col in ("parse_acc", "dsgd_full_acc", "diff", "parse_rounds90", "own_column", "own_column_untrained",
                    "fusion_sum", "fusion_sum_untrained", "drop_acc", "drop_acc_without_syn"):
            assert 0.0 <= abs(float(r[col])) <= 2.0, col
        assert float(r["diff"]) == pytest.approx(float(r["parse_acc"]) - float(r["dsgd_full_acc"]), abs=1e-6)
        assert r["parse_acc_ci95"] == ""  # one seed: no interval
    assert rows[0]["fusion_sum_threshold"] == "0.8" and rows[1]["fusion_sum_threshold"] == "0.3"
    assert rows[0]["own_column_pass"] == "n/a"  # the synergy preset's label uses no red/uni information
    md = (study / MD_NAME).read_text()
    assert "| synergy |" in md and "## Convergence" in md and "## Where PARSE loses" in md
    assert (study / PNG_NAME).stat().st_size > 5000
    parse_cell = next(study.glob("*preset=mixed__method=parse__seed=*"))
    info = json.loads((parse_cell / "pid_audit.json").read_text())
    assert info["agents"] == [0, 1] and "criteria" in info
    assert not list(study.glob("*method=dsgd_full*/pid_audit.json"))


def test_validation_stop_reads_the_round_of_best_validation_accuracy(study):
    """The `at the validation stop` columns, recomputed from each cell's metrics.csv: the
    multimodal agents' test accuracy at the earliest round of their best mean
    validation accuracy (one seed: the mean is that value)."""
    from collections import defaultdict

    with open(study / CSV_NAME, newline="") as f:
        rows = {r["preset"]: r for r in csv.DictReader(f)}
    for preset in ("synergy", "mixed"):
        for method in ("parse", "dsgd_full"):
            cell = next(study.glob(f"*preset={preset}__method={method}__seed=*"))
            acc, val = defaultdict(list), defaultdict(list)
            with open(cell / "metrics.csv", newline="") as f:
                for m in csv.DictReader(f):
                    if m["group"] == "image+audio" and m["acc"] and m["acc_val"]:
                        acc[int(m["round"])].append(float(m["acc"]))
                        val[int(m["round"])].append(float(m["acc_val"]))
            assert len(val) >= 2  # a choice to make
            mean_val = {r: sum(v) / len(v) for r, v in val.items()}
            best = min(r for r in mean_val if mean_val[r] == max(mean_val.values()))
            want = sum(acc[best]) / len(acc[best])
            assert float(rows[preset][f"{method}_acc_valstop"]) == pytest.approx(want, abs=1e-6)
            assert float(rows[preset][f"{method}_round_valstop"]) == best + 1
        r = rows[preset]
        assert float(r["diff_valstop"]) == pytest.approx(float(r["parse_acc_valstop"]) - float(r["dsgd_full_acc_valstop"]),
                                                         abs=1e-6)


def test_same_command_resumes_and_keeps_the_table(study, capsys):
    before = (study / CSV_NAME).read_bytes(), (study / MD_NAME).read_bytes()
    capsys.readouterr()
    assert main(TINY + ["--out", str(study)]) == 0
    out = capsys.readouterr().out
    assert "0 ran, 4 skipped, 0 failed; 0 audited, 2 audits kept" in out
    assert ((study / CSV_NAME).read_bytes(), (study / MD_NAME).read_bytes()) == before


def test_same_seeds_same_table(study, tmp_path):
    other = tmp_path / "again"
    assert main(TINY + ["--out", str(other)]) == 0
    assert (other / CSV_NAME).read_bytes() == (study / CSV_NAME).read_bytes()
    assert (other / MD_NAME).read_bytes() == (study / MD_NAME).read_bytes()


@pytest.mark.parametrize("argv, words", [
    (["--presets", "synergy,nope"], ["--presets", "redundancy"]),
    (["--presets", "mixed,mixed"], ["--presets", "twice"]),
    (["--seeds", "0"], ["--seeds"]),
    (["--rounds", "0"], ["--rounds"]),
    (["--parallel", "0"], ["--parallel"]),
    (["--set", "method=local"], ["--set", "method"]),
    (["--scenario", "/nonexistent.yaml"], ["/nonexistent.yaml"]),
    (["--set", "protocol.rounds=3"], ["protocol.rounds"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, words):
    assert main(["study", "fission", "--out", str(tmp_path / "s")] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and all(w in err for w in words), err
    assert not (tmp_path / "s").exists()
