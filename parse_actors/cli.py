"""`parse-sim`: run, validate and describe scenario files.

Bad input exits with code 2 and one line on stderr naming the file, the key
path and what was expected; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INT = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """Every command (and subcommand) takes --debug, -v and -q, before or after its name.

    Defaults are suppressed here and set once on the top parser, so a
    subcommand does not reset a flag given before it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        self.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more console output")
        self.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                          help="warnings and the final summary only")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="parse-sim", description=__doc__.splitlines()[0])
    p.set_defaults(debug=False, verbose=0, quiet=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a scenario file")
    r.add_argument("scenario", nargs="?", help="scenario YAML file")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    r.add_argument("--out", help="run directory (default runs/<name>-<timestamp>/)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a scenario key (VALUE parsed as YAML); repeatable")
    r.add_argument("--backend", choices=["ray", "inline"], help="where agents run (default: engine.backend)")
    r.add_argument("--seed", type=int, help="root seed (overrides seed:)")
    r.add_argument("--ray-address", help="join an existing Ray cluster: auto or HOST:PORT; 'local' starts a local "
                                         "Ray instance (with --resume: instead of the cluster the run used)")
    r.add_argument("--force", action="store_true", help="overwrite a non-empty run directory")

    v = sub.add_parser("validate", help="check scenario files without running them")
    v.add_argument("files", nargs="+")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")

    sub.add_parser("schema", help="print the JSON Schema of scenario files")

    sw = sub.add_parser("sweep", help="run a scenario over a grid of key values x seeds (resumable)",
                        description="Run SCENARIO for every combination of the --grid values (and the file's "
                                    "'# grid: KEY=V1,V2' comment lines) and every seed; one run directory each, "
                                    "plus sweep.json and sweep.csv. Cells run in a local process pool, or with "
                                    "--ray-address as Ray tasks spread over a cluster, with the same results. "
                                    "--resume OUT (or the same command again) skips finished cells.")
    sw.add_argument("scenario", nargs="?", help="scenario YAML file")
    sw.add_argument("--resume", metavar="OUT", help="continue the sweep in OUT as its sweep.json says (finished "
                                                    "cells are skipped, interrupted ones continue from their "
                                                    "checkpoint); takes --ray-address, --parallel, --cell-* too")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                    help="values to sweep (YAML; commas inside [] or {} do not split; a single [..] list gives "
                         "its items); replaces the file's grid for that key; repeatable")
    sw.add_argument("--tune", action="append", default=[], metavar="KEY.PATH[=V1,V2,...]",
                    help="hyperparameter values to choose from per setting (swept like --grid; the value with the "
                         "best mean accuracy over seeds on the global validation set, data.global_val_size, 300 "
                         "samples unless the scenario sets it, is reported with its test accuracy); KEY=log:LO:HI:N "
                         "for N log-spaced values, KEY alone for the default 0.01..0.3, 6 values; a choice at an "
                         "edge adds one step past it; repeatable: the product of the values")
    sw.add_argument("--extend", type=int, metavar="N",
                    help="with --tune: steps a setting may add past a grid edge its choice sits at, per tune key "
                         "(default 1; a choice on the new value steps again while steps are left)")
    sw.add_argument("--no-extend", action="store_true",
                    help="with --tune: do not add a value past a grid edge the choice sits at (--extend 0)")
    sw.add_argument("--early-stop", action="store_true",
                    help="with --tune: choose, and report, every run at its validation stop (the earliest "
                         "round of the best mean validation accuracy of all agents), as early stopping on the "
                         "global validation set would keep it; the test set plays no part in the stop")
    sw.add_argument("--time-budget", type=float, metavar="SECONDS",
                    help="with --tune: choose, and report, every run at its last evaluation within SECONDS of "
                         "virtual time (with --early-stop: its validation stop among those), as if every run had "
                         "stopped there: runs at different speeds (sync rounds with stragglers) compared at a time")
    sw.add_argument("--reference", metavar="METHOD",
                    help="reports pair every method with this one, seed by seed (paired-difference 95%% CI and "
                         "the seeds a difference of that size needs); needs a grid over method")
    sw.add_argument("--seeds", type=int, metavar="N",
                    help="seeds per grid point: the scenario's seed, +1, ... (default 1)")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a scenario key for every run (VALUE parsed as YAML); repeatable")
    sw.add_argument("--out", help="sweep directory (default runs/<name>-sweep/)")
    sw.add_argument("--backend", choices=["ray", "inline"],
                    help="where each cell's agents run (default inline; ray: the cells run one at a time, each "
                         "with its own local Ray instance; not with --ray-address)")
    sw.add_argument("--parallel", type=int, metavar="K",
                    help="at most K cells at once (default: one per CPU in the local pool; with --ray-address "
                         "as many as the cluster's resources hold)")
    sw.add_argument("--ray-address", metavar="ADDR",
                    help="run each cell as a Ray task: auto or HOST:PORT of a running cluster, or 'local' (a Ray "
                         "instance started for the sweep); default: a local process pool")
    sw.add_argument("--cell-cpus", type=float, default=1.0, metavar="N",
                    help="with --ray-address: CPUs each cell reserves (default 1; set engine.torch_threads to use "
                         "more than one)")
    sw.add_argument("--cell-gpus", type=float, default=0.0, metavar="F",
                    help="with --ray-address: GPUs each cell reserves, a fraction shares one (default 0; a cell "
                         "trains on it with engine.device cuda or auto)")
    sw.add_argument("--cell-memory", metavar="SIZE",
                    help="with --ray-address: memory each cell reserves for Ray's placement, e.g. 2GiB")
    sw.add_argument("--retries", type=int, default=3, metavar="N",
                    help="with --ray-address: times a cell lost with its node or worker is run again (default 3)")
    sw.add_argument("--force", action="store_true", help="re-run finished runs too")

    rp = sub.add_parser("report", help="Markdown summary and PNG plots of a run or sweep directory",
                        description="Write DIR/report.md and DIR/report/*.png for a run directory or a sweep "
                                    "directory.")
    rp.add_argument("dir", help="run directory or sweep directory")
    rp.add_argument("--target", type=float,
                    help="accuracy for 'time to target' (default: 80%% of the best final accuracy, "
                         "rounded down to 0.05)")
    rp.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")
    rp.add_argument("--reference", metavar="METHOD",
                    help="sweeps: paired differences against this method (default: the sweep's --reference)")
    rp.add_argument("--early-stop", action="store_true", default=None,
                    help="sweeps: read every run at its validation stop (the earliest round of the best mean "
                         "validation accuracy of all agents) for the choice, the tables and the paired "
                         "differences (default: as the sweep was run)")
    rp.add_argument("--budget", type=float, metavar="SECONDS",
                    help="sweeps: also compare accuracy at this virtual time, for runs that last different "
                         "virtual times (e.g. sync vs async with stragglers)")
    rp.add_argument("--time-budget", type=float, metavar="SECONDS",
                    help="sweeps: read every run at its last evaluation within SECONDS of virtual time (with "
                         "--early-stop: its validation stop among those) for the choice, the tables and the paired "
                         "differences, as if every run had stopped there (--budget only adds a column)")

    au = sub.add_parser("audit", help="what each learned slice carries (latent probes, PID of the label)",
                        description="Rebuild a finished run's agents from RUN_DIR/scenario.yaml and "
                                    "final_weights.pt, compute their slices on held-out samples and write "
                                    "RUN_DIR/pid_audit.csv, pid_audit.json and plots/pid_audit_<group>.png.")
    au.add_argument("run_dir", metavar="RUN_DIR", help="run directory of a finished run")
    au.add_argument("--samples", type=int, default=4000, metavar="N",
                    help="held-out samples of the synthetic task (default 4000; other datasets: the global "
                         "test set)")
    au.add_argument("--states", type=int, default=8, metavar="K",
                    help="cells per feature set for the PID of the label (default 8)")
    au.add_argument("--max-agents", type=int, metavar="N", help="audit at most N agents of each group")
    au.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")
    _study_parser(sub)
    return p


