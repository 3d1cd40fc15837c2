"""Encoder registry and the deterministic cost model."""

from __future__ import annotations

import pytest
import torch

from parse_actors.agents import Agent, AgentSpec, ModelConfig, build_encoder
from parse_actors.agents.archs import count_macs
from agent_helpers import SHAPES, SMALL

CASES = [
    ("mlp", (1, 8, 8)),
    ("mlp", (20,)),
    ("cnn", (3, 9, 7)),
    ("cnn", (8, 8)),
    ("cnn", (1, 1, 1)),
    ("conv1d", (20, 6)),
    ("conv1d", (15,)),
    ("gru", (20, 6)),
    ("gru", (7,)),
]


@pytest.mark.parametrize("arch,shape", CASES)
def test_encoder_output_width(arch, shape):
    enc = build_encoder(arch, shape, 11, SMALL)
    out = enc(torch.randn(5, *shape))
    assert out.shape == (5, 11) and torch.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize("arch,shape", [("cnn", (20,)), ("conv1d", (1, 8, 8)), ("gru", (1, 2, 3)), ("nope", (3,))])
def test_encoder_rejects_bad_input(arch, shape):
    with pytest.raises(ValueError):
        build_encoder(arch, shape, 4, SMALL)


def test_mac_count_is_exact_for_known_layers():
    net = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    assert count_macs(net, lambda: net(torch.zeros(1, 10))) == 10 * 7 + 7 * 3
    conv = torch.nn.Conv2d(2, 4, 3, padding=1)
    assert count_macs(conv, lambda: conv(torch.zeros(1, 2, 5, 5))) == 25 * 4 * 2 * 9
    gru = torch.nn.GRU(6, 8, batch_first=True)
    assert count_macs(gru, lambda: gru(torch.zeros(1, 20, 6))) == 20 * 3 * (6 * 8 + 8 * 8)


def test_cost_per_sample_deterministic_and_scaled():
    spec = AgentSpec(0, ("image", "audio"), {"image": "cnn", "audio": "gru"})
    a = Agent(spec, SHAPES, 3, model=SMALL, seed=0)
    b = Agent(spec, SHAPES, 3, model=SMALL, seed=99)
    c = Agent(spec, SHAPES, 3, model=SMALL.model_copy(update={"cost_scale": 2.0}), seed=0)
    assert a.cost_per_sample() > 0
    assert a.cost_per_sample() == b.cost_per_sample()
    assert c.cost_per_sample() == pytest.approx(2 * a.cost_per_sample())
    uni = Agent(AgentSpec(0, ("image",), {"image": "cnn"}), SHAPES, 3, model=SMALL, seed=0)
    assert uni.cost_per_sample() < a.cost_per_sample()
    a.set_modalities(["image"])
    assert a.cost_per_sample() < c.cost_per_sample() / 2


def test_default_arch_resolution():
    cfg = ModelConfig(archs={"image": "cnn"}, default_arch="gru")
    a = Agent(AgentSpec(0, ("image", "audio"), {}), SHAPES, 3, model=cfg, seed=0)
    assert "backbone/image/cnn" in a.capabilities() and "backbone/audio/gru" in a.capabilities()
    b = Agent(AgentSpec(0, ("image",), {"image": "mlp"}), SHAPES, 3, model=cfg, seed=0)
    assert "backbone/image/mlp" in b.capabilities()
    with pytest.raises(ValueError):
        Agent(AgentSpec(0, ("image",), {"image": "vit"}), SHAPES, 3, seed=0)
