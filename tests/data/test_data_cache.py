"""The on-disk cache: hits, keys, atomic writes, damaged entries."""

from __future__ import annotations

import numpy as np
import pytest

from parse_actors.data import DataConfig, build_federated_data, cache, federated, load_source
from parse_actors.data.registry import cache_key

SMALL = {"synthetic": {"n_samples": 600}}
MODS = [("image",), ("audio",), ("audio", "image")]


def cfg(doc=SMALL):
    return DataConfig.model_validate(doc)


def test_second_build_is_a_cache_hit_without_rebuilding(tmp_path, monkeypatch):
    a = build_federated_data(cfg(), MODS, seed=1, cache_dir=tmp_path)
    assert a.info["cache"]["hit"] is False
    assert list((tmp_path / "data").glob("*.npz")) == [tmp_path / "data" / f"{a.info['cache']['key']}.npz"]

    def boom(*args, **kw):
        raise AssertionError("rebuilt despite a cache entry")

    monkeypatch.setattr(federated, "build_source", boom)
    b = build_federated_data(cfg(), MODS, seed=1, cache_dir=tmp_path)
    assert b.info["cache"]["hit"] is True
    for x, y in zip(a.agents, b.agents):
        for m in x.train.x:
            np.testing.assert_array_equal(x.train.x[m], y.train.x[m])
    assert a.info["source"] == b.info["source"]


def test_key_depends_on_options_and_seed_where_used():
    base = cache_key(cfg(), 0)
    assert cache_key(cfg(), 0) == base
    assert cache_key(cfg(), 1) != base
    assert cache_key(cfg({"synthetic": {"n_samples": 601}}), 0) != base
    # partition options do not touch the source: same entry
    assert cache_key(cfg({**SMALL, "partition": {"kind": "dirichlet"}}), 0) == base
    # the watch IMU windows do not depend on the seed
    imu = cfg({"name": "watch_imu"})
    assert cache_key(imu, 0) == cache_key(imu, 1)


def test_env_var_and_disabled_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PARSE_SIM_CACHE", str(tmp_path / "env"))
    load_source(cfg(), 0)
    assert len(list((tmp_path / "env" / "data").glob("*.npz"))) == 1
    _, info = load_source(cfg({**SMALL, "cache": False}), 5)
    assert info == {"enabled": False}
    assert len(list((tmp_path / "env" / "data").glob("*.npz"))) == 1


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    src, _ = load_source(cfg(), 0, cache_dir=tmp_path / "a")

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError):
        cache.save(src, "k", tmp_path / "b")
    assert list((tmp_path / "b" / "data").iterdir()) == []
    # build still succeeds (with a warning) when the cache cannot be written
    with pytest.warns(UserWarning, match="could not write"):
        load_source(cfg(), 3, cache_dir=tmp_path / "b")


def test_damaged_or_inconsistent_entry_is_rebuilt(tmp_path):
    src, info = load_source(cfg(), 0, cache_dir=tmp_path)
    path = cache.entry_path(info["key"], tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="ignoring unreadable"):
        again, info2 = load_source(cfg(), 0, cache_dir=tmp_path)
    assert info2["hit"] is False
    np.testing.assert_array_equal(again.train.y, src.train.y)
    # shapes that disagree with the manifest are refused too
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["train.x.image"] = arrays["train.x.image"][:, :5]
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="manifest"):
        assert cache.load(info["key"], tmp_path) is None


def test_cached_entry_keeps_shapes_dtypes_groups(tmp_path):
    c = cfg({"name": "watch_imu", "watch_imu": {"window": 50}})
    a, _ = load_source(c, 0, cache_dir=tmp_path)
    b, info = load_source(c, 0, cache_dir=tmp_path)
    assert info["hit"] and b.input_shapes == a.input_shapes == {"acc": (3, 50), "gyro": (3, 50)}
    assert b.train.x["acc"].dtype == np.float32 and b.train.y.dtype == np.int64
    np.testing.assert_array_equal(a.groups, b.groups)
    assert b.class_names == a.class_names