def _study_parser(sub) -> None:
    st = sub.add_parser("study", help="ready-made studies (sweeps with their table)")
    studies = st.add_subparsers(dest="study", required=True, metavar="STUDY")
    fi = studies.add_parser(
        "fission", help="issue 20: PARSE vs dsgd_full on the synthetic presets, PARSE's fission audited",
        description="Sweep the synthetic presets x {parse, dsgd_full} x seeds on the quickstart agents (resumable "
                    "like sweep: the same command again skips finished cells), audit every PARSE run beside its "
                    "untrained network, and write OUT/fission.md, fission.csv, fission.png.")
    fi.add_argument("--presets", metavar="P1,P2",
                    help="synthetic presets (default redundancy,uniqueness,synergy,mixed)")
    fi.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per cell (default 3)")
    fi.add_argument("--rounds", type=int, default=30, metavar="R", help="rounds per run (default 30)")
    fi.add_argument("--out", help="study directory (default runs/fission-study/)")
    fi.add_argument("--parallel", type=int, default=1, metavar="K", help="at most K runs at once (default 1)")
    fi.add_argument("--samples", type=int, default=4000, metavar="N", help="held-out samples per audit (default 4000)")
    fi.add_argument("--audit-agents", type=int, metavar="N", help="audit at most N agents of each group (default all)")
    fi.add_argument("--scenario", help="scenario file (default scenarios/quickstart.yaml)")
    fi.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a scenario key for every run (VALUE parsed as YAML); repeatable")
    fi.add_argument("--force", action="store_true", help="re-run finished runs and their audits")


