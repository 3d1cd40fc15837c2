"""Generic arrays: one array per modality plus labels, in .npz files.

`path` is an .npz file (one pool) or a folder with train.npz and optionally
test.npz; one array per modality (first axis = samples), integer labels under
`label_key`, optional groups under `groups_key`.
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


MAX_CLASSES = 10_000
"""Distinct label values an npz dataset may have (each is a class every head predicts)."""


def npz_files(path: Path) -> list[Path]:
    """The files the format names: the one .npz given, or a folder's train.npz (and test.npz)."""
    if path.is_dir():
        tr, te = path / "train.npz", path / "test.npz"
        if not os.path.lexists(tr):
            raise DataError("path", f"folder {path} has no train.npz")
        return [files.inside(path, tr)] + ([files.inside(path, te)] if os.path.lexists(te) else [])
    if path.suffix != ".npz":
        raise DataError("path", f"{path} is neither an .npz file nor a folder with train.npz")
    return [path]


def _names(keys: list[str], most: int = 12) -> str:
    return ", ".join(keys[:most]) + (f", ... ({len(keys)} in all)" if len(keys) > most else "")


def _check_layout(z: files.Npz, opts: NpzConfig, mods: tuple[str, ...] | None) -> tuple[str, ...]:
    """Keys, shapes and dtypes of one archive from its headers alone (nothing is
    decompressed beyond them); the modalities it holds."""
    keys = z.keys
    name = z.path.name  # the key errors below name the option; the file is data.path's
    if opts.label_key not in keys:
        raise DataError("npz.label_key", f"{name} has no array {opts.label_key!r} (arrays: {_names(keys)})")
    if mods is None:
        if opts.modalities is not None:
            missing = [m for m in opts.modalities if m not in keys]
            if missing:
                raise DataError("npz.modalities", f"{name} has no array {missing[0]!r} (arrays: {_names(keys)})")
            mods = tuple(opts.modalities)
        else:
            mods = tuple(k for k in keys if k not in (opts.label_key, opts.groups_key))
            if not mods:
                raise DataError("path", f"{z.path} has labels but no modality arrays")
    for m in mods:
        if m not in keys:
            raise DataError("path", f"{z.path} has no array {m!r} (train.npz has it)")
    y = z.header(opts.label_key)
    where = z.where(opts.label_key)
    if not (len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[1] == 1)):
        raise files.fail(where, f"expected integer labels, one per sample (shape (n,)); got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise files.fail(where, f"expected integer labels (class ids), got {y.dtype}")
    if y.n == 0:
        raise files.fail(where, "holds no samples")
    for m in mods:
        h = z.header(m)
        if len(h.shape) < 1 or h.n != y.n:
            raise files.fail(z.path, f"array {m!r} has {h.n} samples, {opts.label_key!r} has {y.n}")
        if 0 in h.shape[1:]:
            raise files.fail(z.where(m), f"samples of shape {h.shape[1:]} hold no values")
    return mods


def _layout(path: Path, opts: NpzConfig) -> tuple[list[Path], tuple[str, ...]]:
    """(files, modalities), every header checked; test.npz must match train.npz."""
    fs = npz_files(path)
    with files.Npz(fs[0]) as z:
        mods = _check_layout(z, opts, None)
        if opts.groups_key is not None:
            if opts.groups_key not in z.keys:
                raise DataError("npz.groups_key", f"{fs[0].name} has no array {opts.groups_key!r}")
            g = z.header(opts.groups_key)
            n = z.header(opts.label_key).n
            if g.shape not in ((n,), (n, 1)) or g.dtype.kind not in "iu":
                raise files.fail(z.where(opts.groups_key), f"groups must be one integer per sample, "
                                 f"shape ({n},); got {g.describe()}")
        shapes = {m: z.header(m).shape[1:] for m in mods}
    if len(fs) > 1:
        with files.Npz(fs[1]) as z:
            _check_layout(z, opts, mods)
            for m in mods:
                if z.header(m).shape[1:] != shapes[m]:
                    raise files.fail(z.where(m), f"samples have shape {z.header(m).shape[1:]}, "
                                     f"train.npz has {shapes[m]}")
    return fs, mods


def npz_modalities(path: Path, opts: NpzConfig) -> tuple[str, ...]:
    return _layout(path, opts)[1]


def _read_npz(f: Path, mods: tuple[str, ...], opts: NpzConfig, need_groups: bool, budget: files.Budget):
    with files.Npz(f) as z:
        y = files.labels(z.array(opts.label_key, budget), z.where(opts.label_key))
        x = {}
        for m in mods:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
                x[m] = z.array(m, budget).astype(np.float32, copy=False)
            files.check_finite(x[m], z.where(m))  # after the cast: 1e300 is finite, its float32 is not
        groups = None
        if need_groups and opts.groups_key is not None:
            groups = files.labels(z.array(opts.groups_key, budget), z.where(opts.groups_key))
    return x, y, groups


def load(path: Path, opts: NpzConfig) -> SourceData:
    fs, mods = _layout(path, opts)
    budget = files.Budget()
    xtr, ytr, gtr = _read_npz(fs[0], mods, opts, True, budget)
    test = None
    values = np.unique(ytr)
    if len(fs) > 1:
        xte, yte, _ = _read_npz(fs[1], mods, opts, False, budget)
        values = np.union1d(values, yte)
    if len(values) > MAX_CLASSES:
        raise files.fail(fs[0], f"array {opts.label_key!r} has {len(values):,} distinct labels (at most "
                         f"{MAX_CLASSES:,}: is it the label array?)")
    remap = lambda y: np.searchsorted(values, y).astype(np.int64)
    if len(fs) > 1:
        test = ModalData(xte, remap(yte))
    if gtr is not None:
        gtr = np.unique(gtr, return_inverse=True)[1].astype(np.int64)
    return SourceData(
        ModalData(xtr, remap(ytr)), test, max(len(values), 2), groups=gtr,
        class_names=[str(v) for v in values.tolist()],
        info={"npz": {"files": [str(f) for f in fs], "label_values": values.tolist()}},
    )


DATASET = Dataset(
    name="npz",
    options=NpzConfig,
    modalities=lambda opts, path: npz_modalities(path, opts),
    files=lambda opts, path: npz_files(path),
    build=lambda opts, seed, path, cfg: load(path, opts),
    pairing=lambda opts: opts.pairing,
    code=("datasets/npz.py",),
    needs_path=True,
    groups=lambda opts: opts.groups_key is not None,
    cacheable=False,
)
