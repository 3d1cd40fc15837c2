"""`parse-sim sweep`: a grid of scenario variants x seeds, one run directory each.

Layout of a sweep directory::

    <out>/sweep.json      what was swept: scenario, grid, seeds, the runs (written first)
    <out>/sweep.csv       one row per run: grid values, seed, final accuracy (mean and per
                          group; test, validation, own split), bytes per slice kind,
                          virtual and wall time, complete
    <out>/tuned.csv       with --tune: per setting, the tune values chosen on validation
                          accuracy (the global validation set: data.global_val_size, 300
                          samples unless the scenario says) and the test accuracy there, the
                          edge extension when the choice sat at an edge (parse_actors.studies.tune)
    <out>/<key=value__...__seed=S>/   an ordinary run directory per grid point and seed

    <out>/progress.json   while it runs: cells done / running (where) / failed (progress.py)

Every grid point is validated before anything is written. `sweep --resume
OUT` (or re-running the same command) skips runs whose summary.json says
complete, continues interrupted ones from their checkpoint, and redoes the
rest. Cells run in a local process pool (pool.py), or with `--ray-address` as
Ray tasks spread over a cluster (cluster.py); either way each is an ordinary
run directory with the same bytes (cell.py).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from parse_actors import atomic
from parse_actors.errors import ScenarioError
from parse_actors.metrics import dirguard
from parse_actors.metrics.rundir import RunDirError
from parse_actors.metrics.summary import KINDS
from parse_actors.data.config import DEFAULT_GLOBAL_VAL
from parse_actors.studies.data import SWEEP_CSV, SWEEP_JSON, mean_ci
from parse_actors.studies.early_stop import stopped_summary
from parse_actors.studies.time_budget import budgeted_summary
from parse_actors.studies.grid import (
    GridPoint,
    add_tune,
    dump_value,
    expand_grid,
    extra_points,
    file_grid,
    is_numeric,
    merge_grids,
)
from parse_actors.studies.pool import DriverSignals, run_pool
from parse_actors.studies.readers import read_table
from parse_actors.studies.progress import SweepProgress

if TYPE_CHECKING:  # pragma: no cover
    from parse_actors.studies.cluster import ClusterOptions

TUNED_CSV = "tuned.csv"


class SweepError(RunDirError):
    """The sweep directory cannot be used (not a sweep directory, holds other runs)."""


@dataclass
class PlannedRun:
    point: GridPoint
    scenario: Any  # parse_actors.scenario.Scenario
    dir: Path
    state: str  # done | new | resume | rerun
    derived: dict


@dataclass
class Sweep:
    scenario_file: Path
    name: str
    out: Path
    grid: dict[str, list]
    seeds: list[int]
    overrides: list[str]
    backend: str
    runs: list[PlannedRun]
    tune: list[str] = field(default_factory=list)
    extensions: list[dict] = field(default_factory=list)  # tune values added past a grid edge (tune.py)
    reference: str | None = None  # the method paired differences are taken against (`--reference`)
    extend: int = 1  # tune values a setting may add past an edge its choice lands on, per key
    early_stop: bool = False  # choices and tables read each run at its validation stop (early_stop.py)
    time_budget: float | None = None  # ... within this virtual time, in seconds (time_budget.py)

    @property
    def pending(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.state != "done"]


# ---------------------------------------------------------------------------
# planning: everything is checked here, nothing is written
# ---------------------------------------------------------------------------


def plan_sweep(scenario_file: str | Path, grid_args: list[str], seeds: int, overrides: list[str] | None = None,
               out: str | Path | None = None, backend: str = "inline", force: bool = False,
               tune_args: list[str] | None = None, reference: str | None = None, extend: int = 1,
               early_stop: bool = False, time_budget: float | None = None) -> Sweep:
    """Validate every grid point and decide, per run, whether it is done, new, resumable.
    `tune_args` (`--tune KEY=V1,V2`, `KEY=log:LO:HI:N`, `KEY`) are swept like grid keys and
    chosen per setting on validation accuracy when the results are read
    (parse_actors.studies.tune); a sweep with them gets a global validation set
    (`data.global_val_size=300`, added to the overrides) unless the scenario, an override
    or the grid sets one. `reference`: the method reports pair every other one with.
    `extend`: steps past a grid edge per setting and key (0: none); `early_stop`: read every
    run at its validation stop; `time_budget`: within that many seconds of virtual time."""
    path = Path(scenario_file)
    extend = int(extend) if isinstance(extend, bool) else extend  # true/false: one step / none
    if not isinstance(extend, int) or extend < 0:
        raise ScenarioError("--extend", "", f"expected a number of steps >= 0, got {extend!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ScenarioError("--seeds", "", f"expected a positive number of seeds, got {seeds!r}")
    grid, tune = add_tune(merge_grids(file_grid(path), grid_args), list(tune_args or []), grid_args)
    overrides = list(overrides or [])
    if tune and not _sets_global_val(path, overrides, grid):
        overrides.append(f"data.global_val_size={DEFAULT_GLOBAL_VAL}")
    _check_reference(reference, grid)
    if time_budget is not None and not (isinstance(time_budget, (int, float)) and not isinstance(time_budget, bool)
                                        and math.isfinite(time_budget) and time_budget > 0):
        raise ScenarioError("--time-budget", "", f"expected a positive number of virtual seconds, got {time_budget!r}")
    sweep = _plan(path, grid, tune, seeds, overrides, out, backend, force)
    sweep.reference, sweep.extend, sweep.early_stop = reference, extend, bool(early_stop)
    sweep.time_budget = None if time_budget is None else float(time_budget)
    return sweep


def _sets_global_val(path: Path, overrides: list[str], grid: dict[str, list]) -> bool:
    """Whether the scenario file, an override or a grid key says data.global_val_size."""
    from parse_actors.scenario import apply_override, load_document

    doc = load_document(path)
    for o in overrides:
        apply_override(doc, o)
    return "global_val_size" in (doc.get("data") or {}) or any(
        k == "data.global_val_size" or "data.global_val_size".startswith(k + ".") for k in grid)


def _check_reference(reference: str | None, grid: dict[str, list]) -> None:
    if reference is None:
        return
    methods = [dump_value(v) for v in grid.get("method", [])]
    if len(methods) < 2:
        raise ScenarioError("--reference", "", "needs a grid over method (e.g. --grid method=parse,local)")
    if reference not in methods:
        raise ScenarioError("--reference", "", f"{reference!r} is not one of the grid's methods: {', '.join(methods)}")


def resume_sweep(out: str | Path, backend: str | None = None) -> Sweep:
    """The plan of the sweep in `out` as its sweep.json says it was made (scenario file,
    grid, tune keys, seeds, overrides, backend unless `backend` is given), for
    `parse-sim sweep --resume OUT`: finished cells are skipped, the rest run."""
    from parse_actors.scenario import parse_yaml

    out = Path(out)
    try:
        manifest = json.loads((out / SWEEP_JSON).read_text(encoding="utf-8"))
        if manifest.get("kind") != "parse-sim sweep":
            raise ValueError("not written by parse-sim sweep")
        grid = {k: [parse_yaml(t, "value") for t in texts] for k, texts in manifest["grid_text"].items()}
        seeds, tune = [int(x) for x in manifest["seeds"]], list(manifest.get("tune") or [])
        extensions = list(manifest.get("extensions") or [])
        reference, extend = manifest.get("reference"), int(manifest.get("extend", 1))  # true/false before steps
        early_stop = manifest.get("early_stop") is True
        time_budget = None if manifest.get("time_budget") is None else float(manifest["time_budget"])
        overrides, stored = list(manifest.get("overrides") or []), str(manifest["scenario"])
        names = [r["dir"] for r in manifest["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ScenarioError) as e:
        raise SweepError(f"{out}: cannot resume: no readable {SWEEP_JSON} ({e})") from None
    path = Path(stored)
    if not path.is_file() and manifest.get("scenario_path"):
        path = Path(manifest["scenario_path"])
    if not path.is_file():
        raise SweepError(f"{out}: cannot resume: its scenario file {stored} is not there (from here)")
    sweep = _plan(path, grid, tune, seeds, overrides, out, backend or manifest.get("backend") or "inline", False,
                  extensions)
    sweep.reference, sweep.extend, sweep.early_stop = reference, extend, early_stop
    sweep.time_budget = time_budget
    if [r.point.name for r in sweep.runs] != names:
        raise SweepError(f"{out}: cannot resume: {path} now gives other cells than {SWEEP_JSON} lists "
                         "(the file changed since the sweep began); run the sweep again into another --out")
    return sweep


def _plan(path: Path, grid: dict[str, list], tune: list[str], seeds: int | list[int], overrides: list[str],
          out: str | Path | None, backend: str, force: bool, extensions: list[dict] | None = None) -> Sweep:
    from parse_actors.scenario import apply_override, build_scenario, load_document

    doc = load_document(path)
    for o in overrides:
        apply_override(doc, o)
    base = build_scenario(doc, str(path), base_dir=path.parent, check=False)
    seed_list = list(seeds) if isinstance(seeds, list) else [base.seed + i for i in range(seeds)]
    points = expand_grid(grid, seed_list)
    for e in extensions or []:
        points += extra_points(grid, {**e["setting"], **e["values"]}, seed_list)
    out = Path(out) if out is not None else Path("runs") / f"{base.name}-sweep"
    _check_out(out)
    runs = [_planned(doc, path, p, out, backend, force) for p in points]
    return Sweep(path, base.name, out, grid, seed_list, overrides, backend, runs, tune, list(extensions or []))


def _planned(doc: dict, path: Path, p: GridPoint, out: Path, backend: str, force: bool) -> PlannedRun:
    """One cell: its scenario (the document with the point's overrides and seed), checked."""
    from parse_actors.scenario import apply_override, build_scenario

    d = copy.deepcopy(doc)
    for o in p.overrides:
        try:
            apply_override(d, o)
        except ScenarioError as e:
            raise ScenarioError("--grid", e.path, e.message) from None
    d["seed"] = p.seed
    try:
        sc = build_scenario(d, str(path), base_dir=path.parent)
    except ScenarioError as e:
        where = f" (grid point {p.label})" if p.params else ""
        raise ScenarioError(e.file, e.path, e.message + where) from None
    sc.engine.backend = backend
    rdir = out / p.name
    return PlannedRun(p, sc, rdir, _state(rdir, sc, force), derived_of(sc))


def _check_out(out: Path) -> None:
    dirguard.check_entries(out, "sweep directory")  # nothing read or written through a link
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / SWEEP_JSON).is_file():
        raise SweepError(f"{out}: exists and is not a sweep directory (no {SWEEP_JSON}); choose another --out")


