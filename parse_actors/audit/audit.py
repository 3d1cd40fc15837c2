"""`parse-sim audit RUN_DIR`: what each learned slice actually carries.

Rebuilds every agent of a finished run from its resolved scenario.yaml and
final_weights.pt, computes its slices on held-out samples and writes
`pid_audit.csv`, `pid_audit.json` (settings, timing) and one heatmap per
agent group in plots/. Two measurements:

1. latent probes (synthetic data only): per slice row and latent column, a
   held-out linear probe score (parse_actors.audit.probes), normalised to
   [0, 1]; fresh samples of the run's own task come with their latents
   (parse_actors.data.synthetic.generate_heldout);
2. PID of the label (any dataset): BROJA decomposition of I(S1, S2; Y) for
   pairs of feature sets of every multimodal agent (parse_actors.audit.pid).

Synthetic runs also get `oracle` rows: the same measurements on an ideal
fission built from the true latents, the ground truth under this estimator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from parse_actors import atomic
from parse_actors.errors import ScenarioError
from parse_actors.metrics import dirguard

from parse_actors.metrics.final_weights import load_final_weights, load_inference_state, path_of

from . import features as feat
from .pid import pid_of_label
from .probes import chance_accuracy, halves, logistic_acc, normalise, ridge_r2
from .tables import group_matrix, probe_matrix  # noqa: F401 - importable from here

CSV_NAME = "pid_audit.csv"
JSON_NAME = "pid_audit.json"
HEADER = ["measure", "agent", "group", "method", "row", "column", "metric", "value", "null", "normalised", "own"]
PID_MEASURE = "BROJA (dit broja_cone_solve: exponential-cone program, ECOS)"


@dataclass
class AuditResult:
    rows: list[dict]
    csv: Path
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------- measurements


def probe_rows(rows: dict[str, np.ndarray], targets: dict[str, tuple[str, np.ndarray]], num_classes: int,
               fit: np.ndarray, score: np.ndarray) -> list[dict]:
    """One record per (row, column): value, normalised score, own-column flag."""
    out = []
    gauss = {k: v for k, (m, v) in targets.items() if m == "r2"}
    codes = {k: v for k, (m, v) in targets.items() if m == "acc"}
    for r, x in rows.items():
        vals = {**ridge_r2(x, gauss, fit, score), **logistic_acc(x, codes, num_classes, fit, score)}
        own = feat.own_columns(r, targets)
        for c, (metric, t) in targets.items():
            chance = chance_accuracy(t, score) if metric == "acc" else 0.0
            out.append({"measure": "probe", "row": r, "column": c, "metric": metric, "value": vals[c],
                        "null": chance if metric == "acc" else 0.0,
                        "normalised": normalise(metric, vals[c], chance), "own": int(c in own)})
    return out


def pid_rows(rows: dict[str, np.ndarray], mods, y: np.ndarray, fit: np.ndarray, states: int,
             seed: int) -> list[dict]:
    """One record per (source pair, PID component), in bits; `normalised` is the
    component's share of I(S1, S2; Y)."""
    out = []
    for name, (s1, s2) in feat.slice_groups(rows, mods).items():
        pid, null = pid_of_label(s1, s2, y, fit, states, seed)
        first, second = name.split("|")
        labels = {"redundant": "redundant", "unique_1": f"unique:{first}", "unique_2": f"unique:{second}",
                  "synergy": "synergy", "total": "total"}
        tot = pid["total"]
        for k, v in pid.items():
            out.append({"measure": "pid", "row": name, "column": labels[k], "metric": "bits", "value": v,
                        "null": null[k], "normalised": v / tot if tot > 1e-9 else 0.0, "own": ""})
    return out


# ----------------------------------------------------------------- run directory


def _fail(path: Path, message: str) -> ScenarioError:
    return ScenarioError(str(path), "", message)


def _load_run(run_dir: Path):
    from parse_actors.scenario import load_scenario

    if not run_dir.is_dir():
        raise _fail(run_dir, "not a run directory (no such directory)")
    if not (run_dir / "scenario.yaml").is_file():
        raise _fail(run_dir, "not a run directory (no scenario.yaml)")
    try:
        states = load_final_weights(run_dir)
    except Exception as e:  # noqa: BLE001 - an unreadable or unsafe file is bad input
        raise _fail(path_of(run_dir), f"cannot be loaded safely: {_first(e)}") from None
    if states is None:
        raise _fail(run_dir, "no final_weights.pt: the run did not finish, or it was written without final "
                              "weights (too large for output.final_weights_max_mb, or by an older parse-sim)")
    sc = load_scenario(run_dir / "scenario.yaml")
    return sc, states


