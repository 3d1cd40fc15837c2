"""From a `data:` section and the agents' modality sets to what each agent holds.

Steps, each with its own named seed stream (parse_actors.seeding), so that
changing one option never reshuffles the others:
  source (cached) -> global test set -> global validation set (holdout.py)
  -> max_samples -> partition over agents (agent_splits.py:)
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
from . import cache, holdout
from .agent_splits import build_agents
from .config import DataConfig
from .errors import DataError
from .modality import resolve_schedule
from .partition import label_histograms, label_skew, partition_indices
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
    global_val: ModalData | None = None  # data.global_val_size: what tuning chooses on

    def summary(self) -> str:
        i = self.info
        sizes = [len(a.train) for a in self.agents]
        return (
            f"data {i['name']}: {len(self.modalities)} modalities {', '.join(self.modalities)}, "
            f"{self.num_classes} classes; {len(self.agents)} agents, train {min(sizes)}..{max(sizes)} samples "
            f"({i['partition']['kind']}, label skew {i['partition']['label_skew_tv']:.2f}); "
            f"global test {len(self.global_test)}"
            + ("" if self.global_val is None else f", global validation {len(self.global_val)}")
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
    pool, gtest, pool_groups, test_from = holdout.global_test(cfg, src, seed)
    pool, gval, pool_groups = holdout.global_validation(cfg, pool, pool_groups, src.num_classes, seed)
    pool, pool_groups = holdout.cap_pool(cfg, pool, pool_groups, seed)

    parts = partition_indices(pool.y, n_agents, cfg.partition, seeded_rng(seed, "data", "partition"), pool_groups)
    events, ever = resolve_schedule(cfg.schedule, agent_modalities, mods)
    agents = build_agents(cfg, pool, parts, agent_modalities, ever, mods, seed, gval)
    sizes = {"global_test_from": test_from, "dataset_train": len(src.train),
             "dataset_test": None if src.test is None else len(src.test), "pool": len(pool),
             "global_test": len(gtest)}
    if gval is not None:  # (only then: the info of runs without one stays as it was)
        sizes["global_val"] = len(gval)
    return FederatedData(
        modalities=mods,
        input_shapes=src.input_shapes,
        num_classes=src.num_classes,
        agents=agents,
        global_test=gtest,
        info=_info(cfg, seed, src, sizes, agents, agent_modalities, pool.y, parts, events, cache_info),
        modality_schedule=events,
        class_names=src.class_names,
        global_val=gval,
    )


def _info(cfg: DataConfig, seed: int, src: SourceData, sizes: dict, agents: list[AgentData],
          agent_modalities: list[tuple[str, ...]], pool_y: np.ndarray, parts: list[np.ndarray],
          events: list[ModalityEvent], cache_info: dict) -> dict:
    """The data description a run keeps (summary.json `dataset`; JSON-ready)."""
    return {
        "name": cfg.name,
        "pairing": cfg.pairing(),
        "seed": int(seed),
        "modalities": list(src.modalities),
        "input_shapes": {m: list(s) for m, s in src.input_shapes.items()},
        "num_classes": src.num_classes,
        "class_names": src.class_names,
        "source": src.info,
        "sizes": {
            "dataset_train": sizes["dataset_train"],
            "dataset_test": sizes["dataset_test"],
            "pool": sizes["pool"],
            "global_test": sizes["global_test"],
            "global_test_from": sizes["global_test_from"],
            **({"global_val": sizes["global_val"]} if "global_val" in sizes else {}),
            "agents_train": [len(a.train) for a in agents],
            "agents_test": [len(a.test) for a in agents],
            "agents_val": [0 if a.val is None else len(a.val) for a in agents],
        },
        "partition": {
            **cfg.partition.model_dump(mode="json"),
            "label_skew_tv": round(label_skew(pool_y, parts, src.num_classes), 4),
            "label_histograms": label_histograms(pool_y, parts, src.num_classes).tolist(),
        },
        "agent_modalities": [list(m) for m in agent_modalities],
        "missing_modality_rate": [a.extra["missing_rate"] for a in agents],
        "schedule": [{"agent": e.agent, "modality": e.modality, "t_s": e.t_s, "action": e.action} for e in events],
        "cache": cache_info,
    }
