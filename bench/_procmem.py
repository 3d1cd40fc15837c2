"""Memory of a process tree, from /proc (Linux): what the benchmarks report as peak memory."""

from __future__ import annotations

import os
import threading


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class PeakMemory(threading.Thread):
    """Peak of the summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.5, root: int | None = None):
        super().__init__(daemon=True)
        self.interval, self.peak, self._stop_ev = interval, 0, threading.Event()
        self.root = os.getpid() if root is None else root

    def run(self) -> None:
        while not self._stop_ev.is_set():
            self.peak = max(self.peak, sum(rss(p) for p in descendants(self.root)))
            self._stop_ev.wait(self.interval)

    def stop(self) -> int:
        self._stop_ev.set()
        self.join()
        return self.peak
