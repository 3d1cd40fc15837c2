"""Watch IMU: a real two-sensor dataset that ships with the project.

Smartwatch accelerometer (modality `acc`) and gyroscope (`gyro`), 50 Hz, 140
recordings of 7 shoulder physiotherapy exercises by 10 subjects, from
seglearn's `watch_dataset.npy` (BSD-3; Burns et al., Physiological
Measurement 2018). Rebuilt by scripts/make_watch_imu.py.

Recordings are cut into windows of `window` samples every `stride` samples
(default: no overlap, so windows in different splits share no readings).
Shapes: acc (3, window), gyro (3, window). Groups: subject, for the natural
partition.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import Field

from ...schema import StrictModel
from ..assets import ASSETS, load_asset
from ..types import Dataset, ModalData, SourceData

ASSET = ASSETS / "watch_imu.npz"


class WatchIMUConfig(StrictModel):
    """Smartwatch accelerometer + gyroscope, 7 shoulder exercises, 10 subjects (shipped asset from seglearn)."""

    window: int = Field(100, ge=8, le=900)
    """Window length in samples (50 Hz)."""
    stride: int | None = Field(None, ge=1)
    """Step between windows; null: the window length (no overlap, so no leakage between splits)."""
    standardize: bool = True
    """Scale each channel to zero mean, unit std (statistics over all recordings)."""


def _asset() -> dict:
    return load_asset('watch_imu.npz', 'scripts/make_watch_imu.py')


def _starts(length: int, cfg: WatchIMUConfig) -> np.ndarray:
    stride = cfg.stride or cfg.window
    return np.arange(0, length - cfg.window + 1, stride)


def n_windows(cfg: WatchIMUConfig) -> int:
    off = _asset()["offsets"]
    return int(sum(len(_starts(int(b - a), cfg)) for a, b in zip(off[:-1], off[1:])))


def build(cfg: WatchIMUConfig) -> SourceData:
    a = _asset()
    sig = a["signals"].astype(np.float32)
    if cfg.standardize:
        sig = (sig - sig.mean(axis=0)) / sig.std(axis=0)
    off = a["offsets"]
    idx, ys, gs = [], [], []
    for r, (s, e) in enumerate(zip(off[:-1], off[1:])):
        st = _starts(int(e - s), cfg) + int(s)
        idx.append(st)
        ys.append(np.full(len(st), int(a["label"][r])))
        gs.append(np.full(len(st), int(a["subject"][r])))
    starts = np.concatenate(idx)
    win = sig[starts[:, None] + np.arange(cfg.window)[None, :]]  # (n, window, 6)
    win = np.ascontiguousarray(win.transpose(0, 2, 1))  # (n, 6, window)
    meta = json.loads(str(a["meta"]))
    info = {
        "source": meta["source"],
        "citation": meta["citation"],
        "sample_rate_hz": meta["sample_rate_hz"],
        "window": cfg.window,
        "stride": cfg.stride or cfg.window,
        "recordings": int(len(off) - 1),
        "subjects": len(np.unique(a["subject"])),
    }
    return SourceData(
        train=ModalData({"acc": win[:, :3].copy(), "gyro": win[:, 3:].copy()}, np.concatenate(ys).astype(np.int64)),
        test=None,
        num_classes=len(meta["exercises"]),
        groups=np.concatenate(gs).astype(np.int64),
        class_names=list(meta["exercises"]),
        info={"watch_imu": info},
    )


DATASET = Dataset(
    name="watch_imu",
    options=WatchIMUConfig,
    modalities=lambda opts, path: ("acc", "gyro"),
    build=lambda opts, seed, path, cfg: build(opts),
    pairing="instance",
    code=("datasets/watch_imu.py",),
    pool_size=n_windows,
    input_shapes=lambda opts: {"acc": (3, opts.window), "gyro": (3, opts.window)},
    groups=True,
    asset=ASSET,
)