def _cmd_run(args) -> int:
    from parse_actors.engine import resume_run, run_scenario
    from parse_actors.engine.signals import StopSignals

    StopSignals.ignore_after = True  # this process only exits after the run
    from parse_actors.errors import ScenarioError
    from parse_actors.metrics import format_summary
    from parse_actors.metrics.rundir import default_run_dir
    from parse_actors.scenario import load_scenario

    if args.resume:
        if args.scenario or args.overrides or args.seed is not None or args.out:
            raise ScenarioError("--resume", "", "takes only the run directory (its scenario.yaml is the scenario)")
        with _data_errors(str(Path(args.resume) / "scenario.yaml")):
            summary, rd = resume_run(Path(args.resume), backend=args.backend, ray_address=args.ray_address)
        print(format_summary(summary, str(rd.path)))
        return EXIT_OK
    if not args.scenario:
        raise ScenarioError(None, "", "parse-sim run needs a SCENARIO file (or --resume RUN_DIR)")
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.ray_address:
        overrides.append(f"engine.ray_address={json.dumps(args.ray_address)}")
    sc = load_scenario(args.scenario, overrides)
    out = Path(args.out) if args.out else default_run_dir(sc.name)
    with _data_errors(args.scenario):
        summary, rd = run_scenario(sc, out, backend=args.backend, force=args.force)
    print(format_summary(summary, str(rd.path)))
    return EXIT_OK


@contextlib.contextmanager
def _data_errors(scenario_file: str):
    """A data file found bad when a run loads it: the scenario's one-line error (exit 2)."""
    from parse_actors.data import DataError
    from parse_actors.scenario.checks import data_error

    try:
        yield
    except DataError as e:
        raise data_error(scenario_file, e) from None


def _cmd_validate(args) -> int:
    from parse_actors.errors import ScenarioError
    from parse_actors.scenario import load_scenario

    from parse_actors.scenario.checks import check_data_files
    from parse_actors.scenario.protocol import check_protocol_sizes

    bad = 0
    for f in args.files:
        try:
            sc = load_scenario(f, args.overrides)
            check_data_files(sc, f)
            check_protocol_sizes(sc, f)
        except ScenarioError as e:
            print(str(e), file=sys.stderr)
            bad += 1
        else:
            print(f"{f}: ok ({sc.n_agents} agents, method {sc.method}, {sc.protocol.rounds} rounds)")
    return EXIT_USAGE if bad else EXIT_OK


def _cmd_schema(args) -> int:
    from parse_actors.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def _extend_steps(args) -> int:
    """--extend N / --no-extend (the same as --extend 0; both together must agree)."""
    from parse_actors.errors import ScenarioError

    if args.extend is not None and args.no_extend and args.extend != 0:
        raise ScenarioError("--extend", "", f"--no-extend says 0 steps, --extend says {args.extend}")
    if args.extend is None:
        return 0 if args.no_extend else 1
    return args.extend  # plan_sweep refuses a negative number


