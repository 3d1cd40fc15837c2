"""The dataset registry: one entry per dataset, and what the data side derives from it."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from parse_actors.data import DataConfig, build_federated_data
from parse_actors.data.registry import DATASETS, PATH_DATASETS, cache_key

NAMES = ("synthetic", "av_digits", "watch_imu", "uci_har", "avmnist", "cremad", "npz")


def test_names_options_and_paths_come_from_the_registry():
    assert tuple(DATASETS) == NAMES
    assert typing.get_args(DataConfig.model_fields["name"].annotation) == NAMES
    fields = list(DataConfig.model_fields)
    assert fields[:9] == ["name", "path", *NAMES]  # options right after name and path, in registry order
    for n, d in DATASETS.items():
        assert DataConfig.model_fields[n].annotation is d.options
        assert DataConfig.model_fields[n].description == f"Options of name: {n}."
    assert PATH_DATASETS == ("uci_har", "avmnist", "cremad", "npz")


def test_pairing_of_every_dataset():
    assert {n: d.pairing_of(d.options()) for n, d in DATASETS.items()} == {
        "synthetic": "instance", "av_digits": "label", "watch_imu": "instance", "uci_har": "instance",
        "avmnist": "label", "cremad": "instance", "npz": "instance"}
    assert DataConfig.model_validate({"name": "npz", "npz": {"pairing": "label"}}).pairing() == "label"


@pytest.mark.parametrize("doc, pairing", [
    ({"synthetic": {"n_samples": 300}}, "instance"),
    ({"name": "av_digits"}, "label"),
])
def test_pairing_is_in_the_info(doc, pairing):
    cfg = DataConfig.model_validate({**doc, "cache": False})
    fd = build_federated_data(cfg, [("image",), ("audio",), ("image", "audio")], seed=0)
    assert fd.info["pairing"] == pairing


def test_npz_pairing_option_reaches_the_info(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.arange(60, dtype=np.float32)[:, None], y=np.arange(60) % 3)
    cfg = DataConfig.model_validate({"name": "npz", "path": str(tmp_path / "d.npz"), "npz": {"pairing": "label"},
                                     "partition": {"min_samples": 4}})
    assert build_federated_data(cfg, [("a",), ("a",)], seed=0).info["pairing"] == "label"


def test_cache_key_seed_and_asset_follow_the_entry():
    syn = DataConfig.model_validate({"synthetic": {"n_samples": 300}})
    imu = DataConfig.model_validate({"name": "watch_imu"})
    assert DATASETS["synthetic"].seeded and not DATASETS["watch_imu"].seeded
    assert cache_key(syn, 0) != cache_key(syn, 1)
    assert cache_key(imu, 0) == cache_key(imu, 1)
    assert cache_key(syn, 0).startswith("synthetic-") and cache_key(imu, 0).startswith("watch_imu-")


def test_natural_groups_per_entry():
    assert {n: d.has_groups(d.options()) for n, d in DATASETS.items()} == {
        "synthetic": False, "av_digits": False, "watch_imu": True, "uci_har": True, "avmnist": False,
        "cremad": True, "npz": False}
    assert DATASETS["npz"].has_groups(DATASETS["npz"].options(groups_key="subject")) is True
