"""Synthetic PID data: determinism and the ground truth each preset promises."""

from __future__ import annotations

import numpy as np
import pytest

from parse_actors.data.datasets.synthetic import MixConfig, SyntheticConfig
from parse_actors.data.synthetic import generate


def probe(features, y, num_classes, n_train, lam=1e-3):
    """Ridge least squares on one-hot labels, then argmax: a cheap linear probe."""
    f = np.c_[np.asarray(features, dtype=np.float64), np.ones(len(features))]
    t = np.eye(num_classes)[y]
    a = f[:n_train]
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ t[:n_train])
    return float(np.mean(np.argmax(f[n_train:] @ w, axis=1) == y[n_train:]))


def outer(a, b):
    return np.einsum("ni,nj->nij", a, b).reshape(len(a), -1)


def sample(preset, n=4000, seed=1, **kw):
    s = generate(SyntheticConfig(preset=preset, n_samples=n, noise=0.3, **kw), seed=seed, oracle=False)
    return {m: a.astype(np.float64) for m, a in s.data.x.items()}, s.data.y, s


def test_same_seed_same_data_other_seed_other_data():
    cfg = SyntheticConfig(n_samples=500)
    a, b, c = generate(cfg, 3, oracle=False), generate(cfg, 3, oracle=False), generate(cfg, 4, oracle=False)
    for m in cfg.modalities:
        np.testing.assert_array_equal(a.data.x[m], b.data.x[m])
        assert not np.array_equal(a.data.x[m], c.data.x[m])
    np.testing.assert_array_equal(a.data.y, b.data.y)


def test_task_seed_fixes_the_task_across_run_seeds():
    cfg = SyntheticConfig(n_samples=200, task_seed=7)
    a, b = generate(cfg, 1, oracle=False), generate(cfg, 2, oracle=False)
    for m in cfg.modalities:
        np.testing.assert_array_equal(a.task.projections[m], b.task.projections[m])
    assert not np.array_equal(a.data.y, b.data.y)


def test_shapes_dtypes_and_class_balance():
    s = generate(SyntheticConfig(n_samples=3000, num_classes=5, dim={"image": 64, "audio": 20},
                                 shapes={"image": [1, 8, 8]}), 0, oracle=False)
    assert s.data.x["image"].shape == (3000, 1, 8, 8) and s.data.x["audio"].shape == (3000, 20)
    assert all(a.dtype == np.float32 for a in s.data.x.values()) and s.data.y.dtype == np.int64
    freq = np.bincount(s.data.y, minlength=5) / 3000
    assert freq.min() > 0.15 and freq.max() < 0.25


def test_redundancy_each_modality_alone_suffices():
    x, y, _ = sample("redundancy")
    for m in ("image", "audio"):
        assert probe(x[m], y, 4, 3000) > 0.75


def test_synergy_each_alone_at_chance_pair_determines_label():
    x, y, _ = sample("synergy")
    for m in ("image", "audio"):
        # linear and quadratic features of one modality: still chance
        assert probe(np.c_[x[m], outer(x[m], x[m])], y, 4, 3000) < 0.32
    assert probe(np.c_[x["image"], x["audio"]], y, 4, 3000) < 0.32  # no linear shortcut either
    assert probe(np.c_[x["image"], x["audio"], outer(x["image"], x["audio"])], y, 4, 3000) > 0.9


def test_uniqueness_each_modality_has_part_pair_has_all():
    x, y, _ = sample("uniqueness")
    single = [probe(x[m], y, 4, 3000) for m in ("image", "audio")]
    both = probe(np.c_[x["image"], x["audio"]], y, 4, 3000)
    assert all(0.4 < a < 0.7 for a in single) and both > max(single) + 0.15


def test_oracle_accuracy_recorded_and_matches_presets():
    syn = generate(SyntheticConfig(preset="synergy", n_samples=50), 0).info["oracle_accuracy"]
    red = generate(SyntheticConfig(preset="redundancy", n_samples=50), 0).info["oracle_accuracy"]
    mix = generate(SyntheticConfig(preset="mixed", n_samples=50), 0).info
    assert syn["image"] < 0.32 and syn["audio"] < 0.32 and syn["audio+image"] == 1.0
    assert red["image"] == 1.0 and red["audio"] == 1.0
    o = mix["oracle_accuracy"]
    # mixed: unimodal well above chance, multimodal clearly better
    assert 0.45 < o["image"] < 0.85 and 0.45 < o["audio"] < 0.85 and o["audio+image"] > 0.95
    assert mix["mix"] == {"redundant": 1.0, "unique": 1.0, "synergy": 0.4}
    # every kind of information adds: redundant < + unique < + synergy
    b = mix["oracle_by_information"]
    assert 0.3 < b["redundant"] < b["redundant+unique"] - 0.1 < b["all"] - 0.2 and b["all"] > 0.95
    assert {p["role"] for p in mix["parts"]} == {"redundant", "unique", "synergy"}


def test_three_modalities_pairs_beat_singles():
    s = generate(SyntheticConfig(modalities=["image", "audio", "text"], n_samples=100), 0)
    o = s.info["oracle_accuracy"]
    assert set(o) == {"image", "audio", "text", "audio+image", "image+text", "audio+text", "audio+image+text"}
    assert min(o["audio+image"], o["image+text"], o["audio+text"]) > max(o["image"], o["audio"], o["text"])
    assert o["audio+image+text"] > 0.95


def test_one_modality_and_custom_mix():
    s = generate(SyntheticConfig(modalities=["imu"], mix=MixConfig(redundant=1, unique=1), n_samples=100), 0)
    assert s.data.modalities == ("imu",) and s.info["preset"] == "custom"
    assert not any(p["role"] == "synergy" for p in s.info["parts"])


def test_label_noise_lowers_agreement_with_clean_labels():
    clean = generate(SyntheticConfig(n_samples=2000), 0, oracle=False).data.y
    noisy = generate(SyntheticConfig(n_samples=2000, label_noise=0.5), 0, oracle=False).data.y
    agree = np.mean(clean == noisy)
    assert 0.55 < agree < 0.75  # 0.5 kept + 0.5 * 1/4 by chance


@pytest.mark.parametrize("num_classes", [2, 10])
def test_any_class_count_is_balanced(num_classes):
    y = generate(SyntheticConfig(num_classes=num_classes, n_samples=5000), 0, oracle=False).data.y
    freq = np.bincount(y, minlength=num_classes) * num_classes / len(y)
    assert freq.min() > 0.8 and freq.max() < 1.2
