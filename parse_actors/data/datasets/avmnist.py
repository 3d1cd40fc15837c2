"""AV-MNIST as MultiBench's numpy files (image and audio paired by label).

image/{train,test}_data.npy (n, 784) or (n, 28, 28), audio/{train,test}_data.npy
(n, 112, 112), {train,test}_labels.npy. Modalities image (1, 28, 28), audio
(112, 112). Opened memory-mapped; `max_samples` / an integer
`global_test_size` are applied before anything is copied (headers are checked
against the files' sizes first, and what is copied is bounded:
parse_actors.data.files); labels must be integers 0..9.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...schema import StrictModel
from ...seeding import rng as seeded_rng
from .. import files
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


SPLITS = ("train", "test")


class AVMNISTConfig(StrictModel):
    """AV-MNIST as MultiBench's numpy files (image/, audio/, *_labels.npy), downloaded by the user."""

    normalize: bool = True
    """Divide images and spectrograms by 255 (as MultiBench does)."""


def _pick(n: int, k: int | None, seed: int, *key: str) -> np.ndarray:
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(seeded_rng(seed, "data", *key).permutation(n)[:k])


def _split_files(path: Path, split: str) -> tuple[Path, Path, Path]:
    return path / "image" / f"{split}_data.npy", path / "audio" / f"{split}_data.npy", path / f"{split}_labels.npy"


def avmnist_files(path: Path) -> list[Path]:
    """The six files of MultiBench's layout (each must exist inside `path`)."""
    if not path.is_dir():
        raise DataError("path", f"{path} is not a folder; expected MultiBench's AV-MNIST folder with image/, audio/ "
                                "and {train,test}_labels.npy")
    return [files.inside(path, f) for split in SPLITS for f in _split_files(path, split)]


def _square(a: np.ndarray, channel: bool, f: Path) -> np.ndarray:
    per = math.prod(a.shape[1:])
    side = math.isqrt(per)
    if side * side != per:
        raise DataError("path", f"{f}: samples of {per} values are not square images")
    return a.reshape((len(a), 1, side, side) if channel else (len(a), side, side))


def _samples(f: Path, a: np.ndarray, idx: np.ndarray, budget: files.Budget) -> np.ndarray:
    """The chosen samples of a memory-mapped array, as float32 (their cost taken first)."""
    if a.ndim < 2 or 0 in a.shape[1:]:
        raise files.fail(f, f"expected one array per sample, got shape {a.shape}")
    budget.take(len(idx) * math.prod(a.shape[1:]) * 4, str(f))
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
            out = np.asarray(a[idx], dtype=np.float32)
    except OSError as e:  # the file shrank under its map
        raise files.fail(f, f"cannot be read ({e})") from None
    files.check_finite(out, str(f))
    return out


def load(path: Path, opts: AVMNISTConfig, cfg, seed: int) -> SourceData:
    avmnist_files(path)
    budget = files.Budget()
    splits = {}
    for split in SPLITS:
        fi, fa, fy = _split_files(path, split)
        img, aud = files.map_npy(fi), files.map_npy(fa)
        y = files.labels(files.load_npy(fy, budget), str(fy), 10)
        for f, a in ((fi, img), (fa, aud)):
            if len(a) != len(y):
                raise DataError("path", f"{f.relative_to(path)} has {len(a)} samples, {fy.name} has {len(y)}")
        k = cfg.max_samples if split == "train" else (cfg.global_test_size if isinstance(cfg.global_test_size, int) else None)
        idx = _pick(len(y), k, seed, "avmnist", split)
        img = _square(_samples(fi, img, idx, budget), True, fi)
        aud = _square(_samples(fa, aud, idx, budget), False, fa)
        if opts.normalize:
            img /= 255.0
            aud /= 255.0
        splits[split] = ModalData({"image": img, "audio": aud}, y[idx])
    return SourceData(
        splits["train"], splits["test"], 10, class_names=[str(d) for d in range(10)],
        info={"avmnist": {"root": str(path), "normalize": opts.normalize}},
    )


DATASET = Dataset(
    name="avmnist",
    options=AVMNISTConfig,
    modalities=lambda opts, path: ("image", "audio"),
    build=lambda opts, seed, path, cfg: load(path, opts, cfg, seed),
    files=lambda opts, path: avmnist_files(path),
    pairing="label",
    code=("datasets/avmnist.py",),
    needs_path=True,
    cacheable=False,
)
