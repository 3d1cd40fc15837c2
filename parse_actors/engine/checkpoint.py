"""On-disk checkpoints of a run, for `parse-sim run --resume RUN_DIR`.

A checkpoint holds what the virtual timeline cannot recompute: every agent's
state (parameters, optimizer, RNG), the exports of messages still waiting in
an inbox or in flight (merged after the checkpoint), and the finished rows. The timeline itself
(compute times, network, churn) is recomputed from the seed on resume, so a
resumed run ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from parse_actors import atomic
from parse_actors.regular_file import open_regular

NAME = "checkpoint.pt"
FORMAT = 1
"""The layout of a checkpoint (resume.py `state_at`); with the scenario's fingerprint
(scenario/fingerprint.py) under "scenario". Checkpoints without either were written
before resume checked them and are refused (resume_checks.py)."""


def path_of(run_dir: Path) -> Path:
    return Path(run_dir) / NAME


def save(run_dir: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic.write_bytes(path_of(run_dir), buf.getvalue())


def _safe_globals() -> list:
    """What a checkpoint may contain besides tensors and plain containers: numpy
    arrays and scalars (agents' batch order and RNG state), nothing that runs code."""
    import numpy as np

    reconstruct = getattr(np, "_core", np).multiarray._reconstruct
    dtypes = [type(np.dtype(t)) for t in ("int64", "int32", "uint32", "uint64", "float32", "float64", "bool")]
    return [reconstruct, np.ndarray, np.dtype, *dtypes]


def load(run_dir: Path) -> dict | None:
    """Load with torch's weights-only unpickler: a run directory copied from
    elsewhere cannot run code through its checkpoint. Only a regular file is opened
    (a link or a FIFO in its place: ScenarioError); None when there is none."""
    p = path_of(run_dir)
    try:
        os.lstat(p)
    except FileNotFoundError:
        return None
    with open_regular(p) as f, torch.serialization.safe_globals(_safe_globals()):
        return torch.load(f, map_location="cpu", weights_only=True)


def remove(run_dir: Path) -> None:
    path_of(run_dir).unlink(missing_ok=True)
