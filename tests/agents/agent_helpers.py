"""Shared constants and data for the agent tests (imported by conftest and tests)."""

from __future__ import annotations

import numpy as np

from parse_actors.agents import ModelConfig
from parse_actors.data.types import ModalData

SHAPES = {"image": (1, 8, 8), "audio": (20, 6), "text": (10, 4)}

# name -> modality -> arch
TYPES = {
    "I": {"image": "cnn"},
    "Im": {"image": "mlp"},
    "A": {"audio": "conv1d"},
    "IA": {"image": "cnn", "audio": "conv1d"},
    "IAT": {"image": "cnn", "audio": "conv1d", "text": "gru"},
}

SMALL = ModelConfig(
    slice_width=4,
    backbone_width=12,
    mlp_hidden=[16],
    cnn_channels=[4, 8],
    conv1d_channels=[8],
    conv1d_kernel=3,
    gru_hidden=8,
    fusion_hidden=8,
)


def random_data(mods, n=64, num_classes=5, seed=0) -> ModalData:
    r = np.random.default_rng(seed)
    return ModalData(
        {m: r.standard_normal((n, *SHAPES[m]), dtype=np.float32) for m in mods},
        r.integers(0, num_classes, n).astype(np.int64),
    )