def _sweep_cluster(args):
    """--ray-address and the --cell-* flags as ClusterOptions (None: the local pool)."""
    from parse_actors.errors import ScenarioError

    ray_only = [f for f, given in (("--cell-cpus", args.cell_cpus != 1.0), ("--cell-gpus", args.cell_gpus != 0.0),
                                   ("--cell-memory", args.cell_memory is not None), ("--retries", args.retries != 3))
                if given]
    if not args.ray_address:
        if ray_only:
            raise ScenarioError(ray_only[0], "", "only with --ray-address (the local pool runs --parallel K cells, "
                                                 "one process each)")
        return None
    from parse_actors.studies.cluster import CellResources, ClusterOptions, parse_size

    if args.backend == "ray":
        raise ScenarioError("--backend", "ray", "not with --ray-address: each cell runs inline in its own Ray task "
                                                "(hosts of its own would compete with the cells for the cluster's "
                                                "CPUs)")
    if args.retries < 0:
        raise ScenarioError("--retries", "", f"expected a number >= 0, got {args.retries}")
    res = CellResources(args.cell_cpus, args.cell_gpus, parse_size(args.cell_memory) if args.cell_memory else None)
    res.check()
    return ClusterOptions(args.ray_address, res, args.retries)


def _cmd_sweep(args) -> int:
    from parse_actors import logs
    from parse_actors.errors import ScenarioError
    from parse_actors.metrics.progress import Progress
    from parse_actors.studies.data import load_sweep
    from parse_actors.studies.report import sweep_console_table
    from parse_actors.studies.sweep import SWEEP_CSV, plan_sweep, resume_sweep, run_sweep

    if args.parallel is not None and args.parallel < 1:
        raise ScenarioError("--parallel", "", f"expected a positive number of runs at a time, got {args.parallel}")
    cluster = _sweep_cluster(args)
    if args.resume:
        given = [f for f, v in (("SCENARIO", args.scenario), ("--grid", args.grid), ("--tune", args.tune),
                                ("--seeds", args.seeds), ("--set", args.overrides), ("--out", args.out),
                                ("--force", args.force), ("--reference", args.reference),
                                ("--no-extend", args.no_extend), ("--extend", args.extend is not None),
                                ("--early-stop", args.early_stop),
                                ("--time-budget", args.time_budget is not None)) if v]
        if given:
            raise ScenarioError("--resume", "", f"takes the sweep directory only, not {given[0]} (its sweep.json "
                                                "holds the scenario, grid, seeds and overrides)")
        sweep = resume_sweep(args.resume, args.backend)
    else:
        if not args.scenario:
            raise ScenarioError(None, "", "parse-sim sweep needs a SCENARIO file (or --resume OUT)")
        sweep = plan_sweep(args.scenario, args.grid, 1 if args.seeds is None else args.seeds, args.overrides,
                           args.out, args.backend or "inline", args.force, tune_args=args.tune,
                           reference=args.reference, extend=_extend_steps(args),
                           early_stop=args.early_stop, time_budget=args.time_budget)
    n_points = len(sweep.runs) // max(1, len(sweep.seeds))
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs ({n_points} grid points x {len(sweep.seeds)} seeds), "
          f"{len(sweep.pending)} to run, into {sweep.out}", flush=True)
    verbosity = -1 if args.quiet or not args.verbose else 0
    if verbosity < 0:
        logs.configure(-1)
        Progress.enabled_default = False
    res = run_sweep(sweep, args.parallel, echo=lambda line: print(line, flush=True), worker_verbosity=verbosity,
                    cluster=cluster, verbose=bool(args.verbose), status=not args.quiet)
    if res.interrupted is not None:
        print(f"parse-sim: sweep interrupted; finished runs are kept; continue with: parse-sim sweep --resume "
              f"{sweep.out}", file=sys.stderr)
        return 128 + int(res.interrupted)
    sd = load_sweep(sweep.out)
    if sd.runs:
        print()
        print(sweep_console_table(sd))
    print(f"\n{res.ran} ran, {res.skipped} skipped, {res.failed} failed; table: {sweep.out / SWEEP_CSV}"
          + (f", tuned choices: {sweep.out / 'tuned.csv'}" if sweep.tune else ""))
    print(f"report: parse-sim report {sweep.out}")
    return EXIT_FAIL if res.failed else EXIT_OK


