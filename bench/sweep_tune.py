"""What Ray Tune would cost as the scheduler of `sweep --ray-address`, next to
plain Ray tasks (what the sweep uses), measured in the same run.

Each variant runs in a fresh process on a local Ray instance of 2 CPUs: N
cells of 1 CPU each that only sleep CELL_S seconds (so what is measured is
the scheduler, not the simulator), 2 at a time, the cell returning a small
dict as a cell's summary would be. Printed per variant: the import time of
what it needs, the time from process start to the first cell running, the
total wall time, the overhead per cell (total minus that start-up minus the
ideal N x CELL_S / 2, per cell) and the peak memory of the process tree
(driver, Ray's processes, workers or trial actors).

`tune` starts a trial actor per cell (Tune's default for function
trainables), `tune-reuse` reuses them (`reuse_actors=True`).
Tune needs `ray[tune]` (pandas, pyarrow, tensorboardX, fsspec), which
parse-sim does not install; without it the Tune variant is skipped.

    .venv/bin/python bench/sweep_tune.py [--cells 24] [--cell-s 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procmem import PeakMemory  # noqa: E402

VARIANT = r"""
import json, os, sys, tempfile, time
t_start = float(sys.argv[3])
n, cell_s = int(sys.argv[1]), float(sys.argv[2])
kind = sys.argv[4]
t0 = time.time()
import ray
if kind.startswith("tune"):
    from ray import tune
t_import = time.time() - t0
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, configure_logging=False, log_to_driver=False)

def cell(i):
    started = time.time()
    time.sleep(cell_s)
    return {"cell": i, "started": started, "acc": 0.5}

if kind == "tasks":
    task = ray.remote(cell).options(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")
    out = ray.get([task.remote(i) for i in range(n)])
    starts = [r["started"] for r in out]
else:
    def trainable(config):
        tune.report(cell(config["i"]))
    storage = tempfile.mkdtemp(prefix="tune", dir="/tmp")
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                       param_space={"i": tune.grid_search(list(range(n)))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=2, reuse_actors=kind == "tune-reuse"),
                       run_config=tune.RunConfig(storage_path=storage, name="bench", verbose=0))
    grid = tuner.fit()
    starts = [r.metrics["started"] for r in grid]
t_end = time.time()
ray.shutdown()
print(json.dumps({"import_s": t_import, "first_cell_s": min(starts) - t_start, "total_s": t_end - t_start}))
"""


def run_variant(kind: str, n: int, cell_s: float) -> dict:
    script = Path(tempfile.mkdtemp(prefix="psbt")) / "variant.py"
    script.write_text(VARIANT)
    t_start = time.time()
    proc = subprocess.Popen([sys.executable, str(script), str(n), str(cell_s), repr(t_start), kind],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    mem = PeakMemory(interval=0.1, root=proc.pid)
    mem.start()
    out, err = proc.communicate(timeout=900)
    peak = mem.stop()
    shutil.rmtree(script.parent, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind}: failed: {err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    r["overhead_per_cell_s"] = (r["total_s"] - r["first_cell_s"] - n * cell_s / 2) / n
    r["peak_mib"] = peak / 2**20
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=24)
    ap.add_argument("--cell-s", type=float, default=0.5)
    args = ap.parse_args()
    try:
        import ray.tune  # noqa: F401

        kinds = ["tasks", "tune", "tune-reuse"]
    except ImportError:
        kinds = ["tasks"]
        print("ray[tune] is not installed: only plain tasks are measured")
    res = {k: run_variant(k, args.cells, args.cell_s) for k in kinds}
    print(f"{args.cells} cells of {args.cell_s:g} s, 2 at a time, local Ray of 2 CPUs")
    print(f"{'variant':10} {'import':>8} {'1st cell':>9} {'total':>8} {'overhead/cell':>14} {'peak MiB':>9}")
    for k, r in res.items():
        print(f"{k:10} {r['import_s']:7.2f}s {r['first_cell_s']:8.2f}s {r['total_s']:7.2f}s "
              f"{r['overhead_per_cell_s'] * 1000:11.0f} ms {r['peak_mib']:9.0f}")
    p = res["tasks"]
    for k in kinds[1:]:
        t = res[k]
        print(f"{k} / tasks: start-up {t['first_cell_s'] / p['first_cell_s']:.2f}x, total "
              f"{t['total_s'] / p['total_s']:.2f}x, overhead per cell {t['overhead_per_cell_s'] * 1000:.0f} vs "
              f"{p['overhead_per_cell_s'] * 1000:.0f} ms, peak memory {t['peak_mib'] / p['peak_mib']:.2f}x")


if __name__ == "__main__":
    main()
