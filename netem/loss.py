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

    def occupancy(self, n: int) -> tuple[int, int]:
        """(good, bad) packet counts of the next n packets, advancing the chain.

        Sojourns are drawn in vectorised batches, so long messages on a
        fast-switching channel stay cheap.
        """
        rng = self.rng
        counts = [0, 0]
        while n > 0:
            s = self.state
            p_stay_first = self.p_gb if s == 0 else self.p_bg
            p_second = self.p_bg if s == 0 else self.p_gb
            if p_stay_first <= 0.0:
                counts[s] += n
                break
            # Enough sojourn pairs to cover n packets on average, within bounds.
            cycles = n * p_stay_first * p_second / (p_stay_first + p_second) if p_second > 0.0 else 1.0
            if cycles < 4:  # few switches: scalar draws are cheaper than arrays
                for st, run in self._runs(n):
                    counts[st] += run
                break
            batch = int(min(65_536, 16 + 1.25 * cycles))
            runs = np.empty(2 * batch, dtype=np.int64)
            runs[0::2] = rng.geometric(p_stay_first, batch)
            runs[1::2] = rng.geometric(p_second, batch) if p_second > 0.0 else n + 1
            cum = np.cumsum(runs)
            j = int(np.searchsorted(cum, n, "left"))
            if j >= len(runs):  # every drawn sojourn fits: an even number of switches
                counts[s] += int(runs[0::2].sum())
                counts[1 - s] += int(runs[1::2].sum())
                n -= int(cum[-1])
                continue
            before = int(cum[j - 1]) if j > 0 else 0
            counts[s] += int(runs[0:j:2].sum())
            counts[1 - s] += int(runs[1:j:2].sum())
            run_state = s if j % 2 == 0 else 1 - s
            counts[run_state] += n - before
            # The sojourn ends exactly with the last packet: the chain then switches.
            self.state = 1 - run_state if int(cum[j]) == n else run_state
            n = 0
        return counts[0], counts[1]

    def lost(self, n: int) -> int:
        """Number of lost packets among the next n."""
        good, bad = self.occupancy(n)
        total = 0
        for count, q in ((good, self.loss_good), (bad, self.loss_bad)):
            if q >= 1.0:
                total += count
            elif q > 0.0 and count:
                total += int(self.rng.binomial(count, q))
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

    def overlap(self, src: int, dst: int, t0: float, t1: float) -> tuple[float, float] | None:
        """The first outage of src->dst that intersects the interval [t0, t1], if any."""
        for a, b in self.windows.get((src, dst), ()):
            if a > t1:
                break
            if b > t0 and (a < t1 or a <= t0):
                return a, b
        return None
