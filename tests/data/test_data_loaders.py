"""Loaders for downloaded datasets, each on a small fixture written in the
dataset's own file layout."""

from __future__ import annotations

import numpy as np
import pytest

from parse_actors.data import DataConfig, DataError, build_federated_data
from parse_actors.data.registry import build_source

# ----------------------------------------------------------------- UCI-HAR


def write_har(root, n_train=48, n_test=24, T=16, seed=0, break_file=None):
    """The original layout: UCI HAR Dataset/{train,test}/Inertial Signals/*.txt"""
    r = np.random.default_rng(seed)
    base = root / "UCI HAR Dataset"
    (base / "activity_labels.txt").parent.mkdir(parents=True, exist_ok=True)
    (base / "activity_labels.txt").write_text(
        "1 WALKING\n2 WALKING_UPSTAIRS\n3 WALKING_DOWNSTAIRS\n4 SITTING\n5 STANDING\n6 LAYING\n")
    for split, n in (("train", n_train), ("test", n_test)):
        d = base / split / "Inertial Signals"
        d.mkdir(parents=True)
        y = np.arange(n) % 6 + 1
        np.savetxt(base / split / f"y_{split}.txt", y, fmt="%d")
        np.savetxt(base / split / f"subject_{split}.txt", np.arange(n) % 8 + (1 if split == "train" else 20), fmt="%d")
        for sig in ("body_acc", "total_acc", "body_gyro"):
            for ax in "xyz":
                # the class shows in the mean, so a model could learn it
                a = r.standard_normal((n, T)) * 0.1 + y[:, None] * (0.1 if sig != "body_gyro" else -0.05)
                rows = n - 1 if break_file == f"{sig}_{ax}_{split}.txt" else n
                np.savetxt(d / f"{sig}_{ax}_{split}.txt", a[:rows], fmt="%.6e")
    return root


def test_uci_har_original_layout(tmp_path):
    write_har(tmp_path)
    cfg = DataConfig.model_validate({"name": "uci_har", "path": str(tmp_path), "partition": {"kind": "natural", "min_samples": 2}})
    fd = build_federated_data(cfg, [("acc",), ("gyro",), ("acc", "gyro"), ("acc",)], cache_dir=tmp_path / "c")
    assert fd.input_shapes == {"acc": (3, 16), "gyro": (3, 16)} and fd.num_classes == 6
    assert len(fd.global_test) == 24 and fd.info["sizes"]["global_test_from"] == "dataset test split"
    assert fd.class_names[-1] == "LAYING"
    sizes = fd.info["sizes"]
    assert sum(sizes["agents_train"]) + sum(sizes["agents_val"]) + sum(sizes["agents_test"]) == 48
    src = build_source(cfg, 0)
    assert abs(float(src.train.x["acc"].mean())) < 1e-5  # standardized on train statistics
    assert sorted(np.unique(src.groups)) == list(range(1, 9))


def test_uci_har_relative_path_and_total_acc(tmp_path):
    write_har(tmp_path / "har")
    cfg = DataConfig.model_validate({"name": "uci_har", "path": "har/UCI HAR Dataset", "uci_har": {"acc": "total", "standardize": False}})
    src = build_source(cfg, 0, base_dir=tmp_path)
    assert src.train.x["acc"].shape == (48, 3, 16) and src.test.x["gyro"].shape == (24, 3, 16)


def test_uci_har_rows_disagree(tmp_path):
    write_har(tmp_path, break_file="body_gyro_y_train.txt")
    cfg = DataConfig.model_validate({"name": "uci_har", "path": str(tmp_path)})
    with pytest.raises(DataError) as e:
        build_source(cfg, 0)
    assert e.value.path == "path" and "body_gyro_y_train.txt" in e.value.message


def test_uci_har_wrong_folder(tmp_path):
    cfg = DataConfig.model_validate({"name": "uci_har", "path": str(tmp_path)})
    with pytest.raises(DataError, match="not a UCI HAR Dataset folder"):
        build_source(cfg, 0)


