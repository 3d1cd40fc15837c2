"""Evaluation on the common test set: every agent is scored on the same held-out
samples, restricted to the modalities it has; its own split and validation split
are reported beside it."""

from __future__ import annotations

import math

import numpy as np

from parse_actors.agents import AgentSpec
from parse_actors.data.types import AgentData, ModalData
from parse_actors.engine.host import AgentHost

SHAPES = {"image": (12,), "audio": (6,)}


def _data(mods, n, seed, poison=()) -> ModalData:
    r = np.random.default_rng(seed)
    x = {m: r.standard_normal((n, *SHAPES[m])).astype(np.float32) for m in mods}
    for m in poison:
        x[m][:] = np.nan  # any use of this modality would make the scores NaN
    return ModalData(x, r.integers(0, 3, n).astype(np.int64))


def _host_with(mods: tuple[str, ...]) -> AgentHost:
    host = AgentHost(0)
    spec = AgentSpec(agent_id=0, modalities=mods)
    data = AgentData(train=_data(mods, 40, 1), test=_data(mods, 10, 2), extra={}, val=_data(mods, 7, 3))
    host.add_agent(spec, data, dict(input_shapes=SHAPES, num_classes=3, method="parse", seed=5,
                                    model={"mlp_hidden": [8], "backbone_width": 6, "slice_width": 2}))
    return host


def test_unimodal_agent_is_scored_on_its_modality_of_the_common_test_set():
    host = _host_with(("audio",))
    common = _data(("image", "audio"), 50, 9, poison=("image",))
    host.set_eval_data(common)
    out = host.evaluate(0)
    agent = host.agents[0]
    acc, loss = agent.evaluate(common.only(("audio",)))
    assert (out["acc"], out["loss"]) == (acc, loss) and math.isfinite(out["loss"])
    assert (out["acc_local"], out["loss_local"]) == agent.evaluate(host.data[0].test)
    assert (out["acc_val"], out["loss_val"]) == agent.evaluate(host.data[0].val)
    assert out["acc"] * 50 == round(out["acc"] * 50)  # a share of the 50 common samples


def test_multimodal_agent_uses_every_modality_it_has():
    host = _host_with(("audio", "image"))
    host.set_eval_data(_data(("image", "audio"), 50, 9, poison=("image",)))
    assert math.isnan(host.evaluate(0)["loss"])  # it reads the (poisoned) image part


def test_without_a_common_test_set_the_own_split_is_primary():
    host = _host_with(("image",))
    out = host.evaluate(0)
    assert (out["acc"], out["loss"]) == (out["acc_local"], out["loss_local"])
