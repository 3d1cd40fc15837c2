"""`parse-sim sweep`: a grid of scenario variants x seeds, one run directory each.

Layout of a sweep directory::

    <out>/sweep.json      what was swept: scenario, grid, seeds, the runs (written first)
    <out>/sweep.csv       one row per run: grid values, seed, final accuracy (mean and per
                          group; test, validation, own split), bytes per slice kind,
                          virtual and wall time, complete
    <out>/tuned.csv       with --tune: per setting, the tune values chosen on validation
                          accuracy and the test accuracy there (parse_actors.studies.tune)
    <out>/<key=value__...__seed=S>/   an ordinary run directory per grid point and seed

Every grid point is validated before anything is written. Re-running the same
command skips runs whose summary.json says complete, continues interrupted
ones from their checkpoint, and redoes the rest. Runs execute in worker
processes (`--parallel K`, spawn start method), each calling `run_scenario`
with the inline backend; with `--backend ray` they run one at a time, each in
its own local Ray instance that is shut down when the run ends.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from parse_actors import atomic
from parse_actors.errors import ScenarioError
from parse_actors.metrics.rundir import RunDirError
from parse_actors.metrics.summary import KINDS
from parse_actors.studies.data import SWEEP_CSV, SWEEP_JSON, mean_ci
from parse_actors.studies.grid import GridPoint, add_tune, dump_value, expand_grid, file_grid, is_numeric, merge_grids

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

    @property
    def pending(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.state != "done"]


# ---------------------------------------------------------------------------
# planning: everything is checked here, nothing is written
# ---------------------------------------------------------------------------


def plan_sweep(scenario_file: str | Path, grid_args: list[str], seeds: int, overrides: list[str] | None = None,
               out: str | Path | None = None, backend: str = "inline", force: bool = False,
               tune_args: list[str] | None = None) -> Sweep:
    """Validate every grid point and decide, per run, whether it is done, new, resumable.
    `tune_args` (`--tune KEY=V1,V2`) are swept like grid keys and chosen per setting on
    validation accuracy when the results are read (parse_actors.studies.tune)."""
    from parse_actors.scenario import apply_override, build_scenario, load_document

    path = Path(scenario_file)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ScenarioError("--seeds", "", f"expected a positive number of seeds, got {seeds!r}")
    doc = load_document(path)
    grid, tune = add_tune(merge_grids(file_grid(path), grid_args), list(tune_args or []), grid_args)
    for o in overrides or []:
        apply_override(doc, o)
    base = build_scenario(doc, str(path), base_dir=path.parent, check=False)
    seed_list = [base.seed + i for i in range(seeds)]
    points = expand_grid(grid, seed_list)
    out = Path(out) if out is not None else Path("runs") / f"{base.name}-sweep"
    _check_out(out)

    runs = []
    for p in points:
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
        runs.append(PlannedRun(p, sc, rdir, _state(rdir, sc, force), derived_of(sc)))
    return Sweep(path, base.name, out, grid, seed_list, list(overrides or []), backend, runs, tune)


def _check_out(out: Path) -> None:
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


def _execute(sc, rdir: Path, backend: str, state: str) -> tuple[dict, int | None]:
    """Run (or resume) one point; returns its summary and the signal that asked to stop
    during the run, if any (a signal in the last round lets the run finish complete)."""
    from parse_actors.engine import resume_run, run_scenario
    from parse_actors.engine.interrupted import Interrupted

    seen: list[int] = []

    def watch(sim, rnd) -> None:
        if sim.stop_signal is not None and not seen:
            seen.append(sim.stop_signal)

    if state == "resume":
        try:
            summary, _ = resume_run(rdir, backend=backend, hooks=[watch])
            return summary, (seen[0] if seen else None)
        except Interrupted:
            raise
        except Exception:  # noqa: BLE001 - an unusable checkpoint: start the run again
            pass
    summary, _ = run_scenario(sc, rdir, backend=backend, force=state != "new", hooks=[watch])
    return summary, (seen[0] if seen else None)


_STOP = None  # in a worker: the parent's "stop the sweep" event


def _ignore_signals() -> None:
    # An idle worker ignores SIGINT/SIGTERM and the parent's relay (the parent decides); a
    # run installs its own handlers (engine/signals.py: finish the round, checkpoint, stop)
    # and restores these when it ends.
    from parse_actors.engine.signals import RELAY

    for sig in (signal.SIGINT, signal.SIGTERM, RELAY):
        signal.signal(sig, signal.SIG_IGN)


def _init_worker(verbosity: int, stop) -> None:
    global _STOP
    _STOP = stop
    _ignore_signals()
    from parse_actors import logs
    from parse_actors.metrics.progress import Progress

    logs.configure(verbosity)
    Progress.enabled_default = False


def _worker(sc, rdir: str, backend: str, state: str) -> tuple[str, Any]:
    from parse_actors.engine.interrupted import Interrupted

    if _STOP is not None and _STOP.is_set():
        return "cancelled", None
    try:
        summary, stopped = _execute(sc, Path(rdir), backend, state)
        return ("ok", summary) if stopped is None else ("ok_stop", (summary, stopped))
    except Interrupted as e:
        return "interrupted", e.signum
    except Exception as e:  # noqa: BLE001 - reported in sweep.csv, the sweep goes on
        return "error", f"{type(e).__name__}: {e}"
    finally:
        _ignore_signals()


class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


class _ParentSignals:
    """In the sweep's own process: SIGINT/SIGTERM stop the sweep (also when started in the
    background, where SIGINT arrives ignored)."""

    def __init__(self) -> None:
        import threading

        self.active = threading.current_thread() is threading.main_thread()
        self.saved = {}

    def _raise(self, signum, frame):
        raise _Stop(signum)

    def arm(self) -> None:
        if not self.active:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._raise)

    def restore(self) -> None:
        for sig, h in self.saved.items():
            signal.signal(sig, h if h is not None else signal.SIG_DFL)


@dataclass
class SweepResult:
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: int | None = None  # the signal number when stopped early


def run_sweep(sweep: Sweep, parallel: int | None = None, echo: Callable[[str], None] = print,
              worker_verbosity: int = -1) -> SweepResult:
    """Run the pending runs of `sweep`; sweep.json first, sweep.csv after every run."""
    sweep.out.mkdir(parents=True, exist_ok=True)
    with _lock(sweep.out):
        return _run_sweep(sweep, parallel, echo, worker_verbosity)


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


def _run_sweep(sweep: Sweep, parallel: int | None, echo: Callable[[str], None], worker_verbosity: int) -> SweepResult:
    write_manifest(sweep)
    res = SweepResult(skipped=sum(r.state == "done" for r in sweep.runs))
    errors: dict[str, str] = {}
    pending = sweep.pending
    n = len(sweep.runs)
    if res.skipped:
        echo(f"{res.skipped} of {n} runs already complete in {sweep.out}: skipped")
    write_table(sweep, errors)
    if not pending:
        return res
    k = max(1, parallel if parallel else (os.cpu_count() or 1))
    k = min(k, len(pending))
    if sweep.backend == "ray" and k > 1:
        echo("--backend ray: runs go one at a time (each starts its own Ray instance)")
        k = 1
    done = res.skipped

    def finished(run: PlannedRun, status: str, value: Any, wall: float) -> None:
        nonlocal done
        done += 1
        if status == "ok":
            res.ran += 1
            acc = value["final_acc"]["mean"]
            acc_s = f"acc {acc:.3f}" if acc is not None else "no evaluation"
            echo(f"[{done}/{n}] {run.point.label}: {acc_s}, virtual {value['virtual_time_s']:.2f} s, "
                 f"wall {value.get('wall_time_s', wall):.1f} s")
        elif status == "error":
            res.failed += 1
            errors[run.point.name] = str(value)
            echo(f"[{done}/{n}] {run.point.label}: FAILED: {value}")
        write_table(sweep, errors)

    # Runs always go to worker processes, even one at a time: this process keeps its own
    # SIGINT/SIGTERM handling (stop starting runs, let running ones checkpoint), which a run
    # executing here would take over for its duration.
    sigs = _ParentSignals()
    try:
        return _run_pool(sweep, pending, k, finished, res, errors, worker_verbosity, sigs)
    finally:
        sigs.restore()


def _run_pool(sweep, pending, k, finished, res, errors, verbosity, sigs) -> SweepResult:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    sigs.arm()
    ex = ProcessPoolExecutor(max_workers=k, mp_context=ctx, initializer=_init_worker, initargs=(verbosity, stop))
    futures = {}
    try:
        for run in pending:
            fut = ex.submit(_worker, run.scenario, str(run.dir), sweep.backend, run.state)
            futures[fut] = (run, time.perf_counter())
        todo = set(futures)
        while todo:
            fin, todo = wait(todo, return_when=FIRST_COMPLETED)
            for fut in fin:
                run, t0 = futures[fut]
                try:
                    status, value = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker died (out of memory, killed)
                    status, value = "error", f"worker process failed: {type(e).__name__}: {e}"
                if status == "ok_stop":  # finished, but a signal asked the sweep to stop
                    summary, res.interrupted = value
                    status, value = "ok", summary
                if status == "interrupted":
                    res.interrupted = value
                elif status != "cancelled":
                    finished(run, status, value, time.perf_counter() - t0)
            if res.interrupted is not None:
                break
    except _Stop as e:
        res.interrupted = e.signum
    except KeyboardInterrupt:
        res.interrupted = signal.SIGINT
    finally:
        if res.interrupted is not None:
            # no new run starts; running ones finish their round and write a checkpoint. The
            # stop is relayed (a Ctrl-C reached them already, a `kill` of this process did
            # not) with engine/signals.py's RELAY, which never counts as a second signal.
            from parse_actors.engine.signals import RELAY

            stop.set()
            for p in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    os.kill(p.pid, RELAY)
                except (OSError, AttributeError):
                    pass
            ex.shutdown(wait=True, cancel_futures=True)
            write_table(sweep, errors)
        else:
            ex.shutdown(wait=True)
    return res


# ---------------------------------------------------------------------------
# sweep.json and sweep.csv
# ---------------------------------------------------------------------------


def write_manifest(sweep: Sweep) -> None:
    atomic.write_json(sweep.out / SWEEP_JSON, {
        "kind": "parse-sim sweep",
        "scenario": str(sweep.scenario_file),
        "name": sweep.name,
        "grid": sweep.grid,
        "grid_text": {k: [dump_value(v) for v in vs] for k, vs in sweep.grid.items()},
        "numeric_keys": [k for k, vs in sweep.grid.items() if is_numeric(vs)],
        "tune": sweep.tune,
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
    keys = list(sweep.grid)
    header = (["run"] + keys + ["seed", "complete", "acc_mean"] + [f"acc_{g}" for g in groups]
              + ["acc_val_mean"] + [f"acc_val_{g}" for g in groups] + ["acc_local_mean"]
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


def tuned_rows(grid: dict[str, list], tune: list[str], runs: list) -> tuple[list[str], list[list]]:
    """tuned.csv: one row per setting of the other grid keys: the tune values chosen on
    validation accuracy, that score, and test accuracy there (mean and 95% CI over seeds)."""
    from parse_actors.studies.tune import choose

    choices = choose(runs, grid, tune)
    groups: list[str] = []
    for c in choices:
        for r in c.runs:
            for g in ((r.summary.get("final_acc") or {}).get("by_group") or {}):
                if g not in groups:
                    groups.append(g)
    other = [k for k in grid if k not in tune]
    header = (other + [f"chosen.{k}" for k in tune] + ["val_acc_mean", "seeds", "acc_mean", "acc_ci95"]
              + [x for g in groups for x in (f"acc_{g}", f"acc_{g}_ci95")] + ["candidates_val"])
    rows = []
    for c in choices:
        ch = c.chosen
        fin = [(r.summary.get("final_acc") or {}) for r in c.runs]
        m, h, _ = mean_ci([f.get("mean") for f in fin])
        per_g = [mean_ci([(f.get("by_group") or {}).get(g) for f in fin]) for g in groups]
        cands = "; ".join(", ".join(f"{k}={dump_value(v)}" for k, v in x.values.items())
                          + f": {'n/a' if x.val is None else round(x.val, 6)} ({x.n})" for x in c.candidates)
        rows.append([c.setting[k] for k in other] + [ch.values[k] if ch else None for k in tune]
                    + [ch.val if ch else None, ch.n if ch else 0, m, h]
                    + [x for mg, hg, _ in per_g for x in (mg, hg)] + [cands])
    return header, rows


def write_tuned(sweep: Sweep) -> Path:
    runs = []
    for r in sweep.runs:
        s = read_summary(r.dir)
        if s and s.get("complete"):
            runs.append(_Done(r.point.params, r.point.seed, s))
    header, rows = tuned_rows(sweep.grid, sweep.tune, runs)
    path = sweep.out / TUNED_CSV
    atomic.write_csv(path, header, ([_cell(c) for c in row] for row in rows))
    return path
