"""Plain containers of the data side (numpy only, no torch): what agents hold,
what a dataset builds, and a dataset's registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import DataError


@dataclass
class ModalData:
    """Samples of several modalities with labels.

    `x[m]` has shape (n, *shape_m) and dtype float32 for every modality m the
    holder sees; `y` has shape (n,) and dtype int64. All arrays share n.

    `present` (optional) flags, per modality, which samples really carry it:
    `present[m][i]` is False when modality m of sample i is missing (its
    `x[m][i]` is then all zeros). None, or a modality absent from the dict,
    means every sample has it. It travels with `subset` and `only`.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    present: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.y)
        for m, a in self.x.items():
            if len(a) != n:
                raise ValueError(f"modality {m!r} has {len(a)} samples, labels have {n}")
        for m, a in (self.present or {}).items():
            if m not in self.x:
                raise ValueError(f"mask for modality {m!r} that the data does not have")
            if a.shape != (n,) or a.dtype != np.bool_:
                raise ValueError(f"mask of modality {m!r} must be bool of shape ({n},), got {a.dtype} {a.shape}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.x)

    def subset(self, idx: np.ndarray) -> ModalData:
        present = None if self.present is None else {m: a[idx] for m, a in self.present.items()}
        return ModalData({m: a[idx] for m, a in self.x.items()}, self.y[idx], present)

    def only(self, modalities) -> ModalData:
        present = None
        if self.present is not None:
            present = {m: self.present[m] for m in modalities if m in self.present} or None
        return ModalData({m: self.x[m] for m in modalities}, self.y, present)

    def mask(self, modality: str) -> np.ndarray:
        """Bool (n,): which samples carry `modality` (all True when none is missing)."""
        if self.present is not None and modality in self.present:
            return self.present[modality]
        return np.ones(len(self.y), dtype=bool)


@dataclass
class AgentData:
    """What one agent holds: its training split and a held-out test split from
    the same distribution, restricted to the agent's modalities."""

    train: ModalData
    test: ModalData
    val: ModalData | None = None  # held out from training data for tuning (data.partition.val_fraction)
    global_val: ModalData | None = None  # the global validation set (data.global_val_size), one object shared by all
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModalityEvent:
    """Agent `agent` loses or gains `modality` at virtual time `t_s` (seconds).

    The data side only lists these; the engine applies them. An agent that
    gains a modality already holds its samples (AgentData carries every
    modality the agent ever has; `extra["active"]` lists those active at t=0).
    """

    agent: int
    modality: str
    t_s: float
    action: Literal["lose", "gain"]


@dataclass
class SourceData:
    """A dataset as loaded: the pool agents draw from, and the dataset's own
    test split (used as the global test set) when it has one."""

    train: ModalData
    test: ModalData | None
    num_classes: int
    groups: np.ndarray | None = None  # natural group (subject, speaker) of each train sample
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.train.modalities

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(int(d) for d in a.shape[1:]) for m, a in self.train.x.items()}

    def validate(self, where: str = "path") -> None:
        """Shapes, dtypes and label range; raises DataError at `where`."""
        for split, md in (("train", self.train), ("test", self.test)):
            if md is None:
                continue
            if md.y.dtype != np.int64 or md.y.ndim != 1:
                raise DataError(where, f"{split} labels must be int64 of shape (n,), got {md.y.dtype} {md.y.shape}")
            if len(md.y) and (md.y.min() < 0 or md.y.max() >= self.num_classes):
                raise DataError(where, f"{split} labels outside 0..{self.num_classes - 1}")
            if set(md.x) != set(self.train.x):
                raise DataError(where, f"{split} split has modalities {sorted(md.x)}, train has {sorted(self.train.x)}")
            for m, a in md.x.items():
                if a.dtype != np.float32:
                    raise DataError(where, f"{split} modality {m!r} must be float32, got {a.dtype}")
                if a.shape[1:] != self.train.x[m].shape[1:]:
                    raise DataError(where, f"{split} modality {m!r} has shape {a.shape[1:]}, train has {self.train.x[m].shape[1:]}")
                if len(a) != len(md.y):
                    raise DataError(where, f"{split} modality {m!r} has {len(a)} samples, labels have {len(md.y)}")
        if self.groups is not None and len(self.groups) != len(self.train):
            raise DataError(where, f"{len(self.groups)} group ids for {len(self.train)} samples")


Pairing = Literal["instance", "label"]


@dataclass(frozen=True)
class Dataset:
    """Everything the data side needs to know about one dataset (its registry entry).

    Callables take the dataset's options (the `data.<name>` section) and, for
    datasets the user downloads, the resolved `path`; `build` also gets the
    seed and the whole `data:` section (for options such as max_samples that
    a loader can apply before copying anything).
    """

    name: str
    options: type  # the pydantic model of `data.<name>`
    modalities: Callable[[Any, Path | None], tuple[str, ...]]
    build: Callable[[Any, int, Path | None, Any], SourceData]
    pairing: Pairing | Callable[[Any], Pairing]
    """'instance': sample i of every modality comes from the same event (one
    recording); 'label': modalities are paired within a class only (sample i's
    image and sound share the label, nothing else)."""
    code: tuple[str, ...]
    """Files (relative to parse_actors/data) whose bytes decide what `build`
    makes: part of the cache key, so editing a builder invalidates its entries."""
    needs_path: bool = False
    files: Callable[[Any, Path], list[Path]] | None = None
    """The files `build` reads under `path`, found from the format's fixed names
    without reading them (never a recursive walk); raises DataError when `path`
    is not laid out as the format says. Their sizes and times key the cache."""
    pool_size: Callable[[Any], int | None] | None = None
    """Number of samples without building, where that is cheap."""
    groups: bool | Callable[[Any], bool] = False
    """Whether the dataset has natural groups (subjects, speakers) for partition kind: natural."""
    input_shapes: Callable[[Any], dict[str, tuple[int, ...]]] | None = None
    """Per-sample shape of each modality without building, where that is cheap
    (lets validate check encoder architectures against the data)."""
    check: Callable[[Any], None] | None = None
    """Option checks that need more than one field; raises DataError (path relative to `data:`)."""
    modalities_key: str = "name"
    """Key named when agents use a modality the dataset lacks."""
    seeded: bool = False
    """The build draws from the run seed (the seed is then part of the cache key)."""
    asset: Path | None = None
    """Shipped file the build reads (its size is part of the cache key)."""
    cacheable: bool = True
    """False when the files already are numpy arrays (a cache would only copy them)."""

    def pairing_of(self, opts: Any) -> Pairing:
        return self.pairing(opts) if callable(self.pairing) else self.pairing

    def has_groups(self, opts: Any) -> bool:
        return self.groups(opts) if callable(self.groups) else self.groups
