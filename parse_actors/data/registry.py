"""The datasets parse-sim knows, and what the rest of the data side asks of one:
its modalities, its size, its cache key, how to build it.

Adding a dataset: write parse_actors/data/datasets/<name>.py (an options
model, a build function, `DATASET = Dataset(...)`) and add its module to
`_MODULES` below. The `data:` section then has `name: <name>` and a
`<name>:` options key, and the checks, the cache and the builder find it here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from .datasets import av_digits, avmnist, cremad, npz, synthetic, uci_har, watch_imu
from .errors import DataError
from .types import Dataset, SourceData

DataConfig = Any  # a parse_actors.data.config.DataConfig (that module builds its schema from this registry)

_MODULES = (synthetic, av_digits, watch_imu, uci_har, avmnist, cremad, npz)  # the registration, in display order

DATASETS: dict[str, Dataset] = {m.DATASET.name: m.DATASET for m in _MODULES}
DatasetName = Literal[tuple(DATASETS)]  # type: ignore[valid-type]
PATH_DATASETS = tuple(n for n, d in DATASETS.items() if d.needs_path)
if any(DATASETS[n].files is None for n in PATH_DATASETS):  # the cache key and validate list what a build reads
    raise ImportError(f"datasets read from a path must list their files: {[n for n in PATH_DATASETS if DATASETS[n].files is None]}")

FORMAT_VERSION = 1  # bump when the cache file layout changes
_HERE = Path(__file__).parent


def dataset(name: str) -> Dataset:
    return DATASETS[name]


def _code_digest(name: str) -> str:
    """Bytes of this module and of the files that build `name`: editing a
    generator invalidates its cache entries without anyone bumping a version."""
    h = hashlib.sha256()
    for f in ("registry.py",) + DATASETS[name].code:
        h.update((_HERE / f).read_bytes())
    return h.hexdigest()[:16]


def cacheable(cfg: DataConfig) -> bool:
    return DATASETS[cfg.name].cacheable


def _file_fingerprint(path: Path, files: list[Path]) -> list:
    """[name, size, mtime] of each file a build reads (names relative to `path`)."""
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError as e:
            raise DataError("path", f"{p}: cannot be read ({e.strerror or e})") from None
        out.append([str(p.relative_to(path)) if path.is_dir() else p.name, st.st_size, st.st_mtime_ns])
    return out


def cache_key(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> str:
    """Hash of everything the built source depends on."""
    ds = DATASETS[cfg.name]
    doc = {
        "version": FORMAT_VERSION,
        "name": cfg.name,
        "options": cfg.source_options().model_dump(mode="json"),
        "code": _code_digest(cfg.name),
    }
    if ds.seeded:
        doc["seed"] = int(seed)
    if ds.asset is not None:
        doc["asset"] = [ds.asset.stat().st_size]  # a rebuilt asset invalidates
    if ds.needs_path:
        p = cfg.resolve_path(base_dir)
        doc["path"] = str(p.resolve())
        doc["files"] = _file_fingerprint(p, ds.files(cfg.source_options(), p))
    blob = json.dumps(doc, sort_keys=True).encode()
    return f"{cfg.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def build_source(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> SourceData:
    """Build the dataset from scratch (no cache)."""
    ds = DATASETS[cfg.name]
    path = cfg.resolve_path(base_dir) if ds.needs_path else None
    src = ds.build(cfg.source_options(), seed, path, cfg)
    src.validate()
    return src
