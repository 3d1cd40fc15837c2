"""CLI exit codes and messages, and a real run in a subprocess that leaves no Ray behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from parse_actors.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_validate_ok(capsys, quickstart_path):
    assert main(["validate", str(quickstart_path)]) == 0
    assert "ok (8 agents" in capsys.readouterr().out


def test_validate_bad_file_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "x.yaml"
    bad.write_text("network:\n  link:\n    bandwidth_mbps: -3\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}: network.link.bandwidth_mbps: expected a positive number, got -3"]


def test_run_bad_override_exit_2(capsys, quickstart_path, tmp_path):
    code = main(["run", str(quickstart_path), "--set", "protocol.rounds=-1", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "protocol.rounds" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_debug_shows_traceback(tmp_path, capsys):
    bad = tmp_path / "x.yaml"
    bad.write_text("seed: -1\n")
    assert main(["--debug", "run", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["run", "x.yaml", "-q", "--debug"],
    ["-q", "run", "x.yaml", "--debug"],
    ["--debug", "-q", "run", "x.yaml"],
    ["-q", "--debug", "run", "x.yaml", "-v", "-v"],
])
def test_console_flags_anywhere(argv):
    from parse_actors.cli import _parser

    args = _parser().parse_args(argv)
    assert (args.command, args.scenario, args.quiet, args.debug) == ("run", "x.yaml", True, True)
    assert args.verbose == argv.count("-v")


def test_console_flags_default_off():
    from parse_actors.cli import _parser

    args = _parser().parse_args(["validate", "a.yaml"])
    assert (args.quiet, args.debug, args.verbose) == (False, False, 0)


def test_debug_after_the_command_shows_traceback(tmp_path, capsys):
    bad = tmp_path / "x.yaml"
    bad.write_text("seed: -1\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "r"), "--debug", "-q"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_schema_prints_json(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "parse-sim scenario"


def test_existing_run_dir_needs_force(tmp_path, capsys, quickstart_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["run", str(quickstart_path), "--out", str(out), "--backend", "inline"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


@pytest.mark.slow
def test_cli_ray_run_in_subprocess_leaves_no_ray(tmp_path, quickstart_path):
    """The embedded default: `parse-sim run` starts a local Ray and nothing outlives it."""
    cache = tempfile.mkdtemp(prefix="psc", dir="/tmp")
    env = {**os.environ, "PARSE_SIM_CACHE": cache}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "parse_actors.cli", "-q", "run", str(quickstart_path), "--out", str(out),
         "--set", "protocol.rounds=2", "--backend", "ray"],
        env=env, capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run directory" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2
    left = subprocess.run(["pgrep", "-f", cache], capture_output=True, text=True).stdout.strip()
    assert left == "", f"Ray processes left behind: {left}"
    assert not any(Path(cache, "ray").glob("r*")), "Ray temp dir left behind"
