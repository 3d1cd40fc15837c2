"""Table-driven: the exact branch keys each agent type holds and each method
sends between each pair of agent types, through `exchange.plan_exchange` (the
plan runs execute)."""

from __future__ import annotations

import itertools

import pytest

from parse_actors.agents import METHODS, AggregationConfig, ModelConfig, make_policy
from parse_actors.agents.exchange import plan_exchange

from agent_helpers import SMALL

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
# parse_share_all: modality-agnostic slice keys (SMALL: every backbone is 12 wide)
SA = {"fission/red/12", "fission/uni/12", "head/red", "head/uni"}
SA_SYN = {"fission/syn/12", "head/syn"}
SHARE_ALL = {
    ("I", "I"): {BB_I} | SA,
    ("I", "Im"): SA,
    ("I", "A"): SA,  # under parse only head/red crosses modalities
    ("I", "IA"): {BB_I} | SA,
    ("I", "IAT"): {BB_I} | SA,
    ("Im", "Im"): {BB_Im} | SA,
    ("Im", "A"): SA,
    ("Im", "IA"): SA,
    ("Im", "IAT"): SA,
    ("A", "A"): {BB_A} | SA,
    ("A", "IA"): {BB_A} | SA,
    ("A", "IAT"): {BB_A} | SA,
    ("IA", "IA"): {BB_I, BB_A, "fusion/2"} | SA | SA_SYN,
    ("IA", "IAT"): {BB_I, BB_A} | SA | SA_SYN,  # fusion/2 and fusion/3 differ in shape
    ("IAT", "IAT"): {BB_I, BB_A, BB_T, "fusion/3"} | SA | SA_SYN,
}
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


HELD = {  # type -> keys held, under parse and parse_share_all
    "parse": {
        "I": {BB_I, RED} | I_,
        "Im": {BB_Im, RED} | I_,
        "A": {BB_A, RED} | A_,
        "IA": {BB_I, BB_A, RED} | I_ | A_ | SYN_IA,
        "IAT": {BB_I, BB_A, BB_T, RED} | I_ | A_ | T_ | SYN_IAT,
    },
    "parse_share_all": {
        "I": {BB_I} | SA,
        "Im": {BB_Im} | SA,
        "A": {BB_A} | SA,
        "IA": {BB_I, BB_A, "fusion/2"} | SA | SA_SYN,
        "IAT": {BB_I, BB_A, BB_T, "fusion/3"} | SA | SA_SYN,
    },
}


def _sent(method, agents, src, dst, clock=0, agg=None):
    """What `src` sends `dst`, from the one exchange plan the engine runs."""
    plan = plan_exchange(make_policy(method, agg), agents[src].capabilities(), {1: agents[dst].capabilities()}, clock)
    return plan.get(1, [])


@pytest.mark.parametrize("method", sorted(TABLE))
def test_exact_keys_sent(method, make_agent):
    agg = AggregationConfig(harmony_switch=SWITCH)
    agents = {t: make_agent(t, method=method, aggregation=agg) for t in TYPE_NAMES}
    for rnd, expected in TABLE[method]:
        for a, b in PAIRS:
            for src, dst in ((a, b), (b, a)):  # every policy is symmetric
                got = _sent(method, agents, src, dst, rnd, agg)
                assert len(got) == len(set(got))
                assert set(got) == expected[(a, b)], (method, rnd, src, dst)


@pytest.mark.parametrize("method", sorted(HELD))
def test_exact_keys_held(method, make_agent):
    for t in TYPE_NAMES:
        assert set(make_agent(t, method=method).capabilities()) == HELD[method][t], (method, t)


def test_share_all_differs_from_parse_at_two_modalities(make_agent):
    """With K = 2 (image, audio, image+audio agents) full alignment is not a
    renaming of partial alignment: the uni slice and the red/uni projections
    reach agents of the other modality, which `parse` never lets happen."""
    volume = {}
    for method in ("parse", "parse_share_all"):
        agents = {t: make_agent(t, method=method) for t in ("I", "A", "IA")}
        for s, d in itertools.product(agents, repeat=2):
            caps = agents[s].capabilities()
            by_kind: dict[str, int] = {}
            for k in _sent(method, agents, s, d):
                by_kind[caps[k].kind] = by_kind.get(caps[k].kind, 0) + caps[k].nbytes
            volume[method, s, d] = by_kind
    differ = {(s, d) for (m, s, d) in volume if m == "parse" and volume[m, s, d] != volume["parse_share_all", s, d]}
    # I<->A: more kinds cross; IA<->IA: one projection per kind serves both modalities (fewer bytes)
    assert differ == {("I", "A"), ("A", "I"), ("IA", "IA")}
    assert sum(volume["parse_share_all", "IA", "IA"].values()) < sum(volume["parse", "IA", "IA"].values())
    assert set(volume["parse", "I", "A"]) == {"red"}
    assert set(volume["parse_share_all", "I", "A"]) == {"red", "uni"}
    assert volume["parse_share_all", "I", "A"]["red"] > volume["parse", "I", "A"]["red"]  # + the red projection


def test_share_all_projections_keyed_by_width(make_agent):
    """Different backbone widths: the projections no longer match, the heads still do."""
    model = SMALL.model_copy(update={"backbone_widths": {"audio": 8}})
    agents = {t: make_agent(t, method="parse_share_all", model=model) for t in ("I", "A", "IA")}
    assert set(_sent("parse_share_all", agents, "I", "A")) == {"head/red", "head/uni"}
    assert {"fission/red/8", "fission/red/12"} <= set(agents["IA"].capabilities())
    assert set(_sent("parse_share_all", agents, "A", "IA")) == {BB_A, "fission/red/8", "fission/uni/8", "head/red", "head/uni"}


def test_share_all_branch_sizes_exact(make_agent):
    for t in TYPE_NAMES:
        a = make_agent(t, method="parse_share_all")
        caps = a.capabilities()
        for k, info in caps.items():
            assert info.nbytes == sum(p.numel() * p.element_size() for p in a.net.branches[k].parameters())
        # one projection per kind serves every modality of that width, inside the agent too
        assert sum(i.nbytes for i in caps.values()) == 4 * a.num_parameters()


def test_parse_invariants(make_agent):
    agents = {t: make_agent(t) for t in TYPE_NAMES}
    for src, dst in itertools.product(TYPE_NAMES, repeat=2):
        a, b = agents[src], agents[dst]
        sent = _sent("parse", agents, src, dst)
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
    agents = {
        "a": make_agent("I"),
        "b": make_agent("I", model=ModelConfig(slice_width=4, backbone_width=12, cnn_channels=[4, 16], mlp_hidden=[16])),
    }
    sent = _sent("parse", agents, "a", "b")
    assert "backbone/image/cnn" not in sent  # same key, different shape
    assert "head/red" in sent


def test_make_policy_names():
    for m in METHODS:
        assert make_policy(m) is not None
    with pytest.raises(ValueError, match="unknown method"):
        make_policy("fedavg")
    assert make_policy("harmony", AggregationConfig(harmony_switch=3)).switch_round == 3
