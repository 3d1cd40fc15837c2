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
    assert "other parse-sim source" not in out  # every run recorded today's source (run.json `code`)
    assert {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs} == before
    # an unfinished run (no summary) is redone, and only that one; --resume is the same with
    # only the directory named (its sweep.json holds the rest)
    victim = runs[0]
    (victim / "summary.json").unlink()
    assert main(["sweep", "--resume", str(sweep_dir), "--parallel", "1"]) == 0
    assert "1 ran, 3 skipped" in capsys.readouterr().out
    after = {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs}
    assert [n for n in after if after[n] != before.get(n)] == [victim.name]
    assert len(_csv(sweep_dir / "sweep.csv")) == 4


def test_code_changed_under_a_sweep_is_said_not_mixed_in(sweep_dir, tmp_path, capsys, monkeypatch):
    """A finished run another source made is kept with a warning; a cell whose worker finds
    the package files changed since the sweep started does not run (a real worker process:
    the sweep's own digest is what is faked)."""
    import shutil

    from parse_actors import provenance

    sw = tmp_path / "sw"
    shutil.copytree(sweep_dir, sw)
    runs = sorted(p for p in sw.iterdir() if p.is_dir())
    info = json.loads((runs[0] / "run.json").read_text())
    info["code"]["source"] = "f" * 16
    (runs[0] / "run.json").write_text(json.dumps(info))
    (runs[1] / "summary.json").unlink()
    assert main(["sweep", "--resume", str(sw), "--parallel", "1"]) == 0  # the files are today's: the cell runs
    out = capsys.readouterr().out
    assert f"warning: 1 of the 3 finished runs were made by other parse-sim source ({'f' * 16}; today " in out
    (runs[1] / "summary.json").unlink()
    real = provenance.source_digest()
    monkeypatch.setattr(provenance, "source_digest", lambda roots=None: "0" * 16)
    assert main(["sweep", "--resume", str(sw), "--parallel", "1"]) != 0
    out = capsys.readouterr().out
    other = ", ".join(sorted([real, "f" * 16]))
    assert f"warning: 3 of the 3 finished runs were made by other parse-sim source ({other}; today {'0' * 16})" in out
    row = next(r for r in _csv(sw / "sweep.csv") if r["run"] == runs[1].name)
    assert row["complete"] == "false"
    assert row["error"].startswith("parse-sim's source here differs from the one this sweep started with "
                                   "(digest 0000000000000000")
    assert not (runs[1] / "summary.json").exists()


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


# ---------------------------------------------------------------- confidence intervals


def test_t_quantile_and_confidence_interval_exact():
    from parse_actors.studies.data import fmt_ci, mean_ci, t975

    assert t975(1) == 12.706205 and t975(4) == 2.776445 and t975(30) == 2.042272
    assert abs(t975(40) - 2.021075) < 1e-5 and abs(t975(100) - 1.983972) < 1e-5 and abs(t975(10**6) - 1.96) < 1e-3
    m, h, n = mean_ci([0.8, 0.9])  # std 0.0707107, t(1) = 12.706205
    assert (round(m, 6), round(h, 6), n) == (0.85, 0.63531, 2)
    m, h, n = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # std sqrt(2.5), t(4) = 2.776445
    assert round(h, 6) == round(2.776445 * 2.5 ** 0.5 / 5 ** 0.5, 6) == 1.963243
    assert mean_ci([0.7]) == (0.7, None, 1) and mean_ci([None, float("nan")]) == (None, None, 0)
    assert fmt_ci([0.8, 0.9]) == "0.850 ± 0.635" and fmt_ci([0.7]) == "0.700" and fmt_ci([]) == "n/a"


# ---------------------------------------------------------------- --tune


