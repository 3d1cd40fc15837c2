"""The engine's contract: build_federated_data end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parse_actors.data import DataConfig, DataError, FederatedData, ModalityEvent, build_federated_data

MODS = [("image",), ("image",), ("audio",), ("audio",), ("audio", "image"), ("audio", "image"), ("image", "audio"), ("image",)]


def build(doc=None, mods=MODS, seed=0, **kw) -> FederatedData:
    return build_federated_data(DataConfig.model_validate(doc or {}), mods, seed=seed, **kw)


def row_keys(md, m):
    return {a.tobytes() for a in md.x[m].reshape(len(md), -1)}


def test_contract_shapes_dtypes_restriction():
    fd = build({"synthetic": {"n_samples": 2000}})
    assert fd.modalities == ("image", "audio") and fd.num_classes == 4
    assert fd.input_shapes == {"image": (32,), "audio": (32,)}
    assert len(fd.agents) == 8 and set(fd.global_test.x) == {"image", "audio"}
    for ms, ag in zip(MODS, fd.agents):
        assert set(ag.train.x) == set(ms) == set(ag.test.x)
        assert ag.extra["active"] == tuple(m for m in fd.modalities if m in ms)
        for md in (ag.train, ag.test):
            assert md.y.dtype == np.int64
            for m, a in md.x.items():
                assert a.dtype == np.float32 and a.shape[1:] == fd.input_shapes[m]
    assert fd.modality_schedule == []


def test_splits_are_disjoint_and_test_matches_train_distribution():
    fd = build({"synthetic": {"n_samples": 3000}, "partition": {"kind": "dirichlet", "alpha": 0.3}})
    seen = row_keys(fd.global_test, "image")
    for ag in fd.agents:
        if "image" not in ag.train.x:
            continue
        for md in (ag.train, ag.test):
            keys = row_keys(md, "image")
            assert not keys & seen
            seen |= keys
        ptr = np.bincount(ag.train.y, minlength=4) / len(ag.train)
        pte = np.bincount(ag.test.y, minlength=4) / len(ag.test)
        assert np.abs(ptr - pte).max() < 0.1
        assert abs(len(ag.test) / (len(ag.train) + len(ag.test)) - 0.2) < 0.05


def test_deterministic_by_seed():
    a, b, c = build(seed=5), build(seed=5), build(seed=6)
    for x, y in zip(a.agents, b.agents):
        for m in x.train.x:
            np.testing.assert_array_equal(x.train.x[m], y.train.x[m])
        np.testing.assert_array_equal(x.test.y, y.test.y)
    assert not np.array_equal(a.agents[0].train.x["image"][:5], c.agents[0].train.x["image"][:5])


def test_info_is_json_and_describes_the_run():
    fd = build({"partition": {"kind": "quantity", "beta": 0.5}})
    info = json.loads(json.dumps(fd.info))
    assert info["name"] == "synthetic" and info["partition"]["kind"] == "quantity"
    assert info["source"]["synthetic"]["preset"] == "mixed"
    assert set(info["source"]["synthetic"]["oracle_accuracy"]) == {"image", "audio", "audio+image"}
    sizes = info["sizes"]
    assert sum(sizes["agents_train"]) + sum(sizes["agents_test"]) + sum(sizes["agents_val"]) == sizes["pool"]
    assert sizes["agents_val"] == [len(a.val) for a in fd.agents]
    assert info["sizes"]["global_test"] == len(fd.global_test) == 2400
    assert "label skew" in fd.summary()


def test_global_test_size_count_and_fraction():
    assert len(build({"global_test_size": 500}).global_test) == 500
    assert len(build({"global_test_size": 0.1}).global_test) == 1200


def test_missing_modality_rate_masks_multimodal_training_only():
    fd = build({"missing_modality_rate": 0.4})
    for ms, ag in zip(MODS, fd.agents):
        assert ag.test.present is None
        if len(ms) == 1:
            assert ag.train.present is None and ag.extra["missing_rate"] == 0.0
            continue
        pres = ag.train.present
        both = np.stack([pres["image"], pres["audio"]])
        assert both.any(axis=0).all()  # never both missing
        assert 0.25 < 1 - both.mean() < 0.45
        for m in ("image", "audio"):
            assert not ag.train.x[m][~pres[m]].any()
            assert ag.train.x[m][pres[m]].any(axis=1).all()
        sub = ag.train.subset(np.arange(10))
        assert sub.present["audio"].shape == (10,)


def test_per_agent_missing_rates():
    rates = [0, 0, 0, 0, 0.5, 0, 0.1, 0]
    fd = build({"missing_modality_rate": rates})
    p4 = fd.agents[4].train.present
    assert set(p4) == {"audio", "image"} and fd.agents[5].train.present is None
    # every sample keeps a modality, and at rate 0.5 some lose one
    assert (p4["audio"] | p4["image"]).all() and not (p4["audio"] & p4["image"]).all()
    assert fd.info["missing_modality_rate"] == rates


def test_schedule_lose_gain_and_group_selector():
    doc = {"schedule": [
        {"group": ["image", "audio"], "modality": "audio", "at_s": 30.0},
        {"agent": 0, "modality": "audio", "at_s": 10.0, "action": "gain"},
        {"agents": [0], "modality": "image", "at_s": 20.0},
        {"agent": 4, "modality": "audio", "at_s": 60.0, "action": "gain"},
    ]}
    fd = build(doc)
    ev = fd.modality_schedule
    assert ev[0] == ModalityEvent(agent=0, modality="audio", t_s=10.0, action="gain")
    assert ev[1] == ModalityEvent(0, "image", 20.0, "lose")
    assert [(e.agent, e.t_s) for e in ev[2:5]] == [(4, 30.0), (5, 30.0), (6, 30.0)]
    assert ev[5] == ModalityEvent(4, "audio", 60.0, "gain")
    a0 = fd.agents[0]
    assert set(a0.train.x) == {"image", "audio"} and a0.extra["active"] == ("image",)
    assert a0.extra["modalities"] == ("image", "audio")


@pytest.mark.parametrize(
    "entry, msg",
    [
        ({"agent": 0, "modality": "audio", "at_s": 1.0}, "does not hold"),
        ({"agent": 0, "modality": "image", "at_s": 1.0}, "no modality"),
        ({"agent": 4, "modality": "audio", "at_s": 1.0, "action": "gain"}, "already holds"),
    ],
)
def test_impossible_schedule(entry, msg):
    with pytest.raises(DataError) as e:
        build({"schedule": [entry]})
    assert e.value.path == "schedule[0]" and msg in e.value.message


def test_three_modalities_any_mix():
    mods = [("image",), ("text",), ("audio", "text"), ("image", "audio", "text")]
    fd = build({"synthetic": {"modalities": ["image", "audio", "text"], "n_samples": 1000}}, mods=mods)
    assert [set(a.train.x) for a in fd.agents] == [set(m) for m in mods]


def test_agent_with_no_modality():
    with pytest.raises(DataError):
        build(mods=[("image",), ()])


def test_av_digits_and_watch_imu_build():
    fd = build({"name": "av_digits", "partition": {"kind": "dirichlet", "alpha": 1.0}})
    assert fd.input_shapes == {"image": (1, 8, 8), "audio": (50, 32)} and fd.num_classes == 10
    fd = build({"name": "watch_imu", "partition": {"kind": "natural"}}, mods=[("acc",), ("gyro",), ("acc", "gyro")] * 3)
    assert fd.input_shapes == {"acc": (3, 100), "gyro": (3, 100)} and fd.num_classes == 7
    assert fd.class_names[0] == "PEN"


# ---------------------------------------------------------------- validation split


def test_validation_split_sizes_are_exact():
    fd = build({"synthetic": {"n_samples": 2000}, "partition": {"kind": "quantity", "beta": 0.5, "min_samples": 10}})
    for ag in fd.agents:
        n = len(ag.train) + len(ag.val)  # what the test split left
        assert len(ag.val) == min(max(round(n * 0.1), 1), n - 1)
    fd = build({"synthetic": {"n_samples": 2000}, "partition": {"val_fraction": 0.25}})
    # iid: 1600 pool samples / 8 agents = 200 each -> test 40, then val round(160 * 0.25) = 40, train 120
    assert [(len(a.train), len(a.val), len(a.test)) for a in fd.agents] == [(120, 40, 40)] * 8
    assert fd.info["sizes"]["agents_val"] == [40] * 8


def test_validation_split_is_disjoint_stratified_and_full_modality():
    fd = build({"synthetic": {"n_samples": 3000}, "partition": {"kind": "dirichlet", "alpha": 0.3, "val_fraction": 0.2},
                "missing_modality_rate": 0.4})
    seen = row_keys(fd.global_test, "image")
    for ms, ag in zip(MODS, fd.agents):
        assert set(ag.val.x) == set(ms) and ag.val.present is None  # evaluated like test: nothing masked
        m = ms[0]
        keys = [row_keys(md, m) for md in (ag.train, ag.test, ag.val)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        if m == "image":
            for k in keys:
                assert not k & seen
                seen |= k
        ptr = np.bincount(ag.train.y, minlength=4) / len(ag.train)
        pva = np.bincount(ag.val.y, minlength=4) / len(ag.val)
        assert np.abs(ptr - pva).max() < 0.1  # stratified: the largest-remainder quota per class


def test_validation_split_moves_neither_test_split_nor_partition():
    base = build({"partition": {"kind": "dirichlet", "val_fraction": 0.0}}, seed=3)
    more = build({"partition": {"kind": "dirichlet", "val_fraction": 0.3}}, seed=3)
    for a, b in zip(base.agents, more.agents):
        assert a.val is None
        np.testing.assert_array_equal(a.test.y, b.test.y)
        np.testing.assert_array_equal(a.test.x[a.test.modalities[0]], b.test.x[a.test.modalities[0]])
        # train + val of the one are exactly the train of the other
        m = a.train.modalities[0]
        assert row_keys(b.train, m) | row_keys(b.val, m) == row_keys(a.train, m)
        assert len(b.train) + len(b.val) == len(a.train)
    assert base.info["sizes"]["agents_val"] == [0] * 8


def test_validation_split_is_deterministic_by_seed():
    a, b, c = (build({"partition": {"val_fraction": 0.2}}, seed=s) for s in (5, 5, 6))
    for x, y in zip(a.agents, b.agents):
        np.testing.assert_array_equal(x.val.y, y.val.y)
        for m in x.val.x:
            np.testing.assert_array_equal(x.val.x[m], y.val.x[m])
    assert not np.array_equal(a.agents[0].val.x["image"][:5], c.agents[0].val.x["image"][:5])
