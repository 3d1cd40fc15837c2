"""Reading run and sweep directories into plain Python for reports."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from parse_actors.studies.grid import dump_value, is_numeric, value_text
from parse_actors.studies.readers import (  # noqa: F401 - ReportError is importable from here
    SUMMARY,
    SWEEP,
    ReportError,
    check_sweep_manifest,
    read_json,
    read_message_bytes,
    read_table,
)

SWEEP_JSON = "sweep.json"
"""What a sweep directory holds: the plan (scenario, grid, seeds, runs), written first."""
SWEEP_CSV = "sweep.csv"
"""One row per run of a sweep."""


FINAL_KEYS = {"test": "final_acc", "val": "final_acc_val", "local": "final_acc_local", "gval": "final_acc_gval"}


@dataclass
class RunData:
    dir: Path
    summary: dict
    metrics: list[dict]
    conflict: list[dict]
    slice_drop: list[dict]
    comm: list[dict]
    params: dict = field(default_factory=dict)
    seed: int = 0
    derived: dict = field(default_factory=dict)
    _bytes: list | None = field(default=None, repr=False)  # events.jsonl's (send time, bytes), read when asked

    @property
    def groups(self) -> list[str]:
        out: list[str] = []
        for g in (self.summary.get("groups") or {}):
            out.append(g)
        for r in self.metrics:
            if r["group"] not in out:
                out.append(r["group"])
        return out

    def curve(self, group: str | None = None) -> list[tuple[int, float, float]]:
        """(round, t, mean accuracy) per evaluation, over one group's agents or all."""
        acc: dict[int, list[float]] = defaultdict(list)
        ts: dict[int, float] = {}
        for r in self.metrics:
            if group is not None and r["group"] != group:
                continue
            if r["acc"] is None or (isinstance(r["acc"], float) and math.isnan(r["acc"])):
                continue
            acc[r["round"]].append(float(r["acc"]))
            ts[r["round"]] = float(r["t"])
        return [(k, ts[k], sum(v) / len(v)) for k, v in sorted(acc.items())]

    def score_curve(self, column: str, group: str | None = None) -> list[tuple[int, float | None]]:
        """(round, mean of `column` over one group's agents or all) per evaluation; None where
        no agent has a finite value (e.g. `acc_gval` in a run without a global validation set)."""
        acc: dict[int, list[float]] = defaultdict(list)
        rounds: set[int] = set()
        for r in self.metrics:
            if group is not None and r["group"] != group:
                continue
            rounds.add(r["round"])
            v = r.get(column)
            if isinstance(v, (int, float)) and math.isfinite(v):
                acc[r["round"]].append(float(v))
        return [(k, sum(acc[k]) / len(acc[k]) if acc.get(k) else None) for k in sorted(rounds)]

    def bytes_curve(self) -> list[tuple[int, float]] | None:
        """(round, bytes sent so far) per evaluation: the messages of events.jsonl sent at or
        before the evaluation's virtual time; None without message events."""
        if self._bytes is None:
            msgs = read_message_bytes(self.dir / "events.jsonl")
            self._bytes = [] if msgs is None else sorted(msgs)
        if not self._bytes:
            return None
        import bisect

        times = [m[0] for m in self._bytes]
        cum = [0]
        for _, b in self._bytes:
            cum.append(cum[-1] + b)
        return [(k, float(cum[bisect.bisect_right(times, t + 1e-12)])) for k, t, _ in self.curve()]

    def time_to(self, target: float, group: str | None = None) -> float | None:
        for _, t, a in self.curve(group):
            if a >= target:
                return t
        return None

    def acc_at(self, t_budget: float, group: str | None = None) -> float | None:
        best = None
        for _, t, a in self.curve(group):
            if t <= t_budget + 1e-9:
                best = a
        return best

    def final(self, group: str | None = None, which: str = "test") -> float | None:
        """Final accuracy of all agents (or one group): `test` on the common test set,
        `val` on the agents' validation splits, `local` on their own test splits, `gval` on
        the global validation set."""
        fa = self.summary.get(FINAL_KEYS[which]) or {}
        return fa.get("mean") if group is None else (fa.get("by_group") or {}).get(group)


