"""Helpers shared by the engine-level tests (imported by test modules)."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import yaml

from parse_actors.engine import run_scenario
from parse_actors.engine.interrupted import Interrupted


def run_full_and_cut(sc, tmp_path: Path, stop_after: int = 1) -> tuple[Path, Path]:
    """Run `sc` uninterrupted into tmp_path/full, and again into tmp_path/cut stopped by
    SIGTERM after round `stop_after` (checkpoint written, not yet resumed)."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_scenario(sc, full, backend="inline")

    def stop(sim, rnd):
        if rnd == stop_after:
            sim.stop_signal = signal.SIGTERM

    with pytest.raises(Interrupted):
        run_scenario(sc, cut, backend="inline", hooks=[stop])
    return full, cut


def rows(out: Path, name: str = "metrics.csv") -> list[dict]:
    with open(out / name) as f:
        return list(csv.DictReader(f))


def live_events(out: Path) -> list[dict]:
    """events.jsonl of a run that is still writing it: the whole lines only. A reader can
    see a line the writer is half-way through (one write per line is atomic against a
    crash, not against a concurrent read), so what follows the last newline is left out."""
    try:
        text = (out / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def summary_sans_wall(out: Path) -> dict:
    """summary.json without wall time: what must match between runs of the same seed."""
    s = json.loads((out / "summary.json").read_text())
    s.pop("wall_time_s")
    return s


def kill_host_after_round(rnd: int, host: int = 0):
    """A round hook that kills `host`'s actor once, after round `rnd`; returns
    (hook, killed): `killed` lists the round it fired at."""
    killed: list[int] = []

    def hook(sim, r):
        if r == rnd and not killed:
            sim.hosts.backend.kill_host(host)
            killed.append(r)

    return hook, killed


def finish_stub_cell(run, tracker, summary: dict, metrics_csv: str | None = None) -> None:
    """What a finished sweep cell leaves behind (scenario.yaml, metrics.csv when given,
    summary.json), reported to the sweep's tracker: sweep tests' cell runners call this
    instead of training. `summary` holds the fields the test cares about; the rest of a
    summary (run identity, no bytes, no messages) is filled in."""
    s = {"name": run.scenario.name, "seed": run.point.seed, "method": run.point.params["method"],
         "complete": True, "wall_time_s": 0.0, "bytes_by_kind": {}, "bytes_total": 0,
         "messages": {"sent": 0, "delivered": 0, "dropped": 0}, **summary}
    run.dir.mkdir(parents=True, exist_ok=True)
    (run.dir / "scenario.yaml").write_text(yaml.safe_dump(run.scenario.model_dump(mode="json")))
    if metrics_csv is not None:
        (run.dir / "metrics.csv").write_text(metrics_csv)
    (run.dir / "summary.json").write_text(json.dumps(s))
    tracker.finished(run, "ok", s)
