"""Generic arrays: one array per modality plus labels, in .npz files.

`path` is an .npz file (one pool) or a folder with train.npz and optionally
test.npz; one array per modality (first axis = samples), integer labels under
`label_key`, optional groups under `groups_key`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from ...schema import StrictModel
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


class NpzConfig(StrictModel):
    """Generic arrays: one array per modality plus labels, in .npz files."""

    modalities: list[str] | None = None
    """Arrays to use as modalities; null: every array except the label and group keys."""
    label_key: str = "y"
    """Name of the label array (integers)."""
    groups_key: str | None = None
    """Optional array of natural group ids (e.g. subject) for partition kind: natural."""
    pairing: Literal["instance", "label"] = "instance"
    """instance: sample i of every modality comes from the same event (one recording); label: modalities were paired within a class only."""


def _npz_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        tr, te = path / "train.npz", path / "test.npz"
        if not tr.exists():
            raise DataError("path", f"folder {path} has no train.npz")
        return tr, (te if te.exists() else None)
    if path.suffix != ".npz":
        raise DataError("path", f"{path} is neither an .npz file nor a folder with train.npz")
    return path, None


def npz_modalities(path: Path, opts: NpzConfig) -> tuple[str, ...]:
    tr, _ = _npz_files(path)
    try:
        with np.load(tr, allow_pickle=False) as f:
            keys = list(f.files)
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # a broken zip, not an npz, ...
        raise DataError("path", f"cannot read {tr.name}: {e}") from None
    if opts.label_key not in keys:
        raise DataError("npz.label_key", f"{tr.name} has no array {opts.label_key!r} (arrays: {', '.join(keys)})")
    if opts.groups_key is not None and opts.groups_key not in keys:
        raise DataError("npz.groups_key", f"{tr.name} has no array {opts.groups_key!r}")
    if opts.modalities is not None:
        missing = [m for m in opts.modalities if m not in keys]
        if missing:
            raise DataError("npz.modalities", f"{tr.name} has no array {missing[0]!r} (arrays: {', '.join(keys)})")
        return tuple(opts.modalities)
    mods = tuple(k for k in keys if k not in (opts.label_key, opts.groups_key))
    if not mods:
        raise DataError("path", f"{tr.name} has labels but no modality arrays")
    return mods


def _read_npz(f: Path, mods: tuple[str, ...], opts: NpzConfig, need_groups: bool):
    with np.load(f, allow_pickle=False) as z:
        for k in mods + (opts.label_key,):
            if k not in z.files:
                raise DataError("path", f"{f.name} has no array {k!r}")
        y = np.asarray(z[opts.label_key])
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
            raise DataError("path", f"{f.name}: {opts.label_key!r} must be a 1-d array of integer labels")
        x = {}
        for m in mods:
            a = np.asarray(z[m])
            if a.ndim < 1 or len(a) != len(y):
                raise DataError("path", f"{f.name}: modality {m!r} has {len(a) if a.ndim else 0} samples, {opts.label_key!r} has {len(y)}")
            if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
                raise DataError("path", f"{f.name}: modality {m!r} must be real numbers, got {a.dtype}")
            x[m] = a.astype(np.float32, copy=False)
            if not np.all(np.isfinite(x[m])):
                raise DataError("path", f"{f.name}: modality {m!r} has NaN or infinite values")
        groups = None
        if need_groups and opts.groups_key is not None:
            if opts.groups_key not in z.files:
                raise DataError("npz.groups_key", f"{f.name} has no array {opts.groups_key!r}")
            groups = np.asarray(z[opts.groups_key])
            if groups.shape != y.shape:
                raise DataError("path", f"{f.name}: {opts.groups_key!r} has {len(groups)} entries, labels have {len(y)}")
    return x, y.astype(np.int64), groups


def load(path: Path, opts: NpzConfig) -> SourceData:
    mods = npz_modalities(path, opts)
    tr, te = _npz_files(path)
    xtr, ytr, gtr = _read_npz(tr, mods, opts, True)
    test = None
    values = np.unique(ytr)
    if te is not None:
        xte, yte, _ = _read_npz(te, mods, opts, False)
        for m in mods:
            if xte[m].shape[1:] != xtr[m].shape[1:]:
                raise DataError("path", f"test.npz modality {m!r} has shape {xte[m].shape[1:]}, train.npz has {xtr[m].shape[1:]}")
        values = np.union1d(values, yte)
    remap = lambda y: np.searchsorted(values, y).astype(np.int64)
    if te is not None:
        test = ModalData(xte, remap(yte))
    if gtr is not None:
        gtr = np.unique(gtr, return_inverse=True)[1].astype(np.int64)
    return SourceData(
        ModalData(xtr, remap(ytr)), test, max(len(values), 2), groups=gtr,
        class_names=[str(v) for v in values.tolist()],
        info={"npz": {"files": [str(tr)] + ([str(te)] if te else []), "label_values": values.tolist()}},
    )


DATASET = Dataset(
    name="npz",
    options=NpzConfig,
    modalities=lambda opts, path: npz_modalities(path, opts),
    build=lambda opts, seed, path, cfg: load(path, opts),
    pairing=lambda opts: opts.pairing,
    code=("datasets/npz.py",),
    needs_path=True,
    groups=lambda opts: opts.groups_key is not None,
    cacheable=False,
)
