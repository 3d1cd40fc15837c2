"""agents.sgd.SGD against torch.optim.SGD(foreach=True): same parameters bit for bit,
same state_dict format (checkpoints load either way), and no torch._dynamo import."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from parse_actors.agents.sgd import SGD


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 11), nn.ReLU(), nn.Linear(11, 3))


def _steps(net, opt, n, seed, frozen=()):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x, y = torch.randn(16, 7, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        for p in frozen:  # a parameter without a gradient this step (masked branch)
            p.grad = None
        opt.step()


@pytest.mark.parametrize("momentum,wd", [(0.9, 0.0), (0.0, 0.0), (0.9, 1e-3), (0.0, 5e-4)])
def test_bit_identical_to_torch_sgd(momentum, wd):
    a, b = _net(0), _net(0)
    ours = SGD(a.parameters(), lr=0.05, momentum=momentum, weight_decay=wd)
    ref = torch.optim.SGD(b.parameters(), lr=0.05, momentum=momentum, weight_decay=wd, foreach=True)
    _steps(a, ours, 3, 1, frozen=[a[2].bias])  # one buffer missing: the per-tensor path
    _steps(b, ref, 3, 1, frozen=[b[2].bias])
    _steps(a, ours, 5, 2)
    _steps(b, ref, 5, 2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    sa, sb = ours.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert torch.equal(sa["state"][i]["momentum_buffer"], sb["state"][i]["momentum_buffer"])


def test_state_dicts_load_both_ways():
    a, b = _net(0), _net(0)
    ref = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9, foreach=True)
    _steps(b, ref, 4, 3)
    a.load_state_dict(b.state_dict())
    ours = SGD(a.parameters(), lr=0.05, momentum=0.9)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))  # a torch checkpoint continues here, bit for bit
    _steps(a, ours, 3, 4)
    _steps(b, ref, 3, 4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = _net(1)
    c.load_state_dict(a.state_dict())
    back = torch.optim.SGD(c.parameters(), lr=0.05, momentum=0.9, foreach=True)
    back.load_state_dict(copy.deepcopy(ours.state_dict()))  # and ours in torch
    _steps(c, back, 2, 5)
    _steps(a, ours, 2, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    with pytest.raises(ValueError, match="expected 4 in 1"):
        SGD(a.parameters(), lr=0.1).load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}]})


def test_training_an_agent_does_not_import_dynamo():
    code = ("import sys, numpy as np\n"
            "from parse_actors.agents import Agent, AgentSpec\n"
            "from parse_actors.data.types import ModalData\n"
            "a = Agent(AgentSpec(0, ('x',)), {'x': (8,)}, 3, method='dsgd_full')\n"
            "r = np.random.default_rng(0)\n"
            "a.train_steps(ModalData({'x': r.standard_normal((64, 8), dtype=np.float32)}, r.integers(0, 3, 64)), 3, 16)\n"
            "print('torch._dynamo' in sys.modules, 'torch.optim' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", out.stdout
