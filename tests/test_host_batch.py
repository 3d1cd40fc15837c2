"""AgentHost.run_batch: runs of training calls are trained together (batched stepping)
and every call's result is what it would be alone, in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parse_actors.agents import AgentSpec
from parse_actors.data.types import AgentData, ModalData
from parse_actors.engine.host import AgentHost

SHAPES = {"image": (12,)}
N = 10


def _host(mode: str) -> AgentHost:
    host = AgentHost(0, batched_stepping=mode)
    r = np.random.default_rng(1)
    for aid in range(N):
        d = lambda n: ModalData({"image": r.standard_normal((n, 12)).astype(np.float32)},  # noqa: E731
                                r.integers(0, 3, n).astype(np.int64))
        host.add_agent(AgentSpec(aid, ("image",)), AgentData(train=d(40), test=d(10), extra={}),
                       dict(input_shapes=SHAPES, num_classes=3, method="dsgd_full", seed=aid,
                            model={"mlp_hidden": [16], "backbone_width": 8}))
    return host


def _spec(calls):
    return [(m, len(a), 2 if m == "train_and_export" else 1) for m, a in calls], [x for _, a in calls for x in a]


def _plain(out):
    """Results comparable across hosts: wall times dropped, tensors as lists."""
    if isinstance(out, dict):
        return {k: _plain(v) for k, v in out.items() if k != "wall_s"}
    if isinstance(out, (list, tuple)):
        return [_plain(v) for v in out]
    if isinstance(out, torch.Tensor):
        return out.tolist()
    return out


def test_run_batch_trains_runs_together_and_keeps_call_order():
    keys = ["backbone/image/mlp"]
    train = lambda aid: ("train_and_export", (aid, 3, 8, keys))  # noqa: E731
    calls = [train(a) for a in range(N)]
    calls += [("aggregate", (3, 0, 1, {}, []))]  # splits the runs: agent 3 merges between its trainings
    calls += [train(3), train(4), train(3)]  # agent 3 twice: the second starts a new run
    spec, flat = _spec(calls)
    batched, alone = _host("on"), _host("off")
    got = batched.run_batch(spec, *flat)
    want = []
    for method, args in calls:
        r = getattr(alone, method)(*args)
        want.extend(r if method == "train_and_export" else [r])
    assert _plain(list(got)) == _plain(want)
    report = batched.stepping()
    assert report["stepped"]["batched"] == N + 2  # the first run of N, then agents 3 and 4
    assert report["stepped"]["single"] == 1  # the last call (agent 3 alone) trained in its own call
    assert alone.stepping()["stepped"] == {"batched": 0, "single": N + 3}
    assert batched._trained == {}
    for aid in range(N):
        a, b = batched.agents[aid], alone.agents[aid]
        assert all(torch.equal(p, q) for p, q in zip(a._all_params(), b._all_params()))


def test_a_failing_batch_leaves_no_training_behind():
    host = _host("on")
    keys = ["backbone/image/mlp"]
    calls = [("train_and_export", (a, 2, 8, keys)) for a in range(3)] + [("no_such_call", ())]
    spec, flat = _spec(calls)
    with pytest.raises(AttributeError):
        host.run_batch(spec, *flat)
    assert host._trained == {}
