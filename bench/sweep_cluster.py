"""Sweep throughput: the local process pool vs a Ray cluster of two raylets on
loopback, measured side by side in one run (issue 23).

The sweep: the quickstart, 2 methods x 3 learning rates x 4 seeds = 24 cells,
with `protocol.rounds` shortened (default 8 of the file's 15, said in the
output) and no plots. Variants, each timed from the outside as a user's
`parse-sim sweep` command (interpreter, imports, workers' start, every cell,
tables):

- `pool`: `--parallel 2`, the local process pool;
- `cluster`: `--ray-address` of a cluster of two nodes on 127.0.0.1 with one
  CPU each (head and worker, started before the timing and stopped after, as
  a standing cluster would be; tests/loopback.py starts it).

Printed: both wall times, their ratio (cluster / pool; issue target <= 1.15),
and each against the cells' own simulation time (the sum of the cells'
summary.json wall_time_s, divided by 2 workers; target <= 1.2). The
datasets are made once before any timing (one cell per seed, untimed), and
the two sweeps' results are checked to be the same bytes.

    .venv/bin/python bench/sweep_cluster.py [--rounds 8] [--reps 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from loopback import LoopbackCluster  # noqa: E402

QUICK = ROOT / "scenarios" / "quickstart.yaml"
CLI = str(Path(sys.executable).parent / "parse-sim")


def sweep_args(out: Path, rounds: int) -> list[str]:
    return [CLI, "-q", "sweep", str(QUICK), "--grid", "method=parse,local", "--grid", "optim.lr=0.02,0.05,0.1",
            "--seeds", "4", "--set", f"protocol.rounds={rounds}", "--set", "output.plots=false", "--out", str(out)]


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall


def cells(out: Path) -> list[Path]:
    return [out / r["dir"] for r in json.loads((out / "sweep.json").read_text())["runs"]]


def cell_time(out: Path) -> float:
    """Sum of the cells' own simulation times (summary.json wall_time_s)."""
    return sum(json.loads((c / "summary.json").read_text())["wall_time_s"] for c in cells(out))


def same_results(a: Path, b: Path) -> bool:
    def sans_wall(c: Path) -> dict:
        s = json.loads((c / "summary.json").read_text())
        s.pop("wall_time_s")
        return s

    return all((x / "metrics.csv").read_bytes() == (y / "metrics.csv").read_bytes() and sans_wall(x) == sans_wall(y)
               for x, y in zip(cells(a), cells(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="protocol.rounds of every cell (the file has 15)")
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions (medians printed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="psbs"))
    cluster = None
    try:
        warm = [CLI, "-q", "sweep", str(QUICK), "--seeds", "4", "--set", "protocol.rounds=1", "--set",
                "output.plots=false", "--out", str(work / "warm"), "--parallel", "2"]
        timed(warm)  # the four seeds' datasets into the cache, untimed
        cluster = LoopbackCluster(head_cpus=1, worker_cpus=1)
        walls: dict[str, list[float]] = {"pool": [], "cluster": []}
        sims: dict[str, list[float]] = {"pool": [], "cluster": []}
        same = True
        for rep in range(args.reps):
            pool_out, cluster_out = work / f"pool-{rep}", work / f"cluster-{rep}"
            walls["pool"].append(timed(sweep_args(pool_out, args.rounds) + ["--parallel", "2"]))
            sims["pool"].append(cell_time(pool_out))
            walls["cluster"].append(timed(sweep_args(cluster_out, args.rounds) + ["--ray-address", cluster.address],
                                          env=cluster.env))
            sims["cluster"].append(cell_time(cluster_out))
            same = same and same_results(pool_out, cluster_out)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    w = {k: statistics.median(v) for k, v in walls.items()}
    s = {k: statistics.median(v) / 2 for k, v in sims.items()}
    print(f"24-cell sweep of the quickstart (2 methods x 3 lr x 4 seeds), protocol.rounds={args.rounds} "
          f"(file: 15), {args.reps} rep(s), medians")
    for k in ("pool", "cluster"):
        print(f"{k:8} wall {w[k]:7.1f} s   cells' own time / 2 {s[k]:7.1f} s   ratio {w[k] / s[k]:.2f} "
              f"(target <= 1.2)")
    print(f"cluster / pool wall: {w['cluster'] / w['pool']:.2f} (target <= 1.15); results identical: "
          f"{'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
