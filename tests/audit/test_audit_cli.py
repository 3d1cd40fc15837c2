"""`parse-sim audit RUN_DIR` on a hand-built run directory, and its bad inputs
(one line on stderr, exit 2)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from parse_actors.audit import CSV_NAME, JSON_NAME, NAME
from parse_actors.audit.audit import HEADER
from parse_actors.cli import main


def test_audit_writes_table_plots_and_timing(trained_run, capsys):
    assert main(["audit", str(trained_run), "--samples", "1200"]) == 0
    out = capsys.readouterr().out
    assert "latent probes, group image+audio" in out and "PID of the label" in out
    with open(trained_run / CSV_NAME) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == HEADER
    agents = {r["agent"] for r in rows}
    assert agents == {"0", "1", "oracle", "untrained:0", "untrained:1"}
    # the unimodal agent has probes but no PID; the multimodal one has both; each has slice drop
    assert {r["measure"] for r in rows if r["agent"] == "0"} == {"probe", "slice_drop"}
    assert {r["measure"] for r in rows if r["agent"] == "1"} == {"probe", "pid", "slice_drop"}
    assert {r["measure"] for r in rows if r["agent"] == "untrained:1"} == {"probe", "pid", "slice_drop"}
    assert "fission criteria" in out and "untrained" in out
    assert {r["row"] for r in rows if r["agent"] == "1" and r["measure"] == "pid"} == {
        "red/audio|red/image", "uni/audio|uni/image", "syn/audio|syn/image", "audio|image"}
    # trained slices carry their redundant latent far above chance
    red = [float(r["normalised"]) for r in rows if r["agent"] == "1" and r["row"].startswith("red/")
           and r["column"] == "z_R"]
    assert min(red) > 0.2
    info = json.loads((trained_run / JSON_NAME).read_text())
    assert info["seconds"] > 0 and info["samples"] == 1200 and info["agents"] == [0, 1]
    assert set(info["criteria"]) == {"own_column", "syn_own_column", "fusion_sum", "pid_synergy_share",
                                     "pid_redundancy_share", "slice_drop"}
    assert info["ground_truth"]["mix"] == {"redundant": 1.0, "unique": 1.0, "synergy": 0.4}
    for g in ("image", "image+audio", "oracle", "untrained_image+audio"):
        assert (trained_run / "plots" / f"pid_audit_{g}.png").stat().st_size > 1000


def _one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    for w in words:
        assert w in err
    return err


def test_not_a_run_directory(tmp_path, capsys):
    _one_line_error(capsys, ["audit", str(tmp_path)], "not a run directory", "scenario.yaml")
    _one_line_error(capsys, ["audit", str(tmp_path / "nope")], "not a run directory")


def test_run_without_final_weights(trained_run, tmp_path, capsys):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(trained_run / "scenario.yaml", d / "scenario.yaml")
    _one_line_error(capsys, ["audit", str(d)], "no final_weights.pt")
    (d / NAME).write_bytes(b"not a torch file")
    _one_line_error(capsys, ["audit", str(d)], NAME, "cannot be loaded safely")


@pytest.mark.parametrize("flag", ["--states=1", "--samples=3", "--max-agents=0"])
def test_bad_options(trained_run, capsys, flag):
    _one_line_error(capsys, ["audit", str(trained_run), flag], flag.split("=")[0])
