"""Which code made a result: a digest of parse-sim's own Python source.

The same scenario and seed give the same metrics only under the same code. A sweep's
worker processes import the package when they start, so a file edited while a sweep
runs (or a sweep resumed on a newer checkout) would mix code versions in one table
without a trace. The digest lets a run record its code (run.json `code`), a sweep
worker refuse a cell when the files differ from those the sweep started with, and a
resumed sweep say which finished runs another version made.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

PACKAGES = ("parse_actors", "netem")
DIGEST_CHARS = 16


def _package_roots() -> list[Path]:
    here = Path(__file__).resolve().parent  # parse_actors/
    return [here.parent / p for p in PACKAGES if (here.parent / p).is_dir()]


def source_digest(roots: list[Path] | None = None) -> str:
    """SHA-256 (first 16 hex digits) over every .py file of the packages, in path order,
    each as its path relative to the packages' parent and its bytes. Read afresh on each
    call (a few ms), so an edit since the last call shows."""
    roots = _package_roots() if roots is None else [Path(r) for r in roots]
    h = hashlib.sha256()
    for root in roots:
        base = root.parent
        for f in sorted(root.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            h.update(f.relative_to(base).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:DIGEST_CHARS]


def source_changed(expected: str | None) -> str | None:
    """Why a cell must not run here: this process's package files differ from those the
    sweep started with (an edit, a checkout), so its code may be neither the sweep's
    nor the files'. None when they match (or no digest was given)."""
    now = source_digest()
    if expected is None or now == expected:
        return None
    return (f"parse-sim's source here differs from the one this sweep started with (digest {expected}, "
            f"here {now}: edited since, or another checkout); the cell did not run: run the sweep command "
            "again to continue on the current code")


def code_identity() -> dict:
    """What run.json records under `code`: the source digest, parse-sim's version and
    the versions of the libraries that compute the metrics."""
    import numpy
    import simpy
    import torch

    from parse_actors import __version__

    return {"source": source_digest(), "parse_sim": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "simpy": simpy.__version__}


def recorded_source(run_dir: Path) -> str | None:
    """The source digest a finished run recorded in its run.json (None: not recorded,
    e.g. written before parse-sim recorded it, or unreadable)."""
    import json

    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    code = info.get("code") if isinstance(info, dict) else None
    return code.get("source") if isinstance(code, dict) else None


def recorded_sources(run_dirs) -> "Counter[str | None]":
    """How many of `run_dirs` recorded each source digest (None: recorded none): what a
    resumed sweep's warning and a report's Code sentence count."""
    from collections import Counter

    return Counter(recorded_source(d) for d in run_dirs)
