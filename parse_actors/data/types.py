"""Plain containers the data side hands to agents (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ModalData:
    """Samples of several modalities with labels.

    `x[m]` has shape (n, *shape_m) and dtype float32 for every modality m the
    holder sees; `y` has shape (n,) and dtype int64. All arrays share n.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.y)
        for m, a in self.x.items():
            if len(a) != n:
                raise ValueError(f"modality {m!r} has {len(a)} samples, labels have {n}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.x)

    def subset(self, idx: np.ndarray) -> "ModalData":
        return ModalData({m: a[idx] for m, a in self.x.items()}, self.y[idx])

    def only(self, modalities) -> "ModalData":
        return ModalData({m: self.x[m] for m in modalities}, self.y)


@dataclass
class AgentData:
    """What one agent holds: its training split and a held-out test split from
    the same distribution, restricted to the agent's modalities."""

    train: ModalData
    test: ModalData
    extra: dict = field(default_factory=dict)
