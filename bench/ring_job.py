"""The standing comparison: one D-PSGD ring job in parse-sim and in a plain-torch loop.

The job (issue 14): N agents on a ring, one modality of 64 features, a
64-128-64 MLP encoder with a linear embedding and head (the `dsgd_full`
monolithic network), 10 rounds x 16 SGD steps of batch 32 (lr 0.05,
momentum 0.9, gradient clipping at 5, as the scenario defaults), Metropolis
averaging with both neighbours after each round, every agent evaluated on
the common test set and its own test split after each round. The data is one
.npz pool (a fixed random teacher), read by both sides alike.

Each variant runs as a fresh process, as a new user would start it, and the
whole process is timed from the outside (interpreter, imports, framework
start-up, data, the job, shutdown): `plain` (a plain-torch loop written as a
user would, in one process), `inline` (`parse-sim run --backend inline`) and
`ray` (`parse-sim run --backend ray`, local Ray started and stopped by the
run). Steady state (first round start to last round end) is reported apart.
Peak memory is summed over the variant's process and all its descendants.
Variants are interleaved across repetitions; medians are printed, with the
ratio of each simulator variant to the plain loop measured in the same run.

    .venv/bin/python bench/ring_job.py                 # N = 8, 1 repetition (what `make bench` runs)
    .venv/bin/python bench/ring_job.py --sizes 8,32 --reps 2
    .venv/bin/python bench/ring_job.py --variants plain,ray,ray-joined
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _procmem import descendants, rss

ROUNDS, STEPS, BATCH, FEATURES, CLASSES = 10, 16, 32, 64, 4
TRAIN_PER_AGENT, TEST_PER_AGENT, GLOBAL_TEST = 512, 128, 1000
LR, MOMENTUM, CLIP = 0.05, 0.9, 5.0


# ----------------------------------------------------------------------------- data
def write_data(folder: Path, n_agents: int) -> None:
    """train.npz (the pool the agents share out) and test.npz (the common test set)."""
    import numpy as np

    r = np.random.default_rng(0)
    teacher = r.standard_normal((FEATURES, CLASSES)).astype(np.float32)

    def draw(n):
        x = r.standard_normal((n, FEATURES)).astype(np.float32)
        y = (x @ teacher + 0.5 * r.standard_normal((n, CLASSES))).argmax(1).astype(np.int64)
        return x, y

    x, y = draw(n_agents * (TRAIN_PER_AGENT + TEST_PER_AGENT))
    np.savez(folder / "train.npz", x=x, y=y)
    x, y = draw(GLOBAL_TEST)
    np.savez(folder / "test.npz", x=x, y=y)


def scenario_yaml(folder: Path, n_agents: int, hosts: int | None) -> str:
    test_fraction = TEST_PER_AGENT / (TRAIN_PER_AGENT + TEST_PER_AGENT)
    doc = {
        "name": "ring-job", "seed": 0, "method": "dsgd_full",
        "agents": {"groups": [{"modalities": ["x"], "count": n_agents}]},
        "data": {"name": "npz", "path": str(folder), "npz": {"modalities": ["x"]},
                 "partition": {"kind": "iid", "test_fraction": test_fraction, "val_fraction": 0.0}},
        "model": {"mlp_hidden": [128], "backbone_width": 64},
        "train": {"local_steps": STEPS, "batch_size": BATCH},
        "protocol": {"rounds": ROUNDS},
        "network": {"topology": {"kind": "ring"}},
        "engine": {"checkpoint_every": 0, **({"hosts": hosts} if hosts else {})},
        "output": {"plots": False, "slice_drop": "off", "gradient_conflict_every": 0},
    }
    return json.dumps(doc)  # JSON is YAML


# ----------------------------------------------------------------------------- the plain loop
def plain_child(folder: Path, n: int) -> None:
    """D-PSGD on a ring in plain torch, as a user would write it; prints steady seconds."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    tr, te = np.load(folder / "train.npz"), np.load(folder / "test.npz")
    x, y = torch.from_numpy(tr["x"]), torch.from_numpy(tr["y"])
    xt, yt = torch.from_numpy(te["x"]), torch.from_numpy(te["y"])
    per = len(y) // n
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                            nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, CLASSES)) for _ in range(n)]
    opts = [torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM, foreach=True) for m in models]
    shards = []
    for i in range(n):
        lo = i * per
        shards.append((x[lo:lo + TRAIN_PER_AGENT], y[lo:lo + TRAIN_PER_AGENT],
                       x[lo + TRAIN_PER_AGENT:lo + per], y[lo + TRAIN_PER_AGENT:lo + per]))
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        for m, opt, (xs, ys, _, _), g in zip(models, opts, shards, gens):
            perm = torch.randperm(len(ys), generator=g)
            for s in range(STEPS):
                idx = perm[(s * BATCH) % len(ys):][:BATCH]
                loss = nn.functional.cross_entropy(m(xs[idx]), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(m.parameters(), CLIP, foreach=True)
                opt.step()
        with torch.no_grad():  # Metropolis weights on a ring: 1/3 each
            params = [[p.detach().clone() for p in m.parameters()] for m in models]
            for i, m in enumerate(models):
                for k, p in enumerate(m.parameters()):
                    p.copy_((params[i][k] + params[i - 1][k] + params[(i + 1) % n][k]) / 3)
            for m, (_, _, xl, yl) in zip(models, shards):
                for xe, ye in ((xt, yt), (xl, yl)):
                    out = m(xe)
                    float(nn.functional.cross_entropy(out, ye)), float((out.argmax(1) == ye).float().mean())
    print(json.dumps({"steady_s": time.perf_counter() - t0}))


# ----------------------------------------------------------------------------- measuring a process
def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak summed RSS of the process tree, stdout) of one
    command. CPU time counts every process of the tree that was waited for (Ray's
    processes are children of the driver, its workers of the raylet): on a loaded
    machine it moves much less than wall time."""
    peak = [0]
    c0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(rss(p) for p in descendants(proc.pid)))
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - c0
    done.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, cpu, peak[0], out


def run_variant(kind: str, folder: Path, n: int, hosts: int | None, address: str | None = None) -> dict:
    py = sys.executable
    if kind == "plain":
        wall, cpu, peak, out = timed([py, __file__, "--child", "plain", "--data", str(folder), "--n", str(n)])
        return {"wall": wall, "cpu": cpu, "peak": peak, "steady": json.loads(out.strip().splitlines()[-1])["steady_s"]}
    scen = folder / f"ring-{n}.yaml"
    scen.write_text(scenario_yaml(folder, n, hosts))
    run_dir = folder / f"run-{kind}-{n}"
    cli = Path(py).parent / "parse-sim"
    cmd = [str(cli), "-q", "run", str(scen), "--backend", "ray" if kind == "ray-joined" else kind,
           "--out", str(run_dir), "--force"]
    if kind == "ray-joined":
        cmd += ["--ray-address", address]
    wall, cpu, peak, _ = timed(cmd)
    info = json.loads((run_dir / "run.json").read_text())
    acc = json.loads((run_dir / "summary.json").read_text())["final_acc"]["mean"]
    return {"wall": wall, "cpu": cpu, "peak": peak, "steady": info["steady_s"], "info": info, "acc": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8", help="comma-separated agent counts (the issue's table: 8,32)")
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions (medians printed)")
    ap.add_argument("--variants", default="plain,inline,ray",
                    help="plain, inline, ray, ray-joined (joins a Ray instance this script starts first and keeps "
                         "up: Ray's own start and stop are left out, and so are its processes' memory)")
    ap.add_argument("--hosts", type=int, default=None, help="engine.hosts on Ray (default: one per CPU)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "plain":
        plain_child(Path(args.data), args.n)
        return
    variants = args.variants.split(",")
    address = None
    if "ray-joined" in variants:
        from parse_actors.engine.backends import ray_session

        session = ray_session()
        ray = session.__enter__()
        address = ray.get_runtime_context().gcs_address
    try:
        _compare(args, variants, address)
    finally:
        if address is not None:
            session.__exit__(None, None, None)


def _compare(args, variants: list[str], address: str | None) -> None:
    print(f"D-PSGD ring job: {ROUNDS} rounds x {STEPS} steps of {BATCH}, {FEATURES} features, 64-128-64 MLP "
          f"encoder; whole-process wall time (median of {args.reps}), steady state apart; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-ring-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            write_data(folder, n)
            res: dict[str, list[dict]] = {v: [] for v in variants}
            for rep in range(args.reps):
                order = variants if rep % 2 == 0 else variants[::-1]
                for v in order:
                    res[v].append(run_variant(v, folder, n, args.hosts, address))
            med = {v: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "steady", "peak")}
                   for v, rs in res.items()}
            base = med.get("plain")
            for v in variants:
                m = med[v]
                line = (f"N={n:<3d} {v:10s} wall {m['wall']:6.2f} s   cpu {m['cpu']:6.2f} s   steady {m['steady']:6.2f} s"
                        f"   peak {m['peak'] / 2**30:5.2f} GiB")
                if base and v != "plain":
                    line += (f"   ratio wall {m['wall'] / base['wall']:4.2f}x  cpu {m['cpu'] / base['cpu']:4.2f}x  "
                             f"steady {m['steady'] / base['steady']:4.2f}x")
                if "info" in res[v][-1]:
                    i = res[v][-1]["info"]
                    line += (f"   (hosts {i['hosts']}, host start {i['host_start_s']:.2f} s, agents built "
                             f"{i['agents_start_s']:.2f} s, final acc {res[v][-1]['acc']:.3f})")
                print(line, flush=True)
    print("targets: inline <= 1.2x plain (wall, N=8 and 32); ray <= 2x (N=8), <= 1.5x (N=32); "
          "ray steady <= 1.3x plain at N=32")


if __name__ == "__main__":
    main()
