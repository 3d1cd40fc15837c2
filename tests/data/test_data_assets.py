"""Shipped assets (AV digits, watch IMU) and the numpy log-mel features."""

from __future__ import annotations

import numpy as np

from parse_actors.data.datasets import av_digits, watch_imu
from parse_actors.data.audio_features import hz_to_mel, log_mel, mel_filterbank, mel_to_hz
from parse_actors.data.datasets.av_digits import AVDigitsConfig
from parse_actors.data.datasets.watch_imu import WatchIMUConfig


def test_assets_are_small_and_documented():
    d = av_digits.ASSET.parent
    assert (d / "README.md").exists()
    assert av_digits.ASSET.stat().st_size < 4e6 and watch_imu.ASSET.stat().st_size < 4e6


def test_av_digits_pairs_match_labels_and_use_distinct_clips():
    src = av_digits.build(AVDigitsConfig(), seed=3)
    a = av_digits._asset()
    assert src.train.x["image"].shape == (1797, 1, 8, 8) and src.train.x["audio"].shape == (1797, 50, 32)
    assert src.train.x["image"].dtype == np.float32 and 0 <= src.train.x["image"].min() <= src.train.x["image"].max() <= 1
    # every image is a real digit of the sample's label
    by_pixels = {img.tobytes(): int(lab) for img, lab in zip(a["image"], a["image_label"])}
    imgs = np.round(src.train.x["image"][:, 0] * 16).astype(np.uint8)
    assert all(by_pixels[im.tobytes()] == y for im, y in zip(imgs, src.train.y))
    assert src.info["av_digits"]["distinct_clips_used"] == 1797
    audio = src.train.x["audio"]
    assert abs(float(audio.mean())) < 0.2 and 0.7 < float(audio.std()) < 1.3
    # seeded pairing
    again = av_digits.build(AVDigitsConfig(), seed=3)
    other = av_digits.build(AVDigitsConfig(), seed=4)
    np.testing.assert_array_equal(src.train.x["audio"], again.train.x["audio"])
    assert not np.array_equal(src.train.y, other.train.y)


def test_av_digits_audio_is_informative():
    """A ridge probe on spectrograms beats chance (10%) by far: the clips say the digit."""
    src = av_digits.build(AVDigitsConfig(), seed=0)
    x = src.train.x["audio"].reshape(len(src.train), -1).astype(np.float64)
    f, y = np.c_[x, np.ones(len(x))], src.train.y
    t = np.eye(10)[y]
    w = np.linalg.solve(f[:1400].T @ f[:1400] + 1000 * np.eye(f.shape[1]), f[:1400].T @ t[:1400])
    assert np.mean(np.argmax(f[1400:] @ w, axis=1) == y[1400:]) > 0.5


def test_av_digits_more_pairs_and_noise():
    src = av_digits.build(AVDigitsConfig(pairs_per_image=2, image_noise=0.1), seed=0)
    assert len(src.train) == 2 * 1797 and src.train.x["image"].min() < 0


def test_watch_imu_windows():
    src = watch_imu.build(WatchIMUConfig(window=100))
    n = watch_imu.n_windows(WatchIMUConfig(window=100))
    assert src.train.x["acc"].shape == (n, 3, 100) and src.train.x["gyro"].shape == (n, 3, 100)
    assert n > 2000 and src.num_classes == 7 and len(np.unique(src.groups)) == 10
    assert np.all(np.bincount(src.train.y) > 200)
    overl = watch_imu.build(WatchIMUConfig(window=100, stride=50))
    assert len(overl.train) > 1.9 * n


def test_mel_filterbank_and_log_mel():
    assert np.allclose(mel_to_hz(hz_to_mel([0.0, 440.0, 8000.0])), [0.0, 440.0, 8000.0])
    fb = mel_filterbank(16000, 512, 20, 0.0, 8000.0)
    assert fb.shape == (20, 257) and fb.max() <= 1.0 and np.all(fb.sum(axis=1) > 0)
    centers = np.argmax(fb, axis=1)
    assert np.all(np.diff(centers) > 0)  # filters rise in frequency
    sr = 16000
    t = np.arange(sr) / sr
    low, high = log_mel(np.sin(2 * np.pi * 300 * t), sr, n_mels=20), log_mel(np.sin(2 * np.pi * 3000 * t), sr, n_mels=20)
    assert low.dtype == np.float32 and low.shape[1] == 20
    assert np.argmax(low.mean(0)) < np.argmax(high.mean(0))