def _first(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (torch's span several), bounded."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _build_agents(sc, fd, states: dict[int, dict], only: set[int] | None, weights: Path):
    """Agents as the coordinator builds them (same spec and kwargs), with the
    final weights loaded."""
    from parse_actors.agents import Agent, AgentSpec
    from parse_actors.seeding import torch_seed

    groups = sc.agent_groups()
    agents = []
    for a, g in enumerate(groups):
        if only is not None and a not in only:
            continue
        if a not in states:
            raise _fail(weights, f"agent {a} missing (the scenario has {len(groups)} agents)")
        data = fd.agents[a]
        all_mods = tuple(data.extra.get("modalities", g.modalities))
        active = tuple(data.extra.get("active", g.modalities))
        spec = AgentSpec(agent_id=a, modalities=active, archs=dict(g.archs))
        agent = Agent(spec, input_shapes={m: tuple(fd.input_shapes[m]) for m in all_mods},
                      num_classes=fd.num_classes, model=sc.model, loss=sc.loss, optim=sc.optim,
                      aggregation=sc.aggregation, method=sc.method, seed=torch_seed(sc.seed, "agent", a))
        try:
            _check_state(states[a], all_mods, fd.input_shapes)
            load_inference_state(agent, states[a])
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise _fail(weights, f"agent {a} does not match the scenario: {_first(e)}") from None
        agents.append((a, g.label, agent))
    return agents


def _check_state(sd: dict, modalities: tuple[str, ...], input_shapes: dict) -> None:
    """What a state declares against the scenario and its data, before anything is built
    from it (a forged input shape would size the rebuilt encoder)."""
    from parse_actors.agents.config import ARCH_NAMES

    extra = [m for m in sd["modalities"] if m not in modalities]
    if extra:
        raise ValueError(f"active modality {extra[0]!r}, the scenario gives it only {', '.join(modalities)}")
    for m, shape in sd["input_shapes"].items():
        if m not in input_shapes:
            raise ValueError(f"input shape for modality {m!r}, which the data does not have")
        if tuple(shape) != tuple(input_shapes[m]):
            raise ValueError(f"input shape {tuple(shape)} for {m!r}, the data's is {tuple(input_shapes[m])}")
    for m, arch in sd["archs"].items():
        if arch not in ARCH_NAMES:
            raise ValueError(f"architecture {arch!r} for {m!r} (known: {', '.join(ARCH_NAMES)})")


def check_samples(sc, n_samples: int, states: int) -> None:
    """--samples (and --states) against the memory the held-out set implies, before drawing
    it: the synthetic task's samples and latents, one feature set in float64, the PID's
    joint table (states per source, capped by the fitted half, squared, x classes)."""
    from parse_actors import memory

    if sc.data.name != "synthetic":
        return  # other datasets use their global test set, already loaded
    syn = sc.data.synthetic
    widest = max([*sc.model.slice_widths().values(), sc.model.embedding_width()])

    def need(n: int) -> int:
        cells = min(states, n // 2)
        return syn.memory_bytes(n) + 8 * n * (widest + 1) + 8 * cells * cells * syn.num_classes

    why = memory.over_limit(need(n_samples), f"auditing {n_samples:,} samples")
    if why:
        fit = next((n for n in (10 ** k for k in range(9, 1, -1)) if not memory.over_limit(need(n), "")), None)
        raise ScenarioError("--samples", "", why + (f"; {fit:,} would fit" if fit else ""))


def audit_run(run_dir: Path, n_samples: int = 4000, states: int = 8, max_agents_per_group: int | None = None,
              plots: bool = True, dpi: int = 100) -> AuditResult:
    """Audit a finished run; see the module docstring. Bad input raises ScenarioError; a
    run directory that holds a link, or that a run is using, raises RunDirError."""
    run_dir = Path(run_dir)
    with dirguard.hold(run_dir):  # nothing read through a link; no run starts in it meanwhile
        return _audit(run_dir, n_samples, states, max_agents_per_group, plots, dpi)


def _audit(run_dir: Path, n_samples: int, states: int, max_agents_per_group: int | None, plots: bool,
           dpi: int) -> AuditResult:
    from parse_actors.data import DataError, build_federated_data
    from parse_actors.scenario.checks import data_error

    t0 = time.perf_counter()
    sc, states_by_agent = _load_run(run_dir)
    check_samples(sc, n_samples, states)
    base = Path(sc.base_dir or ".")
    groups = sc.agent_groups()
    try:
        fd = build_federated_data(sc.data, [tuple(g.modalities) for g in groups], seed=sc.seed, base_dir=base)
    except DataError as e:
        raise data_error(str(run_dir / "scenario.yaml"), e) from None
    only = None
    if max_agents_per_group is not None:
        seen: dict[str, int] = {}
        only = set()
        for a, g in enumerate(groups):
            if seen.get(g.label, 0) < max_agents_per_group:
                only.add(a)
                seen[g.label] = seen.get(g.label, 0) + 1

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: one thread is fastest, and leaves the machine to others
    try:
        agents = _build_agents(sc, fd, states_by_agent, only, path_of(run_dir))
        synthetic = sc.data.name == "synthetic"
        task = lat = None
        if synthetic:
            from parse_actors.data.synthetic import generate_heldout

            held = generate_heldout(sc.data.synthetic, sc.seed, n_samples, oracle=True)
            x, y, task, lat = held.data.x, held.data.y, held.task, held.latents
            ground_truth = {k: held.info[k] for k in ("mix", "oracle_accuracy", "oracle_by_information")}
            source = f"{n_samples} fresh samples of the run's synthetic task"
        else:
            x, y = fd.global_test.x, fd.global_test.y
            ground_truth = None
            source = f"the global test set ({len(y)} samples)"
        n = len(y)
        fit, score = halves(n, sc.seed)
        targets = feat.latent_targets(task, lat) if synthetic else {}
        records: list[dict] = []

        def add(agent_id, label, method, recs):
            for r in recs:
                records.append({"agent": agent_id, "group": label, "method": method, **r})

        for a, label, agent in agents:
            rows = agent_features(agent.net, x)
            mods = agent.net.mods
            if targets:
                add(a, label, sc.method, probe_rows(rows, targets, fd.num_classes, fit, score))
            if len(mods) >= 2:
                add(a, label, sc.method, pid_rows(rows, mods, y, fit, states, sc.seed))
        if synthetic:
            mods = sorted(fd.modalities)
            orows = feat.oracle_features(task, lat, mods)
            add("oracle", "oracle", "oracle", probe_rows(orows, targets, fd.num_classes, fit, score))
            if len(mods) >= 2:
                add("oracle", "oracle", "oracle", pid_rows(orows, mods, y, fit, states, sc.seed))
    finally:
        torch.set_num_threads(threads)

    csv_path = run_dir / CSV_NAME
    atomic.write_csv(csv_path, HEADER, [[_cell(r.get(h)) for h in HEADER] for r in records])
    made: list[Path] = []
    if plots:
        from .plots import write_audit_plots

        made = write_audit_plots(run_dir / "plots", records, dpi=dpi)
    seconds = time.perf_counter() - t0
    info = {
        "seconds": round(seconds, 3),
        "samples": n,
        "samples_from": source,
        "probe_split": "seeded halves: fitted on one, scored on the other",
        "pid_measure": PID_MEASURE,
        "pid_states_per_source": states,
        "agents": [a for a, _, _ in agents],
        "ground_truth": ground_truth,
    }
    atomic.write_json(run_dir / JSON_NAME, info)
    return AuditResult(records, csv_path, made, seconds, info)


def agent_features(net, x):
    return feat.agent_features(net, x)


def _cell(v):
    if isinstance(v, float):
        return repr(round(v, 6)) if v == v else "nan"
    return "" if v is None else v


# ----------------------------------------------------------------- console


def format_table(records: list[dict]) -> str:
    """Plain-text tables: per group, the mean normalised probe matrix (own
    column marked *); per multimodal agent, the PID of the label in bits."""
    lines = []
    groups = list(dict.fromkeys(r["group"] for r in records))
    for g in groups:
        rows, cols, m, k = group_matrix(records, g)
        if not rows:
            continue
        lines.append(f"latent probes, group {g} ({k} agent{'s' if k != 1 else ''}; normalised: 0 chance, 1 perfect; "
                     f"* own column)")
        w = max(len(r) for r in rows) + 1
        lines.append(" " * w + "".join(f"{c:>22}" for c in cols))
        for i, r in enumerate(rows):
            own = feat.own_columns(r, cols)
            lines.append(f"{r:<{w}}" + "".join(f"{m[i, j]:>21.2f}{'*' if c in own else ' '}"
                                              for j, c in enumerate(cols)))
        lines.append("")
    pid = [r for r in records if r["measure"] == "pid"]
    if pid:
        lines.append("PID of the label (bits; BROJA; in brackets: the same with the label shuffled)")
        for key in dict.fromkeys((r["agent"], r["group"], r["row"]) for r in pid):
            comps = [r for r in pid if (r["agent"], r["group"], r["row"]) == key]
            text = ", ".join(f"{c['column']} {c['value']:.3f} ({c['null']:.3f})" for c in comps)
            lines.append(f"agent {key[0]} [{key[1]}] {key[2]}: {text}")
    return "\n".join(lines).rstrip()
