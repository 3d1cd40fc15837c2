"""The exchange plan: which branches go to which neighbour, and whether a branch
that arrives may be merged. One pure implementation, used by the engine on
send (`plan_exchange`, `degrees`) and by the receiver (`accepts`), so what the
tests check is what runs execute.

`clock` is the policy's phase clock (only Harmony has phases): the round index
in sync mode; in async mode the index of the current evaluation period,
floor(virtual_time / eval_every_s), which every agent agrees on (an agent's own
cycle count would not be: neighbours would sit in different phases).
"""

from __future__ import annotations

from typing import Mapping

from .branches import BranchInfo, prioritize
from .policies import SharingPolicy

Caps = Mapping[str, BranchInfo]


def plan_exchange(
    policy: SharingPolicy, mine: Caps, neighbours: Mapping[int, Caps | None], clock: int
) -> dict[int, list[str]]:
    """Neighbour id -> the keys to send it, in priority order (`prioritize`: thin
    links get the small, widely shared slice branches first). Neighbours whose
    capabilities are unknown (None) or that get nothing are left out; neighbour
    ids come out sorted."""
    plan: dict[int, list[str]] = {}
    for j in sorted(neighbours):
        theirs = neighbours[j]
        if theirs is None:
            continue
        keys = policy.select(mine, theirs, clock)
        if keys:
            plan[j] = prioritize(keys, mine)
    return plan


def degrees(plan: Mapping[int, list[str]]) -> dict[str, int]:
    """My degree on each branch's subgraph: how many neighbours the plan sends it to
    (branches sent to nobody are absent)."""
    deg: dict[str, int] = {}
    for keys in plan.values():
        for k in keys:
            deg[k] = deg.get(k, 0) + 1
    return deg


def accepted(policy: SharingPolicy, mine: Caps, sender_caps: Caps | None, clock: int) -> frozenset[str]:
    """Every key `accepts` would take from this sender (one policy evaluation)."""
    if sender_caps is None:
        return frozenset()
    return frozenset(policy.select(mine, sender_caps, clock))


def accepts(policy: SharingPolicy, mine: Caps, sender_caps: Caps | None, clock: int, key: str) -> bool:
    """Whether a receiver with capabilities `mine` may merge branch `key` from a
    sender advertising `sender_caps`: exactly when its own plan would send `key`
    to that sender at `clock` (every policy is symmetric). An unknown sender
    (no capabilities received yet) is refused."""
    return key in accepted(policy, mine, sender_caps, clock)
