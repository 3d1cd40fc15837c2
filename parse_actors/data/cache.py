"""On-disk cache of built datasets (SourceData), keyed by what built them.

Location: `cache_dir` when given, else $PARSE_SIM_CACHE, else
~/.cache/parse-sim; files go in its data/ folder as <name>-<hash>.npz (plain
npz, no pickles). Writes are atomic (temporary file in the same folder, then
rename), so a crash or two runs racing never leave a half-written entry. On
load the stored shapes and dtypes are checked against the entry's own
manifest; an entry that fails is rebuilt.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import files
from .errors import DataError
from .types import ModalData, SourceData


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("PARSE_SIM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "parse-sim"


def entry_path(key: str, cache_dir=None) -> Path:
    return cache_root(cache_dir) / "data" / f"{key}.npz"


def _manifest(src) -> dict:
    def split(md: ModalData | None):
        if md is None:
            return None
        return {
            "n": len(md),
            "x": {m: {"shape": list(a.shape), "dtype": str(a.dtype)} for m, a in md.x.items()},
        }

    return {
        "train": split(src.train),
        "test": split(src.test),
        "num_classes": src.num_classes,
        "groups": src.groups is not None,
        "class_names": src.class_names,
        "info": src.info,
    }


def save(src, key: str, cache_dir=None) -> Path:
    path = entry_path(key, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"manifest": np.asarray(json.dumps(_manifest(src)))}
    for split, md in (("train", src.train), ("test", src.test)):
        if md is None:
            continue
        arrays[f"{split}.y"] = md.y
        for m, a in md.x.items():
            arrays[f"{split}.x.{m}"] = a
    if src.groups is not None:
        arrays["groups"] = src.groups
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache entry is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(key: str, cache_dir=None):
    """The cached SourceData, or None (missing, unreadable or inconsistent entry)."""
    path = entry_path(key, cache_dir)
    if not path.exists():
        return None
    try:
        with files.Npz(path, kinds=files.NUMBERS + "U") as f:  # headers checked before anything is allocated
            def get(k):
                if k not in f.keys:
                    raise KeyError(k)
                return f.array(k)

            man = json.loads(str(get("manifest")))
            splits = {}
            for split in ("train", "test"):
                spec = man[split]
                if spec is None:
                    splits[split] = None
                    continue
                y = get(f"{split}.y")
                if y.shape != (spec["n"],) or y.dtype != np.int64:
                    raise ValueError(f"{split} labels: {y.dtype} {y.shape}")
                x = {}
                for m, s in spec["x"].items():
                    a = get(f"{split}.x.{m}")
                    if list(a.shape) != s["shape"] or str(a.dtype) != s["dtype"]:
                        raise ValueError(f"{split}.{m}: {a.dtype} {a.shape}, manifest says {s}")
                    x[m] = a
                splits[split] = ModalData(x, y)
            groups = get("groups") if man["groups"] else None
        src = SourceData(splits["train"], splits["test"], man["num_classes"], groups, man["class_names"], man["info"])
        src.validate()
        return src
    except (OSError, ValueError, KeyError, TypeError, DataError) as e:  # corrupt or stale: rebuild
        warnings.warn(f"ignoring unreadable data cache entry {path}: {e}", stacklevel=2)
        return None