def load_run(rdir: Path) -> RunData:
    """A run directory's summary and tables, each checked against its schema (readers)."""
    rdir = Path(rdir)
    if not (rdir / "summary.json").is_file():
        raise ReportError(f"{rdir}: no summary.json (not a run directory, or the run never finished a round)")
    summary = read_json(rdir / "summary.json", SUMMARY)
    return RunData(rdir, summary, read_table(rdir / "metrics.csv"), read_table(rdir / "conflict.csv"),
                   read_table(rdir / "slice_drop.csv"), read_table(rdir / "comm.csv"), seed=summary.get("seed", 0))


@dataclass
class SweepData:
    dir: Path
    manifest: dict
    runs: list[RunData]
    missing: list[str]
    early_stop: bool = False  # runs are read at their validation stop (early_stop.py)
    time_budget: float | None = None  # runs are read within this virtual time (time_budget.py)

    @property
    def reading(self) -> str:
        """Where each run's accuracies are read, for the report's sentences."""
        if self.time_budget is not None:
            t = f"{self.time_budget:g} s of virtual time"
            return (f"test accuracy at the validation stop within the first {t}" if self.early_stop
                    else f"test accuracy at the last evaluation within {t}")
        return "test accuracy at the validation stop" if self.early_stop else "final test accuracy"

    @property
    def budget_reading(self) -> str:
        """With a time budget, which evaluation of a run is read, e.g. `at its last evaluation
        within 6 s of virtual time`."""
        return (("at its validation stop among its evaluations" if self.early_stop else "at its last evaluation")
                + f" within {self.time_budget:g} s of virtual time")

    @property
    def grid(self) -> dict[str, list]:
        return self.manifest.get("grid") or {}

    @property
    def varied(self) -> list[str]:
        return [k for k, v in self.grid.items() if len(v) > 1]

    @property
    def tune_keys(self) -> list[str]:
        """Keys swept with `--tune` (chosen per setting on validation accuracy)."""
        return [k for k in (self.manifest.get("tune") or []) if k in self.grid]

    @property
    def reference(self) -> str | None:
        """The method `sweep --reference` named (reports pair every other method with it)."""
        return self.manifest.get("reference")

    @property
    def extensions(self) -> list[dict]:
        """Tune values the sweep added past a grid edge (tune.edge_extensions)."""
        return list(self.manifest.get("extensions") or [])

    def numeric_keys(self) -> list[str]:
        return [k for k in self.varied if is_numeric(self.grid[k])]

    def categorical_keys(self) -> list[str]:
        return [k for k in self.varied if not is_numeric(self.grid[k])]

    def groups(self) -> list[str]:
        out: list[str] = []
        for r in self.runs:
            for g in r.groups:
                if g not in out:
                    out.append(g)
        return out

    def short_key(self, key: str) -> str:
        """The last two parts of a dotted key (`offline.mean_s`), unless another varied key
        ends the same way (then the whole key)."""
        def tail(k: str) -> str:
            return ".".join(k.split(".")[-2:])

        same = [k for k in self.varied if tail(k) == tail(key)]
        return tail(key) if len(same) <= 1 else key

    def label(self, run: RunData, keys: list[str]) -> str:
        if not keys:
            return "all runs"
        if len(keys) == 1 and keys[0] == "method":
            return value_text(run.params.get("method"))
        return ", ".join(f"{self.short_key(k)}={value_text(run.params.get(k))}" for k in keys)

    def configs(self, keys: list[str] | None = None) -> dict[str, list[RunData]]:
        """Runs grouped by the values of `keys` (default: every varied key), in grid order."""
        keys = self.varied if keys is None else keys
        order = {k: [dump_value(v) for v in self.grid[k]] for k in keys}

        def place(k: str, v) -> float:
            t = dump_value(v)
            if t in order[k]:
                return order[k].index(t)
            if is_numeric(self.grid[k]) and is_numeric([v]):  # a value past the grid's edge (tune extension)
                return -0.5 if v < min(self.grid[k]) else len(order[k])
            return len(order[k])

        def sort_key(r: RunData):
            return tuple(place(k, r.params.get(k)) for k in keys)

        out: dict[str, list[RunData]] = {}
        for r in sorted(self.runs, key=sort_key):
            out.setdefault(self.label(r, keys), []).append(r)
        return out


