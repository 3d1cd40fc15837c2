"""Table-driven: the exact branch keys each method sends between each pair of agent types."""

from __future__ import annotations

import itertools

import pytest

from parse_actors.agents import METHODS, make_policy, AggregationConfig

TYPE_NAMES = ["I", "Im", "A", "IA", "IAT"]
PAIRS = list(itertools.combinations_with_replacement(TYPE_NAMES, 2))

BB_I, BB_Im, BB_A, BB_T = "backbone/image/cnn", "backbone/image/mlp", "backbone/audio/conv1d", "backbone/text/gru"
RED = "head/red"
I_ = {"fission/image/red", "fission/image/uni", "head/uni/image"}
A_ = {"fission/audio/red", "fission/audio/uni", "head/uni/audio"}
T_ = {"fission/text/red", "fission/text/uni", "head/uni/text"}
SYN_IA = {"fission/audio/syn", "fission/image/syn", "fusion/audio+image", "head/syn/audio+image"}
SYN_IAT = {"fission/audio/syn", "fission/image/syn", "fission/text/syn", "fusion/audio+image+text", "head/syn/audio+image+text"}

PARSE = {
    ("I", "I"): {BB_I, RED} | I_,
    ("I", "Im"): {RED} | I_,
    ("I", "A"): {RED},
    ("I", "IA"): {BB_I, RED} | I_,
    ("I", "IAT"): {BB_I, RED} | I_,
    ("Im", "Im"): {BB_Im, RED} | I_,
    ("Im", "A"): {RED},
    ("Im", "IA"): {RED} | I_,
    ("Im", "IAT"): {RED} | I_,
    ("A", "A"): {BB_A, RED} | A_,
    ("A", "IA"): {BB_A, RED} | A_,
    ("A", "IAT"): {BB_A, RED} | A_,
    ("IA", "IA"): {BB_I, BB_A, RED} | I_ | A_ | SYN_IA,
    ("IA", "IAT"): {BB_I, BB_A, RED} | I_ | A_,
    ("IAT", "IAT"): {BB_I, BB_A, BB_T, RED} | I_ | A_ | T_ | SYN_IAT,
}
SHARE_ALL = {**PARSE, ("IA", "IAT"): PARSE[("IA", "IAT")] | {"fission/audio/syn", "fission/image/syn"}}
SPLIT = {p: {k for k in v if not k.startswith("fission/")} for p, v in PARSE.items()}

HT, F_I, F_A, F_IA, F_IAT = "head/task", "fusion/image", "fusion/audio", "fusion/audio+image", "fusion/audio+image+text"
FULL = {
    ("I", "I"): {BB_I, F_I, HT},
    ("I", "Im"): {F_I, HT},
    ("I", "A"): {HT},
    ("I", "IA"): {BB_I, HT},
    ("I", "IAT"): {BB_I, HT},
    ("Im", "Im"): {BB_Im, F_I, HT},
    ("Im", "A"): {HT},
    ("Im", "IA"): {HT},
    ("Im", "IAT"): {HT},
    ("A", "A"): {BB_A, F_A, HT},
    ("A", "IA"): {BB_A, HT},
    ("A", "IAT"): {BB_A, HT},
    ("IA", "IA"): {BB_I, BB_A, F_IA, HT},
    ("IA", "IAT"): {BB_I, BB_A, HT},
    ("IAT", "IAT"): {BB_I, BB_A, BB_T, F_IAT, HT},
}
MODALITY = {p: {k for k in v if k.startswith("backbone/")} for p, v in FULL.items()}
TASK = {p: {HT} for p in FULL}
HYBRID = {p: {k for k in v if not k.startswith("fusion/")} for p, v in FULL.items()}
HARMONY_2 = {p: set() for p in FULL} | {("IA", "IA"): {F_IA, HT}, ("IA", "IAT"): {HT}, ("IAT", "IAT"): {F_IAT, HT}}
NONE = {p: set() for p in PAIRS}

SWITCH = 10
TABLE = {  # method -> (round, expected)
    "parse": [(0, PARSE)],
    "parse_no_align": [(0, PARSE)],
    "parse_no_orth": [(0, PARSE)],
    "parse_share_all": [(0, SHARE_ALL)],
    "parse_split": [(0, SPLIT)],
    "local": [(0, NONE)],
    "local_mono": [(0, NONE)],
    "dsgd_full": [(0, FULL)],
    "dsgd_modality": [(0, MODALITY)],
    "dsgd_task": [(0, TASK)],
    "dsgd_hybrid": [(0, HYBRID)],
    "harmony": [(0, MODALITY), (SWITCH - 1, MODALITY), (SWITCH, HARMONY_2), (SWITCH + 50, HARMONY_2)],
}


def test_table_covers_every_method():
    assert set(TABLE) == set(METHODS)
    for rows in TABLE.values():
        for _, expected in rows:
            assert set(expected) == set(PAIRS)


@pytest.mark.parametrize("method", sorted(TABLE))
def test_exact_keys_sent(method, make_agent):
    agg = AggregationConfig(harmony_switch=SWITCH)
    agents = {t: make_agent(t, method=method, aggregation=agg) for t in TYPE_NAMES}
    caps = {t: a.capabilities() for t, a in agents.items()}
    for rnd, expected in TABLE[method]:
        for a, b in PAIRS:
            for src, dst in ((a, b), (b, a)):  # every policy is symmetric
                got = agents[src].branches_for(caps[dst], rnd)
                assert got == sorted(got)
                assert set(got) == expected[(a, b)], (method, rnd, src, dst)


def test_parse_invariants(make_agent):
    agents = {t: make_agent(t) for t in TYPE_NAMES}
    for src, dst in itertools.product(TYPE_NAMES, repeat=2):
        a, b = agents[src], agents[dst]
        sent = a.branches_for(b.capabilities())
        assert "head/red" in sent
        if not (a.is_multimodal and b.is_multimodal):
            assert not [k for k in sent if a.capabilities()[k].kind == "syn"]
        for k in sent:
            if k.startswith("backbone/"):
                m = k.split("/")[1]
                assert b.net.archs[m] == a.net.archs[m] and m in b.modalities
            if k.startswith("fusion/") or k.startswith("head/syn/"):
                assert a.modalities == b.modalities


def test_signature_mismatch_blocks_sending(make_agent):
    from parse_actors.agents import ModelConfig

    a = make_agent("I")
    b = make_agent("I", model=ModelConfig(slice_width=4, backbone_width=12, cnn_channels=[4, 16], mlp_hidden=[16]))
    sent = a.branches_for(b.capabilities())
    assert "backbone/image/cnn" not in sent  # same key, different shape
    assert "head/red" in sent


def test_make_policy_names():
    for m in METHODS:
        assert make_policy(m) is not None
    with pytest.raises(ValueError, match="unknown method"):
        make_policy("fedavg")
    assert make_policy("harmony", AggregationConfig(harmony_switch=3)).switch_round == 3
