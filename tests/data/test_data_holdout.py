"""The global validation set (data.global_val_size): disjoint, balanced, deterministic, and
leaving everything else where it was when it is off."""

from __future__ import annotations

import numpy as np
import pytest

from parse_actors.data import DataConfig, DataError, build_federated_data
from parse_actors.data.holdout import balanced_take, per_class

MODS = [("image",), ("image",), ("audio",), ("audio",), ("audio", "image"), ("image", "audio"), ("image",), ("audio",)]


def build(doc, seed=0):
    return build_federated_data(DataConfig.model_validate(doc), MODS, seed=seed)


def keys(md, m):
    return {a.tobytes() for a in md.x[m].reshape(len(md), -1)}


def test_disjoint_from_test_set_and_every_agent_split():
    fd = build({"synthetic": {"n_samples": 3000}, "global_val_size": 300,
                "partition": {"kind": "dirichlet", "alpha": 0.5}})
    gval = fd.global_val
    assert set(gval.x) == {"image", "audio"} and len(gval) == 300
    for m in ("image", "audio"):
        held = keys(gval, m)
        assert len(held) == 300  # (the synthetic rows are distinct)
        assert not held & keys(fd.global_test, m)
        for ag in fd.agents:
            for md in (ag.train, ag.test, ag.val):
                if m in md.x:
                    assert not held & keys(md, m)
    assert all(ag.global_val is gval for ag in fd.agents)  # one object, shared
    sizes = fd.info["sizes"]
    assert sizes["global_val"] == 300
    assert sizes["pool"] == 3000 - 600 - 300  # dataset - global test (20%) - global validation
    assert "global validation 300" in fd.summary()


@pytest.mark.parametrize("size, classes, each", [(300, 4, 75), (301, 4, 76), (300, 7, 43)])
def test_balanced_by_class_rounded_up(size, classes, each):
    fd = build({"synthetic": {"n_samples": 4000, "num_classes": classes}, "global_val_size": size})
    assert per_class(size, classes) == each
    assert np.bincount(fd.global_val.y, minlength=classes).tolist() == [each] * classes


def test_same_seed_same_indices_other_seed_others():
    y = np.repeat(np.arange(4), 200)
    a = balanced_take(y, 300, 4, np.random.default_rng(7))
    b = balanced_take(y, 300, 4, np.random.default_rng(7))
    c = balanced_take(y, 300, 4, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(800))  # taken + rest = everything, once
    f1, f2 = build({"global_val_size": 300}, seed=3), build({"global_val_size": 300}, seed=3)
    for m in ("image", "audio"):
        np.testing.assert_array_equal(f1.global_val.x[m], f2.global_val.x[m])
    assert keys(build({"global_val_size": 300}, seed=4).global_val, "image") != keys(f1.global_val, "image")


def test_off_by_default_and_the_test_set_never_moves():
    off, on = build({}), build({"global_val_size": 300})
    assert off.global_val is None and "global_val" not in off.info["sizes"]
    assert all(a.global_val is None for a in off.agents)
    for m in ("image", "audio"):
        np.testing.assert_array_equal(off.global_test.x[m], on.global_test.x[m])


def test_class_too_small_is_one_line_error():
    with pytest.raises(DataError) as e:
        balanced_take(np.array([0] * 50 + [1] * 500), 300, 2, np.random.default_rng(0))
    assert e.value.path == "global_val_size"
    assert "300 samples asked (150 per class, 2 classes), class 0 has 50 in the pool" in e.value.message


@pytest.mark.parametrize("text, path, msg", [
    ("data: {synthetic: {n_samples: 1000}, global_val_size: 900}\n", "data.global_val_size",
     "900 samples asked, the dataset leaves 800 after its global test set"),
    ("data: {synthetic: {n_samples: 1000}, global_val_size: 750}\n", "data.partition.min_samples",
     "needs 80, the dataset leaves 48 for agents"),
    ("data: {global_val_size: 1}\n", "data.global_val_size", "expected a number >= 2, got 1"),
])
def test_size_errors_exit_2_in_one_line(tmp_path, capsys, text, path, msg):
    from parse_actors.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(text)
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and msg in err[0], err
