"""Datasets shipped inside the package (parse_actors/data/assets/*.npz)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import files
from .errors import DataError

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=None)
def load_asset(filename: str, rebuild_script: str) -> dict:
    """All arrays of a shipped asset, read once per process, as any user file is
    read (parse_actors.data.files): a damaged asset is one line, not a crash."""
    path = ASSETS / filename
    if not path.exists():
        raise DataError("name", f"shipped asset missing at {path}; rebuild it with {rebuild_script}")
    try:
        with files.Npz(path, kinds=files.NUMBERS + "U") as z:
            budget = files.Budget()
            return {k: z.array(k, budget) for k in z.keys}
    except DataError as e:
        raise DataError("name", f"shipped asset {e.message}; rebuild it with {rebuild_script}") from None
