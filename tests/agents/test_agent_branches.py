"""Branch registry: every parameter in exactly one branch, exact wire sizes, kinds."""

from __future__ import annotations

import itertools

import pytest
import torch

from parse_actors.agents import KINDS, Agent, AgentSpec, ModelConfig, capability_nbytes, payload_nbytes, prioritize
from parse_actors.agents.archs import ARCHS

from agent_helpers import SHAPES, SMALL

ARCH_OK = {"image": ["mlp", "cnn"], "audio": ["mlp", "conv1d", "gru"], "text": ["mlp", "conv1d", "gru"]}
MODSETS = [s for r in (1, 2, 3) for s in itertools.combinations(sorted(SHAPES), r)]


def _agents():
    for mods in MODSETS:
        for archs in itertools.product(*(ARCH_OK[m] for m in mods)):
            for method in ("parse", "parse_split", "parse_share_all", "dsgd_full"):
                spec = AgentSpec(0, mods, dict(zip(mods, archs)))
                yield Agent(spec, SHAPES, 3, model=SMALL, method=method, seed=0)


def test_every_parameter_in_exactly_one_branch():
    count = 0
    for a in _agents():
        owner: dict[int, str] = {}
        for key, module in a.net.branches.items():
            for p in module.parameters():
                assert id(p) not in owner, f"{key} and {owner[id(p)]} share a parameter"
                owner[id(p)] = key
        params = list(a.net.parameters())
        assert all(k.startswith("branches.") for k in a.net.state_dict())
        assert len(a.net.state_dict()) == sum(len(list(m.parameters())) for m in a.net.branches.values())
        assert {id(p) for p in params} == set(owner)
        assert len({id(p) for p in a._opt.param_groups[0]["params"]}) == len(params)
        # the active branches are exactly the plan, and each key parses to its kind
        assert sorted(a.capabilities()) == sorted(a.net.plan(a.modalities))
        for key, info in a.capabilities().items():
            assert info.kind in KINDS and info.kind == a.net.kind_of(key) == a.net.plan(a.modalities)[key]
        count += 1
    assert count > 50


def test_wire_size_and_signature_exact(make_agent):
    a = make_agent("IAT")
    caps = a.capabilities()
    payload = a.export(list(caps))
    for key, info in caps.items():
        tensors = payload[key]
        assert info.nbytes == sum(t.numel() * t.element_size() for t in tensors.values())
        assert info.signature == tuple((n, tuple(t.shape), "float32") for n, t in tensors.items())
        assert all(t.device.type == "cpu" and not t.requires_grad for t in tensors.values())
    assert payload_nbytes(payload) == sum(i.nbytes for i in caps.values())
    assert sum(i.nbytes for i in caps.values()) == 4 * a.num_parameters()
    assert capability_nbytes(caps) > 0 and capability_nbytes(caps) == capability_nbytes(dict(caps))


def test_export_is_a_copy(make_agent):
    a = make_agent("I")
    p = a.export(["head/red"])["head/red"]["weight"]
    p.zero_()
    assert a.net.branches["head/red"].weight.abs().sum() > 0


def test_unimodal_agents_have_no_syn_branch():
    for a in _agents():
        kinds = {i.kind for i in a.capabilities().values()}
        assert ("syn" in kinds) == (len(a.modalities) >= 2 and a.method != "dsgd_full")


def test_kinds_by_key(make_agent):
    caps = make_agent("IA").capabilities()
    assert caps["backbone/image/cnn"].kind == "encoder"
    assert caps["head/red"].kind == "red" and caps["fission/audio/red"].kind == "red"
    assert caps["head/uni/audio"].kind == "uni" and caps["fission/image/uni"].kind == "uni"
    assert caps["fusion/audio+image"].kind == caps["head/syn/audio+image"].kind == caps["fission/image/syn"].kind == "syn"
    shared = make_agent("IAT", method="parse_share_all").capabilities()
    assert {k: i.kind for k, i in shared.items() if not k.startswith("backbone/")} == {
        "fission/red/12": "red",
        "fission/uni/12": "uni",
        "fission/syn/12": "syn",
        "head/red": "red",
        "head/uni": "uni",
        "head/syn": "syn",
        "fusion/3": "syn",
    }
    mono = make_agent("IA", method="dsgd_full").capabilities()
    assert {k: i.kind for k, i in mono.items()} == {
        "backbone/audio/conv1d": "encoder",
        "backbone/image/cnn": "encoder",
        "fusion/audio+image": "head",
        "head/task": "head",
    }


def test_fission_shapes_do_not_depend_on_encoder():
    """D_m is fixed per modality, so everything above the encoder is shareable."""
    sigs = set()
    for arch in ("mlp", "cnn"):
        a = Agent(AgentSpec(0, ("image",), {"image": arch}), SHAPES, 3, model=SMALL, seed=0)
        caps = a.capabilities()
        sigs.add(tuple(caps[k].signature for k in ("fission/image/red", "fission/image/uni", "head/uni/image", "head/red")))
    assert len(sigs) == 1


def test_branch_init_independent_of_build_order():
    a = Agent(AgentSpec(0, ("image", "audio")), SHAPES, 3, model=SMALL, seed=5)
    b = Agent(AgentSpec(0, ("audio",)), SHAPES, 3, model=SMALL, seed=5)
    b.set_modalities(("audio", "image"))
    for key in a.capabilities():
        for n, t in a.export([key])[key].items():
            assert torch.equal(t, b.export([key])[key][n]), key


def test_prioritize_orders_by_kind_then_size(make_agent):
    caps = make_agent("IA").capabilities()
    order = prioritize(caps, caps)
    kinds = [caps[k].kind for k in order]
    assert kinds == sorted(kinds, key=["red", "uni", "syn", "head", "encoder"].index)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_registry_matches_config_enum(arch):
    assert arch in ModelConfig.model_json_schema()["properties"]["default_arch"]["enum"]
