"""Studies layer: grid parsing and expansion, `parse-sim sweep` (parallel, resumable,
validated up front), `parse-sim report` on run and sweep directories, and the
shipped study scenarios."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from parse_actors.cli import main
from parse_actors.errors import ScenarioError
from parse_actors.studies.grid import dump_value, expand_grid, file_grid, merge_grids, parse_grid_arg, split_values

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
TINY = ["--set", "protocol.rounds=2", "--set", "train.local_steps=2", "--set", "data.synthetic.n_samples=1200"]


# ---------------------------------------------------------------- grid parsing


def test_grid_values_are_yaml():
    assert parse_grid_arg("method=parse,local") == ("method", ["parse", "local"])
    assert parse_grid_arg("network.churn.offline.mean_s=60,300") == ("network.churn.offline.mean_s", [60, 300])
    assert parse_grid_arg("a.b=1, 2.5 ,true,null,'x,y'") == ("a.b", [1, 2.5, True, None, "x,y"])


def test_grid_values_with_commas():
    key, vals = parse_grid_arg("network.stragglers=[{model: none}, {model: fraction, fraction: 0.3}]")
    assert key == "network.stragglers"
    assert vals == [{"model": "none"}, {"model": "fraction", "fraction": 0.3}]
    _, vals = parse_grid_arg("network.topology={kind: ring},{kind: chordal_ring, chords: [2, 3]}")
    assert vals == [{"kind": "ring"}, {"kind": "chordal_ring", "chords": [2, 3]}]
    _, vals = parse_grid_arg("data.synthetic.modalities=[[image, audio], [image, audio, text]]")
    assert vals == [["image", "audio"], ["image", "audio", "text"]]
    assert split_values("{a: 'x]y'}, b") == ["{a: 'x]y'}", "b"]


@pytest.mark.parametrize("arg, where", [
    ("method", "expected KEY.PATH=V1,V2"),
    ("method=", "no values"),
    ("method=parse,,local", "empty value"),
    ("method=parse,parse", "given twice"),
    ("seed=1,2", "--seeds"),
    ("a..b=1", "dotted key path"),
    ("x=[1, 2", "invalid YAML"),
])
def test_grid_arg_errors(arg, where):
    with pytest.raises(ScenarioError) as e:
        parse_grid_arg(arg)
    assert where in str(e.value) and "\n" not in str(e.value)


def test_expand_grid_order_names_and_seeds():
    pts = expand_grid({"method": ["parse", "local"], "network.topology": [{"kind": "ring"}, {"kind": "star"}]},
                      [3, 4])
    assert len(pts) == 8
    assert [(p.params["method"], p.params["network.topology"]["kind"], p.seed) for p in pts[:3]] == [
        ("parse", "ring", 3), ("parse", "ring", 4), ("parse", "star", 3)]
    assert len({p.name for p in pts}) == 8
    assert pts[0].name == "method=parse__network.topology=kind-ring__seed=3"
    assert pts[0].overrides == ["method=parse", "network.topology={kind: ring}"]
    # values whose slugs collide still get distinct directories
    pts = expand_grid({"name": ["a b", "a-b"]}, [0])
    assert len({p.name for p in pts}) == 2
    assert dump_value({"kind": "chordal_ring", "chords": [3]}) == "{kind: chordal_ring, chords: [3]}"


def test_file_grid_and_command_line_override(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("# grid: method=parse,local\n# grid: protocol.rounds=2,3\nname: s\n")
    assert file_grid(f) == {"method": ["parse", "local"], "protocol.rounds": [2, 3]}
    merged = merge_grids(file_grid(f), ["protocol.rounds=4", "train.local_steps=1,2"])
    assert merged == {"method": ["parse", "local"], "protocol.rounds": [4], "train.local_steps": [1, 2]}
    with pytest.raises(ScenarioError, match="inside network.link"):
        merge_grids({}, ["network.link={bandwidth_mbps: 5}", "network.link.bandwidth_mbps=1,2"])
    f.write_text("# grid: method=parse,\n")
    with pytest.raises(ScenarioError, match="line 1"):
        file_grid(f)


# ---------------------------------------------------------------- sweeps


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, quickstart_file=ROOT / "scenarios" / "quickstart.yaml"):
    out = tmp_path_factory.mktemp("sweep") / "sw"
    code = main(["-q", "sweep", str(quickstart_file), "--grid", "method=parse,local",
                 "--grid", "network.link.bandwidth_mbps=5,20", "--seeds", "1", "--out", str(out),
                 "--parallel", "2", *TINY])
    assert code == 0
    return out


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_2x2_run_dirs_and_table(sweep_dir):
    runs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert runs == sorted(f"method={m}__network.link.bandwidth_mbps={b}__seed=0"
                          for m in ("parse", "local") for b in (5, 20))
    for r in runs:
        s = json.loads((sweep_dir / r / "summary.json").read_text())
        assert s["complete"] and s["rounds"] == 2
        assert (sweep_dir / r / "scenario.yaml").is_file()
    rows = _csv(sweep_dir / "sweep.csv")
    assert len(rows) == 4
    cols = list(rows[0])
    for c in ["run", "method", "network.link.bandwidth_mbps", "seed", "complete", "acc_mean", "acc_image",
              "acc_audio", "acc_image+audio", "bytes_total", "bytes_encoder", "bytes_red", "bytes_uni", "bytes_syn",
              "bytes_control", "virtual_time_s", "wall_time_s"]:
        assert c in cols, c
    assert {r["method"] for r in rows} == {"parse", "local"}
    assert all(r["complete"] == "true" and 0 <= float(r["acc_mean"]) <= 1 for r in rows)
    parse5 = next(r for r in rows if r["method"] == "parse" and r["network.link.bandwidth_mbps"] == "5")
    parse20 = next(r for r in rows if r["method"] == "parse" and r["network.link.bandwidth_mbps"] == "20")
    assert float(parse5["virtual_time_s"]) > float(parse20["virtual_time_s"])  # thinner links, slower rounds
    assert int(parse5["bytes_red"]) > 0
    local = [r for r in rows if r["method"] == "local"]
    assert all(int(r["bytes_encoder"]) == 0 for r in local)
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert manifest["grid"] == {"method": ["parse", "local"], "network.link.bandwidth_mbps": [5, 20]}
    assert len(manifest["runs"]) == 4


def test_rerun_skips_finished_runs(sweep_dir, capsys):
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    before = {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs}
    args = ["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), "--grid", "method=parse,local",
            "--grid", "network.link.bandwidth_mbps=5,20", "--out", str(sweep_dir), "--parallel", "1", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 of 4 runs already complete" in out and "0 ran, 4 skipped" in out
    assert {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs} == before
    # an unfinished run (no summary) is redone, and only that one
    victim = runs[0]
    (victim / "summary.json").unlink()
    assert main(args) == 0
    assert "1 ran, 3 skipped" in capsys.readouterr().out
    after = {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs}
    assert [n for n in after if after[n] != before.get(n)] == [victim.name]
    assert len(_csv(sweep_dir / "sweep.csv")) == 4


def test_changed_scenario_is_not_silently_reused(sweep_dir, capsys):
    code = main(["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), "--grid", "method=parse",
                 "--grid", "network.link.bandwidth_mbps=5", "--out", str(sweep_dir), *TINY,
                 "--set", "optim.lr=0.01"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different scenario" in err[0] and "optim.lr" in err[0]


@pytest.mark.parametrize("grid, expect", [
    ("network.chrun.offline.mean_s=1,2", "network.chrun: unknown key 'chrun'; did you mean 'churn'?"),
    ("protocol.rounds=2,-1", "protocol.rounds: expected a number >= 1, got -1"),
    ("method=parse,pars", "method: expected one of"),
])
def test_bad_grid_exits_2_before_any_run(tmp_path, capsys, grid, expect):
    out = tmp_path / "sw"
    code = main(["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), "--grid", grid, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_sweep_refuses_foreign_directory(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    code = main(["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out)])
    assert code == 2 and "not a sweep directory" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_one_sweep_at_a_time_per_directory(sweep_dir, capsys):
    import fcntl

    with open(sweep_dir / ".sweep.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), "--grid", "method=parse,local",
                     "--grid", "network.link.bandwidth_mbps=5,20", "--out", str(sweep_dir), *TINY])
    assert code == 2 and "another sweep is running" in capsys.readouterr().err


# ---------------------------------------------------------------- reports


RUN_FIGS = {"accuracy_vs_time.png", "time_to_target.png", "bytes_by_kind.png", "gradient_conflict.png",
            "slice_drop.png"}
SWEEP_FIGS = {"accuracy_vs_time.png", "final_acc_vs_network_link_bandwidth_mbps.png", "bytes_by_kind.png",
              "time_to_target.png", "gradient_conflict.png", "gradient_conflict_vs_time.png", "slice_drop.png"}


def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_run_dir(sweep_dir, capsys):
    run = sweep_dir / "method=parse__network.link.bandwidth_mbps=20__seed=0"
    assert main(["report", str(run), "--target", "0.3", "--dpi", "60"]) == 0
    md = (run / "report.md").read_text()
    figs = {p.name for p in (run / "report").glob("*.png")}
    assert RUN_FIGS <= figs and all(_is_png(run / "report" / f) for f in figs)
    for f in RUN_FIGS:
        assert f"](report/{f})" in md
    assert "time to 0.3" in md and "| image+audio |" in md and "without syn" in md


def test_report_on_sweep_dir(sweep_dir):
    assert main(["report", str(sweep_dir)]) == 0
    md = (sweep_dir / "report.md").read_text()
    figs = {p.name for p in (sweep_dir / "report").glob("*.png")}
    assert SWEEP_FIGS <= figs, figs
    for f in figs:
        assert f"](report/{f})" in md and _is_png(sweep_dir / "report" / f)
    assert "| method=parse, link.bandwidth_mbps=5 | 1 |" in md
    assert "## Final accuracy vs network.link.bandwidth_mbps" in md


def test_report_on_other_dir_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a run directory" in err[0]


# ---------------------------------------------------------------- shipped scenarios


def test_every_scenario_validates(capsys):
    assert len(SCENARIOS) >= 10
    assert main(["validate", *map(str, SCENARIOS)]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(SCENARIOS)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_grid_expands_and_validates(path, tmp_path):
    from parse_actors.studies.sweep import plan_sweep

    text = path.read_text()
    if path.stem != "quickstart":
        assert text.startswith("#") and "parse-sim " in text.split("\n\n")[0]  # header: what and how
    sweep = plan_sweep(path, [], 1, out=tmp_path / "sw")
    assert sweep.runs and not (tmp_path / "sw").exists()
