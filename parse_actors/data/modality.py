"""Who sees which modality, and when: scheduled losses/gains and
training-time missing modalities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ..schema import StrictModel
from .errors import DataError
from .types import ModalityEvent


class ScheduleEntry(StrictModel):
    """A modality lost or gained during the run, by one agent or a set of them."""

    agent: int | None = Field(None, ge=0)
    """One agent index."""
    agents: list[int] | None = None
    """Several agent indices."""
    group: list[str] | None = None
    """Every agent whose initial modality set is exactly this one (order does not matter)."""
    modality: str
    """The modality lost or gained."""
    at_s: float = Field(ge=0)
    """Virtual time in seconds."""
    action: Literal["lose", "gain"] = "lose"
    """lose: the sensor fails; gain: it starts working."""

    @model_validator(mode="after")
    def _one_selector(self):
        given = [k for k in ("agent", "agents", "group") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of agent, agents, group (got {given or 'none'})")
        if self.agents is not None and (not self.agents or min(self.agents) < 0):
            raise ValueError("agents must be a non-empty list of indices >= 0")
        return self


def resolve_schedule(
    entries: Sequence[ScheduleEntry],
    agent_modalities: Sequence[tuple[str, ...]],
    dataset_modalities: Sequence[str],
) -> tuple[list[ModalityEvent], list[tuple[str, ...]]]:
    """Expand selectors into per-agent events in time order, check that each
    is possible when it happens, and return (events, modalities each agent
    ever holds, in dataset order)."""
    n = len(agent_modalities)
    raw = []
    for i, e in enumerate(entries):
        key = f"schedule[{i}]"
        if e.modality not in dataset_modalities:
            raise DataError(f"{key}.modality", f"dataset has no modality {e.modality!r} (has: {', '.join(dataset_modalities)})")
        if e.agent is not None:
            targets, sel = [e.agent], "agent"
        elif e.agents is not None:
            targets, sel = list(e.agents), "agents"
        else:
            targets = [a for a, ms in enumerate(agent_modalities) if set(ms) == set(e.group)]
            sel = "group"
            if not targets:
                raise DataError(f"{key}.group", f"no agent has exactly modalities {sorted(e.group)}")
        for a in targets:
            if not 0 <= a < n:
                raise DataError(f"{key}.{sel}", f"agent {a} does not exist ({n} agents)")
            raw.append((float(e.at_s), i, a, e.modality, e.action))
    raw.sort(key=lambda r: (r[0], r[1], r[2]))
    held = [set(ms) for ms in agent_modalities]
    ever = [set(ms) for ms in agent_modalities]
    events = []
    for t, i, a, m, action in raw:
        key = f"schedule[{i}]"
        if action == "lose":
            if m not in held[a]:
                raise DataError(key, f"agent {a} loses {m!r} at {t:g} s but does not hold it then")
            if len(held[a]) == 1:
                raise DataError(key, f"agent {a} would hold no modality after losing {m!r} at {t:g} s")
            held[a].discard(m)
        else:
            if m in held[a]:
                raise DataError(key, f"agent {a} gains {m!r} at {t:g} s but already holds it")
            held[a].add(m)
            ever[a].add(m)
        events.append(ModalityEvent(agent=a, modality=m, t_s=t, action=action))
    order = list(dataset_modalities)
    return events, [tuple(m for m in order if m in s) for s in ever]


def missing_mask(
    n: int, modalities: Sequence[str], rate: float, rng: np.random.Generator
) -> dict[str, np.ndarray] | None:
    """Per-sample presence flags: each modality is missing with prob. `rate`,
    independently, except that a sample never loses all of them (one is then
    kept at random). None when nothing can go missing (rate 0 or one modality)."""
    k = len(modalities)
    if rate <= 0 or k < 2 or n == 0:
        return None
    present = rng.random((n, k)) >= rate
    none = ~present.any(axis=1)
    present[np.flatnonzero(none), rng.integers(0, k, size=int(none.sum()))] = True
    return {m: present[:, j].copy() for j, m in enumerate(modalities)}