# ----------------------------------------------------------------- AV-MNIST


def write_avmnist(root, n_train=30, n_test=12, bad=False):
    r = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / "image").mkdir(exist_ok=True)
        (root / "audio").mkdir(exist_ok=True)
        np.save(root / "image" / f"{split}_data.npy", r.integers(0, 256, (n, 784)).astype(np.float64))
        np.save(root / "audio" / f"{split}_data.npy", r.integers(0, 256, (n - (bad and split == "train"), 112, 112)).astype(np.float32))
        np.save(root / f"{split}_labels.npy", np.arange(n) % 10)


def test_avmnist_multibench_files(tmp_path):
    write_avmnist(tmp_path)
    cfg = DataConfig.model_validate({"name": "avmnist", "path": str(tmp_path), "max_samples": 20,
                                     "partition": {"min_samples": 2}})
    fd = build_federated_data(cfg, [("image",), ("audio",), ("audio", "image")])
    assert fd.input_shapes == {"image": (1, 28, 28), "audio": (112, 112)}
    assert fd.info["sizes"]["pool"] == 20 and len(fd.global_test) == 12
    assert 0 <= fd.global_test.x["image"].min() and fd.global_test.x["image"].max() <= 1
    assert fd.info["cache"] == {"enabled": False}


def test_avmnist_length_mismatch(tmp_path):
    write_avmnist(tmp_path, bad=True)
    cfg = DataConfig.model_validate({"name": "avmnist", "path": str(tmp_path)})
    with pytest.raises(DataError) as e:
        build_source(cfg, 0)
    assert e.value.path == "path" and "audio/train_data.npy has 29 samples" in e.value.message


# ------------------------------------------------------------------ CREMA-D


def write_cremad(root, n_speakers=4, varlen=True, extra_audio=0):
    r = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "visual").mkdir()
    ids = []
    for s in range(n_speakers):
        for emo in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            cid = f"{1001 + s}_IEO_{emo}_HI"
            ids.append(cid)
            np.save(root / "audio" / f"{cid}.npy", r.standard_normal((int(r.integers(20, 40)) if varlen else 30, 8)).astype(np.float32))
            np.save(root / "visual" / f"{cid}.npy", r.standard_normal((3, 16)).astype(np.float32))
    for k in range(extra_audio):
        np.save(root / "audio" / f"1091_TIE_SAD_X{k}.npy", np.zeros((30, 8), np.float32))
    return ids


def test_cremad_features_pad_and_pool(tmp_path):
    write_cremad(tmp_path / "c", extra_audio=2)
    cfg = DataConfig.model_validate({"name": "cremad", "path": str(tmp_path / "c"), "cremad": {"max_frames": {"audio": 32}},
                                     "partition": {"min_samples": 4}})
    src = build_source(cfg, 0)
    assert src.train.x["audio"].shape == (24, 32, 8) and src.train.x["visual"].shape == (24, 3, 16)
    assert src.class_names == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"] and np.bincount(src.train.y).tolist() == [4] * 6
    assert sorted(set(src.groups.tolist())) == [1001, 1002, 1003, 1004]
    assert src.info["cremad"]["clips_without_all_modalities"] == {"audio": 2, "visual": 0}
    pooled = build_source(DataConfig.model_validate({"name": "cremad", "path": str(tmp_path / "c"), "cremad": {"pool": "mean"}}), 0)
    assert pooled.train.x["audio"].shape == (24, 8) and pooled.train.x["visual"].shape == (24, 16)
    fd = build_federated_data(cfg, [("audio",), ("visual",), ("audio", "visual")], cache_dir=tmp_path / "k")
    assert fd.input_shapes["audio"] == (32, 8)
    both = DataConfig.model_validate({"name": "cremad", "path": str(tmp_path / "c"), "cremad": {"max_frames": 5}})
    assert build_source(both, 0).train.x["visual"].shape == (24, 5, 16)


