"""Batched stepping (agents/batched.py): the per-agent results, bit for bit, in batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from parse_actors.agents import Agent, AgentSpec
from parse_actors.agents import batched as batched_mod
from parse_actors.agents.batched import GroupStepper, _same
from parse_actors.data.types import ModalData

SHAPES = {"image": (1, 8, 8), "audio": (12, 4)}


def _data(rng, n, mods):
    return ModalData(x={m: rng.normal(size=(n, *SHAPES[m])).astype("float32") for m in mods},
                     y=rng.integers(0, 10, n))


def _agents(groups, n_each=5, **kw):
    """Agents of each modality set in `groups`, with data of different sizes."""
    rng = np.random.default_rng(0)
    agents, datas = [], []
    for mods in groups:
        for _ in range(n_each):
            i = len(agents)
            agents.append(Agent(AgentSpec(i, mods), SHAPES, 10, seed=10 + i, init_seed=3, **kw))
            datas.append(_data(rng, 40 + 7 * i, mods))
    return agents, datas


def _run_both(agents, datas, stepper, rounds=3, steps=4, batch=16):
    alone = [copy.deepcopy(a) for a in agents]
    for _ in range(rounds):
        want = [a.train_steps(d, steps, batch) for a, d in zip(alone, datas)]
        got = stepper.train(agents, datas, steps, batch)
        assert got == want
    for a, b in zip(alone, agents):
        assert _same(a, b), f"agent {a.id} differs"


@pytest.mark.parametrize("kw", [
    {},  # PARSE, supcon-free default alignment (infonce), momentum 0.9, clip 5
    {"optim": {"clip_grad_norm": 0.01, "weight_decay": 1e-3}},  # clipping binds on every step
    {"optim": {"momentum": 0.0}, "loss": {"align": "cosine"}},
    {"method": "dsgd_full"},  # the monolithic network
    # issue 20's options: the CLUB critics (local branches, clipped apart) and the residual ladder
    {"loss": {"prediction": "residual", "disentangle": "club", "logit_weights": {"syn": 3}},
     "model": {"fission": "project_relu"}},
    {"loss": {"prediction": "sum", "disentangle": "none"}, "model": {"fission": "project_norm"}},
    {"loss": {"disentangle": "club"}, "optim": {"clip_grad_norm": 0.01}},  # both clips bind on every step
    # the cross-modal decorrelation, the backbones getting 0.3 of its gradient
    {"loss": {"lambda_cross": 10.0, "lambda_align": 1.0, "cross_backbone_grad": 0.3}},
    # the default fission (`project_fuse`, SumFusion) is every case above; `project`, the default before it,
    # with the syn-led objective
    {"loss": {"head_weight": 0.0, "logit_weights": {"red": 0.1, "uni": 0.1}}, "model": {"fission": "project"}},
], ids=["parse", "clip-wd", "no-momentum-cosine", "monolithic", "residual-relu-club", "sum-norm", "club-clip",
        "cross-backbone-grad", "project-syn-led"])
def test_batched_mlp_agents_end_where_they_would_alone(kw):
    agents, datas = _agents([("image",), ("audio",), ("audio", "image")], **kw)
    stepper = GroupStepper("on")
    _run_both(agents, datas, stepper)
    # MLP agents are batched: the probe found them exact (a new signature per round while
    # momentum buffers appear, one per modality set)
    assert stepper.stepped["batched"] == 3 * len(agents)
    assert all(p.exact for p in stepper.plans.values())


def test_batch_composition_does_not_matter():
    """Agent 0 stepped with 9 others, with 2 others, and alone ends in the same place."""
    agents, datas = _agents([("audio", "image")], n_each=10)
    runs = []
    for members in (range(10), range(3), range(1)):
        group = [copy.deepcopy(agents[i]) for i in members]
        GroupStepper("on").train(group, [datas[i] for i in members], 5, 16)
        runs.append(group[0])
    assert _same(runs[0], runs[1]) and _same(runs[0], runs[2])


def test_inexact_signature_is_stepped_per_agent(monkeypatch):
    """When the probe finds any difference, that signature is stepped one agent at a time."""
    agents, datas = _agents([("image",)], n_each=4)
    real = GroupStepper._batched

    def off_by_a_bit(self, sig, plan, group, ds, steps):
        out = real(self, sig, plan, group, ds, steps)
        with torch.no_grad():
            group[-1]._all_params()[0].add_(1e-7)
        return out

    monkeypatch.setattr(GroupStepper, "_batched", off_by_a_bit)
    stepper = GroupStepper("on")
    _run_both(agents, datas, stepper, rounds=2)
    assert stepper.stepped == {"batched": 0, "single": 8}
    assert [p.exact for p in stepper.plans.values()] == [False, False]


def test_cnn_agents_are_correct_whichever_path():
    agents, datas = _agents([("image",)], n_each=3, model={"default_arch": "cnn"})
    stepper = GroupStepper("on")
    _run_both(agents, datas, stepper, rounds=2)
    report = stepper.report()
    assert sum(report["stepped"].values()) == 6
    assert all(s["archs"] == ["cnn"] for s in report["signatures"])


def test_modes_off_and_auto_small_groups_never_probe():
    agents, datas = _agents([("image",)], n_each=4)
    for mode in ("off", "auto"):  # auto: 4 < AUTO_MIN_GROUP agents
        stepper = GroupStepper(mode)
        _run_both([copy.deepcopy(a) for a in agents], datas, stepper, rounds=1)
        assert stepper.plans == {} and stepper.stepped == {"batched": 0, "single": 4}
    with pytest.raises(ValueError, match="batched stepping"):
        GroupStepper("sometimes")


def test_agents_of_different_signatures_split():
    agents, datas = _agents([("image",), ("audio",)], n_each=3)
    sigs = {a.step_signature(len(d), 16) for a, d in zip(agents, datas)}
    assert len(sigs) == 2
    assert agents[0].step_signature(0, 16) is None
    assert agents[0].step_signature(8, 16)[-2] == 8  # the minibatch shrinks to the data
    assert batched_mod.AUTO_MIN_GROUP >= 2


def test_prepare_warms_up_only_where_batching_may_run():
    small, _ = _agents([("image",)], n_each=4)
    big, _ = _agents([("image",)], n_each=batched_mod.AUTO_MIN_GROUP)
    for mode, agents, warm in [("auto", small, False), ("auto", big, True), ("on", small, True), ("off", big, False)]:
        stepper = GroupStepper(mode)
        stepper.prepare(agents)
        assert stepper._warm is warm, (mode, len(agents))
