"""AV-MNIST as MultiBench's numpy files (image and audio paired by label).

image/{train,test}_data.npy (n, 784) or (n, 28, 28), audio/{train,test}_data.npy
(n, 112, 112), {train,test}_labels.npy. Modalities image (1, 28, 28), audio
(112, 112). Opened memory-mapped; `max_samples` / an integer
`global_test_size` are applied before anything is copied.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...schema import StrictModel
from ...seeding import rng as seeded_rng
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


class AVMNISTConfig(StrictModel):
    """AV-MNIST as MultiBench's numpy files (image/, audio/, *_labels.npy), downloaded by the user."""

    normalize: bool = True
    """Divide images and spectrograms by 255 (as MultiBench does)."""


def _pick(n: int, k: int | None, seed: int, *key: str) -> np.ndarray:
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(seeded_rng(seed, "data", *key).permutation(n)[:k])


def _npy(f: Path) -> np.ndarray:
    if not f.exists():
        raise DataError("path", f"missing file {f}")
    return np.load(f, mmap_mode="r", allow_pickle=False)


def _square(a: np.ndarray, channel: bool, f: Path) -> np.ndarray:
    per = math.prod(a.shape[1:])
    side = math.isqrt(per)
    if side * side != per:
        raise DataError("path", f"{f.name}: samples of {per} values are not square images")
    return a.reshape((len(a), 1, side, side) if channel else (len(a), side, side))


def load(path: Path, opts: AVMNISTConfig, cfg, seed: int) -> SourceData:
    splits = {}
    for split in ("train", "test"):
        fi, fa, fy = path / "image" / f"{split}_data.npy", path / "audio" / f"{split}_data.npy", path / f"{split}_labels.npy"
        img, aud, y = _npy(fi), _npy(fa), _npy(fy)
        for f, a in ((fi, img), (fa, aud)):
            if len(a) != len(y):
                raise DataError("path", f"{f.relative_to(path)} has {len(a)} samples, {fy.name} has {len(y)}")
        k = cfg.max_samples if split == "train" else (cfg.global_test_size if isinstance(cfg.global_test_size, int) else None)
        idx = _pick(len(y), k, seed, "avmnist", split)
        img = _square(np.asarray(img[idx], dtype=np.float32), True, fi)
        aud = _square(np.asarray(aud[idx], dtype=np.float32), False, fa)
        if opts.normalize:
            img /= 255.0
            aud /= 255.0
        splits[split] = ModalData({"image": img, "audio": aud}, np.asarray(y[idx]).astype(np.int64).reshape(-1))
    return SourceData(
        splits["train"], splits["test"], 10, class_names=[str(d) for d in range(10)],
        info={"avmnist": {"root": str(path), "normalize": opts.normalize}},
    )


DATASET = Dataset(
    name="avmnist",
    options=AVMNISTConfig,
    modalities=lambda opts, path: ("image", "audio"),
    build=lambda opts, seed, path, cfg: load(path, opts, cfg, seed),
    pairing="label",
    code=("datasets/avmnist.py",),
    needs_path=True,
    cacheable=False,
)
