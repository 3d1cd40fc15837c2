"""The Agent facade: determinism, checkpoints, sensor loss/gain, slice-drop inference."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from parse_actors.agents import Agent, AgentSpec, Incoming
from agent_helpers import SHAPES, SMALL, random_data


def _params(agent):
    return {k: v.clone() for k, v in agent.net.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["parse", "dsgd_full", "parse_split"])
def test_same_args_same_results_whatever_ran_before(make_agent, method):
    d = random_data(("image", "audio"), n=100)
    a = make_agent("IA", method=method, seed=7)
    torch.manual_seed(123)
    torch.randn(1000)
    np.random.seed(5)
    _ = make_agent("IAT", seed=8).train_steps(random_data(("image", "audio", "text")), 3, 8)
    b = make_agent("IA", method=method, seed=7)
    assert _same(_params(a), _params(b))
    ra = a.train_steps(d, 10, 16)
    torch.randn(77)
    rb = b.train_steps(d, 10, 16)
    assert ra == rb
    assert _same(_params(a), _params(b))
    c = make_agent("IA", method=method, seed=8)
    assert not _same(_params(a), _params(c))


def test_init_seed_gives_common_initialisation(make_agent):
    a = make_agent("IA", seed=1, init_seed=42)
    b = make_agent("IAT", seed=2, init_seed=42)
    for k in a.capabilities():
        if k in b.capabilities():
            assert all(torch.equal(x, y) for x, y in zip(a.export([k])[k].values(), b.export([k])[k].values()))


def test_train_steps_result_and_last_update(make_agent):
    a = make_agent("IA")
    before = {k: torch.cat([t.reshape(-1) for t in v.values()]) for k, v in a.export(a.capabilities()).items()}
    r = a.train_steps(random_data(a.modalities, n=50), 4, 16)
    assert r["samples"] == 64 and np.isfinite(r["loss"])
    assert set(r["terms"]) == {"ce", "head_red", "head_uni", "head_syn", "align", "orth"}
    after = {k: torch.cat([t.reshape(-1) for t in v.values()]) for k, v in a.export(a.capabilities()).items()}
    up = a.last_update()
    assert set(up) == set(a.capabilities())
    for k in up:
        assert torch.allclose(up[k], after[k] - before[k])
    assert set(a.last_update(["head/red", "nope"])) == {"head/red"}
    # gossip between rounds is not part of the next round's update
    a.aggregate([Incoming(1, 0, {"head/red": {n: t + 1 for n, t in a.export(["head/red"])["head/red"].items()}}, {})], {}, 0)
    a.train_steps(random_data(a.modalities, n=50), 1, 16)
    assert a.last_update()["head/red"].abs().max() < 1.0
    # the batch never exceeds the data
    assert a.train_steps(random_data(a.modalities, n=5), 2, 16)["samples"] == 10
    assert a.train_steps(random_data(a.modalities, n=5), 0, 16)["samples"] == 0


@pytest.mark.parametrize("method", ["parse", "dsgd_full"])
def test_training_learns(make_agent, method):
    """A label that is a simple function of the inputs gets learned. (A weak
    signal in noise: PARSE, whose regularisers act on noise here, needs about
    twice the steps of the monolithic model; both get the same budget.)"""
    a = make_agent("IA", method=method, seed=3)
    d = random_data(a.modalities, n=256, num_classes=2, seed=1)
    d.y[:] = (d.x["audio"].mean((1, 2)) + d.x["image"].mean((1, 2, 3)) > 0).astype(np.int64)
    first = a.train_steps(d, 5, 64)["terms"]["ce"]
    for _ in range(16):
        last = a.train_steps(d, 20, 64)["terms"]["ce"]
    assert last < 0.6 * first
    acc, loss = a.evaluate(d)
    assert acc > 0.7  # chance is about 0.5


@pytest.mark.parametrize("method", ["parse", "harmony"])
def test_resume_is_bit_exact(make_agent, method):
    d = random_data(("image", "audio", "text"), n=40, seed=2)
    a = make_agent("IA", method=method, seed=4)
    a.train_steps(d, 3, 16)
    a.set_modalities(["audio", "image", "text"])  # gains a modality: new branches, optimizer grows
    a.train_steps(d, 2, 16)
    sd = copy.deepcopy(a.state_dict())
    ref = [a.train_steps(d, 3, 16) for _ in range(2)]
    ref_params = _params(a)

    b = make_agent("IA", method=method, seed=999)
    b.load_state_dict(sd)
    assert b.modalities == ("audio", "image", "text")
    got = [b.train_steps(d, 3, 16) for _ in range(2)]
    assert got == ref
    assert _same(_params(b), ref_params)
    with pytest.raises(ValueError):
        make_agent("IA", method="dsgd_task").load_state_dict(sd)


def test_lose_and_regain_modality(make_agent, data):
    a = make_agent("IA")
    caps = a.capabilities()
    a.set_modalities(["image"])
    assert not a.is_multimodal
    now = a.capabilities()
    assert not [k for k in now if "audio" in k or now[k].kind == "syn"]
    audio_backbone = {n: t.clone() for n, t in a.export(["backbone/audio/conv1d"])["backbone/audio/conv1d"].items()}
    a.train_steps(data(("image",)), 3, 8)  # data without audio is fine now
    assert a.evaluate(data(("image",)))[0] >= 0
    # masked branches do not move
    for n, t in a.export(["backbone/audio/conv1d"])["backbone/audio/conv1d"].items():
        assert torch.equal(t, audio_backbone[n])
    assert a.set_modalities(["image", "audio"]) == []  # nothing to build: branches were kept
    assert a.capabilities().keys() == caps.keys()
    with pytest.raises(KeyError):
        a.train_steps(data(("image",)), 1, 8)


def test_gain_modality_builds_deterministic_branches(make_agent):
    a, b = make_agent("I", seed=3), make_agent("I", seed=3)
    a.train_steps(random_data(("image",)), 2, 8)
    new_a = a.set_modalities(["image", "audio"])
    new_b = b.set_modalities(["audio", "image"])
    assert new_a == new_b and "fusion/audio+image" in new_a and "backbone/audio/mlp" in new_a  # default arch
    for k in new_a:
        assert all(torch.equal(x, y) for x, y in zip(a.export([k])[k].values(), b.export([k])[k].values()))
    a.train_steps(random_data(("image", "audio")), 2, 8)
    # three-modality agent losing one builds fusion for the remaining pair
    c = make_agent("IAT")
    assert c.set_modalities(["audio", "text"]) == ["fusion/audio+text", "head/syn/audio+text"]


def test_gain_modality_with_new_input_shape(make_agent):
    a = Agent(AgentSpec(1, ("image",)), {"image": SHAPES["image"]}, 5, model=SMALL, seed=0)
    with pytest.raises(ValueError):
        a.set_modalities(["image", "lidar"])
    a.set_modalities(["image", "lidar"], input_shapes={"lidar": (7,)})
    assert "backbone/lidar/mlp" in a.capabilities()


def test_slice_drop_inference(make_agent):
    a = make_agent("IA", seed=1)
    d = random_data(a.modalities, n=40)
    a.train_steps(d, 5, 16)
    x, y = a._inputs(d)
    with torch.no_grad():
        out = a.net(x)
    red, uni, syn = out.red_logits.mean(0), torch.stack(out.uni_logits).mean(0), out.syn_logits
    manual = {  # weighted mean over the kinds left (default weights 1)
        None: (red + uni + syn) / 3,
        "red": (uni + syn) / 2,
        "uni": (red + syn) / 2,
        "syn": (red + uni) / 2,
    }
    for kind, logits in manual.items():
        acc, loss = a.evaluate(d, drop_kind=kind, batch_size=16)
        assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
        assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-4)
    uni = make_agent("I")
    di = random_data(uni.modalities)
    assert uni.evaluate(di, "syn") == uni.evaluate(di)
    assert uni.evaluate(di, "red") != uni.evaluate(di)
    mono = make_agent("IA", method="dsgd_full")
    assert mono.evaluate(d, "red") == mono.evaluate(d)
    with pytest.raises(ValueError):
        a.evaluate(d, "encoder")


def test_spec_validation():
    with pytest.raises(ValueError):
        AgentSpec(0, ())
    with pytest.raises(ValueError):
        AgentSpec(0, ("a", "a"))
    with pytest.raises(ValueError):
        AgentSpec(0, ("a+b",))
    s = AgentSpec(0, ["image"], {"image": "cnn"})
    assert s.modalities == ("image",) and hash(s) == hash(AgentSpec(0, ("image",), {"image": "cnn"}))
    with pytest.raises(ValueError):
        Agent(AgentSpec(0, ("image",)), {"audio": (3,)}, 2)


def test_export_unknown_branch(make_agent):
    with pytest.raises(KeyError):
        make_agent("I").export(["head/syn/audio+image"])


def test_no_ray_or_simpy_import():
    code = "import sys, parse_actors.agents; print(any(m in sys.modules for m in ('ray', 'simpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_agent_pickles_and_deepcopies(make_agent, data):
    import pickle

    a = make_agent("IA", method="harmony")
    a.train_steps(data(a.modalities), 2, 8)
    for clone in (lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy):
        b = clone(a)
        assert _same(_params(a), _params(b))
        assert a.train_steps(data(a.modalities, seed=3), 3, 8) == b.train_steps(data(a.modalities, seed=3), 3, 8)
        assert _same(_params(a), _params(b))


def test_global_rng_untouched(make_agent, data):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = make_agent("IAT", seed=1)
    a.train_steps(data(a.modalities), 3, 8)
    a.set_modalities(["image"])
    a.set_modalities(["image", "audio"])
    a.evaluate(data(a.modalities))
    a.cost_per_sample()
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(x, y) for x, y in zip(np.random.get_state(), np_state))


def test_share_all_gain_modality_builds_shared_slices(make_agent):
    """Full alignment: a gained modality reuses the agent's projections of its width."""
    a = make_agent("I", method="parse_share_all")
    assert a.set_modalities(["image", "audio"]) == ["backbone/audio/mlp", "fission/syn/12", "fusion/2", "head/syn"]
    a.train_steps(random_data(("image", "audio")), 2, 8)
    assert a.set_modalities(["image", "audio", "text"]) == ["backbone/text/mlp", "fusion/3"]
