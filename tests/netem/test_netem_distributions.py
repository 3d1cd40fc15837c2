"""One sampler for latencies, session lengths and speeds (netem.distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from netem import NetworkConfig
from netem.distributions import (
    LognormalLatency,
    LognormalSession,
    LognormalSpeed,
    NormalLatency,
    Sampler,
    UniformLatency,
    UniformSpeed,
    WeibullSession,
)


def test_models_convert_to_output_units():
    assert NormalLatency(mean_ms=20, std_ms=4).sampler().params == (0.02, 0.004)
    assert UniformLatency(low_ms=5, high_ms=15).sampler().params == (0.005, 0.015)
    sigma = math.sqrt(math.log1p(0.25))
    assert LognormalLatency(mean_ms=10, std_ms=5).sampler().params == (math.log(0.01) - sigma**2 / 2, sigma)
    assert WeibullSession(mean_s=600, shape=1.0).sampler().params == (600.0, 1.0)
    assert LognormalSession(mean_s=600, sigma=1.0).sampler().params == (math.log(600) - 0.5, 1.0)
    assert UniformSpeed(low=0.5, high=1.5).sampler().params == (0.5, 1.5)


def test_draws_are_the_numpy_calls_they_replace():
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    s = WeibullSession(mean_s=40, shape=0.6).sampler()
    scale = 40 / math.gamma(1 + 1 / 0.6)
    assert [s(g1) for _ in range(5)] == [float(scale * g2.weibull(0.6)) for _ in range(5)]
    sp = LognormalSpeed(mean=1.2, sigma=0.8).sampler()
    mu = math.log(1.2) - 0.8**2 / 2
    assert np.array_equal(sp.draw(g1, 6), g2.lognormal(mu, 0.8, 6))


def test_truncated_normal_redraws_negatives():
    g = np.random.default_rng(0)
    draws = [Sampler("normal", 0.0, 1.0).draw(g) for _ in range(200)]
    assert min(draws) >= 0.0 and len(set(draws)) == 200
    assert Sampler("normal", 0.005, 0.0).draw(g) == 0.005


@pytest.mark.parametrize("doc, words", [
    ({"link": {"latency": {"dist": "lognormal", "mean_ms": 1e-300, "std_ms": 1000}}}, "std_ms / mean_ms is too large"),
    ({"churn": {"model": "sessions", "online": {"dist": "weibull", "shape": 1e-9}}}, "shape is too small"),
    ({"churn": {"model": "sessions", "offline": {"dist": "lognormal", "sigma": 1e200}}}, "sigma is too large"),
    ({"stragglers": {"model": "dist", "speed": {"sigma": 1e200}}}, "sigma is too large"),
])
def test_parameters_that_overflow_are_rejected_at_validation(doc, words):
    with pytest.raises(ValidationError) as e:
        NetworkConfig.model_validate(doc)
    assert words in str(e.value)
