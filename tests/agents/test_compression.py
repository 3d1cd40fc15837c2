"""Codecs: exact wire sizes (before and after encoding, and the packed bytes),
decoding error bounds, deterministic random-k."""

from __future__ import annotations

import math

import pytest
import torch

from parse_actors.agents.branches import info_of
from parse_actors.agents.compression import (
    Codec,
    decode,
    encode,
    index_nbytes,
    keep_count,
    pack,
    parse_codec,
    wire_nbytes,
    wire_nbytes_for,
)

CODECS = ["none", "fp16", "int8", {"topk": 0.01}, {"topk": 0.1}, {"randk": 0.01}, {"randk": 0.5}, {"topk": 1.0}]


def _payload(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(300, 1000, generator=g),  # 300_000 elements: 4-byte indices
        "v": torch.randn(64, 512, generator=g),  # 32_768: 2-byte indices
        "b": torch.randn(10, generator=g),  # 10: 1-byte indices
        "one": torch.randn(1, generator=g),
    }


def test_index_width_and_keep_count():
    assert [index_nbytes(n) for n in (1, 256, 257, 65536, 65537, 2**32, 2**32 + 1)] == [1, 1, 2, 2, 4, 4, 8]
    assert keep_count(1000, 0.01) == 10
    assert keep_count(100, 0.07) == 7  # no float fuzz: 0.07 * 100 = 7.000000000000001
    assert keep_count(10, 0.01) == 1  # at least one
    assert keep_count(10, 1.0) == 10


def test_exact_sizes_by_hand():
    p = _payload()
    # none / fp16 / int8: 4, 2, 1 byte per value (+ 4-byte scale per tensor for int8)
    n = 300_000 + 32_768 + 10 + 1
    assert wire_nbytes(encode(p, "none")) == 4 * n
    assert wire_nbytes(encode(p, "fp16")) == 2 * n
    assert wire_nbytes(encode(p, "int8")) == n + 4 * 4
    # topk 1%: w keeps 3000 x (4 + 4); v keeps 328 x (4 + 2); b keeps 1 x (4 + 1); one: dense (1 x 5 >= 1 x 4)
    assert wire_nbytes(encode(p, {"topk": 0.01})) == 3000 * 8 + 328 * 6 + 5 + 4
    # randk 50%: w 150000 x 8 = 1.2 MB = dense size -> dense; v 16384 x 6 < 131072 -> sparse; b 5 x 5 < 40
    assert wire_nbytes(encode(p, {"randk": 0.5}, seed=1)) == 1_200_000 + 16384 * 6 + 25 + 4


@pytest.mark.parametrize("codec", CODECS, ids=str)
def test_sizes_agree_before_after_and_packed(codec):
    p = _payload(1)
    sig = tuple((k, tuple(t.shape), "float32") for k, t in p.items())
    msg = encode(p, codec, seed=7)
    assert wire_nbytes(msg) == wire_nbytes_for(sig, codec) == len(pack(msg))
    out = decode(msg)
    assert out.keys() == p.keys() and all(out[k].shape == p[k].shape and out[k].dtype == p[k].dtype for k in p)


@pytest.mark.parametrize("codec", CODECS, ids=str)
def test_real_branch_sizes(make_agent, codec):
    agent = make_agent("IA")
    caps = agent.capabilities()
    payload = agent.export(sorted(caps))
    for key, info in caps.items():
        msg = encode(payload[key], codec, seed=3)
        assert wire_nbytes(msg) == wire_nbytes_for(info, codec) == len(pack(msg)), key
    assert wire_nbytes_for(caps["head/red"], "none") == caps["head/red"].nbytes
    assert wire_nbytes_for(info_of("x", "red", torch.nn.Linear(3, 2)), "int8") == 6 + 4 + 2 + 4


def test_decoding_errors():
    p = _payload(2)
    x = p["w"]
    assert torch.equal(decode(encode(p, "none"))["w"], x)
    assert torch.equal(decode(encode(p, "fp16"))["w"], x.half().float())
    d = decode(encode(p, "int8"))["w"]
    scale = float(x.abs().max()) / 127
    assert float((d - x).abs().max()) <= scale / 2 * (1 + 1e-5)
    assert float((d - x).abs().max()) > scale / 4  # it does quantize
    # top-k keeps exactly the k largest magnitudes, exactly, zeros elsewhere
    t = decode(encode(p, {"topk": 0.01}))["w"].reshape(-1)
    kept = t != 0
    assert int(kept.sum()) == 3000
    assert torch.equal(t[kept], x.reshape(-1)[kept])
    assert float(x.reshape(-1)[~kept].abs().max()) <= float(x.reshape(-1)[kept].abs().min())
    # the contraction CHOCO needs: ||C(x) - x||^2 <= (1 - k/n) ||x||^2 (top-k beats it, rand-k meets it on average)
    for codec in ({"topk": 0.1}, {"randk": 0.1}):
        e = float((decode(encode({"w": x}, codec, seed=5))["w"] - x).pow(2).sum()) / float(x.pow(2).sum())
        assert e <= 0.9 * 1.01, (codec, e)


def test_randk_deterministic_for_a_seed():
    p = _payload(3)
    a, b, c = (encode(p, {"randk": 0.01}, seed=s) for s in (11, 11, 12))
    assert all(torch.equal(a.tensors[k].indices, b.tensors[k].indices) for k in ("w", "v"))
    assert not torch.equal(a.tensors["w"].indices, c.tensors["w"].indices)
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    assert pack(encode(p, {"randk": 0.01}, generator=g1)) == pack(encode(p, {"randk": 0.01}, generator=g2)) == pack(a)
    with pytest.raises(ValueError, match="seed"):
        encode(p, {"randk": 0.1})


def test_zero_and_integer_tensors():
    p = {"z": torch.zeros(50), "i": torch.arange(300, dtype=torch.int64)}
    for codec in ("int8", "fp16", {"topk": 0.1}):
        out = decode(encode(p, codec))
        assert torch.equal(out["z"], p["z"]) and torch.equal(out["i"], p["i"])
        sig = (("z", (50,), "float32"), ("i", (300,), "int64"))
        assert wire_nbytes(encode(p, codec)) == wire_nbytes_for(sig, codec)
    assert wire_nbytes(encode(p, "int8")) == 50 + 4 + 300 * 8  # integers go as they are


def test_parse_codec():
    assert parse_codec(None) == Codec("none")
    assert parse_codec("fp16") == Codec("fp16")
    assert parse_codec({"topk": 0.01}) == Codec("topk", 0.01) == parse_codec("topk:0.01")
    assert str(Codec("randk", 0.5)) == "randk:0.5"
    for bad in ("zip", {"topk": 0.0}, {"topk": 1.5}, {"topk": 0.1, "randk": 0.1}, "int8:0.5", {"randk": True}):
        with pytest.raises(ValueError):
            parse_codec(bad)
    assert math.isclose(parse_codec({"randk": 1}).fraction, 1.0)
