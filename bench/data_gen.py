"""Data-side timings: synthetic PID generation and AV-digits cache loads.

Baselines in the same run: numpy drawing the same number of raw Gaussian
latents (what any generator must at least do), and building AV digits
without the cache. Best of `REPEATS` runs each.

    .venv/bin/python bench/data_gen.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parse_actors.data import DataConfig, load_source
from parse_actors.data.assets import load_asset
from parse_actors.data.config import SyntheticConfig
from parse_actors.data.synthetic import PIDTask, generate

N = 100_000
REPEATS = 3


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    cfg = SyntheticConfig(n_samples=N)
    task = PIDTask(cfg, 0)
    d_lat = sum(p.dim if p.kind == "gauss" else 1 for p in task.parts.values())
    t_gen = best(lambda: generate(cfg, 0, oracle=False))
    t_oracle = best(lambda: task.oracle_table(np.random.default_rng(0)))
    t_raw = best(lambda: np.random.default_rng(0).standard_normal((N, d_lat)))
    feat = sum(cfg.dims().values())
    print(f"synthetic PID ({cfg.preset}, {len(cfg.modalities)} modalities x {cfg.dim}, {cfg.num_classes} classes): "
          f"{N} samples in {t_gen:.3f} s ({N / t_gen / 1e3:.0f}k samples/s; task + latents + labels + {feat} noisy features)")
    print(f"baseline numpy standard_normal of the same latents ({N} x {d_lat}): {t_raw:.4f} s -> ratio {t_gen / t_raw:.1f}x")
    print(f"oracle accuracy table (Monte Carlo ground truth, once per dataset): {t_oracle:.3f} s")

    av = DataConfig.model_validate({"name": "av_digits"})
    with tempfile.TemporaryDirectory() as tmp:
        def cold():
            load_asset.cache_clear()  # read and decompress the shipped npz again
            load_source(av.model_copy(update={"cache": False}), 0)

        t_cold = best(cold)
        load_source(av, 0, cache_dir=tmp)  # write the entry
        t_hit = best(lambda: load_source(av, 0, cache_dir=tmp))
        src, info = load_source(av, 0, cache_dir=tmp)
        assert info["hit"]
    print(f"av_digits ({len(src.train)} pairs, image {src.input_shapes['image']}, audio {src.input_shapes['audio']}): "
          f"load from cache {t_hit * 1e3:.1f} ms; baseline build from the shipped asset {t_cold * 1e3:.1f} ms "
          f"-> ratio {t_cold / t_hit:.1f}x")


if __name__ == "__main__":
    main()
