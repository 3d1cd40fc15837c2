"""Plain containers the data side hands to agents (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


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
