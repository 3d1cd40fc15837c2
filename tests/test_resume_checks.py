"""`--resume` trusts nothing it reads: the checkpoint must belong to the run's
scenario.yaml (a fingerprint of every key that changes results) and hold every
agent's state with the branches and shapes the scenario builds; only regular
files are opened. A refusal is one line, exit 2, and leaves the run directory
exactly as it was (no truncated events.jsonl, no table rewritten, no Ray started)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from parse_actors.engine import resume_run
from parse_actors.engine import checkpoint as ckpt
from parse_actors.errors import ScenarioError
from parse_actors.metrics import RunDirError
from parse_actors.scenario import load_scenario
from parse_actors.scenario.fingerprint import NEUTRAL_KEYS, fingerprint
from run_helpers import run_full_and_cut, summary_sans_wall

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"
SMALL = ["protocol.rounds=3", "train.local_steps=4", "output.checkpoint_every=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run and the same run stopped after round 0 (checkpoint of round 0)."""
    return run_full_and_cut(load_scenario(QUICK, SMALL), tmp_path_factory.mktemp("resume_checks"), stop_after=0)


@pytest.fixture
def cut(runs, tmp_path):
    """A copy of the interrupted run, for one test to damage."""
    out = tmp_path / "run"
    shutil.copytree(runs[1], out)
    return out


def snapshot(d: Path) -> dict:
    """Every file under `d` with its bytes and modification time: what 'nothing touched' means.
    The lock file is left out: whoever takes the lock writes its pid there (metrics/dirguard.py),
    and a resume takes it before it reads anything, refused or not."""
    from parse_actors.metrics.dirguard import LOCK

    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(d.rglob("*")) if p.name != LOCK}


def edit_scenario(run_dir: Path, edit) -> None:
    doc = yaml.safe_load((run_dir / "scenario.yaml").read_text())
    edit(doc)
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


class Replace:
    """What a checkpoint edit returns to replace the whole content."""

    def __init__(self, value):
        self.value = value


def edit_checkpoint(run_dir: Path, edit) -> None:
    st = ckpt.load(run_dir)
    r = edit(st)
    torch.save(r.value if isinstance(r, Replace) else st, ckpt.path_of(run_dir))


def refused(run_dir: Path, monkeypatch, backend: str = "inline") -> str:
    """Resume `run_dir`; it must be refused before anything is touched (and before Ray could
    start); returns the one-line message."""
    from parse_actors.engine import runner

    def no_ray(*a, **k):
        raise AssertionError("Ray started before the checkpoint was checked")

    monkeypatch.setattr(runner, "ray_session", no_ray)
    before = snapshot(run_dir)
    with pytest.raises((ScenarioError, RunDirError)) as ei:  # both: one line, exit 2 (a link: the run-dir rule)
        resume_run(run_dir, backend=backend)
    assert snapshot(run_dir) == before
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- the scenario fingerprint
@pytest.mark.parametrize("edit, keys", [
    (lambda d: d.update(seed=1), ["seed"]),
    (lambda d: d["agents"]["groups"][0].update(count=4), ["agents.groups.0.count"]),
    (lambda d: d["protocol"].update(rounds=5), ["protocol.rounds"]),
    (lambda d: d["optim"].update(lr=0.5), ["optim.lr"]),
    (lambda d: d["network"]["link"].update(bandwidth_mbps=5), ["network.link.bandwidth_mbps"]),
    (lambda d: d["engine"].update(torch_threads=2), ["engine.torch_threads"]),
    (lambda d: (d.update(seed=3), d["train"].update(local_steps=5)), ["seed", "train.local_steps"]),
], ids=["seed", "agents", "rounds", "lr", "bandwidth", "torch_threads", "two_keys"])
def test_changed_scenario_is_refused_naming_the_keys(cut, monkeypatch, edit, keys):
    """Before: a changed seed continued the old run under the new seed's timeline (exit 0),
    changed agents gave `ValueError: agent has branches the checkpoint lacks`, changed
    rounds a TypeError."""
    edit_scenario(cut, edit)
    msg = refused(cut, monkeypatch, backend="ray")
    assert msg.startswith(f"{cut}: ") and "scenario.yaml differs from the checkpoint in " in msg, msg
    named = msg.split("differs from the checkpoint in ", 1)[1].split(" (", 1)[0]
    assert named.split(", ") == keys, msg


