"""Ready-made observers (any object with on_message / on_send / on_node / on_topology / on_speed works)."""

from __future__ import annotations

from .records import MessageRecord


class MessageLog:
    """Keeps every resolved MessageRecord, in the order they were resolved."""

    def __init__(self) -> None:
        self.records: list[MessageRecord] = []

    def on_message(self, rec: MessageRecord) -> None:
        self.records.append(rec)

    def delivered(self) -> list[MessageRecord]:
        return [r for r in self.records if r.status == "delivered"]

    def dropped(self, reason: str | None = None) -> list[MessageRecord]:
        return [r for r in self.records if r.status == "dropped" and (reason is None or r.reason == reason)]


class EventLog:
    """Keeps availability, topology and speed changes as tuples, for inspection and tests."""

    def __init__(self) -> None:
        self.nodes: list[tuple[float, int, bool]] = []
        self.topology: list[tuple[float, list, list]] = []
        self.speeds: list[tuple[float, int, float]] = []

    def on_node(self, node: int, online: bool, t: float) -> None:
        self.nodes.append((t, node, online))

    def on_topology(self, t: float, added, removed, graph) -> None:
        self.topology.append((t, list(added), list(removed)))

    def on_speed(self, node: int, speed: float, t: float) -> None:
        self.speeds.append((t, node, speed))
