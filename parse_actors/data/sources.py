"""One entry point per dataset: what modalities it has, how big it is, and
how to build it as a `SourceData` (the labelled pool before any partition)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import DataError
from .types import ModalData

FORMAT_VERSION = 1  # bump when the cache file layout changes

# Modules whose code decides what a source builds: their bytes are part of the
# cache key, so editing a generator (a preset's weights, a loader) invalidates
# its old entries without anyone remembering to bump a version.
_BUILDERS = {
    "synthetic": ("synthetic.py", "config.py"),
    "av_digits": ("av_digits.py",),
    "watch_imu": ("watch_imu.py",),
    "uci_har": ("loaders.py",),
    "avmnist": ("loaders.py",),
    "cremad": ("loaders.py",),
    "npz": ("loaders.py",),
}


def _code_digest(name: str) -> str:
    h = hashlib.sha256()
    for f in ("sources.py",) + _BUILDERS[name]:
        h.update((Path(__file__).parent / f).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class SourceData:
    """A dataset as loaded: the pool agents draw from, and the dataset's own
    test split (used as the global test set) when it has one."""

    train: ModalData
    test: ModalData | None
    num_classes: int
    groups: np.ndarray | None = None  # natural group (subject, speaker) of each train sample
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.train.modalities

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(int(d) for d in a.shape[1:]) for m, a in self.train.x.items()}

    def validate(self, where: str = "path") -> None:
        """Shapes, dtypes and label range; raises DataError at `where`."""
        for split, md in (("train", self.train), ("test", self.test)):
            if md is None:
                continue
            if md.y.dtype != np.int64 or md.y.ndim != 1:
                raise DataError(where, f"{split} labels must be int64 of shape (n,), got {md.y.dtype} {md.y.shape}")
            if len(md.y) and (md.y.min() < 0 or md.y.max() >= self.num_classes):
                raise DataError(where, f"{split} labels outside 0..{self.num_classes - 1}")
            if set(md.x) != set(self.train.x):
                raise DataError(where, f"{split} split has modalities {sorted(md.x)}, train has {sorted(self.train.x)}")
            for m, a in md.x.items():
                if a.dtype != np.float32:
                    raise DataError(where, f"{split} modality {m!r} must be float32, got {a.dtype}")
                if a.shape[1:] != self.train.x[m].shape[1:]:
                    raise DataError(where, f"{split} modality {m!r} has shape {a.shape[1:]}, train has {self.train.x[m].shape[1:]}")
                if len(a) != len(md.y):
                    raise DataError(where, f"{split} modality {m!r} has {len(a)} samples, labels have {len(md.y)}")
        if self.groups is not None and len(self.groups) != len(self.train):
            raise DataError(where, f"{len(self.groups)} group ids for {len(self.train)} samples")


def source_modalities(cfg: DataConfig, base_dir: Path | None = None) -> tuple[str, ...]:
    if cfg.name == "synthetic":
        return tuple(cfg.synthetic.modalities)
    if cfg.name in ("av_digits", "avmnist"):
        return ("image", "audio")
    if cfg.name in ("watch_imu", "uci_har"):
        return ("acc", "gyro")
    if cfg.name == "cremad":
        cfg.resolve_path(base_dir)
        return tuple(cfg.cremad.modalities)
    from .loaders import npz_modalities

    return npz_modalities(cfg.resolve_path(base_dir), cfg.npz)


def static_pool_size(cfg: DataConfig, base_dir: Path | None = None) -> int | None:
    """Number of samples without building, where that is cheap; else None."""
    if cfg.name == "synthetic":
        return cfg.synthetic.n_samples
    if cfg.name == "av_digits":
        from .av_digits import n_images

        return n_images() * cfg.av_digits.pairs_per_image
    if cfg.name == "watch_imu":
        from .watch_imu import n_windows

        return n_windows(cfg.watch_imu)
    return None


def cacheable(cfg: DataConfig) -> bool:
    """avmnist and npz already are numpy files: a cache would only copy them."""
    return cfg.name not in ("avmnist", "npz")


def _file_fingerprint(path: Path) -> list:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path) if path.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def cache_key(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> str:
    """Hash of everything the built source depends on."""
    doc = {
        "version": FORMAT_VERSION,
        "name": cfg.name,
        "options": cfg.source_options().model_dump(mode="json"),
        "code": _code_digest(cfg.name),
    }
    if cfg.name in ("synthetic", "av_digits"):
        doc["seed"] = int(seed)
    if cfg.name == "av_digits":
        from .av_digits import ASSET

        doc["asset"] = _file_fingerprint(ASSET)[0][1:2]  # size: a rebuilt asset invalidates
    if cfg.name == "watch_imu":
        from .watch_imu import ASSET as IMU

        doc["asset"] = _file_fingerprint(IMU)[0][1:2]
    if cfg.name in ("uci_har", "cremad", "avmnist", "npz"):
        p = cfg.resolve_path(base_dir)
        doc["path"] = str(p.resolve())
        doc["files"] = _file_fingerprint(p)
    blob = json.dumps(doc, sort_keys=True).encode()
    return f"{cfg.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def build_source(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> SourceData:
    """Build the dataset from scratch (no cache)."""
    if cfg.name == "synthetic":
        from .synthetic import generate

        s = generate(cfg.synthetic, seed)
        src = SourceData(s.data, None, cfg.synthetic.num_classes, info={"synthetic": s.info})
    elif cfg.name == "av_digits":
        from .av_digits import build

        src = build(cfg.av_digits, seed)
    elif cfg.name == "watch_imu":
        from .watch_imu import build

        src = build(cfg.watch_imu)
    else:
        from . import loaders

        path = cfg.resolve_path(base_dir)
        src = getattr(loaders, f"load_{cfg.name}")(path, cfg.source_options(), cfg, seed)
    src.validate()
    return src
