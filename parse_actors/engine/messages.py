"""What travels through netem: metadata and a payload reference, never a tensor copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class BranchMessage:
    """One branch of one agent's export, to one neighbour (kind = the branch's kind)."""

    sender: int
    round: int
    key: str
    payload: Any  # Ray ObjectRef (ray backend) or the exported dict (inline)
    degree: int  # sender's degree on this branch's subgraph (Metropolis-Hastings weights)
    t_send: float = 0.0
    choco: bool = False  # a CHOCO-gossip difference: payload["choco"][receiver][key]
    seq: int = -1  # CHOCO: the sender's message number (its outcome goes back to the sender)


@dataclass
class CapabilityMessage:
    """What an agent holds (branch keys, kinds, shapes), kind `control`."""

    sender: int
    capabilities: dict
    key: str = "capabilities"
    round: int | None = None
