"""Packet loss models and scheduled outages.

Loss is decided per packet (MTU-sized pieces of a message) but reported per
message: the transport turns "k of n packets lost" into a drop or a delay.
"""

from __future__ import annotations

import math

import numpy as np

from . import config as C


def n_packets(nbytes: int, mtu: int) -> int:
    """Packets of a message: ceil(nbytes / mtu), at least 1."""
    return max(1, -(-int(nbytes) // mtu))


class LossModel:
    """No loss; the base of the others."""

    active = False

    def message_lost(self, link, n: int) -> bool:
        """Whether at least one of n packets is lost (datagram transport)."""
        return False

    def lost_packets(self, link, n: int) -> int:
        """How many of n packets are lost (reliable transport)."""
        return 0


class BernoulliLossModel(LossModel):
    """Each packet lost independently with probability p."""

    active = True

    def __init__(self, p: float, rng: np.random.Generator):
        self.p = p
        self.rng = rng
        self._log1mp = math.log1p(-p) if p < 1 else -math.inf

    def message_loss_probability(self, n: int) -> float:
        """1 - (1 - p)^n, computed without cancellation."""
        return 1.0 if self.p >= 1 else -math.expm1(n * self._log1mp)

    def message_lost(self, link, n: int) -> bool:
        return self.p > 0 and self.rng.random() < self.message_loss_probability(n)

    def lost_packets(self, link, n: int) -> int:
        return int(self.rng.binomial(n, self.p)) if self.p > 0 else 0


class GilbertElliottChannel:
    """A two-state Markov loss channel stepped once per packet.

    State 0 is good, 1 is bad; after each packet the chain moves good->bad with
    probability p_gb and bad->good with p_bg, so sojourns are geometric (mean
    bad burst 1/p_bg packets). Sampling jumps whole sojourns, so a message of
    many packets costs a few draws, not one per packet.
    """

    __slots__ = ("p_gb", "p_bg", "loss_good", "loss_bad", "rng", "state")

    def __init__(
        self,
        p_gb: float,
        p_bg: float,
        loss_good: float,
        loss_bad: float,
        rng: np.random.Generator,
        state: int | None = None,
    ):
        self.p_gb, self.p_bg = p_gb, p_bg
        self.loss_good, self.loss_bad = loss_good, loss_bad
        self.rng = rng
        if state is None:
            pi_bad = p_gb / (p_gb + p_bg) if p_gb + p_bg > 0 else 0.0
            state = int(rng.random() < pi_bad)
        self.state = state

    @property
    def stationary_loss(self) -> float:
        """Long-run fraction of lost packets."""
        pi_bad = self.p_gb / (self.p_gb + self.p_bg)
        return pi_bad * self.loss_bad + (1 - pi_bad) * self.loss_good

    def _runs(self, n: int):
        """Yield (state, run length) covering n packets, advancing the chain."""
        rng = self.rng
        while n > 0:
            s = self.state
            leave = self.p_gb if s == 0 else self.p_bg
            sojourn = int(rng.geometric(leave)) if leave > 0 else n + 1
            if sojourn <= n:
                yield s, sojourn
                n -= sojourn
                self.state = 1 - s
            else:
                yield s, n
                n = 0

    def lost(self, n: int) -> int:
        """Number of lost packets among the next n."""
        total = 0
        for s, run in self._runs(n):
            q = self.loss_bad if s else self.loss_good
            if q >= 1.0:
                total += run
            elif q > 0.0:
                total += int(self.rng.binomial(run, q))
        return total

    def sample(self, n: int) -> np.ndarray:
        """Loss mask (True = lost) of the next n packets."""
        out = np.zeros(n, dtype=bool)
        i = 0
        for s, run in self._runs(n):
            q = self.loss_bad if s else self.loss_good
            if q >= 1.0:
                out[i : i + run] = True
            elif q > 0.0:
                out[i : i + run] = self.rng.random(run) < q
            i += run
        return out


class GilbertElliottLossModel(LossModel):
    """One Gilbert-Elliott channel per directed link (state kept across messages)."""

    active = True

    def __init__(self, cfg: C.GilbertElliottLoss, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng

    def channel(self, link) -> GilbertElliottChannel:
        ch = link.loss_state
        if ch is None:
            c = self.cfg
            ch = link.loss_state = GilbertElliottChannel(c.p_gb, c.p_bg, c.loss_good, c.loss_bad, self.rng)
        return ch

    def message_lost(self, link, n: int) -> bool:
        return self.channel(link).lost(n) > 0

    def lost_packets(self, link, n: int) -> int:
        return self.channel(link).lost(n)


def make_loss_model(cfg, rng: np.random.Generator) -> LossModel:
    if isinstance(cfg, C.BernoulliLoss):
        return BernoulliLossModel(cfg.p_packet, rng) if cfg.p_packet > 0 else LossModel()
    if isinstance(cfg, C.GilbertElliottLoss):
        return GilbertElliottLossModel(cfg, rng)
    return LossModel()


class Outages:
    """Scheduled down intervals per directed link."""

    def __init__(self, outages: list[C.Outage] = ()):
        self.windows: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for o in outages:
            self.add(o.src, o.dst, o.start_s, o.end_s)
            if o.both_directions:
                self.add(o.dst, o.src, o.start_s, o.end_s)

    def __bool__(self) -> bool:
        return bool(self.windows)

    def add(self, src: int, dst: int, start: float, end: float) -> None:
        w = self.windows.setdefault((src, dst), [])
        w.append((start, end))
        w.sort()

    def is_down(self, src: int, dst: int, t: float) -> bool:
        return any(a <= t < b for a, b in self.windows.get((src, dst), ()))

    def overlap(self, src: int, dst: int, t0: float, t1: float) -> tuple[float, float] | None:
        """The first outage of src->dst that intersects the interval [t0, t1], if any."""
        for a, b in self.windows.get((src, dst), ()):
            if a > t1:
                break
            if b > t0 and (a < t1 or a <= t0):
                return a, b
        return None