def test_cremad_ragged_without_max_frames(tmp_path):
    write_cremad(tmp_path)
    with pytest.raises(DataError) as e:
        build_source(DataConfig.model_validate({"name": "cremad", "path": str(tmp_path)}), 0)
    assert e.value.path == "cremad.max_frames"


def test_cremad_bad_clip_id(tmp_path):
    write_cremad(tmp_path, n_speakers=1, varlen=False)
    for sub in ("audio", "visual"):
        np.save(tmp_path / sub / "notes.npy", np.zeros((30, 8) if sub == "audio" else (3, 16), np.float32))
    with pytest.raises(DataError, match="notes"):
        build_source(DataConfig.model_validate({"name": "cremad", "path": str(tmp_path)}), 0)


# ---------------------------------------------------------------------- npz


def test_npz_single_file_label_remap(tmp_path):
    r = np.random.default_rng(0)
    f = tmp_path / "d.npz"
    np.savez(f, lidar=r.standard_normal((60, 5)), radar=r.standard_normal((60, 2, 3)).astype(np.float16),
             y=np.repeat([3, 7, 9], 20))
    cfg = DataConfig.model_validate({"name": "npz", "path": str(f), "partition": {"min_samples": 4}})
    fd = build_federated_data(cfg, [("lidar",), ("radar",), ("lidar", "radar")])
    assert fd.modalities == ("lidar", "radar") and fd.num_classes == 3
    assert fd.input_shapes == {"lidar": (5,), "radar": (2, 3)} and fd.class_names == ["3", "7", "9"]
    assert fd.global_test.y.max() == 2 and fd.global_test.x["radar"].dtype == np.float32


def test_npz_folder_with_test_split_and_groups(tmp_path):
    r = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", a=r.standard_normal((40, 4)), b=r.standard_normal((40, 4)), y=np.arange(40) % 4,
             g=np.arange(40) // 10)
    np.savez(tmp_path / "test.npz", a=r.standard_normal((10, 4)), b=r.standard_normal((10, 4)), y=np.arange(10) % 4)
    cfg = DataConfig.model_validate({"name": "npz", "path": str(tmp_path), "npz": {"groups_key": "g"},
                                     "partition": {"kind": "natural", "min_samples": 5}})
    fd = build_federated_data(cfg, [("a",), ("b",), ("a", "b"), ("a",)])
    assert len(fd.global_test) == 10 and [len(ag.train) + len(ag.val) + len(ag.test) for ag in fd.agents] == [10] * 4


def test_npz_lengths_disagree(tmp_path):
    f = tmp_path / "bad.npz"
    np.savez(f, image=np.zeros((10, 3)), audio=np.zeros((9, 3)), y=np.zeros(10, int))
    with pytest.raises(DataError) as e:
        build_source(DataConfig.model_validate({"name": "npz", "path": str(f)}), 0)
    assert e.value.path == "path" and "'audio' has 9 samples" in e.value.message


def test_npz_missing_keys_and_modalities(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, image=np.zeros((10, 3)), labels=np.zeros(10, int))
    with pytest.raises(DataError) as e:
        DataConfig.model_validate({"name": "npz", "path": str(f)}).check([("image",)], 1)
    assert e.value.path == "npz.label_key"
    cfg = DataConfig.model_validate({"name": "npz", "path": str(f), "npz": {"label_key": "labels"}})
    with pytest.raises(DataError) as e:
        cfg.check([("image",), ("audio",)], 2)
    assert e.value.path == "name" and "'audio'" in e.value.message


def test_npz_float_labels_rejected(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, image=np.zeros((10, 3)), y=np.linspace(0, 1, 10))
    with pytest.raises(DataError, match="integer labels"):
        build_source(DataConfig.model_validate({"name": "npz", "path": str(f)}), 0)
