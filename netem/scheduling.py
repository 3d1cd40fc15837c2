"""Scheduling at absolute virtual times without a process per event.

`env.timeout(t - env.now)` fires at `now + (t - now)`, which can differ from
`t` in the last bit; the network promises exact arrival times, so it pushes
triggered events into the environment's queue at the absolute time itself.
This uses SimPy's queue layout (`_queue`, `_eid`, stable since SimPy 3); if a
future SimPy hides them, the fallback schedules by delay.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


def make_pusher(env: simpy.Environment) -> Callable[[simpy.Event, float], None]:
    """A function `push(event, t)` that queues an already-triggered event at time t."""
    queue = getattr(env, "_queue", None)
    eid = getattr(env, "_eid", None)
    if isinstance(queue, list) and eid is not None:

        def push(event: simpy.Event, t: float) -> None:
            heappush(queue, (t, NORMAL, next(eid), event))

    else:  # pragma: no cover - only for a SimPy without the private queue

        def push(event: simpy.Event, t: float) -> None:
            env.schedule(event, NORMAL, t - env.now)

    return push


class Scheduler:
    """Call plain functions at absolute virtual times (timers without processes)."""

    __slots__ = ("env", "push")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.push = make_pusher(env)

    def call_at(self, t: float, fn: Callable[..., Any], *args: Any) -> simpy.Event:
        """Run `fn(*args)` when the clock reaches `t` (>= now)."""
        if t < self.env.now:
            raise ValueError(f"cannot schedule at t={t} before now={self.env.now}")
        ev = simpy.Event(self.env)
        ev._ok = True
        ev._value = None
        ev.callbacks.append(lambda _ev: fn(*args))
        self.push(ev, t)
        return ev

    def fire_at(self, event: simpy.Event, value: Any, t: float) -> None:
        """Trigger `event` with `value` so that it is processed at exactly `t`."""
        event._ok = True
        event._value = value
        self.push(event, t)
