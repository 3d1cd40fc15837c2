"""Observers that turn netem's message and availability records into events."""

from __future__ import annotations

from typing import Any


class NetworkEventLog:
    """Subscribes to a netem Network; logs `message`, `node` and `topology` events.

    Message events are optional (`output.log_messages`); the byte tables come
    from netem's own accounting and stay exact either way.
    """

    def __init__(self, log: Any, log_messages: bool = True):
        self.log = log
        self.log_messages = log_messages

    def on_message(self, rec: Any) -> None:
        if not self.log_messages:
            return
        p = rec.payload
        self.log.debug(
            "message",
            t=rec.t_arrive if rec.t_arrive is not None else _now(rec),
            src=rec.src,
            dst=rec.dst,
            branch=getattr(p, "key", None),
            kind=rec.tag,
            round=getattr(p, "round", None),
            bytes=int(rec.nbytes),
            t_send=rec.t_send,
            t_arrive=rec.t_arrive,
            status=rec.status,
            reason=rec.reason,
            _console=False,
        )

    def on_node(self, node: int, online: bool, t: float) -> None:
        self.log.debug("node", t=t, agent=node, online=bool(online))

    def on_topology(self, t: float, added: list, removed: list, graph: Any) -> None:
        self.log.debug("topology", t=t, added=[list(e) for e in added], removed=[list(e) for e in removed],
                       edges=graph.number_of_edges())


def _now(rec: Any) -> float:
    t = getattr(rec, "t_done", None)
    return t if t is not None else rec.t_send