def _fake_sweep(root: Path, val: dict, test: dict, seeds=(0, 1), tune_key="optim.lr",
                methods=("parse", "local"), lrs=(0.01, 0.1)) -> Path:
    """A sweep directory by hand: val[(method, lr)] and test[(method, lr)] list one final
    accuracy per seed (None: no such run). Group accuracies: image = acc - 0.1, audio = acc + 0.1."""
    from parse_actors.studies.grid import expand_grid

    grid = {"method": list(methods), tune_key: list(lrs)}
    points = expand_grid(grid, list(seeds))
    runs = []
    for p in points:
        key = (p.params["method"], p.params[tune_key])
        i = list(seeds).index(p.seed)
        acc, v = test[key][i], val[key][i]
        runs.append({"dir": p.name, "params": p.params, "seed": p.seed, "derived": {}})
        if acc is None:
            continue
        d = root / p.name
        d.mkdir(parents=True)
        by = {"image": acc - 0.1, "audio": acc + 0.1}
        summary = {"name": "fake", "seed": p.seed, "method": key[0], "complete": True, "rounds": 2,
                   "virtual_time_s": 1.0, "wall_time_s": 1.0, "agents": 2, "groups": {"image": 1, "audio": 1},
                   "final_acc": {"mean": acc, "by_group": by},
                   "final_acc_local": {"mean": acc, "by_group": by},
                   "bytes_total": 100, "bytes_by_kind": {"encoder": 100}, "messages": {}}
        if v is not None:
            summary["final_acc_val"] = {"mean": v, "by_group": {"image": v, "audio": v}}
        (d / "summary.json").write_text(json.dumps(summary))
        rows = ["round,t,agent,group,acc,loss,acc_local,acc_val"]
        for r in range(2):
            for a, g in enumerate(("image", "audio")):
                rows.append(f"{r},{r + 1.0},{a},{g},{by[g]},1.0,{by[g]},{'' if v is None else v}")
        (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    (root / "sweep.json").write_text(json.dumps({
        "kind": "parse-sim sweep", "scenario": "fake.yaml", "name": "fake", "grid": grid,
        "grid_text": {k: [dump_value(x) for x in v] for k, v in grid.items()}, "numeric_keys": [tune_key],
        "tune": [tune_key], "seeds": list(seeds), "overrides": [], "backend": "inline", "runs": runs}))
    return root


# parse: lr 0.01 wins on validation (0.55 vs 0.50) although lr 0.1 is far better on test;
# local: equal validation scores -> the value listed first (0.01); a NaN validation counts 0.
VAL = {("parse", 0.01): [0.5, 0.6], ("parse", 0.1): [0.7, 0.3],
       ("local", 0.01): [0.4, 0.5], ("local", 0.1): [0.5, 0.4]}
TEST = {("parse", 0.01): [0.8, 0.9], ("parse", 0.1): [0.99, 0.99],
        ("local", 0.01): [0.6, 0.7], ("local", 0.1): [0.9, 0.9]}


def test_tune_chooses_on_validation_never_on_test(tmp_path):
    from parse_actors.studies.data import load_sweep
    from parse_actors.studies.tune import choose

    sd = load_sweep(_fake_sweep(tmp_path / "sw", VAL, TEST))
    assert sd.tune_keys == ["optim.lr"]
    ch = choose(sd.runs, sd.grid, sd.tune_keys)
    assert [c.setting for c in ch] == [{"method": "parse"}, {"method": "local"}]
    assert [c.chosen.values for c in ch] == [{"optim.lr": 0.01}, {"optim.lr": 0.01}]
    assert [round(c.chosen.val, 9) for c in ch] == [0.55, 0.45]
    assert [[round(x.val, 9) for x in c.candidates] for c in ch] == [[0.55, 0.5], [0.45, 0.45]]
    assert sorted(r.final() for r in ch[0].runs) == [0.8, 0.9]
    # the choice follows validation: swap which value validates better and it moves
    val = {**VAL, ("parse", 0.1): [0.7, 0.5]}
    sd2 = load_sweep(_fake_sweep(tmp_path / "sw2", val, TEST))
    assert choose(sd2.runs, sd2.grid, sd2.tune_keys)[0].chosen.values == {"optim.lr": 0.1}
    # ties go to the value listed first, whatever the order of the values
    sd3 = load_sweep(_fake_sweep(tmp_path / "sw3", VAL, TEST, lrs=(0.1, 0.01)))
    assert choose(sd3.runs, sd3.grid, sd3.tune_keys)[1].chosen.values == {"optim.lr": 0.1}


def test_tune_diverged_counts_zero_and_missing_runs_count_nothing(tmp_path):
    from parse_actors.studies.data import load_sweep
    from parse_actors.studies.tune import choose

    val = {**VAL, ("parse", 0.01): [float("nan"), 0.6], ("local", 0.1): [0.9, None]}
    test = {**TEST, ("local", 0.1): [0.9, None]}  # local lr 0.1 seed 1 never ran
    sd = load_sweep(_fake_sweep(tmp_path / "sw", val, test))
    ch = choose(sd.runs, sd.grid, sd.tune_keys)
    assert [round(x.val, 9) for x in ch[0].candidates] == [0.3, 0.5]  # (0 + 0.6) / 2 vs 0.5
    assert ch[0].chosen.values == {"optim.lr": 0.1}
    assert (ch[1].chosen.values, ch[1].chosen.n, round(ch[1].chosen.val, 9)) == ({"optim.lr": 0.1}, 1, 0.9)
    # no validation accuracy at all (val_fraction 0): no choice, said so
    none = {k: [None, None] for k in VAL}
    sd = load_sweep(_fake_sweep(tmp_path / "sw2", none, TEST))
    assert [c.chosen for c in choose(sd.runs, sd.grid, sd.tune_keys)] == [None, None]


def test_report_and_console_show_tuned_table_first(tmp_path):
    from parse_actors.studies.data import load_sweep
    from parse_actors.studies.report import sweep_console_table

    root = _fake_sweep(tmp_path / "sw", VAL, TEST)
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    tuned, full = md.index("## Tuned: test accuracy at the value chosen on validation data"), \
        md.index("## Final accuracy per setting (every tune value)")
    assert tuned < full
    # parse at lr 0.01: test 0.8, 0.9 -> 0.850 ± 0.635; image 0.7, 0.8; audio 0.9, 1.0
    assert "| parse | lr=0.01 | 0.550 | 2 | 0.850 ± 0.635 | 0.750 ± 0.635 | 0.950 ± 0.635 |" in md
    assert "| local | lr=0.01 | 0.450 | 2 | 0.650 ± 0.635 |" in md
    assert "| parse | **0.550** | 0.500 |" in md and "| local | **0.450** | 0.450 |" in md
    assert "95% CI" in md and "± std" not in md
    later = md[md.index("## Bytes per slice kind"):]  # sections after the lr plots: settings at their tuned values
    assert "| parse | 0.00 | 0.00 |" in later and "optim.lr=0.1" not in later
    con = sweep_console_table(load_sweep(root))
    assert con.index("tuned:") < con.index("every run setting")
    assert "lr=0.01 (val 0.550)" in con and "0.850 ± 0.635" in con


def test_sweep_tune_plumbing_and_tuned_csv(tmp_path, capsys):
    from parse_actors.studies.sweep import TUNED_CSV, plan_sweep, tuned_rows, write_manifest

    q = ROOT / "scenarios" / "quickstart.yaml"
    sw = plan_sweep(q, ["method=parse,local"], 2, out=tmp_path / "sw",
                    tune_args=["optim.lr=0.01,0.05", "train.local_steps=5,10"])
    assert sw.tune == ["optim.lr", "train.local_steps"]
    assert list(sw.grid) == ["method", "optim.lr", "train.local_steps"] and len(sw.runs) == 2 * 2 * 2 * 2
    assert sw.runs[0].point.name == "method=parse__optim.lr=0.01__train.local_steps=5__seed=0"
    assert sw.runs[0].scenario.optim.lr == 0.01 and sw.runs[-1].scenario.train.local_steps == 10
    sw.out.mkdir()
    write_manifest(sw)
    assert json.loads((sw.out / "sweep.json").read_text())["tune"] == ["optim.lr", "train.local_steps"]
    # tuned.csv from hand-made results
    root = _fake_sweep(tmp_path / "fake", VAL, TEST)
    from parse_actors.studies.data import load_sweep

    sd = load_sweep(root)
    header, rows = tuned_rows(sd.grid, sd.tune_keys, sd.runs)
    assert header[:6] == ["method", "chosen.optim.lr", "val_acc_mean", "seeds", "acc_mean", "acc_ci95"]
    assert [r[:4] for r in rows] == [["parse", 0.01, rows[0][2], 2], ["local", 0.01, rows[1][2], 2]]
    assert round(rows[0][4], 9) == 0.85 and round(rows[0][5], 5) == 0.63531
    assert rows[0][-1] == "optim.lr=0.01: 0.55 (2); optim.lr=0.1: 0.5 (2)"
    assert TUNED_CSV == "tuned.csv"


@pytest.mark.parametrize("args, expect", [
    (["--tune", "optim.lr=0.01", "--tune", "optim.lr=0.1"], "--tune: optim.lr: given twice"),
    (["--grid", "optim.lr=0.01,0.1", "--tune", "optim.lr=0.05"], "--tune: optim.lr: is also a --grid key"),
    (["--tune", "optim=0.1", "--tune", "optim.lr=0.1"], "is inside optim"),
    (["--tune", "optim.lr=0.01,-1"], "optim.lr"),
])
def test_bad_tune_exits_2_before_any_run(tmp_path, capsys, args, expect):
    out = tmp_path / "sw"
    code = main(["sweep", str(ROOT / "scenarios" / "quickstart.yaml"), *args, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_run_report_shows_validation_and_own_split_columns(tmp_path):
    root = _fake_sweep(tmp_path / "sw", VAL, TEST)
    run = root / "method=parse__optim.lr=0.01__seed=0"  # test 0.8 (image 0.7, audio 0.9), validation 0.5
    assert main(["report", str(run), "--target", "0.75"]) == 0
    md = (run / "report.md").read_text()
    assert "| agent group | agents | final accuracy (common test) | validation split | own test split |" in md
    assert "| image | 1 | 0.700 | 0.500 | 0.700 | not reached |" in md
    assert "| **all** | 2 | 0.800 ± 0.141 | 0.500 ± 0.000 | 0.800 ± 0.141 | 1.00 |" in md
