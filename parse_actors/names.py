"""Shared names: the rule for modality names (scenario, data side, agents) and
the vocabulary of slice and traffic kinds (agents, metrics, reports).

A modality name is an identifier (letters, digits, _; not starting with a
digit): it is used as a dict key, a part of metric names joined with '/' and
'+', a file stem and a YAML key, so none of those characters may appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MODALITY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_modality_names(names: Iterable[str]) -> list[str]:
    """`names` as a list; ValueError when one is not an identifier or a name repeats."""
    names = list(names)
    for m in names:
        if not isinstance(m, str) or not MODALITY_NAME.fullmatch(m):
            raise ValueError(f"modality name {m!r} must be an identifier (letters, digits, _)")
    if len(set(names)) != len(names):
        raise ValueError(f"modality names repeat: {names}")
    return names


SLICE_KINDS = ("red", "uni", "syn")
"""PARSE's feature slices: redundant, unique, synergistic."""
BRANCH_KINDS = ("encoder", *SLICE_KINDS, "head")
"""Kinds of parameter branches (`head`: the monolithic baselines' heads)."""
TRAFFIC_KINDS = (*BRANCH_KINDS, "control")
"""Kinds of messages in the byte accounting (`control`: capability and protocol messages)."""
