#!/usr/bin/env python
"""Rebuild parse_actors/data/assets/watch_imu.npz from seglearn's watch dataset.

seglearn (BSD-3, David Burns) ships `seglearn/data/watch_dataset.npy`: 6-axis
smartwatch IMU recordings (accelerometer ax, ay, az; gyroscope wx, wy, wz;
50 Hz) of 140 sets of 20 repetitions of 7 shoulder physiotherapy exercises by
10 subjects (Burns et al., "Shoulder physiotherapy exercise recognition:
machine learning the inertial signals from a smartwatch", Physiological
Measurement 2018, arXiv:1802.01489).

The asset keeps the raw recordings, concatenated, as float16 (plenty for
IMU readings), with per-recording offsets, exercise, subject and side.
Windowing happens at load time (parse_actors.data.watch_imu).

    pip download --no-deps seglearn -d /tmp/seg && unzip /tmp/seg/*.whl 'seglearn/data/*' -d /tmp/seg
    python scripts/make_watch_imu.py --src /tmp/seg/seglearn/data/watch_dataset.npy

or, with seglearn installed, just `python scripts/make_watch_imu.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=None, help="path to seglearn's watch_dataset.npy")
    ap.add_argument("--out", default=str(ROOT / "parse_actors/data/assets/watch_imu.npz"))
    args = ap.parse_args()
    src = args.src
    if src is None:
        import seglearn

        src = str(Path(seglearn.__file__).parent / "data" / "watch_dataset.npy")
    # The file is a pickled dict inside .npy: only open a copy you got from the seglearn package.
    d = np.load(src, allow_pickle=True).item()
    xs = [np.asarray(x, dtype=np.float64) for x in d["X"]]
    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    signals = np.concatenate(xs).astype(np.float16)
    meta = dict(
        source="seglearn 1.2.5 seglearn/data/watch_dataset.npy (BSD-3)",
        sample_rate_hz=50,
        channels=list(d["X_labels"]),
        exercises=list(d["y_labels"]),
        citation="Burns et al., Physiological Measurement 39(7), 2018; arXiv:1802.01489",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        signals=signals,
        offsets=offsets,
        label=np.asarray(d["y"], np.int8),
        subject=np.asarray(d["subject"], np.int8),
        side=np.asarray(d["side"], np.int8),
        meta=np.asarray(json.dumps(meta)),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(xs)} recordings, {len(signals)} time steps x {signals.shape[1]}")


if __name__ == "__main__":
    main()
