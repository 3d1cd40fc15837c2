"""UCI HAR Dataset (smartphone accelerometer + gyroscope), in its published layout.

<root>/{train,test}/Inertial Signals/{body_acc|total_acc|body_gyro}_{x,y,z}_{split}.txt
(128 readings per line), <root>/{split}/y_{split}.txt (1..6),
subject_{split}.txt, activity_labels.txt. `path` is that root or a folder
holding "UCI HAR Dataset". Modalities acc (3, 128) and gyro (3, 128); groups:
subjects. Only those fixed names are looked at (parse_actors.data.files: no
walk, no link out of `path`); every file is checked to agree in length with
the labels, to hold only finite numbers, labels 1..6 (DataError("path", ...)
naming the file and line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from ...schema import StrictModel
from .. import files
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


class UCIHARConfig(StrictModel):
    """UCI Human Activity Recognition (smartphone), original text layout, downloaded by the user."""

    acc: Literal["body", "total"] = "body"
    """Accelerometer signal: body_acc (gravity removed) or total_acc."""
    standardize: bool = True
    """Scale each channel to zero mean, unit std using training-split statistics."""


HAR_CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
SPLITS = ("train", "test")
MAX_LABELS_BYTES = 1 << 20  # activity_labels.txt: six short lines


def _har_root(path: Path) -> Path:
    for root in (path, path / "UCI HAR Dataset"):
        if (root / "train").is_dir() and (root / "test").is_dir():
            return root
    raise DataError("path", f"{path} is not a UCI HAR Dataset folder: expected train/ and test/ (each with "
                            "y_<split>.txt, subject_<split>.txt and 'Inertial Signals/') in it or in "
                            "'UCI HAR Dataset/' inside it")


def _signal_files(root: Path, split: str, acc: str) -> dict[str, list[Path]]:
    d = root / split / "Inertial Signals"
    return {mod: [d / f"{prefix}_{axis}_{split}.txt" for axis in "xyz"]
            for mod, prefix in (("acc", f"{acc}_acc"), ("gyro", "body_gyro"))}


def har_files(path: Path, opts: UCIHARConfig) -> list[Path]:
    """Every file the build reads, at the layout's fixed names (each must exist inside `path`)."""
    root = _har_root(path)
    out = []
    for split in SPLITS:
        out += [root / split / f"y_{split}.txt", root / split / f"subject_{split}.txt"]
        out += [f for fs in _signal_files(root, split, opts.acc).values() for f in fs]
    if os.path.lexists(root / "activity_labels.txt"):
        out.append(root / "activity_labels.txt")
    return [files.inside(path, f) for f in out]


def _har_split(root: Path, split: str, acc: str, budget: files.Budget) -> tuple[dict, np.ndarray, np.ndarray]:
    d = root / split
    fy, fs = d / f"y_{split}.txt", d / f"subject_{split}.txt"
    my = files.read_numbers(fy, budget, 1)
    y = files.labels(files.integral(my, str(fy)), str(fy), 6, first=1, name_of=my.line) - 1
    subj = files.integral(files.read_numbers(fs, budget, 1), str(fs))
    if len(subj) != len(y):
        raise DataError("path", f"{fs}: {len(subj)} lines, {fy.name} has {len(y)}")
    x = {}
    for mod, chan_files in _signal_files(root, split, acc).items():
        chans = []
        for f in chan_files:
            a = files.read_numbers(f, budget).values
            if len(a) != len(y):
                raise DataError("path", f"{f}: {f.name} has {len(a)} rows, y_{split}.txt has {len(y)} labels")
            chans.append(a)
        lens = {c.shape[1] for c in chans}
        if len(lens) != 1:
            raise DataError("path", f"{chan_files[0].parent}: {split} {mod} x/y/z files have different window "
                                    f"lengths {sorted(lens)}")
        x[mod] = np.stack(chans, axis=1)  # (n, 3, T)
    if x["acc"].shape[2] != x["gyro"].shape[2]:
        raise DataError("path", f"{root / split}: accelerometer and gyroscope windows differ in length")
    return x, y, subj


def _class_names(f: Path) -> list[str]:
    """activity_labels.txt: one '<id> <NAME>' line per id 1..6."""
    with files.open_regular(f) as (fp, size):
        if size > MAX_LABELS_BYTES:
            raise files.fail(f, f"larger than {MAX_LABELS_BYTES >> 20} MiB; expected six lines '<id> <NAME>'")
        try:
            text = fp.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise files.fail(f, f"not UTF-8 text (byte {e.start})") from None
    names: dict[int, str] = {}
    for i, ln in enumerate(text.splitlines(), 1):
        parts = ln.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit() or not 1 <= int(parts[0]) <= 6 or int(parts[0]) in names:
            raise files.fail(f, f"line {i}: expected '<id> <NAME>' with a new id in 1..6, got {ln[:60]!r}")
        names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(1, 7)):
        raise files.fail(f, f"names activities {sorted(names)}, expected 1..6")
    return [names[k] for k in range(1, 7)]


def load(path: Path, opts: UCIHARConfig) -> SourceData:
    listed = har_files(path, opts)
    root = _har_root(path)
    budget = files.Budget()
    xtr, ytr, str_ = _har_split(root, "train", opts.acc, budget)
    xte, yte, _ = _har_split(root, "test", opts.acc, budget)
    for m in xtr:
        if xtr[m].shape[1:] != xte[m].shape[1:]:
            raise DataError("path", f"{root}: train and test {m} windows differ: {xtr[m].shape[1:]} vs "
                                    f"{xte[m].shape[1:]}")
        if opts.standardize:
            mu = xtr[m].mean(axis=(0, 2), keepdims=True)
            sd = xtr[m].std(axis=(0, 2), keepdims=True) + 1e-8
            xtr[m], xte[m] = (xtr[m] - mu) / sd, (xte[m] - mu) / sd
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
            xtr[m], xte[m] = xtr[m].astype(np.float32), xte[m].astype(np.float32)
        for split, a in (("train", xtr[m]), ("test", xte[m])):  # finite text, beyond float32 once scaled
            files.check_finite(a, f"{root / split}: {m} signals")
    lab = root / "activity_labels.txt"
    names = _class_names(lab) if lab in listed else HAR_CLASSES
    return SourceData(
        ModalData(xtr, ytr), ModalData(xte, yte), 6, groups=str_, class_names=names,
        info={"uci_har": {"root": str(root), "acc": opts.acc, "subjects_train": len(np.unique(str_))}},
    )


DATASET = Dataset(
    name="uci_har",
    options=UCIHARConfig,
    modalities=lambda opts, path: ("acc", "gyro"),
    build=lambda opts, seed, path, cfg: load(path, opts),
    files=lambda opts, path: har_files(path, opts),
    pairing="instance",
    code=("datasets/uci_har.py", "files.py"),
    needs_path=True,
    groups=True,
)
