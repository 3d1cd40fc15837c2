"""Byte and message counters per (src, dst, tag), the basis of "communication per slice".

The network updates plain lists in a dict on its hot path; this class only
reads them, so counting costs a dict lookup and two additions per message.
"""

from __future__ import annotations

from collections.abc import Iterator

# Column order of the per-key counter lists kept by the network.
MESSAGES, BYTES_SENT, BYTES_DELIVERED, BYTES_DROPPED, DELIVERED, DROPPED = range(6)
FIELDS = ("messages", "bytes_sent", "bytes_delivered", "bytes_dropped", "delivered", "dropped")


def new_cell() -> list[int]:
    return [0, 0, 0, 0, 0, 0]


class Accounting:
    """Counters of messages and bytes by directed pair and tag.

    `bytes_sent` counts at send time, `bytes_delivered` / `bytes_dropped` when
    a message is resolved, so `bytes_sent - bytes_delivered - bytes_dropped` is
    what is still in flight (or held).
    """

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int, str], list[int]] = {}

    def __getitem__(self, key: tuple[int, int, str]) -> dict[str, int]:
        cell = self.cells.get(key)
        return dict(zip(FIELDS, cell if cell is not None else new_cell()))

    def __iter__(self) -> Iterator[tuple[int, int, str]]:
        return iter(sorted(self.cells, key=_sort_key))

    def __len__(self) -> int:
        return len(self.cells)

    def rows(self) -> list[dict]:
        """One dict per (src, dst, tag): src, dst, tag and the counters, sorted."""
        out = []
        for key in sorted(self.cells, key=_sort_key):
            src, dst, tag = key
            row = {"src": src, "dst": dst, "tag": tag}
            row.update(zip(FIELDS, self.cells[key]))
            out.append(row)
        return out

    def by_tag(self) -> dict[str, dict[str, int]]:
        """Totals per tag (slice kind), summed over all pairs."""
        out: dict[str, list[int]] = {}
        for (_, _, tag), cell in self.cells.items():
            acc = out.setdefault(tag, new_cell())
            for i, v in enumerate(cell):
                acc[i] += v
        return {tag: dict(zip(FIELDS, out[tag])) for tag in sorted(out, key=str)}

    def by_node(self) -> dict[int, dict[str, int]]:
        """Per node: bytes/messages it sent and bytes it received (delivered to it)."""
        out: dict[int, dict[str, int]] = {}
        for (src, dst, _), cell in self.cells.items():
            s = out.setdefault(src, {"messages_sent": 0, "bytes_sent": 0, "bytes_received": 0})
            s["messages_sent"] += cell[MESSAGES]
            s["bytes_sent"] += cell[BYTES_SENT]
            d = out.setdefault(dst, {"messages_sent": 0, "bytes_sent": 0, "bytes_received": 0})
            d["bytes_received"] += cell[BYTES_DELIVERED]
        return dict(sorted(out.items()))

    def totals(self, tag: str | None = None) -> dict[str, int]:
        """Grand totals, or those of one tag."""
        acc = new_cell()
        for (_, _, t), cell in self.cells.items():
            if tag is None or t == tag:
                for i, v in enumerate(cell):
                    acc[i] += v
        return dict(zip(FIELDS, acc))


def _sort_key(key: tuple[int, int, str]) -> tuple[int, int, str]:
    return (key[0], key[1], str(key[2]))
