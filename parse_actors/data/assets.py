"""Datasets shipped inside the package (parse_actors/data/assets/*.npz)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import DataError

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=None)
def load_asset(filename: str, rebuild_script: str) -> dict:
    """All arrays of a shipped asset, read once per process."""
    path = ASSETS / filename
    if not path.exists():
        raise DataError("name", f"shipped asset missing at {path}; rebuild it with {rebuild_script}")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
