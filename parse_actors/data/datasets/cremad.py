"""CREMA-D with per-clip precomputed features (audio and video of one clip).

One <clip id>.npy per clip and modality, in one sub-folder per modality
(default audio/, visual/). The label (ANG DIS FEA HAP NEU SAD) and the speaker
(group) come from the clip id, e.g. 1001_DFA_ANG_XX. Variable-length features
are padded/cropped on their first axis (max_frames) or averaged (pool).
Only those sub-folders are listed (not recursively), and each clip file is
read as parse_actors.data.files reads arrays (header checked against the
file, no pickles, finite values, bounded memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...names import check_modality_names
from ...schema import StrictModel
from .. import files
from ..errors import DataError
from ..types import Dataset, ModalData, SourceData


class CremaDConfig(StrictModel):
    """CREMA-D with per-clip precomputed features: <path>/<subdir>/<clip id>.npy per modality."""

    modalities: dict[str, str] = Field(default_factory=lambda: {"audio": "audio", "visual": "visual"})
    """Modality name -> sub-folder holding one <clip id>.npy per clip (clip id as in CREMA-D, e.g. 1001_DFA_ANG_XX)."""
    max_frames: int | dict[str, int] | None = None
    """Pad with zeros / crop the first (time) axis of the feature arrays to this length: one number for every modality or {modality: length}; null: arrays must already agree."""
    pool: Literal["none", "mean"] = "none"
    """mean: average over the first (time) axis, giving one vector per clip."""

    @field_validator("modalities")
    @classmethod
    def _names(cls, v):
        check_modality_names(v)
        if not v:
            raise ValueError("at least one modality")
        return v

    @field_validator("max_frames")
    @classmethod
    def _frames(cls, v):
        vals = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(t < 1 for t in vals):
            raise ValueError("lengths must be >= 1")
        return v

    def frames_for(self, modality: str) -> int | None:
        return self.max_frames.get(modality) if isinstance(self.max_frames, dict) else self.max_frames


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


def _clips(path: Path, opts: CremaDConfig) -> dict[str, dict[str, Path]]:
    """{modality: {clip id: file}}: one listing of each modality's sub-folder (not recursive)."""
    out = {}
    for m, sub in opts.modalities.items():
        d = path / sub
        if not d.is_dir():
            raise DataError("path", f"no folder {d} for modality {m!r} (cremad.modalities names one "
                                    "sub-folder of <clip id>.npy files per modality)")
        files.inside(path, d)
        out[m] = {f.name[:-4]: files.inside(path, f) for f in files.listing(d, ".npy")}
    return out


def cremad_files(path: Path, opts: CremaDConfig) -> list[Path]:
    return [f for clips in _clips(path, opts).values() for f in clips.values()]


def load(path: Path, opts: CremaDConfig) -> SourceData:
    ids_per_mod = _clips(path, opts)
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
    budget = files.Budget()
    x = {}
    for m, clips in ids_per_mod.items():
        arrs = []
        for c in common:
            a = files.load_npy(clips[c], budget)
            if a.ndim >= 1 and len(a) == 0:
                raise files.fail(clips[c], f"has no frames (shape {a.shape})")
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
                a = _fit_frames(a, opts, m)
            files.check_finite(a[None], str(clips[c]), lambda i: "the clip's features (after max_frames/pool)")
            arrs.append(a)
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1:
            raise DataError(
                "cremad.max_frames",
                f"modality {m!r} features have {len(shapes)} different shapes (e.g. {sorted(shapes)[:2]}); set max_frames or pool: mean",
            )
        budget.take(sum(a.nbytes for a in arrs), f"{path / opts.modalities[m]}: {m} features stacked")
        x[m] = np.stack(arrs)
    dropped = {m: len(v) - len(common) for m, v in ids_per_mod.items()}
    return SourceData(
        ModalData(x, np.asarray(ys, dtype=np.int64)), None, len(CREMAD_EMOTIONS),
        groups=np.asarray(groups, dtype=np.int64), class_names=CREMAD_EMOTIONS,
        info={"cremad": {"root": str(path), "clips": len(common), "clips_without_all_modalities": dropped,
                         "speakers": len(set(groups))}},
    )


DATASET = Dataset(
    name="cremad",
    options=CremaDConfig,
    modalities=lambda opts, path: tuple(opts.modalities),
    build=lambda opts, seed, path, cfg: load(path, opts),
    files=lambda opts, path: cremad_files(path, opts),
    pairing="instance",
    code=("datasets/cremad.py", "files.py"),
    needs_path=True,
    groups=True,
)
