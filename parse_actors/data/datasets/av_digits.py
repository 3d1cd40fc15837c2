"""AV digits: real handwritten digits paired by label with spoken digits.

In the spirit of AV-MNIST (MultiBench), small enough to ship: the 1797 8x8
images of scikit-learn's digits (UCI Optical Recognition of Handwritten
Digits) and 2000 log-mel spectrograms of "zero".."nine" synthesized with
espeak-ng over 800 voice/variant combinations, random speed, pitch, gain,
offset and noise (see assets/README.md; rebuilt by scripts/make_av_digits.py).

Pairing (seeded): within each digit, images in random order are matched with
that digit's clips in random order; each clip is used once while clips last
(200 per digit > ~180 images per digit), so no two samples share a clip with
pairs_per_image = 1.

Shapes: image (1, 8, 8), pixels in [0, 1]; audio (50, 32) = (frames of 20 ms,
mel bands), standardized with the asset's global mean and std.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import Field

from ...schema import StrictModel
from ...seeding import rng as seeded_rng
from ..assets import ASSETS, load_asset
from ..types import Dataset, ModalData, SourceData

ASSET = ASSETS / "av_digits.npz"


class AVDigitsConfig(StrictModel):
    """Real 8x8 handwritten digits paired by label with synthesized spoken digits (shipped asset)."""

    pairs_per_image: int = Field(1, ge=1, le=10)
    """Pairs made per image, each with a different spoken clip of the same digit. Above 1 an image appears in several samples (which may land in different splits)."""
    image_noise: float = Field(0.0, ge=0)
    """Std of Gaussian noise added to images (pixels scaled to [0, 1]) to make vision harder."""
    audio_noise: float = Field(0.0, ge=0)
    """Std of Gaussian noise added to the standardized log-mel spectrograms."""


def _asset() -> dict:
    return load_asset('av_digits.npz', 'scripts/make_av_digits.py')


def n_images() -> int:
    return len(_asset()["image_label"])


def build(cfg: AVDigitsConfig, seed: int) -> SourceData:
    a = _asset()
    img = a["image"].astype(np.float32)[:, None, :, :] / 16.0
    lo, hi = (float(v) for v in a["audio_db_range"])
    db = lo + a["audio"].astype(np.float32) * np.float32((hi - lo) / 255.0)
    aud = ((db - db.mean()) / db.std()).astype(np.float32)
    yi = a["image_label"].astype(np.int64)
    ya = a["audio_label"].astype(np.int64)

    r = seeded_rng(seed, "data", "av_digits", "pairing")
    pairs_i, pairs_a = [], []
    for c in range(10):
        imgs = np.flatnonzero(yi == c)
        clips = np.flatnonzero(ya == c)
        order_i = np.concatenate([r.permutation(imgs) for _ in range(cfg.pairs_per_image)])
        need = len(order_i)
        order_a = np.concatenate([r.permutation(clips) for _ in range(-(-need // len(clips)))])[:need]
        pairs_i.append(order_i)
        pairs_a.append(order_a)
    pi, pa = np.concatenate(pairs_i), np.concatenate(pairs_a)
    shuffle = r.permutation(len(pi))
    pi, pa = pi[shuffle], pa[shuffle]

    x_img, x_aud = img[pi], aud[pa]
    noise = seeded_rng(seed, "data", "av_digits", "noise")
    if cfg.image_noise > 0:
        x_img = x_img + np.float32(cfg.image_noise) * noise.standard_normal(x_img.shape, dtype=np.float32)
    if cfg.audio_noise > 0:
        x_aud = x_aud + np.float32(cfg.audio_noise) * noise.standard_normal(x_aud.shape, dtype=np.float32)
    meta = json.loads(str(a["meta"]))
    info = {
        "images": "scikit-learn digits (UCI Optical Recognition of Handwritten Digits, Alpaydin & Kaynak), 8x8",
        "audio": f"espeak-ng spoken digits, log-mel {meta['n_mels']} bands x {meta['frames']} frames of "
        f"{1000 * meta['hop'] / meta['sr']:.0f} ms, SNR {meta['snr_db'][0]}..{meta['snr_db'][1]} dB",
        "n_images": len(img),
        "n_audio_clips": len(aud),
        "pairs_per_image": cfg.pairs_per_image,
        "distinct_clips_used": len(np.unique(pa)),
    }
    return SourceData(
        train=ModalData({"image": np.ascontiguousarray(x_img), "audio": np.ascontiguousarray(x_aud)}, yi[pi]),
        test=None,
        num_classes=10,
        class_names=[str(d) for d in range(10)],
        info={"av_digits": info},
    )


DATASET = Dataset(
    name="av_digits",
    options=AVDigitsConfig,
    modalities=lambda opts, path: ("image", "audio"),
    build=lambda opts, seed, path, cfg: build(opts, seed),
    pairing="label",
    code=("datasets/av_digits.py",),
    pool_size=lambda opts: n_images() * opts.pairs_per_image,
    input_shapes=lambda opts: {"image": (1,) + _asset()["image"].shape[1:], "audio": _asset()["audio"].shape[1:]},
    seeded=True,
    asset=ASSET,
)
