"""Sharing policies: which of my branches go to a neighbour.

A policy sees only my capabilities and what the neighbour advertised (no global
table). Whatever the policy, a branch is only ever sent when the neighbour holds
the same key with the same signature; the policy then narrows that set. All
policies here are symmetric (i sends k to j iff j sends k to i), which is what
makes Metropolis-Hastings averaging keep each branch's mean, and what lets a
receiver check a branch on receipt with its own policy (`exchange.accepts`).

`clock` is the phase clock (see `exchange`): the round in sync mode, the
evaluation period in async mode. Plans are built in `exchange.plan_exchange`.
"""

from __future__ import annotations

from typing import Mapping

from .branches import BranchInfo, modalities_of, role

Caps = Mapping[str, BranchInfo]


class SharingPolicy:
    """Base: the common branches (same key and signature) the policy `allows`."""

    name = "base"

    def select(self, mine: Caps, theirs: Caps, clock: int = 0) -> list[str]:
        common = [k for k in sorted(mine) if k in theirs and theirs[k].signature == mine[k].signature]
        if not common:
            return []
        return [k for k in common if self.allows(k, mine, theirs, clock)]

    def allows(self, key: str, mine: Caps, theirs: Caps, clock: int) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoSharing(SharingPolicy):
    """`local`: train alone."""

    name = "none"

    def select(self, mine: Caps, theirs: Caps, clock: int = 0) -> list[str]:
        return []


class ShareAll(SharingPolicy):
    """Everything both hold (`dsgd_full`; `parse_share_all`, whose modality-agnostic
    slice keys make "everything both hold" reach agents of other modalities)."""

    name = "all"

    def allows(self, key: str, mine: Caps, theirs: Caps, clock: int) -> bool:
        return True


class ParsePolicy(SharingPolicy):
    """Partial alignment. Key matching already restricts backbones to
    same-modality same-arch peers, red/uni projections and uni heads to
    same-modality peers, fusion and syn head to the same modality set, and lets
    `head/red` reach everyone; on top of that the syn projections
    (`fission/<m>/syn`) only go to agents with the same modality set, since a
    syn slice means something only relative to its partner modalities."""

    name = "parse"

    def allows(self, key: str, mine: Caps, theirs: Caps, clock: int) -> bool:
        if mine[key].kind == "syn":
            return modalities_of(mine) == modalities_of(theirs)
        return True


class RoleFilter(SharingPolicy):
    """Branches of the given roles only (`dsgd_modality`: backbones,
    `dsgd_task`: heads, `dsgd_hybrid`: both)."""

    def __init__(self, roles: tuple[str, ...], name: str) -> None:
        self.roles = frozenset(roles)
        self.name = name

    def allows(self, key: str, mine: Caps, theirs: Caps, clock: int) -> bool:
        return role(key) in self.roles

    def __repr__(self) -> str:
        return f"RoleFilter({sorted(self.roles)}, {self.name!r})"


class HarmonyPolicy(SharingPolicy):
    """Two phases: modality-wise encoder gossip while clock < `switch_round`, then
    fusion and head gossip among multimodal agents only.

    The phase is a function of the clock alone, and the clock must be one every
    agent agrees on, or neighbours sit in different phases and the exchange is
    no longer symmetric: in sync mode the round index, in async mode the
    evaluation period floor(virtual_time / eval_every_s) (not an agent's own
    cycle count, which differs between fast and slow agents)."""

    name = "harmony"

    def __init__(self, switch_round: int = 10) -> None:
        self.switch_round = int(switch_round)

    def phase(self, clock: int) -> int:
        return 1 if clock < self.switch_round else 2

    def allows(self, key: str, mine: Caps, theirs: Caps, clock: int) -> bool:
        if self.phase(clock) == 1:
            return role(key) == "backbone"
        multimodal = len(modalities_of(mine)) >= 2 and len(modalities_of(theirs)) >= 2
        return multimodal and role(key) in ("fusion", "head")

    def __repr__(self) -> str:
        return f"HarmonyPolicy(switch_round={self.switch_round})"
