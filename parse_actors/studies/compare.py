"""The statistics of the comparison protocol (docs/studies.md): paired differences
over seeds against a reference method, the seeds a difference needs, and the
plateau rule that says whether a run had converged.

Seeds are paired: the same seed gives every method the same data partition,
modality assignment, held-out sets and network timeline (every draw comes from
the seed tree in parse_actors/seeding.py by name, never from the method), so
method A at seed s and method B at seed s differ only by the method. The
difference of their accuracies, seed by seed, removes the seed's share of the
variance: its t-interval is narrower than the two separate CIs suggest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from parse_actors.studies.data import t975

Z80 = 0.8416212335729143
"""Standard normal quantile at 0.8: power 80%."""
MAX_SEEDS = 10_000

PLATEAU_TOL = 0.005
"""Plateau rule: the validation accuracy moved less than this (0.5 point) ..."""
PLATEAU_WINDOW = 0.2
"""... over the last 20% of the evaluations so far, and at least PLATEAU_MIN_WINDOW of them ..."""
PLATEAU_MIN_WINDOW = 5
"""(a shorter window stops on one flat step: on the quickstart demo, 2 evaluations of 10 stopped
PARSE 5 points below where it ended)"""
PLATEAU_MIN_ROUNDS = 10
"""... once at least this many evaluations were made."""


@dataclass
class Paired:
    """Per-seed differences `other - reference` of one accuracy."""

    n: int  # seeds both have
    mean: float | None
    sd: float | None  # sample std of the differences (None below 2 seeds)
    half: float | None  # half-width of the 95% t-interval of the mean difference

    @property
    def resolved(self) -> bool:
        """The 95% interval excludes 0."""
        return self.half is not None and abs(self.mean) > self.half

    def seeds_needed(self) -> int | None:
        return seeds_needed(self.mean, self.sd)


def differences(reference: dict[int, float | None], other: dict[int, float | None]) -> dict[int, float]:
    """{seed: other - reference} over the seeds where both have a finite value."""
    out = {}
    for s in sorted(set(reference) & set(other)):
        a, b = reference[s], other[s]
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            out[s] = b - a
    return out


def paired(reference: dict[int, float | None], other: dict[int, float | None]) -> Paired:
    """Differences over the seeds where both have a finite value."""
    d = list(differences(reference, other).values())
    n = len(d)
    if n == 0:
        return Paired(0, None, None, None)
    m = sum(d) / n
    if n < 2:
        return Paired(1, m, None, None)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    return Paired(n, m, sd, t975(n - 1) * sd / math.sqrt(n))


def seeds_needed(diff: float | None, sd: float | None, power_z: float = Z80) -> int | None:
    """Fewest paired seeds n (>= 2) for a two-sided 5% paired t-test to detect a true mean
    difference `diff` with power 80%, if the per-seed differences have SD `sd`: the smallest
    n with sqrt(n) |diff| / sd >= t_{0.975, n-1} + z_{0.8} (the usual approximation of the
    noncentral t). None when it cannot be said (no SD, a zero difference, or more than
    MAX_SEEDS)."""
    if diff is None or sd is None or diff == 0:
        return None
    if sd == 0:
        return 2
    effect = abs(diff) / sd
    for n in range(2, MAX_SEEDS + 1):
        if math.sqrt(n) * effect >= t975(n - 1) + power_z:
            return n
    return None


def plateau_round(curve: list[float | None], tol: float = PLATEAU_TOL, window: float = PLATEAU_WINDOW,
                  min_rounds: int = PLATEAU_MIN_ROUNDS, min_window: int = PLATEAU_MIN_WINDOW) -> int | None:
    """The first evaluation index k at which the run would have stopped: k+1 >= min_rounds
    evaluations and the validation accuracy over the last max(min_window, ceil(window * (k+1)))
    evaluations spans less than `tol` (max - min). None: it never did (the budget ran out
    first). A missing or NaN value counts as not settled."""
    for k in range(len(curve)):
        n = k + 1
        if n < min_rounds:
            continue
        w = max(min_window, math.ceil(window * n))
        if w > n:
            continue
        tail = curve[n - w:n]
        if any(v is None or not math.isfinite(v) for v in tail):
            continue
        if max(tail) - min(tail) < tol:
            return k
    return None


def fmt_paired(p: Paired, digits: int = 3) -> str:
    """`+0.012 ± 0.008` (signed mean difference and its 95% half-width)."""
    if p.mean is None:
        return "n/a"
    return f"{p.mean:+.{digits}f}" if p.half is None else f"{p.mean:+.{digits}f} ± {p.half:.{digits}f}"


__all__ = ["PLATEAU_MIN_ROUNDS", "PLATEAU_MIN_WINDOW", "PLATEAU_TOL", "PLATEAU_WINDOW", "Paired", "fmt_paired", "paired", "plateau_round",
           "seeds_needed"]