def test_keys_that_cannot_change_metrics_may_differ_on_resume(runs, cut):
    """engine.hosts, engine.backend, output.plots, ... are free on resume: same metrics."""
    full, _ = runs

    def edit(d):
        d["engine"].update(hosts=2, backend="inline", batched_stepping="off", ray_timeout_s=99.0)
        d["output"].update(plots=False, log_messages=True, final_weights_max_mb=0)
        d["name"] = "renamed"
    edit_scenario(cut, edit)
    summary, _ = resume_run(cut)
    assert summary["complete"] is True
    assert (cut / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    s, f = summary_sans_wall(cut), summary_sans_wall(full)
    assert {k: v for k, v in s.items() if k != "name"} == {k: v for k, v in f.items() if k != "name"}


def test_every_neutral_key_is_a_scenario_key_and_the_rest_counts():
    """A typo in the exclusions would exclude nothing; a key added to the schema counts
    unless excluded with its reason."""
    sc = load_scenario(QUICK)
    dump = sc.model_dump(mode="json")
    for key, why in NEUTRAL_KEYS.items():
        node = dump
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, key
            node = node[part]
        assert why.strip(), key
    fp = fingerprint(sc)
    assert "engine" in fp and "backend" not in fp["engine"] and "torch_threads" in fp["engine"]
    assert set(dump) - set(fp) == {k for k in NEUTRAL_KEYS if "." not in k}


def test_old_checkpoint_without_fingerprint_is_refused(cut, monkeypatch):
    edit_checkpoint(cut, lambda st: [st.pop("scenario"), st.pop("format")])
    msg = refused(cut, monkeypatch)
    assert "checkpoint.pt" in msg and "older parse-sim" in msg, msg


# ---------------------------------------------------------------- the checkpoint's structure
def _drop_branch(st, aid=6, key="head/red"):
    sd = st["states"][aid]
    sd["keys"].remove(key)
    for name in [n for n in sd["model"] if n.startswith(f"branches.{key}.")]:
        del sd["model"][name]


def _wrong_shape(st):
    name = sorted(st["states"][0]["model"])[0]
    st["states"][0]["model"][name] = torch.zeros(1)


def _wrong_momentum(st):
    opt = st["states"][1]["optim"]["state"]
    i = sorted(opt)[0]
    opt[i]["momentum_buffer"] = torch.zeros(3, 3, 3)


@pytest.mark.parametrize("damage, expected", [
    (lambda st: st["states"].pop(3), "agent 3"),
    (lambda st: st.pop("round"), "round"),
    (lambda st: st.update(round="1"), "round"),
    (lambda st: st.update(round=2), "round"),
    (lambda st: st.update(round=-1), "round"),
    (lambda st: st["states"].update({99: st["states"][0]}), "99"),
    (lambda st: st.update(states=[1, 2]), "states"),
    (lambda st: Replace([1, 2, 3]), "mapping"),
    (_drop_branch, "head/red"),
    (_wrong_shape, "shape"),
    (_wrong_momentum, "momentum"),
    (lambda st: st["states"][2].pop("rng"), "agent 2"),
    (lambda st: st["states"][2].update(agent_id=5), "agent 2"),
    (lambda st: st["states"][4].update(method="local"), "agent 4"),
    (lambda st: st["states"][0].update(choco={"gossip": {}, "degrees": []}), "choco"),
    (lambda st: st["states"][5].update(change={"versions": 3}), "change"),
    (lambda st: st.update(payloads="x"), "payloads"),
    (lambda st: st.update(protocol={"links": 3}), "protocol"),
    (lambda st: st.update(rows=5), "rows"),
    (lambda st: st.update(messages={"sent": "x"}), "messages"),
    (lambda st: st.update(events_offset=10 ** 12), "events_offset"),
], ids=["agent_missing", "no_round", "round_type", "round_last", "round_negative", "extra_agent",
        "states_type", "not_a_mapping", "branch_missing", "wrong_shape", "wrong_momentum", "agent_field",
        "agent_id", "agent_method", "choco", "change", "payloads", "protocol", "rows", "messages", "events_offset"])
def test_damaged_checkpoint_is_one_line_before_anything_is_touched(cut, monkeypatch, damage, expected):
    """Before: one agent's state removed resumed that agent from its initial weights, exit 0;
    a checkpoint without 'round' gave `KeyError: 'round'`."""
    edit_checkpoint(cut, damage)
    msg = refused(cut, monkeypatch)
    assert "checkpoint.pt" in msg and expected in msg, msg


# ---------------------------------------------------------------- only regular files
def _cli_resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parse_actors.cli", "run", "--resume", str(run_dir),
                           "--backend", "inline"], capture_output=True, text=True, cwd=ROOT, timeout=240)


@pytest.mark.parametrize("name", ["checkpoint.pt", "scenario.yaml"])
def test_a_fifo_is_refused_not_waited_on(cut, name):
    """Before: a FIFO in place of checkpoint.pt blocked --resume forever."""
    (cut / name).unlink()
    os.mkfifo(cut / name)
    before = snapshot(cut)
    r = _cli_resume(cut)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "not a regular file" in lines[0], r.stderr
    assert snapshot(cut) == before


@pytest.mark.parametrize("name", ["checkpoint.pt", "scenario.yaml"])
def test_a_link_is_not_followed(cut, tmp_path, monkeypatch, name):
    """A symlink in place of checkpoint.pt or scenario.yaml (even to a valid file) is refused."""
    target = tmp_path / f"elsewhere-{name}"
    shutil.copy(cut / name, target)
    (cut / name).unlink()
    (cut / name).symlink_to(target)
    msg = refused(cut, monkeypatch)
    assert name in msg and "link" in msg, msg


def test_cli_refusal_is_one_line_exit_2(cut):
    edit_scenario(cut, lambda d: d.update(seed=7))
    before = snapshot(cut)
    r = _cli_resume(cut)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cut) in lines[0] and "seed" in lines[0], r.stderr
    assert snapshot(cut) == before
