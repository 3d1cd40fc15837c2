"""`parse-sim audit RUN_DIR`: what each learned slice actually carries.

Rebuilds every agent of a finished run from its resolved scenario.yaml and
final_weights.pt (loading.py), computes its slices on held-out samples
(samples.py) and writes `pid_audit.csv`, `pid_audit.json` (settings, timing,
the fission criteria) and one heatmap per agent group in plots/. Measurements
(records.py):

1. latent probes (synthetic data only): per slice row and latent column, a
   held-out linear probe score (parse_actors.audit.probes), normalised to
   [0, 1]; fresh samples of the run's own task come with their latents
   (parse_actors.data.synthetic.generate_heldout);
2. PID of the label (any dataset): BROJA decomposition of I(S1, S2; Y) for
   pairs of feature sets of every multimodal agent (parse_actors.audit.pid);
3. slice-drop accuracy: each agent's prediction with each slice kind left out.

Synthetic runs also get `oracle` rows: the same measurements on an ideal
fission built from the true latents, the ground truth under this estimator.
Every audited agent also gets an untrained twin (agent `untrained:<id>`, group
`untrained:<group>`, method `untrained`): the same network at the parameters
its run started from, measured the same way, so that no criterion is credited
to the architecture or the input (criteria.py: the null-row rule).

Rows of pid_audit.csv come in this order: each agent's probes and PID, the
oracle's, then each agent's slice drop, then the untrained twins' probes, PID
and slice drop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from parse_actors import atomic
from parse_actors.metrics import dirguard
from parse_actors.metrics.final_weights import path_of

from . import features as feat
from .console import format_table  # noqa: F401 - importable from here
from .criteria import UNTRAINED, fission_criteria, untrained_group, untrained_id
from .loading import build_agents, check_samples, load_data, load_run, selected
from .probes import chance_accuracy, halves
from .records import HEADER, cell, pid_rows, probe_rows, slice_drop_rows  # noqa: F401 - importable from here
from .samples import AuditSamples, audit_samples
from .tables import group_matrix, probe_matrix  # noqa: F401 - importable from here

CSV_NAME = "pid_audit.csv"
JSON_NAME = "pid_audit.json"
PID_MEASURE = "BROJA (dit broja_cone_solve: exponential-cone program, ECOS)"


@dataclass
class AuditResult:
    rows: list[dict]
    csv: Path
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def criteria(self) -> dict:
        return self.info.get("criteria") or {}


def audit_run(run_dir: Path, n_samples: int = 4000, states: int = 8, max_agents_per_group: int | None = None,
              plots: bool = True, dpi: int = 100) -> AuditResult:
    """Audit a finished run; see the module docstring. Bad input raises ScenarioError; a
    run directory that holds a link, or that a run is using, raises RunDirError."""
    run_dir = Path(run_dir)
    with dirguard.hold(run_dir):  # nothing read through a link; no run starts in it meanwhile
        return _audit(run_dir, n_samples, states, max_agents_per_group, plots, dpi)


class _Records(list):
    def add(self, agent_id, label, method, recs) -> None:
        for r in recs:
            self.append({"agent": agent_id, "group": label, "method": method, **r})


def _audit(run_dir: Path, n_samples: int, states: int, max_agents_per_group: int | None, plots: bool,
           dpi: int) -> AuditResult:
    t0 = time.perf_counter()
    sc, states_by_agent = load_run(run_dir)
    check_samples(sc, n_samples, states)
    fd = load_data(sc, run_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: one thread is fastest, and leaves the machine to others
    try:
        agents = build_agents(sc, fd, states_by_agent, selected(sc, max_agents_per_group), path_of(run_dir))
        s = audit_samples(sc, fd, n_samples)
        records = measure(sc, fd, agents, s, states)
    finally:
        torch.set_num_threads(threads)
    criteria = fission_criteria(records, (s.ground_truth or {}).get("mix"))
    return _write(run_dir, records, criteria, s, states, [a for a, *_ in agents], plots, dpi, t0)


def measure(sc, fd, agents, s: AuditSamples, states: int) -> list[dict]:
    """Every record of the audit, in the order of the module docstring."""
    fit, score = halves(len(s.y), sc.seed)
    targets = feat.latent_targets(s.task, s.latents) if s.synthetic else {}
    out = _Records()

    def slices(agent_id, label, method, net):
        rows = feat.agent_features(net, s.x)
        if targets:
            out.add(agent_id, label, method, probe_rows(rows, targets, fd.num_classes, fit, score))
        if len(net.mods) >= 2:
            out.add(agent_id, label, method, pid_rows(rows, net.mods, s.y, fit, states, sc.seed))

    for a, label, agent, _ in agents:
        slices(a, label, sc.method, agent.net)
    if s.synthetic:
        mods = sorted(fd.modalities)
        orows = feat.oracle_features(s.task, s.latents, mods)
        out.add("oracle", "oracle", "oracle", probe_rows(orows, targets, fd.num_classes, fit, score))
        if len(mods) >= 2:
            out.add("oracle", "oracle", "oracle", pid_rows(orows, mods, s.y, fit, states, sc.seed))
    chance = chance_accuracy(s.y, score)
    for a, label, agent, _ in agents:
        out.add(a, label, sc.method, slice_drop_rows(agent, s.x, s.y, chance))
    for a, label, _, untrained in agents:
        slices(untrained_id(a), untrained_group(label), UNTRAINED, untrained.net)
        out.add(untrained_id(a), untrained_group(label), UNTRAINED, slice_drop_rows(untrained, s.x, s.y, chance))
    return list(out)


def _write(run_dir: Path, records: list[dict], criteria: dict, s: AuditSamples, states: int, agent_ids: list,
           plots: bool, dpi: int, t0: float) -> AuditResult:
    csv_path = run_dir / CSV_NAME
    atomic.write_csv(csv_path, HEADER, [[cell(r.get(h)) for h in HEADER] for r in records])
    made: list[Path] = []
    if plots:
        from .plots import write_audit_plots

        made = write_audit_plots(run_dir / "plots", records, dpi=dpi)
    seconds = time.perf_counter() - t0
    info = {
        "seconds": round(seconds, 3),
        "samples": len(s.y),
        "samples_from": s.source,
        "probe_split": "seeded halves: fitted on one, scored on the other",
        "pid_measure": PID_MEASURE,
        "pid_states_per_source": states,
        "agents": agent_ids,
        "ground_truth": s.ground_truth,
        "untrained": "agent untrained:<id>: the same network at the parameters its run started from",
        "criteria": criteria,
    }
    atomic.write_json(run_dir / JSON_NAME, info)
    return AuditResult(records, csv_path, made, seconds, info)


def agent_features(net, x):
    return feat.agent_features(net, x)
