"""What each agent holds once the pool is partitioned: its train / test /
validation splits, restricted to its modalities, with training-time missing
modalities masked.

Each agent's draws come from its own named streams (parse_actors.seeding),
the test split before the validation split, so that `val_fraction` never
moves the test split and nothing here depends on the method.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..seeding import rng as seeded_rng
from .config import DataConfig
from .errors import DataError
from .modality import missing_mask
from .partition import split_train_test
from .types import AgentData, ModalData


def agent_rates(cfg: DataConfig, n_agents: int) -> list[float]:
    """`missing_modality_rate` as one rate per agent."""
    rates = cfg.missing_modality_rate
    return list(rates) if isinstance(rates, list) else [rates] * n_agents


def _splits(cfg: DataConfig, pool: ModalData, idx: np.ndarray, a: int, seed: int,
            ever: tuple[str, ...]) -> tuple[ModalData, ModalData, ModalData | None]:
    """(train, test, validation or None) of agent `a`, whose pool positions are `idx`."""
    tr, te = split_train_test(pool.y[idx], cfg.partition.test_fraction, seeded_rng(seed, "data", "split", a))
    if len(tr) == 0:
        raise DataError("partition.min_samples", f"agent {a} has no training sample left after its test split")
    val = None
    if cfg.partition.val_fraction > 0:
        # its own stream, drawn after the test split: the test split never moves with val_fraction
        keep, va = split_train_test(pool.y[idx[tr]], cfg.partition.val_fraction, seeded_rng(seed, "data", "val", a))
        val = pool.subset(idx[tr[va]]).only(ever)
        tr = tr[keep]
    return pool.subset(idx[tr]).only(ever), pool.subset(idx[te]).only(ever), val


def _mask_missing(train: ModalData, ever: tuple[str, ...], rate: float, rng: np.random.Generator) -> bool:
    """Zero-fill the modalities missing from training samples; True when any mask applies."""
    present = missing_mask(len(train), ever, rate, rng)
    if present is None:
        return False
    for m, keep in present.items():
        train.x[m][~keep] = 0.0
    train.present = present
    return True


def build_agents(cfg: DataConfig, pool: ModalData, parts: list[np.ndarray], agent_modalities: Sequence[tuple[str, ...]],
                 ever: list[tuple[str, ...]], mods: tuple[str, ...], seed: int,
                 global_val: ModalData | None = None) -> list[AgentData]:
    """One AgentData per partition part; `global_val` (shared, not copied) goes to every agent."""
    rates = agent_rates(cfg, len(parts))
    agents = []
    for a, idx in enumerate(parts):
        train, test, val = _splits(cfg, pool, idx, a, seed, ever[a])
        masked = _mask_missing(train, ever[a], rates[a], seeded_rng(seed, "data", "missing", a))
        active = tuple(m for m in mods if m in agent_modalities[a])
        agents.append(AgentData(train=train, test=test, val=val, global_val=global_val, extra={
            "active": active,
            "modalities": ever[a],
            "missing_rate": float(rates[a]) if masked else 0.0,
        }))
    return agents
