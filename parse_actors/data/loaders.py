"""Loaders for datasets the user downloads, each in its published file layout.

* uci_har  - UCI HAR Dataset as distributed: <root>/{train,test}/Inertial Signals/
             {body_acc|total_acc|body_gyro}_{x,y,z}_{split}.txt (128 readings per
             line), <root>/{split}/y_{split}.txt (1..6), subject_{split}.txt,
             activity_labels.txt. `path` is that root or a folder holding
             "UCI HAR Dataset". Modalities acc (3, 128) and gyro (3, 128).
* avmnist  - MultiBench's AV-MNIST numpy files: image/{train,test}_data.npy
             (n, 784) or (n, 28, 28), audio/{train,test}_data.npy (n, 112, 112),
             {train,test}_labels.npy. Modalities image (1, 28, 28), audio (112, 112).
             Opened memory-mapped; `max_samples` / an integer `global_test_size`
             are applied before anything is copied.
* cremad   - CREMA-D precomputed features: one <clip id>.npy per clip and
             modality, in one sub-folder per modality (default audio/, visual/).
             The label (ANG DIS FEA HAP NEU SAD) and the speaker (group) come
             from the clip id, e.g. 1001_DFA_ANG_XX. Variable-length features are
             padded/cropped on their first axis (max_frames) or averaged (pool).
* npz      - generic: `path` is an .npz file (one pool) or a folder with
             train.npz and optionally test.npz; one array per modality (first
             axis = samples), integer labels under `label_key`, optional groups.

Each one checks that every modality and the labels agree in length and raises
DataError("path", ...) naming the file when they do not.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from ..seeding import rng as seeded_rng
from .config import AVMNISTConfig, CremaDConfig, DataConfig, NpzConfig, UCIHARConfig
from .errors import DataError
from .types import ModalData

# ------------------------------------------------------------------ UCI-HAR

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


def load_uci_har(path: Path, opts: UCIHARConfig, cfg: DataConfig, seed: int):
    from .sources import SourceData

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


# ----------------------------------------------------------------- AV-MNIST


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


def load_avmnist(path: Path, opts: AVMNISTConfig, cfg: DataConfig, seed: int):
    from .sources import SourceData

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


# ------------------------------------------------------------------ CREMA-D

CREMAD_EMOTIONS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


def _fit_frames(a: np.ndarray, opts: CremaDConfig, modality: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if opts.pool == "mean" and a.ndim >= 2:
        return a.mean(axis=0)
    t = opts.frames_for(modality)
    if t is not None and a.ndim >= 1:
        if len(a) >= t:
            return a[:t]
        return np.concatenate([a, np.zeros((t - len(a),) + a.shape[1:], dtype=np.float32)])
    return a


def load_cremad(path: Path, opts: CremaDConfig, cfg: DataConfig, seed: int):
    from .sources import SourceData

    ids_per_mod = {}
    for m, sub in opts.modalities.items():
        d = path / sub
        if not d.is_dir():
            raise DataError("path", f"no folder {d} for modality {m!r}")
        ids_per_mod[m] = {f.stem: f for f in d.glob("*.npy")}
    common = sorted(set.intersection(*(set(v) for v in ids_per_mod.values())))
    if not common:
        raise DataError("path", f"no clip id has a .npy file in every one of {sorted(opts.modalities.values())}")
    ys, groups = [], []
    for cid in common:
        parts = cid.split("_")
        if len(parts) < 3 or parts[2] not in CREMAD_EMOTIONS or not parts[0].isdigit():
            raise DataError("path", f"clip id {cid!r} is not like 1001_DFA_ANG_XX (speaker_sentence_emotion_level)")
        ys.append(CREMAD_EMOTIONS.index(parts[2]))
        groups.append(int(parts[0]))
    x = {}
    for m, files in ids_per_mod.items():
        arrs = [_fit_frames(np.load(files[c], allow_pickle=False), opts, m) for c in common]
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1:
            raise DataError(
                "cremad.max_frames",
                f"modality {m!r} features have {len(shapes)} different shapes (e.g. {sorted(shapes)[:2]}); set max_frames or pool: mean",
            )
        x[m] = np.stack(arrs)
    dropped = {m: len(v) - len(common) for m, v in ids_per_mod.items()}
    return SourceData(
        ModalData(x, np.asarray(ys, dtype=np.int64)), None, len(CREMAD_EMOTIONS),
        groups=np.asarray(groups, dtype=np.int64), class_names=CREMAD_EMOTIONS,
        info={"cremad": {"root": str(path), "clips": len(common), "clips_without_all_modalities": dropped,
                         "speakers": len(set(groups))}},
    )


# ---------------------------------------------------------------------- npz


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


def load_npz(path: Path, opts: NpzConfig, cfg: DataConfig, seed: int):
    from .sources import SourceData

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
