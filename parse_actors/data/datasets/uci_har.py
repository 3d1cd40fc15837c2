"""UCI HAR Dataset (smartphone accelerometer + gyroscope), in its published layout.

<root>/{train,test}/Inertial Signals/{body_acc|total_acc|body_gyro}_{x,y,z}_{split}.txt
(128 readings per line), <root>/{split}/y_{split}.txt (1..6),
subject_{split}.txt, activity_labels.txt. `path` is that root or a folder
holding "UCI HAR Dataset". Modalities acc (3, 128) and gyro (3, 128); groups:
subjects. Every file is checked to agree in length with the labels
(DataError("path", ...) naming the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from ...schema import StrictModel
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


class UCIHARConfig(StrictModel):
    """UCI Human Activity Recognition (smartphone), original text layout, downloaded by the user."""

    acc: Literal["body", "total"] = "body"
    """Accelerometer signal: body_acc (gravity removed) or total_acc."""
    standardize: bool = True
    """Scale each channel to zero mean, unit std using training-split statistics."""


HAR_CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]


def _har_root(path: Path) -> Path:
    if (path / "train").is_dir():
        return path
    if (path / "UCI HAR Dataset" / "train").is_dir():
        return path / "UCI HAR Dataset"
    raise DataError("path", f"{path} is not a UCI HAR Dataset folder (no train/ inside it or in 'UCI HAR Dataset/')")


def _read_matrix(f: Path, cols: int | None = None) -> np.ndarray:
    if not f.exists():
        raise DataError("path", f"missing file {f}")
    text = f.read_text()
    rows = [r for r in text.splitlines() if r.strip()]
    vals = np.array(text.split(), dtype=np.float64)
    if cols is None:
        cols = len(vals) // max(len(rows), 1)
    if len(vals) != len(rows) * cols:
        raise DataError("path", f"{f.name}: expected {cols} numbers on each of {len(rows)} lines, found {len(vals)} in all")
    return vals.reshape(len(rows), cols)


def _har_split(root: Path, split: str, acc: str) -> tuple[dict, np.ndarray, np.ndarray]:
    d = root / split
    y = _read_matrix(d / f"y_{split}.txt", 1)[:, 0].astype(np.int64) - 1
    subj = _read_matrix(d / f"subject_{split}.txt", 1)[:, 0].astype(np.int64)
    if len(subj) != len(y):
        raise DataError("path", f"{split}: subject_{split}.txt has {len(subj)} lines, y_{split}.txt has {len(y)}")
    if len(y) and (y.min() < 0 or y.max() > 5):
        raise DataError("path", f"{split}: y_{split}.txt must hold activity ids 1..6")
    x = {}
    for mod, prefix in (("acc", f"{acc}_acc"), ("gyro", "body_gyro")):
        chans = []
        for axis in "xyz":
            f = d / "Inertial Signals" / f"{prefix}_{axis}_{split}.txt"
            a = _read_matrix(f)
            if len(a) != len(y):
                raise DataError("path", f"{f.name} has {len(a)} rows, y_{split}.txt has {len(y)} labels")
            chans.append(a)
        lens = {c.shape[1] for c in chans}
        if len(lens) != 1:
            raise DataError("path", f"{split}: {prefix} x/y/z files have different window lengths {sorted(lens)}")
        x[mod] = np.stack(chans, axis=1)  # (n, 3, T)
    if x["acc"].shape[2] != x["gyro"].shape[2]:
        raise DataError("path", f"{split}: accelerometer and gyroscope windows differ in length")
    return x, y, subj


def load(path: Path, opts: UCIHARConfig) -> SourceData:
    root = _har_root(path)
    xtr, ytr, str_ = _har_split(root, "train", opts.acc)
    xte, yte, _ = _har_split(root, "test", opts.acc)
    for m in xtr:
        if xtr[m].shape[1:] != xte[m].shape[1:]:
            raise DataError("path", f"train and test {m} windows differ: {xtr[m].shape[1:]} vs {xte[m].shape[1:]}")
        if opts.standardize:
            mu = xtr[m].mean(axis=(0, 2), keepdims=True)
            sd = xtr[m].std(axis=(0, 2), keepdims=True) + 1e-8
            xtr[m], xte[m] = (xtr[m] - mu) / sd, (xte[m] - mu) / sd
        xtr[m], xte[m] = xtr[m].astype(np.float32), xte[m].astype(np.float32)
    names = HAR_CLASSES
    lab = root / "activity_labels.txt"
    if lab.exists():
        pairs = [ln.split() for ln in lab.read_text().splitlines() if ln.strip()]
        if len(pairs) == 6:
            names = [p[1] for p in sorted(pairs, key=lambda p: int(p[0]))]
    return SourceData(
        ModalData(xtr, ytr), ModalData(xte, yte), 6, groups=str_, class_names=names,
        info={"uci_har": {"root": str(root), "acc": opts.acc, "subjects_train": len(np.unique(str_))}},
    )


DATASET = Dataset(
    name="uci_har",
    options=UCIHARConfig,
    modalities=lambda opts, path: ("acc", "gyro"),
    build=lambda opts, seed, path, cfg: load(path, opts),
    pairing="instance",
    code=("datasets/uci_har.py",),
    needs_path=True,
    groups=True,
)
