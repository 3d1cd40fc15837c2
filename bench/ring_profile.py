"""Where the time of the ring job of bench/ring_job.py goes, plain torch vs
`parse-sim run --backend inline` (issue 23: inline <= 1.2x plain at N=32).

Both run as fresh processes under py-spy (a sampling profiler: it does not
slow Python calls down as cProfile does, which made the plain loop's many
small calls look dearer than they are), the whole process from its first
import. Each sample is put in one phase by its stack: imports (anywhere),
set-up, training, averaging/merging, evaluation, writing the outputs, the
engine's own work (SimPy, netem, the coordinator) and the rest. Printed:
seconds sampled per phase for each and the difference.

Read them as where the work is, not as wall time: py-spy samples every
Python thread (inline trains ahead in a second thread, so its phases can sum
above its wall time) and pauses the process for each sample. Whole-process
wall and CPU time without a profiler are bench/ring_job.py's.

py-spy is not a parse-sim dependency (`pip install py-spy`); without it this
says so and exits.

    .venv/bin/python bench/ring_profile.py [--n 32] [--rate 200]
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ring_job  # noqa: E402

INLINE_PHASES = [  # (phase, a frame name that puts a sample there); the first that matches
    ("set-up", ("Simulation.setup", "Simulation.__init__", "add_agents", "load_scenario", "build_scenario",
                "RunDir.__init__")),
    ("train", ("GroupStepper", "train_steps", "_train_ahead", "train_and_export")),
    ("evaluate", ("evaluate",)),
    ("averaging/merge", ("aggregate", "merge_branch", "merge")),
    ("write outputs", ("_finish", "write_", "flush", "save_final")),
    ("engine (SimPy, netem, coordinator)", ("Simulation.run", "drive", "run_until")),
]


def plain_lines() -> dict[str, range]:
    """plain_child's phases by line, found from its source."""
    src, first = inspect.getsourcelines(ring_job.plain_child)
    at = {key: first + next(i for i, ln in enumerate(src) if key in ln)
          for key in ("for _ in range(ROUNDS)", "with torch.no_grad()", "for m, (_, _, xl, yl)")}
    return {"set-up": range(first, at["for _ in range(ROUNDS)"]),
            "train": range(at["for _ in range(ROUNDS)"], at["with torch.no_grad()"]),
            "averaging/merge": range(at["with torch.no_grad()"], at["for m, (_, _, xl, yl)"]),
            "evaluate": range(at["for m, (_, _, xl, yl)"], first + len(src))}


def phase(stack: str, plain: dict[str, range] | None) -> str:
    if "_find_and_load" in stack:
        return "imports"
    if plain is not None:
        m = re.search(r"plain_child \(ring_job\.py:(\d+)\)", stack)
        if m:
            return next((p for p, lines in plain.items() if int(m.group(1)) in lines), "other")
        return "other"
    frames = [f.split(" (")[0] for f in stack.split(";") if "parse_actors" in f]
    for p, names in INLINE_PHASES:
        if any(any(n in f for n in names) for f in frames):
            return p
    return "other"


def sample(pyspy: str, rate: int, cmd: list[str], out: Path) -> Counter:
    r = subprocess.run([pyspy, "record", "-r", str(rate), "-f", "raw", "-o", str(out), "--", *cmd],
                       capture_output=True, text=True)
    if r.returncode != 0 or not out.exists():
        raise SystemExit(f"{cmd} failed: {r.stderr[-3000:]}")
    plain = plain_lines() if "plain" in cmd else None
    counts: Counter = Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        counts[phase(stack, plain)] += int(n) / rate
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="agents on the ring")
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("py-spy is not installed (pip install py-spy): nothing measured")
        return
    with tempfile.TemporaryDirectory(prefix="bench-ringprof-") as tmp:
        folder = Path(tmp)
        ring_job.write_data(folder, args.n)
        scen = folder / f"ring-{args.n}.yaml"
        scen.write_text(ring_job.scenario_yaml(folder, args.n, None))
        plain = sample(pyspy, args.rate, [sys.executable, str(HERE / "ring_job.py"), "--child", "plain", "--data",
                                          str(folder), "--n", str(args.n)], folder / "plain.txt")
        inline = sample(pyspy, args.rate, [str(Path(sys.executable).parent / "parse-sim"), "-q", "run", str(scen),
                                           "--backend", "inline", "--out", str(folder / "run"), "--force"],
                        folder / "inline.txt")
    print(f"ring job N={args.n}: seconds sampled per phase (py-spy, {args.rate}/s, whole process)")
    print(f"{'phase':36} {'plain':>8} {'inline':>8} {'inline-plain':>13}")
    for p in sorted(set(plain) | set(inline), key=lambda p: -(inline.get(p, 0) - plain.get(p, 0))):
        print(f"{p:36} {plain.get(p, 0):8.2f} {inline.get(p, 0):8.2f} {inline.get(p, 0) - plain.get(p, 0):+13.2f}")
    tp, ti = sum(plain.values()), sum(inline.values())
    print(f"{'total':36} {tp:8.2f} {ti:8.2f} {ti - tp:+13.2f}   inline / plain {ti / tp:.2f}x")


if __name__ == "__main__":
    main()