def load_sweep(sdir: Path, early_stop: bool | None = None, time_budget: float | None = None) -> SweepData:
    """A sweep's manifest and its finished runs; a run without summary.json (not run yet, or
    still running) is listed as missing, a run whose files are malformed is an error.
    `early_stop` (default: as the sweep was run, `sweep --early-stop`): each run's summary is
    read at its validation stop (early_stop.stopped_summary); `time_budget` (seconds; default:
    as the sweep was run, `sweep --time-budget`): at its
    last evaluation within that virtual time, or its validation stop among those
    (time_budget.budgeted_summary; a run with none is listed as missing). Curves stay whole."""
    from parse_actors.studies.early_stop import stopped_summary
    from parse_actors.studies.time_budget import budgeted_summary

    sdir = Path(sdir)
    manifest = read_json(sdir / SWEEP_JSON, SWEEP)
    check_sweep_manifest(manifest, sdir / SWEEP_JSON)
    stop = manifest.get("early_stop") is True if early_stop is None else bool(early_stop)
    if time_budget is None:
        time_budget = manifest.get("time_budget")
    runs, missing = [], []
    for entry in manifest.get("runs", []):
        rdir = sdir / entry["dir"]
        if not (rdir / "summary.json").is_file():
            missing.append(entry["dir"])
            continue
        run = load_run(rdir)
        run.params = entry.get("params") or {}
        run.seed = entry.get("seed", run.seed)
        run.derived = entry.get("derived") or {}
        if not run.summary.get("complete"):
            missing.append(entry["dir"] + " (incomplete)")
            continue
        if time_budget is not None:
            read = budgeted_summary(run.summary, run.metrics, time_budget, stop)
            if read is None:
                missing.append(entry["dir"] + f" (no evaluation within {time_budget:g} s)")
                continue
            run.summary = read
        elif stop:
            run.summary = stopped_summary(run.summary, run.metrics)
        runs.append(run)
    return SweepData(sdir, manifest, runs, missing, stop, time_budget)


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / SWEEP_JSON).is_file()


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "summary.json").is_file()


# Student t quantile t_{0.975, df} for df = 1..30; beyond, the Cornish-Fisher expansion (error < 1e-5).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t975(df: int) -> float:
    """Two-sided 95% Student t quantile with `df` degrees of freedom (no scipy needed)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963985
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def _finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std, n) of the finite values; std is None below two values. A spread
    (e.g. over the agents of one run), not an uncertainty: for seeds use `mean_ci`."""
    vals = _finite(values)
    if not vals:
        return None, None, 0
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None, 1
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var), len(vals)


def mean_ci(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, half-width of the 95% confidence interval of the mean, n) over seeds:
    Student t with n-1 degrees of freedom; the half-width is None for one value."""
    m, s, n = mean_std(values)
    if s is None:
        return m, None, n
    return m, t975(n - 1) * s / math.sqrt(n), n


def fmt_ci(values: list[float | None], digits: int = 3) -> str:
    """`mean ± 95% CI half-width` over seeds (just the mean for one seed)."""
    m, h, _ = mean_ci(values)
    if m is None:
        return "n/a"
    return f"{m:.{digits}f}" if h is None else f"{m:.{digits}f} ± {h:.{digits}f}"


def fmt_sd(values: list[float | None], digits: int = 3) -> str:
    """`mean ± sample std` (a spread over agents, not over seeds)."""
    m, s, _ = mean_std(values)
    if m is None:
        return "n/a"
    return f"{m:.{digits}f}" if s is None else f"{m:.{digits}f} ± {s:.{digits}f}"
