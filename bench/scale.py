"""Scale: a scenario (default scenarios/large.yaml) at N agents x R rounds.

The scenario file's agent mix is scaled to N agents (large.yaml: 40% image,
40% audio, 20% image+audio) with the same number of synthetic samples per
agent. Each size runs in a fresh process, timed from inside, with the peak
memory summed over that process and every descendant (Ray's processes and
agent hosts included), sampled from /proc every 0.5 s. Per size it prints:

  set-up   data generation, hosts, agent build, topology/netem, in seconds;
  rounds   steady seconds per round (median and each), and with the inline
           backend where they went: training (train_and_export), merging
           (aggregate), evaluation (evaluate), the rest (engine: SimPy, netem,
           protocol, recorder);
  memory   peak of all processes, per agent, and the marginal per agent
           between consecutive sizes (what the next thousand agents cost);
  bare     the ratio of a round to the same rounds' bare SimPy+netem timeline
           (no host call), timed after the run (--no-bare skips it).

    .venv/bin/python bench/scale.py                                   # 1,000 x 5 on ray (make bench)
    .venv/bin/python bench/scale.py --agents 1000 3000 --rounds 2 --backend inline
    .venv/bin/python bench/scale.py --agents 3000 --rounds 1 --backend inline --profile 30
    .venv/bin/python bench/scale.py --agents 3000 --rounds 1 --backend inline --tracemalloc 15
    .venv/bin/python bench/scale.py --scenario scenarios/large_10k.yaml --agents 10000 --no-bare --out runs/large_10k
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _procmem import PeakMemory

ROOT = Path(__file__).resolve().parent.parent
HOST_PHASES = {"train_and_export": "train", "train_and_exchange": "train", "aggregate": "merge",
               "merge_exchange": "merge", "evaluate": "eval", "add_agents": None, "set_eval_data": None}
"""Host methods by phase of a round (None: set-up, timed by the coordinator; others: other_host)."""


def scaled(path: str, n: int, rounds: int | None, backend: str | None, hosts: int | None, overrides: list[str]):
    """The scenario at `path` with its agent groups scaled to n agents (same mix, same
    synthetic samples per agent); `rounds`, `backend`, `hosts` and `overrides` when given."""
    from parse_actors.scenario import load_scenario

    base = load_scenario(path)
    groups = [g.model_dump(mode="json", exclude_defaults=True) for g in base.agents.groups]
    total = sum(g["count"] for g in groups)
    left = n
    for g in groups[:-1]:
        g["count"] = n * g["count"] // total
        left -= g["count"]
    groups[-1]["count"] = left
    sets = [f"agents.groups={json.dumps(groups)}"]
    if base.data.name == "synthetic":
        per_agent = base.data.synthetic.n_samples / total
        sets.append(f"data.synthetic.n_samples={max(2, round(per_agent * n))}")
    if rounds is not None:
        sets.append(f"protocol.rounds={rounds}")
    if backend is not None:
        sets.append(f"engine.backend={backend}")
    if hosts is not None:
        sets.append(f"engine.hosts={hosts}")
    return load_scenario(path, sets + list(overrides))


def bare_timeline(sc) -> float:
    """Seconds per round of the same scenario's timeline with every host call skipped
    (SimPy, netem and the protocol's bookkeeping only; sync protocol)."""
    import asyncio
    import shutil

    from parse_actors.engine.coordinator import Simulation
    from parse_actors.metrics import RunDir

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-bare-"))
    sim = Simulation(sc, RunDir(tmp / "run"), "inline")

    async def go() -> float:
        await sim.setup()
        sim._set_dry(True)
        t0 = time.perf_counter()
        sim.run_until(sim.env.process(sim.discovery.exchange(sim.discovery.missing())))
        for rnd in range(sc.protocol.rounds):
            sim.run_until(sim.env.process(sim.protocol.round(rnd, {})))
        return (time.perf_counter() - t0) / sc.protocol.rounds

    try:
        return asyncio.run(go())
    finally:
        sim.close()
        shutil.rmtree(tmp, ignore_errors=True)


def child(args) -> None:
    """One size, in this process: the run, then one JSON line on stdout."""
    import shutil

    from parse_actors import logs
    from parse_actors.engine import run_scenario
    from parse_actors.engine.backends import InlineBackend
    from parse_actors.engine.coordinator import Simulation

    sc = scaled(args.scenario, args.agents[0], args.rounds, args.backend, args.hosts, args.set)
    backend = sc.engine.backend
    phases: dict[str, float] = {}  # seconds of this period by phase
    setup_phases: dict[str, float] = {}
    round_phases: list[dict] = []
    if backend == "inline":  # calls run eagerly inside call(): time them by method
        plain_call = InlineBackend.call

        def timed_call(self, host, method, *a, **kw):
            t = time.perf_counter()
            try:
                return plain_call(self, host, method, *a, **kw)
            finally:
                key = HOST_PHASES.get(method, "other_host")
                if key is not None:
                    phases[key] = phases.get(key, 0.0) + time.perf_counter() - t
        InlineBackend.call = timed_call

    gc_start: list[float] = []

    def gc_timer(phase, info):  # garbage collection, timed apart (it runs inside whatever allocates)
        if phase == "start":
            gc_start.append(time.perf_counter())
        elif gc_start:
            phases["gc"] = phases.get("gc", 0.0) + time.perf_counter() - gc_start.pop()
    gc.callbacks.append(gc_timer)

    plain_setup = Simulation.setup

    async def setup(self):
        await plain_setup(self)
        setup_phases.update(phases)
        phases.clear()
    Simulation.setup = setup
    rounds: list[float] = []  # wall seconds of each round (with its evaluation)
    started: list[float] = []
    snapshots: list = []

    def hook(sim, rnd):
        now = time.perf_counter()
        rounds.append(now - (started[-1] if started else sim.steady_start))
        round_phases.append(dict(phases))
        phases.clear()
        if args.tracemalloc and not snapshots:  # every agent alive, one round's traffic done
            import tracemalloc

            snapshots.append(tracemalloc.take_snapshot())
        started.append(time.perf_counter())  # the snapshot is no round's time

    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(8)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-scale-")) / "run"
    logs.configure(-1)
    try:
        t0 = time.perf_counter()
        summary, _ = run_scenario(sc, out, backend=backend, force=True, hooks=[hook])
        wall = time.perf_counter() - t0
        info = json.loads((out / "run.json").read_text())
    finally:
        if not args.out:
            shutil.rmtree(out.parent, ignore_errors=True)
    if prof is not None:
        import pstats

        prof.disable()
        st = pstats.Stats(prof, stream=sys.stderr)
        st.sort_stats("cumulative").print_stats(args.profile)
        st.sort_stats("tottime").print_stats(args.profile)
    if snapshots:  # Python objects only: torch tensor storage is not traced
        for stat in snapshots[0].statistics("lineno")[: args.tracemalloc]:
            print(stat, file=sys.stderr)
        tracemalloc.stop()
    bare = bare_timeline(sc) if args.bare and sc.protocol.mode == "sync" else None
    print(json.dumps({"agents": sc.n_agents, "rounds": sc.protocol.rounds, "backend": backend, "hosts": info["hosts"],
                      "wall": wall, "info": info, "round_s": rounds, "phases": round_phases,
                      "setup_gc": setup_phases.get("gc", 0.0), "bare_round_s": bare,
                      "virtual": summary["virtual_time_s"], "messages": summary["messages"]["sent"],
                      "acc": summary["final_acc"]["mean"]}))


def report(r: dict, peak: int, prev: tuple[int, int] | None) -> None:
    i, n = r["info"], r["agents"]
    setup = i["data_s"] + i["host_start_s"] + i["agents_start_s"] + i["network_s"]
    rs = r["round_s"]
    print(f"{n} agents x {r['rounds']} rounds on {r['backend']} ({r['hosts']} hosts): wall {r['wall']:.1f} s, "
          f"set-up {setup:.1f} s (data {i['data_s']:.1f}, hosts {i['host_start_s']:.1f}, agents "
          f"{i['agents_start_s']:.1f}, network {i['network_s']:.2f}; gc {r['setup_gc']:.1f}), steady {i['steady_s']:.1f} s, "
          f"final acc {r['acc']:.3f}, messages {r['messages']}")
    print(f"  per round: median {statistics.median(rs):.1f} s = {1e3 * statistics.median(rs) / n:.2f} ms/agent  "
          f"[{', '.join(f'{x:.1f}' for x in rs)}]")
    mean = {p: sum(ph.get(p, 0.0) for ph in r["phases"]) / len(rs) for p in ("train", "merge", "eval", "other_host")}
    gc_s = sum(ph.get("gc", 0.0) for ph in r["phases"]) / len(rs)
    if any(mean.values()):  # inline: where the mean round went (gc: inside any of them)
        mean["engine"] = statistics.mean(rs) - sum(mean.values())
    where = ", ".join(f"{p} {s:.1f} s ({1e3 * s / n:.2f} ms/agent)" for p, s in mean.items() if s)
    print(f"  mean round: {where + '; ' if where else ''}garbage collection {gc_s:.1f} s (driver)")
    if r.get("bare_round_s"):
        print(f"  bare SimPy+netem timeline of the same rounds: {r['bare_round_s']:.2f} s per round -> ratio "
              f"full/bare {statistics.median(rs) / r['bare_round_s']:.1f}")
    line = f"  peak memory, all processes: {peak / 2**30:.2f} GiB = {peak / n / 2**20:.2f} MiB/agent"
    if prev is not None and n != prev[0]:
        line += f"; marginal {(peak - prev[1]) / (n - prev[0]) / 2**20:.2f} MiB/agent since {prev[0]}"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "large.yaml"))
    ap.add_argument("--agents", type=int, nargs="+", default=[1000])
    ap.add_argument("--rounds", type=int, default=None, help="default: 5, or the file's with --scenario")
    ap.add_argument("--backend", choices=["ray", "inline"], default=None,
                    help="default: ray, or the file's with --scenario")
    ap.add_argument("--hosts", type=int, default=None, help="engine.hosts (default: the scenario's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a scenario key (VALUE parsed as YAML); repeatable")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile: top N functions (stderr)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="N", help="tracemalloc: top N allocation sites after the first round (stderr)")
    ap.add_argument("--bare", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the same rounds with no host call (SimPy + netem + protocol), after the run")
    ap.add_argument("--out", help="keep the run directory here (one size only)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.out and len(args.agents) > 1:
        ap.error("--out keeps one run directory: give one --agents size")
    if args.child:
        return child(args)
    if "--scenario" not in sys.argv:
        args.rounds = 5 if args.rounds is None else args.rounds
        args.backend = args.backend or "ray"
    prev = None
    for n in args.agents:
        cmd = [sys.executable, __file__, "--child", "--scenario", args.scenario, "--agents", str(n),
               *(["--rounds", str(args.rounds)] if args.rounds else []),
               *(["--backend", args.backend] if args.backend else []),
               *(["--hosts", str(args.hosts)] if args.hosts else []),
               *(f"--set={s}" for s in args.set),
               *(["--profile", str(args.profile)] if args.profile else []),
               *(["--tracemalloc", str(args.tracemalloc)] if args.tracemalloc else []),
               *(["--out", str(Path(args.out).resolve())] if args.out else []),
               "--bare" if args.bare else "--no-bare"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        mem = PeakMemory(root=proc.pid)
        mem.start()
        stdout, _ = proc.communicate()
        peak = mem.stop()
        if proc.returncode:
            sys.exit(f"{n} agents: the run failed (exit {proc.returncode})")
        r = json.loads(stdout.strip().splitlines()[-1])
        report(r, peak, prev)
        prev = (n, peak)


if __name__ == "__main__":
    main()
