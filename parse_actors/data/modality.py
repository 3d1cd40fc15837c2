"""Who sees which modality, and when: scheduled losses/gains and
training-time missing modalities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import ScheduleEntry
from .errors import DataError
from .types import ModalityEvent


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
