"""On-disk checkpoints of a run, for `parse-sim run --resume RUN_DIR`.

A checkpoint holds what the virtual timeline cannot recompute: every agent's
state (parameters, optimizer, RNG), messages that arrived after a barrier and
wait for the next merge, and the finished metrics rows. The timeline itself
(compute times, network, churn) is recomputed from the seed on resume, so a
resumed run ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from parse_actors import atomic

NAME = "checkpoint.pt"


def path_of(run_dir: Path) -> Path:
    return Path(run_dir) / NAME


def save(run_dir: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic.write_bytes(path_of(run_dir), buf.getvalue())


def load(run_dir: Path) -> dict | None:
    p = path_of(run_dir)
    if not p.exists():
        return None
    # our own file, but it carries dataclasses (pending messages): full unpickling is needed
    return torch.load(p, map_location="cpu", weights_only=False)


def remove(run_dir: Path) -> None:
    path_of(run_dir).unlink(missing_ok=True)
