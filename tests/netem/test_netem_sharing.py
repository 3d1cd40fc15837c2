"""Max-min fair sharing (the access-link allocator), checked as a property."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from netem.access import maxmin_rates


@st.composite
def problems(draw):
    n_res = draw(st.integers(1, 4))
    capacity = {r: draw(st.floats(0.5, 100)) for r in range(n_res)}
    n = draw(st.integers(1, 8))
    caps = [draw(st.floats(0.1, 200)) for _ in range(n)]
    resources = [tuple(sorted(draw(st.sets(st.integers(0, n_res - 1), max_size=2)))) for _ in range(n)]
    return caps, resources, capacity


@settings(max_examples=300, deadline=None)
@given(problems())
def test_max_min_is_feasible_and_every_flow_is_bottlenecked(problem):
    caps, resources, capacity = problem
    rates = maxmin_rates(caps, resources, capacity)
    tol = 1e-9
    load = {r: 0.0 for r in capacity}
    for rate, cap, res in zip(rates, caps, resources):
        assert -tol <= rate <= cap + tol
        for r in res:
            load[r] += rate
    for r in capacity:
        assert load[r] <= capacity[r] * (1 + tol) + tol
    # Max-min optimality: each flow is at its cap, or uses a saturated resource
    # on which no other flow gets more.
    for i, (rate, cap, res) in enumerate(zip(rates, caps, resources)):
        if math.isclose(rate, cap, rel_tol=1e-9):
            continue
        assert any(
            math.isclose(load[r], capacity[r], rel_tol=1e-9)
            and all(rates[j] <= rate * (1 + 1e-9) + tol for j in range(len(rates)) if r in resources[j])
            for r in res
        ), (i, rates)


def test_equal_split_and_reallocation():
    assert maxmin_rates([100] * 4, [(0,)] * 4, {0: 10.0}) == [2.5] * 4
    # One flow capped at 1: the others share the rest.
    assert maxmin_rates([1, 100, 100], [(0,)] * 3, {0: 10.0}) == [1, 4.5, 4.5]
    # Two resources: flow 0 crosses both.
    r = maxmin_rates([100, 100, 100], [(0, 1), (0,), (1,)], {0: 10.0, 1: 4.0})
    assert r == [2.0, 8.0, 2.0]
