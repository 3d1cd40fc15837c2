"""The record of one message: what was sent, when, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PENDING = "pending"
DELIVERED = "delivered"
DROPPED = "dropped"


@dataclass(slots=True)
class MessageRecord:
    """One message through the network.

    `status` is "pending" until the message is resolved, then "delivered"
    (`t_arrive` set) or "dropped" (`t_arrive` None, `reason` says why: "loss",
    "offline", "outage", "retries", "no_link", "link_down", "hold_timeout").
    `t_done` is the virtual time of resolution (arrival or drop).
    """

    msg_id: int
    src: int
    dst: int
    tag: str
    nbytes: int
    t_send: float
    t_arrive: float | None = None
    status: str = PENDING
    reason: str | None = None
    payload: Any = field(default=None, repr=False, compare=False)
    retries: int = 0
    t_done: float | None = None

    @property
    def delay(self) -> float | None:
        """End-to-end delay (arrival - send), None unless delivered."""
        return None if self.t_arrive is None else self.t_arrive - self.t_send

    def as_dict(self) -> dict:
        """The record without its payload, for tables and JSON lines."""
        return {
            "msg_id": self.msg_id,
            "src": self.src,
            "dst": self.dst,
            "tag": self.tag,
            "nbytes": self.nbytes,
            "t_send": self.t_send,
            "t_arrive": self.t_arrive,
            "status": self.status,
            "reason": self.reason,
            "retries": self.retries,
            "t_done": self.t_done,
        }