def _cmd_report(args) -> int:
    from parse_actors.studies.report import write_report

    out = write_report(Path(args.dir), target=args.target, dpi=args.dpi, budget=args.budget,
                       reference=args.reference, early_stop=args.early_stop, time_budget=args.time_budget)
    print(f"report: {out} (figures in {out.parent / 'report'})")
    return EXIT_OK


def _cmd_audit(args) -> int:
    from parse_actors.audit import audit_run, format_table
    from parse_actors.errors import ScenarioError

    for flag, v, lo in (("--samples", args.samples, 20), ("--states", args.states, 2),
                        ("--max-agents", args.max_agents, 1)):
        if v is not None and v < lo:
            raise ScenarioError(flag, "", f"expected at least {lo}, got {v}")
    res = audit_run(Path(args.run_dir), n_samples=args.samples, states=args.states,
                    max_agents_per_group=args.max_agents, dpi=args.dpi)
    if not args.quiet:
        print(format_table(res.rows, res.criteria))
        print()
    print(f"audit: {res.csv} ({res.seconds:.1f} s; plots: {', '.join(p.name for p in res.plots) or 'none'})")
    return EXIT_OK


def _cmd_study(args) -> int:
    from parse_actors import logs
    from parse_actors.errors import ScenarioError
    from parse_actors.metrics.progress import Progress
    from parse_actors.studies.fission import parse_presets, plan_fission, run_fission

    if args.parallel < 1:
        raise ScenarioError("--parallel", "", f"expected a positive number of runs at a time, got {args.parallel}")
    study = plan_fission(parse_presets(args.presets), args.seeds, args.rounds, args.out, args.scenario,
                         args.overrides, args.samples, args.force, args.audit_agents)
    sweep = study.sweep
    print(f"fission study: {len(sweep.runs)} runs ({len(study.presets)} presets x 2 methods x {len(sweep.seeds)} "
          f"seeds, {study.rounds} rounds), {len(sweep.pending)} to run, into {sweep.out}", flush=True)
    logs.configure(-1)
    Progress.enabled_default = False
    res, paths = run_fission(study, args.parallel, echo=lambda line: print(line, flush=True),
                             status=not args.quiet)
    if paths is None:
        print("parse-sim: study interrupted; finished runs are kept; continue with the same command",
              file=sys.stderr)
        return 128 + int(res.interrupted)
    if not args.quiet:
        print()
        print(paths["md"].read_text(encoding="utf-8"))
    print(f"{res.ran} ran, {res.skipped} skipped, {res.failed} failed; {len(study.audited)} audited, "
          f"{len(study.audit_kept)} audits kept, {len(study.audit_failed)} failed; table: {paths['md']}, "
          f"{paths['csv'].name}, {paths['png'].name}")
    return EXIT_FAIL if res.failed or study.audit_failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from parse_actors import logs
    from parse_actors.errors import ScenarioError
    from parse_actors.metrics import RunDirError

    from parse_actors.engine.interrupted import Interrupted
    from parse_actors.engine.failover import ClusterUnreachable, RunStalled
    from parse_actors.metrics.progress import Progress

    logs.configure(-1 if args.quiet else min(args.verbose, 1))
    if args.quiet:
        Progress.enabled_default = False
    handlers = {"run": _cmd_run, "validate": _cmd_validate, "schema": _cmd_schema, "sweep": _cmd_sweep,
                "report": _cmd_report, "audit": _cmd_audit, "study": _cmd_study}
    try:
        return handlers[args.command](args)
    except (ScenarioError, RunDirError) as e:
        if args.debug:
            traceback.print_exc()
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:  # what is on disk, in its message (exit 128 + the signal's number)
        print(f"parse-sim: {e}", file=sys.stderr)
        return 128 + e.signum
    except (RunStalled, ClusterUnreachable) as e:  # the cluster let the run down: one line, exit 1
        if args.debug:
            traceback.print_exc()
        print(f"parse-sim: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("parse-sim: interrupted", file=sys.stderr)
        return EXIT_INT
    except Exception as e:  # noqa: BLE001 - last line of defence: one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"parse-sim: error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
