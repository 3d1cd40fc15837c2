"""From a `data:` section and the agents' modality sets to what each agent holds.

Steps, each with its own named seed stream (parse_actors.seeding), so that
changing one option never reshuffles the others:
  source (cached) -> global test set -> max_samples -> partition over agents
  -> per-agent stratified train/test split -> stratified validation split of
  what training keeps (`partition.val_fraction`; for choosing hyperparameters,
  never the test data) -> modality restriction -> training-time missing
  modalities; the schedule is resolved alongside.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..seeding import rng as seeded_rng
from . import cache
from .config import DataConfig
from .errors import DataError
from .modality import missing_mask, resolve_schedule
from .partition import label_histograms, label_skew, partition_indices, split_train_test, stratified_take
from .registry import build_source, cache_key, cacheable
from .types import AgentData, ModalData, ModalityEvent, SourceData


@dataclass
class FederatedData:
    """Everything the engine needs from the data side for one run."""

    modalities: tuple[str, ...]
    input_shapes: dict[str, tuple[int, ...]]
    num_classes: int
    agents: list[AgentData]
    global_test: ModalData
    info: dict
    modality_schedule: list[ModalityEvent] = field(default_factory=list)
    class_names: list[str] | None = None

    def summary(self) -> str:
        i = self.info
        sizes = [len(a.train) for a in self.agents]
        return (
            f"data {i['name']}: {len(self.modalities)} modalities {', '.join(self.modalities)}, "
            f"{self.num_classes} classes; {len(self.agents)} agents, train {min(sizes)}..{max(sizes)} samples "
            f"({i['partition']['kind']}, label skew {i['partition']['label_skew_tv']:.2f}); "
            f"global test {len(self.global_test)}"
        )


def load_source(
    cfg: DataConfig, seed: int, base_dir: Path | None = None, cache_dir=None
) -> tuple[SourceData, dict]:
    """The built dataset, from the cache when an entry for these options exists."""
    if not (cfg.cache and cacheable(cfg)):
        return build_source(cfg, seed, base_dir), {"enabled": False}
    key = cache_key(cfg, seed, base_dir)
    src = cache.load(key, cache_dir)
    if src is not None:
        return src, {"enabled": True, "key": key, "hit": True}
    src = build_source(cfg, seed, base_dir)
    try:
        cache.save(src, key, cache_dir)
    except OSError as e:  # a read-only home must not stop a run
        warnings.warn(f"could not write data cache {cache.entry_path(key, cache_dir)}: {e}", stacklevel=2)
    return src, {"enabled": True, "key": key, "hit": False}


def verify_source(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> None:
    """Read a downloaded dataset's files as a run reads them (every check of its
    reader: headers, contents, labels), without the cache: what `parse-sim
    validate` does beyond the scenario checks. Datasets built from code or
    shipped assets have nothing a user could have damaged."""
    if cfg.dataset().needs_path:
        build_source(cfg, seed, base_dir)


def _global_test(cfg: DataConfig, src: SourceData, seed: int) -> tuple[ModalData, ModalData, np.ndarray | None, str]:
    """(pool, global test, pool groups, where the test came from)."""
    r = seeded_rng(seed, "data", "global_test")
    gts = cfg.global_test_size
    if src.test is not None:
        n = len(src.test)
        if gts is None:
            k = n
        elif isinstance(gts, float):
            k = int(round(n * gts))
        else:
            if gts > n:
                raise DataError("global_test_size", f"{gts} samples asked, the dataset's test split has {n}")
            k = gts
        take, _ = stratified_take(src.test.y, k, r)
        return src.train, src.test.subset(take), src.groups, "dataset test split"
    n = len(src.train)
    k = int(round(n * (0.2 if gts is None else gts))) if not isinstance(gts, int) else gts
    if k >= n:
        raise DataError("global_test_size", f"{k} samples asked, the dataset has {n}")
    take, rest = stratified_take(src.train.y, k, r)
    groups = None if src.groups is None else src.groups[rest]
    return src.train.subset(rest), src.train.subset(take), groups, "held out from the pool"


def build_federated_data(
    cfg: DataConfig,
    agent_modalities: Sequence[Sequence[str]],
    seed: int = 0,
    base_dir: Path | None = None,
    cache_dir=None,
) -> FederatedData:
    """Build every agent's data for one run; deterministic in (cfg, agent_modalities, seed)."""
    agent_modalities = [tuple(m) for m in agent_modalities]
    n_agents = len(agent_modalities)
    groups = sorted({tuple(sorted(m)) for m in agent_modalities})
    for a, ms in enumerate(agent_modalities):
        if not ms:
            raise DataError("partition", f"agent {a} has no modality")
    cfg.check(groups, n_agents, base_dir)

    src, cache_info = load_source(cfg, seed, base_dir, cache_dir)
    mods = src.modalities
    pool, gtest, pool_groups, test_from = _global_test(cfg, src, seed)
    if cfg.max_samples is not None and len(pool) > cfg.max_samples:
        keep = np.sort(seeded_rng(seed, "data", "max_samples").permutation(len(pool))[: cfg.max_samples])
        pool = pool.subset(keep)
        pool_groups = None if pool_groups is None else pool_groups[keep]

    parts = partition_indices(pool.y, n_agents, cfg.partition, seeded_rng(seed, "data", "partition"), pool_groups)
    events, ever = resolve_schedule(cfg.schedule, agent_modalities, mods)
    rates = cfg.missing_modality_rate
    rates = list(rates) if isinstance(rates, list) else [rates] * n_agents

    agents = []
    for a, idx in enumerate(parts):
        tr, te = split_train_test(pool.y[idx], cfg.partition.test_fraction, seeded_rng(seed, "data", "split", a))
        if len(tr) == 0:
            raise DataError("partition.min_samples", f"agent {a} has no training sample left after its test split")
        val = None
        if cfg.partition.val_fraction > 0:
            # its own stream, drawn after the test split: the test split never moves with val_fraction
            keep, va = split_train_test(pool.y[idx[tr]], cfg.partition.val_fraction,
                                        seeded_rng(seed, "data", "val", a))
            val = pool.subset(idx[tr[va]]).only(ever[a])
            tr = tr[keep]
        train = pool.subset(idx[tr]).only(ever[a])
        test = pool.subset(idx[te]).only(ever[a])
        present = missing_mask(len(train), ever[a], rates[a], seeded_rng(seed, "data", "missing", a))
        if present is not None:
            for m, keep in present.items():
                train.x[m][~keep] = 0.0
            train.present = present
        active = tuple(m for m in mods if m in agent_modalities[a])
        agents.append(
            AgentData(
                train=train,
                test=test,
                val=val,
                extra={
                    "active": active,
                    "modalities": ever[a],
                    "missing_rate": float(rates[a]) if present is not None else 0.0,
                },
            )
        )

    info = {
        "name": cfg.name,
        "pairing": cfg.pairing(),
        "seed": int(seed),
        "modalities": list(mods),
        "input_shapes": {m: list(s) for m, s in src.input_shapes.items()},
        "num_classes": src.num_classes,
        "class_names": src.class_names,
        "source": src.info,
        "sizes": {
            "dataset_train": len(src.train),
            "dataset_test": None if src.test is None else len(src.test),
            "pool": len(pool),
            "global_test": len(gtest),
            "global_test_from": test_from,
            "agents_train": [len(a.train) for a in agents],
            "agents_test": [len(a.test) for a in agents],
            "agents_val": [0 if a.val is None else len(a.val) for a in agents],
        },
        "partition": {
            **cfg.partition.model_dump(mode="json"),
            "label_skew_tv": round(label_skew(pool.y, parts, src.num_classes), 4),
            "label_histograms": label_histograms(pool.y, parts, src.num_classes).tolist(),
        },
        "agent_modalities": [list(m) for m in agent_modalities],
        "missing_modality_rate": [a.extra["missing_rate"] for a in agents],
        "schedule": [{"agent": e.agent, "modality": e.modality, "t_s": e.t_s, "action": e.action} for e in events],
        "cache": cache_info,
    }
    return FederatedData(
        modalities=mods,
        input_shapes=src.input_shapes,
        num_classes=src.num_classes,
        agents=agents,
        global_test=gtest,
        info=info,
        modality_schedule=events,
        class_names=src.class_names,
    )
