"""Every distribution netem draws from, and the one sampler that draws.

Latencies (`link.latency`), session lengths (`churn.online` / `offline`) and
compute speeds (`stragglers.speed`) are configured with their own keys and
units, but each model converts itself into a `Sampler` in output units
(seconds, or a speed factor), so a kind of distribution is drawn by one piece
of code whatever it models. A model whose parameters would overflow that
conversion is rejected when the scenario is validated, not when it runs.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from .base import LatencyMs, NonNegFloat, PosFloat, StrictModel, _tagged, ordered

Kind = Literal["constant", "normal", "lognormal", "uniform", "exponential", "weibull"]


class Sampler:
    """Draws from one distribution (parameters in output units).

    constant (value); normal (mean, std), truncated at 0 by redrawing;
    lognormal (mu, sigma) of the log; uniform (low, high); exponential (mean);
    weibull (scale, shape). `draw(g)` gives a float, `draw(g, n)` an array of n.
    """

    __slots__ = ("kind", "params")

    def __init__(self, kind: Kind, *params: float) -> None:
        self.kind = kind
        self.params = params

    def draw(self, g: np.random.Generator, size: int | None = None):
        kind, p = self.kind, self.params
        if size is not None:
            return self._draw_n(g, size)
        if kind == "constant":
            return float(p[0])
        if kind == "normal":
            mean, std = p
            for _ in range(1000):
                x = g.normal(mean, std) if std > 0 else mean
                if x >= 0.0:
                    return float(x)
            return 0.0
        if kind == "lognormal":
            return float(g.lognormal(p[0], p[1]))
        if kind == "uniform":
            return float(g.uniform(p[0], p[1]))
        if kind == "exponential":
            return float(g.exponential(p[0]))
        if kind == "weibull":
            return float(p[0] * g.weibull(p[1]))
        raise ValueError(f"unknown distribution {kind!r}")

    def _draw_n(self, g: np.random.Generator, n: int) -> np.ndarray:
        kind, p = self.kind, self.params
        if kind == "lognormal":
            return g.lognormal(p[0], p[1], n)
        if kind == "uniform":
            return g.uniform(p[0], p[1], n)
        if kind == "constant":
            return np.full(n, float(p[0]))
        return np.array([self.draw(g) for _ in range(n)])

    __call__ = draw

    def __repr__(self) -> str:
        return f"Sampler({self.kind!r}, {', '.join(map(repr, self.params))})"


class _Distribution(StrictModel):
    """A configured distribution: `sampler()` gives its Sampler in output units."""

    def sampler(self) -> Sampler:  # pragma: no cover - every member overrides it
        raise NotImplementedError

    @model_validator(mode="after")
    def _finite_parameters(self):
        try:
            params = self.sampler().params
        except (OverflowError, ValueError):
            params = (math.inf,)
        if not all(math.isfinite(v) for v in params):
            raise ValueError(f"{self.overflow_hint}: the distribution's parameters overflow")
        return self

    overflow_hint: ClassVar[str] = "parameters out of range"


# =========================================================================== latency (link.latency)


class ConstantLatency(_Distribution):
    """The same one-way latency on every link, for every message."""

    dist: Literal["constant"] = "constant"
    """Constant latency."""
    ms: LatencyMs = 10.0
    """One-way latency in milliseconds."""

    def sampler(self) -> Sampler:
        return Sampler("constant", self.ms / 1000)


class _DrawnLatency(_Distribution):
    per: Literal["message", "link"] = "message"
    """`message`: a fresh draw per message (jitter; messages may overtake each other). `link`: one draw per undirected link, kept for the whole run (heterogeneous links)."""


class NormalLatency(_DrawnLatency):
    """Normal latency, truncated at 0 (negative draws are redrawn)."""

    dist: Literal["normal"] = "normal"
    """Truncated normal latency."""
    mean_ms: LatencyMs = 10.0
    """Mean before truncation, ms."""
    std_ms: LatencyMs = 2.0
    """Standard deviation before truncation, ms."""

    def sampler(self) -> Sampler:
        return Sampler("normal", self.mean_ms / 1000, self.std_ms / 1000)


class LognormalLatency(_DrawnLatency):
    """Log-normal latency (positive, right-skewed), given by its own mean and std."""

    dist: Literal["lognormal"] = "lognormal"
    """Log-normal latency."""
    mean_ms: Annotated[LatencyMs, Field(gt=0.0)] = 10.0
    """Mean of the latency, ms."""
    std_ms: LatencyMs = 5.0
    """Standard deviation of the latency, ms."""

    overflow_hint: ClassVar[str] = "std_ms / mean_ms is too large"

    def sampler(self) -> Sampler:
        cv2 = (self.std_ms / self.mean_ms) ** 2
        sigma = math.sqrt(math.log1p(cv2))
        return Sampler("lognormal", math.log(self.mean_ms / 1000) - sigma**2 / 2, sigma)


class UniformLatency(_DrawnLatency):
    """Latency uniform in [low_ms, high_ms]."""

    dist: Literal["uniform"] = "uniform"
    """Uniform latency."""
    low_ms: LatencyMs = 5.0
    """Lower bound, ms."""
    high_ms: LatencyMs = 15.0
    """Upper bound, ms (>= low_ms)."""

    @model_validator(mode="after")
    def _order(self):
        return ordered(self, "low_ms", "high_ms")

    def sampler(self) -> Sampler:
        return Sampler("uniform", self.low_ms / 1000, self.high_ms / 1000)


# =========================================================================== session lengths (churn)


class ExponentialSession(_Distribution):
    """Exponential durations (memoryless)."""

    dist: Literal["exponential"] = "exponential"
    """Exponential distribution."""
    mean_s: PosFloat = 600.0
    """Mean duration, seconds."""

    def sampler(self) -> Sampler:
        return Sampler("exponential", self.mean_s)


class WeibullSession(_Distribution):
    """Weibull durations with the given mean; shape < 1 gives heavy tails (many short, few long sessions)."""

    dist: Literal["weibull"] = "weibull"
    """Weibull distribution."""
    mean_s: PosFloat = 600.0
    """Mean duration, seconds (the scale is mean_s / Gamma(1 + 1/shape))."""
    shape: PosFloat = 0.6
    """Weibull shape k (1 = exponential)."""

    overflow_hint: ClassVar[str] = "shape is too small (Gamma(1 + 1/shape) overflows below about 0.006)"

    def sampler(self) -> Sampler:
        return Sampler("weibull", self.mean_s / math.gamma(1.0 + 1.0 / self.shape), self.shape)


class LognormalSession(_Distribution):
    """Log-normal durations with the given mean."""

    dist: Literal["lognormal"] = "lognormal"
    """Log-normal distribution."""
    mean_s: PosFloat = 600.0
    """Mean duration, seconds (mu = ln(mean_s) - sigma^2 / 2)."""
    sigma: NonNegFloat = 1.0
    """Standard deviation of the log of the duration."""

    overflow_hint: ClassVar[str] = "sigma is too large"

    def sampler(self) -> Sampler:
        s = self.sigma
        return Sampler("lognormal", math.log(self.mean_s) - s * s / 2, s)


class ConstantSession(_Distribution):
    """Every duration equals mean_s (deterministic on/off cycles)."""

    dist: Literal["constant"] = "constant"
    """Fixed duration."""
    mean_s: PosFloat = 600.0
    """Duration, seconds."""

    def sampler(self) -> Sampler:
        return Sampler("constant", self.mean_s)


SessionDist = _tagged(
    "dist",
    "exponential",
    ExponentialSession,
    WeibullSession,
    LognormalSession,
    ConstantSession,
)


# =========================================================================== compute speeds (stragglers)


class UniformSpeed(_Distribution):
    """Speeds uniform in [low, high]."""

    dist: Literal["uniform"] = "uniform"
    """Uniform speeds."""
    low: PosFloat = 0.5
    """Lowest speed."""
    high: PosFloat = 1.5
    """Highest speed (>= low)."""

    @model_validator(mode="after")
    def _order(self):
        return ordered(self, "low", "high")

    def sampler(self) -> Sampler:
        return Sampler("uniform", self.low, self.high)


class LognormalSpeed(_Distribution):
    """Log-normal speeds with the given mean (a long tail of slow and fast nodes)."""

    dist: Literal["lognormal"] = "lognormal"
    """Log-normal speeds."""
    mean: PosFloat = 1.0
    """Mean speed."""
    sigma: NonNegFloat = 0.5
    """Standard deviation of log-speed."""

    overflow_hint: ClassVar[str] = "sigma is too large"

    def sampler(self) -> Sampler:
        return Sampler("lognormal", math.log(self.mean) - self.sigma**2 / 2, self.sigma)


SpeedDist = _tagged("dist", "lognormal", UniformSpeed, LognormalSpeed)


def exponential(mean: float) -> Sampler:
    """Exponential durations with this mean (transient slowdowns use it directly)."""
    return Sampler("exponential", mean)
