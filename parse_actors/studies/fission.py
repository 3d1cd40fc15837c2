"""`parse-sim study fission`: does PARSE's fission separate, and what does it cost?

Issue 20's study. A sweep underneath (studies/sweep.py: the grid
`data.synthetic.preset` x `method` = parse, dsgd_full, on the quickstart agents,
`--seeds N`, `protocol.rounds=R`), so it is resumable the same way: the same command
again (or into the same --out) skips finished cells and continues interrupted ones.
Every finished PARSE cell is then audited (parse_actors.audit: latent probes, PID of
the label, slice drop, each beside the untrained network of the same seed and the
oracle fission); an audit already in a cell, made with the same --samples, is kept.
The table (studies/fission_table.py) is written last: <out>/fission.md, fission.csv,
fission.png.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from parse_actors.errors import ScenarioError

PRESETS = ("redundancy", "uniqueness", "synergy", "mixed")
METHODS = ("parse", "dsgd_full")
PRESET_KEY = "data.synthetic.preset"
DEFAULT_OUT = Path("runs") / "fission-study"
AUDIT_STATES = 8


def default_scenario() -> Path:
    """scenarios/quickstart.yaml of this checkout (the quickstart agents)."""
    return Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"


@dataclass
class FissionStudy:
    sweep: object  # studies.sweep.Sweep
    presets: list[str]
    rounds: int
    samples: int
    force: bool = False
    audit_agents: int | None = None  # at most this many agents of each group audited (None: all)
    audited: list[str] = field(default_factory=list)
    audit_kept: list[str] = field(default_factory=list)
    audit_failed: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.sweep.out


def parse_presets(text: str | None) -> list[str]:
    if text is None:
        return list(PRESETS)
    names = [p.strip() for p in text.split(",")]
    bad = [p for p in names if p not in PRESETS]
    if not names or bad or any(not p for p in names):
        raise ScenarioError("--presets", "", f"expected a comma-separated list of {', '.join(PRESETS)}, got "
                                             f"{text!r}")
    if len(set(names)) < len(names):
        raise ScenarioError("--presets", "", f"a preset is given twice in {text!r}")
    return names


def plan_fission(presets: list[str], seeds: int, rounds: int, out: str | Path | None = None,
                 scenario: str | Path | None = None, overrides: list[str] | None = None, samples: int = 4000,
                 force: bool = False, audit_agents: int | None = None) -> FissionStudy:
    """Validate everything (every cell's scenario included) before anything is written."""
    from parse_actors.studies.sweep import plan_sweep

    for flag, v, lo in (("--seeds", seeds, 1), ("--rounds", rounds, 1), ("--samples", samples, 20)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ScenarioError(flag, "", f"expected an integer >= {lo}, got {v!r}")
    if audit_agents is not None and (isinstance(audit_agents, bool) or not isinstance(audit_agents, int)
                                     or audit_agents < 1):
        raise ScenarioError("--audit-agents", "", f"expected an integer >= 1, got {audit_agents!r}")
    path = Path(scenario) if scenario is not None else default_scenario()
    if not path.is_file():
        raise ScenarioError(str(path), "", "no such scenario file (--scenario)")
    given = [o.split("=", 1)[0].strip() for o in overrides or []]
    for key in (PRESET_KEY, "method", "protocol.rounds", "seed"):
        if key in given:
            raise ScenarioError("--set", key, "is set by the study (--presets, the two methods, --rounds, --seeds)")
    grid = [f"{PRESET_KEY}={','.join(presets)}", f"method={','.join(METHODS)}"]
    sweep = plan_sweep(path, grid, seeds, [f"protocol.rounds={rounds}", *(overrides or [])],
                       out if out is not None else DEFAULT_OUT, "inline", force)
    for run in sweep.runs:
        if run.scenario.data.name != "synthetic":
            raise ScenarioError(str(path), "data.name", "the fission study needs the synthetic data (latents known)")
    return FissionStudy(sweep, list(presets), rounds, samples, force, audit_agents)


def run_fission(study: FissionStudy, parallel: int | None = 1, echo: Callable[[str], None] = print,
                worker_verbosity: int = -1, status: bool = True):
    """Run the sweep, audit its PARSE cells, write the table. Returns (SweepResult, table
    paths or None when the sweep was interrupted)."""
    from parse_actors.studies.fission_table import write_fission_table
    from parse_actors.studies.sweep import run_sweep

    res = run_sweep(study.sweep, parallel, echo=echo, worker_verbosity=worker_verbosity, status=status)
    if res.interrupted is not None:
        return res, None
    audit_cells(study, echo)
    return res, write_fission_table(study)


def _audit_current(rdir: Path, samples: int, agents: list[int]) -> bool:
    """An audit in the cell made after its run finished, with these settings."""
    from parse_actors.audit import CSV_NAME, JSON_NAME
    from parse_actors.studies.readers import ReportError, read_json

    if not (rdir / JSON_NAME).is_file():
        return False
    try:
        info = read_json(rdir / JSON_NAME, {})  # a regular file, never read through a link
        summary_t = (rdir / "summary.json").stat().st_mtime_ns
        return ((rdir / CSV_NAME).is_file() and info.get("samples") == samples and "criteria" in info
                and info.get("agents") == agents and (rdir / JSON_NAME).stat().st_mtime_ns >= summary_t)
    except (OSError, ReportError, AttributeError):
        return False


def audit_cells(study: FissionStudy, echo: Callable[[str], None] = print) -> None:
    """Audit every finished PARSE cell (no plots: the study draws its own figure)."""
    from parse_actors.audit import audit_run
    from parse_actors.audit.loading import selected
    from parse_actors.metrics.rundir import RunDirError
    from parse_actors.studies.sweep import read_summary

    cells = [r for r in study.sweep.runs if r.point.params.get("method") == "parse"]
    for i, run in enumerate(cells, 1):
        s = read_summary(run.dir)
        if not (s and s.get("complete")):
            continue
        chosen = selected(run.scenario, study.audit_agents)
        agents = sorted(chosen) if chosen is not None else list(range(run.scenario.n_agents))
        if not study.force and _audit_current(run.dir, study.samples, agents):
            study.audit_kept.append(run.point.name)
            continue
        try:
            res = audit_run(run.dir, n_samples=study.samples, states=AUDIT_STATES, plots=False,
                            max_agents_per_group=study.audit_agents)
        except (ScenarioError, RunDirError) as e:
            study.audit_failed[run.point.name] = str(e)
            echo(f"audit [{i}/{len(cells)}] {run.point.label}: FAILED: {e}")
            continue
        study.audited.append(run.point.name)
        echo(f"audit [{i}/{len(cells)}] {run.point.label}: {res.seconds:.1f} s")