def _comparable(d: dict) -> dict:
    d = copy.deepcopy(d)
    d.pop("base_dir", None)
    for k in ("backend", "ray_address", "hosts"):
        d.get("engine", {}).pop(k, None)
    return d


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    return path or "(top level)"


def _state(rdir: Path, sc, force: bool) -> str:
    dirguard.check_entries(rdir)  # before its scenario.yaml and summary.json are read
    if not rdir.is_dir() or not any(rdir.iterdir()):
        return "new"
    stored_file = rdir / "scenario.yaml"
    same = False
    if stored_file.is_file():
        try:
            stored = yaml.safe_load(stored_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            stored = None
        current = _comparable(sc.model_dump(mode="json"))
        if isinstance(stored, dict):
            stored = _comparable(stored)
            same = stored == current
            if not same and _complete(rdir) and not force:
                key = _first_difference(stored, current)
                raise SweepError(f"{rdir}: holds a finished run of a different scenario (differs at {key}); "
                                 "use another --out, or --force to re-run it")
    if force:
        return "rerun"
    if same and _complete(rdir):
        return "done"
    if same and (rdir / "checkpoint.pt").is_file():
        return "resume"
    return "rerun"


def _complete(rdir: Path) -> bool:
    s = read_summary(rdir)
    return bool(s and s.get("complete"))


def read_summary(rdir: Path) -> dict | None:
    try:
        return json.loads((rdir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def derived_of(sc) -> dict:
    """Quantities a sweep varies indirectly: nominal offline fraction, straggler fraction."""
    net = sc.network
    churn = net.churn
    off = None
    if churn.model == "none":
        off = 0.0
    elif churn.model == "sessions":
        on_s, off_s = churn.online.mean_s, churn.offline.mean_s
        off = off_s / (on_s + off_s)
    st = net.stragglers
    strag = 0.0 if st.model == "none" else (st.fraction if st.model == "fraction" else None)
    return {"offline_frac": off, "straggler_frac": strag}


# ---------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------


@dataclass
class SweepResult:
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: int | None = None  # the signal number when stopped early


def run_sweep(sweep: Sweep, parallel: int | None = None, echo: Callable[[str], None] = print,
              worker_verbosity: int = -1, cluster: ClusterOptions | None = None, verbose: bool = False,
              status: bool = True, cell_runner: Callable | None = None) -> SweepResult:
    """Run the pending cells of `sweep` in the local pool, or on Ray with `cluster`;
    sweep.json first, sweep.csv after every cell. `verbose`: a line per finished cell;
    `status`: the status line (progress.py). With --tune, a choice at a grid edge then adds
    one value past it for that setting and runs it (`extend_tuning`), up to `sweep.extend`
    times per setting and key. `cell_runner`
    replaces the local pool (pool.run_pool's signature; tests)."""
    if cluster is None or not sweep.pending:
        return _locked(sweep, None, parallel, echo, worker_verbosity, None, verbose, status, cell_runner)
    from parse_actors.studies.cluster import connect

    with connect(cluster) as ray:  # reached and able to hold a cell, before anything is written
        return _locked(sweep, ray, parallel, echo, worker_verbosity, cluster, verbose, status, cell_runner)


def _locked(sweep: Sweep, ray, parallel, echo, *args) -> SweepResult:
    sweep.out.mkdir(parents=True, exist_ok=True)
    with _lock(sweep.out):
        res = _run_sweep(sweep, ray, parallel, echo, *args)
        while res.interrupted is None and sweep.tune and sweep.extend:
            added = extend_tuning(sweep)
            if not added:
                break
            for r in sweep.runs:  # what just ran is done: only the new cells run now
                if r.state != "done" and _complete(r.dir):
                    r.state = "done"
            echo(f"tuning: {len(added)} choice(s) at a grid edge; adding "
                 + "; ".join(f"{_ext_text(e)}" for e in added))
            more = _run_sweep(sweep, ray, parallel, echo, *args)
            res = SweepResult(res.ran + more.ran, res.skipped, res.failed + more.failed, more.interrupted)
        return res


def _ext_text(e: dict) -> str:
    setting = ", ".join(f"{k}={dump_value(v)}" for k, v in e["setting"].items())
    return f"{setting or 'all runs'}: {e['key']}={dump_value(e['values'][e['key']])} ({e['edge']} edge {dump_value(e['from'])})"


def _done_runs(sweep: Sweep) -> list:
    """The complete runs, each with its summary (read at its validation stop with --early-stop,
    within the budget with --time-budget: a run with no evaluation within it is left out)."""
    runs = []
    for r in sweep.runs:
        s = read_summary(r.dir)
        if s and s.get("complete"):
            if sweep.time_budget is not None:
                s = budgeted_summary(s, read_table(r.dir / "metrics.csv"), sweep.time_budget, sweep.early_stop)
                if s is None:
                    continue
            elif sweep.early_stop:
                s = stopped_summary(s, read_table(r.dir / "metrics.csv"))
            runs.append(_Done(r.point.params, r.point.seed, s))
    return runs


def extend_tuning(sweep: Sweep) -> list[dict]:
    """Add to `sweep` (its runs and sweep.json) one tune value past the edge each setting's
    choice sits at (tune.edge_extensions, at most `sweep.extend` per setting and key);
    returns the extensions added."""
    from parse_actors.studies.tune import choose, edge_extensions

    choices = choose(_done_runs(sweep), sweep.grid, sweep.tune, sweep.extensions)
    new = edge_extensions(choices, sweep.grid, sweep.tune, sweep.extend)
    if not new:
        return []
    from parse_actors.scenario import apply_override, load_document

    doc = load_document(sweep.scenario_file)
    for o in sweep.overrides:
        apply_override(doc, o)
    for e in new:
        for p in extra_points(sweep.grid, {**e["setting"], **e["values"]}, sweep.seeds):
            sweep.runs.append(_planned(doc, sweep.scenario_file, p, sweep.out, sweep.backend, False))
    sweep.extensions += new
    return new


class _lock:
    """One sweep at a time per directory (an advisory lock on <out>/.sweep.lock)."""

    def __init__(self, out: Path):
        self.path = out / ".sweep.lock"
        self.fh = None

    def __enter__(self):
        import fcntl

        self.fh = open(self.path, "a")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise SweepError(f"{self.path.parent}: another sweep is running in this directory") from None
        return self

    def __exit__(self, *exc):
        self.fh.close()
        return False


class _Tracker:
    """What the executors report to: counts, errors, sweep.csv after every cell, and the
    console and progress.json (progress.py)."""

    def __init__(self, sweep: Sweep, res: SweepResult, progress: SweepProgress):
        self.sweep, self.res, self.progress = sweep, res, progress
        self.errors: dict[str, str] = {}

    def where(self, text: str, driver_node: str | None = None) -> None:
        self.progress.where(text, driver_node)

    def started(self, run: PlannedRun, where: dict | None = None) -> None:
        self.progress.started(run.point.name, where)

    def tick(self) -> None:
        self.progress.tick()

    def ran(self, run: PlannedRun, span: dict) -> None:
        self.progress.ran(run.point.name, span)

    def cancelled(self, run: PlannedRun) -> None:
        self.progress.stopped_early(run.point.name)

    def lost(self, run: PlannedRun, why: str, attempt: int, of: int) -> None:
        self.progress.stopped_early(run.point.name)
        self.progress.retry(f"{run.point.label}: lost with its node or worker ({why}); running it again "
                            f"(attempt {attempt} of {of})")

    def stopping(self, signum: int, running: int) -> None:
        self.progress.stopping(signum, f"{signal.Signals(signum).name}: no new cell starts; {running} running "
                                       "finish their round and keep a checkpoint (a second signal cancels them)")

    def finished(self, run: PlannedRun, status: str, value: Any) -> None:
        p, n, name = self.progress, len(self.sweep.runs), run.point.name
        k = p.skipped + p.ended + 1
        if status == "ok_stop":  # finished, but a stop was asked: the sweep stops after it
            value, sig = value
            status = "ok"
            if self.res.interrupted is None:
                self.res.interrupted = sig
        if status == "ok":
            self.res.ran += 1
            acc = value["final_acc"]["mean"]
            acc_s = f"acc {acc:.3f}" if acc is not None else "no evaluation"
            p.finished(name, f"[{k}/{n}] {run.point.label}: {acc_s}, virtual {value['virtual_time_s']:.2f} s, "
                             f"wall {value.get('wall_time_s', 0.0):.1f} s", complete=True)
        elif status == "error":
            self.res.failed += 1
            self.errors[name] = str(value)
            p.finished(name, f"[{k}/{n}] {run.point.label}: FAILED: {value}", complete=False, error=str(value))
        else:  # interrupted: stopped after a round, with a checkpoint
            if self.res.interrupted is None:
                self.res.interrupted = value
            p.stopped_early(name)
        write_table(self.sweep, self.errors)


def _other_source(done: list) -> str | None:
    """A warning when finished runs recorded parse-sim source other than today's (their
    run.json `code.source`): the table will mix code versions. Runs that recorded none
    (older parse-sim) are not counted."""
    from parse_actors.provenance import recorded_sources, source_digest

    now = source_digest()
    made = recorded_sources(r.dir for r in done)
    other = sorted(s for s in made if s is not None and s != now)
    if not other:
        return None
    return (f"warning: {sum(made[s] for s in other)} of the {len(done)} finished runs were made by other "
            f"parse-sim source ({', '.join(other)}; today {now}): kept as they are; --force re-runs every run")


def _run_sweep(sweep: Sweep, ray, parallel: int | None, echo: Callable[[str], None], worker_verbosity: int,
               cluster: ClusterOptions | None, verbose: bool, status: bool, cell_runner: Callable | None) -> SweepResult:
    from parse_actors.studies import cell

    write_manifest(sweep)
    for r in sweep.runs:
        cell.recover(r.dir)  # a driver killed while writing a cell's directory
    res = SweepResult(skipped=sum(r.state == "done" for r in sweep.runs))
    pending = sweep.pending
    n = len(sweep.runs)
    if res.skipped:
        echo(f"{res.skipped} of {n} runs already complete in {sweep.out}: skipped")
        other = _other_source([r for r in sweep.runs if r.state == "done"])
        if other:
            echo(other)
    progress = SweepProgress(sweep.out, n, res.skipped, echo, verbose, status)
    tracker = _Tracker(sweep, res, progress)
    write_table(sweep, tracker.errors)
    if not pending:
        progress.close()
        return res
    sigs = DriverSignals(record=cluster is not None)
    try:
        if cluster is not None:
            from parse_actors.studies.cluster import run_on_ray

            sigs.arm()
            stopped = run_on_ray(ray, sweep, pending, cluster, parallel, tracker, sigs, worker_verbosity,
                                 install=lambda run, files: cell.install(run.dir, files))
        else:
            k = min(max(1, parallel if parallel else (os.cpu_count() or 1)), len(pending))
            if sweep.backend == "ray" and k > 1:
                echo("--backend ray: runs go one at a time (each starts its own Ray instance)")
                k = 1
            stopped = (cell_runner or run_pool)(sweep, pending, k, tracker, worker_verbosity, sigs)
    finally:
        sigs.restore()
    if stopped is not None and res.interrupted is None:
        res.interrupted = stopped
    write_table(sweep, tracker.errors)
    progress.close()
    return res


# ---------------------------------------------------------------------------
# sweep.json and sweep.csv
# ---------------------------------------------------------------------------


def write_manifest(sweep: Sweep) -> None:
    atomic.write_json(sweep.out / SWEEP_JSON, {
        "kind": "parse-sim sweep",
        "scenario": str(sweep.scenario_file),
        "scenario_path": str(sweep.scenario_file.resolve()),
        "name": sweep.name,
        "grid": sweep.grid,
        "grid_text": {k: [dump_value(v) for v in vs] for k, vs in sweep.grid.items()},
        "numeric_keys": [k for k, vs in sweep.grid.items() if is_numeric(vs)],
        "tune": sweep.tune,
        **({"extensions": sweep.extensions} if sweep.extensions else {}),
        **({"reference": sweep.reference} if sweep.reference else {}),
        **({} if sweep.extend == 1 else {"extend": sweep.extend}),
        **({"early_stop": True} if sweep.early_stop else {}),
        **({"time_budget": sweep.time_budget} if sweep.time_budget is not None else {}),
        "seeds": sweep.seeds,
        "overrides": sweep.overrides,
        "backend": sweep.backend,
        "runs": [{"dir": r.point.name, "params": r.point.params, "seed": r.point.seed, "derived": r.derived}
                 for r in sweep.runs],
    })


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 10))
    if isinstance(v, (int, str)):
        return v
    return dump_value(v)


def online_fraction(rdir: Path) -> float | None:
    """Share of (agent, evaluation) pairs at which the agent was online (metrics.csv)."""
    try:
        with open(rdir / "metrics.csv", newline="", encoding="utf-8") as f:
            vals = [float(r["online"]) for r in csv.DictReader(f) if r.get("online") not in (None, "")]
    except (OSError, ValueError, KeyError):
        return None
    return sum(vals) / len(vals) if vals else None


def table_rows(sweep: Sweep, errors: dict[str, str] | None = None) -> tuple[list[str], list[dict]]:
    errors = errors or {}
    rows, groups, kinds = [], [], []
    for r in sweep.runs:
        s = read_summary(r.dir) or {}
        fa = s.get("final_acc") or {}
        for g in (fa.get("by_group") or {}):
            if g not in groups:
                groups.append(g)
        for k in (s.get("bytes_by_kind") or {}):
            if k not in kinds:
                kinds.append(k)
        rows.append((r, s))
    kinds = [k for k in KINDS if k in kinds] + sorted(k for k in kinds if k not in KINDS)
    gval = ["acc_gval_mean"] if any("final_acc_gval" in s for _, s in rows) else []  # (only then: tables stay)
    keys = list(sweep.grid)
    header = (["run"] + keys + ["seed", "complete", "acc_mean"] + [f"acc_{g}" for g in groups]
              + ["acc_val_mean"] + [f"acc_val_{g}" for g in groups] + gval + ["acc_local_mean"]
              + ["bytes_total"] + [f"bytes_{k}" for k in kinds]
              + ["messages_sent", "messages_dropped", "rounds", "virtual_time_s", "wall_time_s",
                 "offline_frac", "online_measured", "straggler_frac", "error"])
    out = []
    for r, s in rows:
        fa = s.get("final_acc") or {}
        fv = s.get("final_acc_val") or {}
        by_group = fa.get("by_group") or {}
        bk = s.get("bytes_by_kind") or {}
        msgs = s.get("messages") or {}
        row = {"run": r.point.name, **{k: r.point.params[k] for k in keys}, "seed": r.point.seed,
               "complete": bool(s.get("complete")), "acc_mean": fa.get("mean"),
               **{f"acc_{g}": by_group.get(g) for g in groups},
               "acc_val_mean": fv.get("mean"), **{f"acc_val_{g}": (fv.get("by_group") or {}).get(g) for g in groups},
               "acc_gval_mean": (s.get("final_acc_gval") or {}).get("mean"),
               "acc_local_mean": (s.get("final_acc_local") or {}).get("mean"),
               "bytes_total": s.get("bytes_total"), **{f"bytes_{k}": bk.get(k, 0 if s else None) for k in kinds},
               "messages_sent": msgs.get("sent"), "messages_dropped": msgs.get("dropped"),
               "rounds": s.get("rounds"), "virtual_time_s": s.get("virtual_time_s"),
               "wall_time_s": s.get("wall_time_s"), "offline_frac": r.derived.get("offline_frac"),
               "online_measured": online_fraction(r.dir) if s else None,
               "straggler_frac": r.derived.get("straggler_frac"),
               "error": errors.get(r.point.name, "")}
        out.append(row)
    return header, out


def write_table(sweep: Sweep, errors: dict[str, str] | None = None) -> Path:
    """sweep.csv (every run), and tuned.csv when the sweep has --tune keys."""
    header, rows = table_rows(sweep, errors)
    path = sweep.out / SWEEP_CSV
    atomic.write_csv(path, header, ([_cell(r.get(h)) for h in header] for r in rows))
    if sweep.tune:
        write_tuned(sweep)
    return path


@dataclass
class _Done:
    params: dict
    seed: int
    summary: dict


def tuned_rows(grid: dict[str, list], tune: list[str], runs: list,
               extensions: list[dict] | None = None) -> tuple[list[str], list[list]]:
    """tuned.csv: one row per setting of the other grid keys: the tune values chosen on
    validation accuracy (`select_on`: gval, the global validation set, or val, the agents'
    splits), that score, the agents' own validation accuracy, test accuracy there (mean and
    95% CI over seeds), the edge extension (`extended`: `KEY: lower|upper FROM -> TO`) and
    whether the choice still sits at an edge (`at_edge`: `KEY: lower|upper`); with runs read
    at their validation stop, the chosen runs' stop rounds (`stop_rounds`, by seed)."""
    from parse_actors.studies.tune import choose

    choices = choose(runs, grid, tune, extensions)
    groups: list[str] = []
    for c in choices:
        for r in c.runs:
            for g in ((r.summary.get("final_acc") or {}).get("by_group") or {}):
                if g not in groups:
                    groups.append(g)
    other = [k for k in grid if k not in tune]
    header = (other + [f"chosen.{k}" for k in tune] + ["val_acc_mean", "seeds", "acc_mean", "acc_ci95"]
              + [x for g in groups for x in (f"acc_{g}", f"acc_{g}_ci95")]
              + ["select_on", "agent_val_acc_mean", "extended", "at_edge", "candidates_val"])
    stopped = any("stop" in r.summary for c in choices for r in c.runs)
    header += ["stop_rounds"] if stopped else []
    rows = []
    for c in choices:
        ch = c.chosen
        fin = [(r.summary.get("final_acc") or {}) for r in c.runs]
        m, h, _ = mean_ci([f.get("mean") for f in fin])
        per_g = [mean_ci([(f.get("by_group") or {}).get(g) for f in fin]) for g in groups]
        cands = "; ".join(", ".join(f"{k}={dump_value(v)}" for k, v in x.values.items())
                          + f": {'n/a' if x.val is None else round(x.val, 6)} ({x.n})" for x in c.candidates)
        ext = "; ".join(f"{e['key']}: {e['edge']} {dump_value(e['from'])} -> {dump_value(e['values'][e['key']])}"
                        for e in c.extensions)
        edge = "; ".join(f"{k}: {c.at_edge(k)}" for k in tune if c.at_edge(k))
        rows.append([c.setting[k] for k in other] + [ch.values[k] if ch else None for k in tune]
                    + [ch.val if ch else None, ch.n if ch else 0, m, h]
                    + [x for mg, hg, _ in per_g for x in (mg, hg)]
                    + [c.on, ch.agent_val if ch else None, ext, edge, cands]
                    + ([";".join(str((r.summary.get("stop") or {}).get("round", "")) for r in c.runs)]
                       if stopped else []))
    return header, rows


def write_tuned(sweep: Sweep) -> Path:
    header, rows = tuned_rows(sweep.grid, sweep.tune, _done_runs(sweep), sweep.extensions)
    path = sweep.out / TUNED_CSV
    atomic.write_csv(path, header, ([_cell(c) for c in row] for row in rows))
    return path
