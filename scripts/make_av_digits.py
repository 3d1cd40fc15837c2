#!/usr/bin/env python
"""Rebuild parse_actors/data/assets/av_digits.npz (the AV-digits asset).

Images: the 1797 real 8x8 handwritten digits that scikit-learn ships
(`sklearn.datasets.load_digits`; UCI "Optical Recognition of Handwritten
Digits", E. Alpaydin and C. Kaynak). Taken from an installed scikit-learn, or
from its `digits.csv.gz` given with --digits-csv.

Audio: the words "zero".."nine" spoken by espeak-ng with a random English
voice, voice variant, speed and pitch per clip; silence trimmed; a random
gain; placed at a random offset in a 1 s window; white/pink noise mixed in at
a random SNR; log-mel spectrogram (parse_actors.data.audio_features);
quantized to uint8 over one global dB range.

Needs: numpy, espeak-ng on PATH, and scikit-learn or --digits-csv. Runtime
code needs none of these. Deterministic for a given --seed and espeak-ng
version (recorded in the asset).

    python scripts/make_av_digits.py --out parse_actors/data/assets/av_digits.npz
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parse_actors.data.audio_features import log_mel

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
BASE_VOICES = [
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
]
SR = 22050
FEAT = dict(n_fft=512, hop=441, n_mels=32, fmin=60.0, fmax=8000.0)  # 20 ms hop
FRAMES = 50  # 1.0 s
SPEED = (130, 240)  # words per minute
PITCH = (15, 85)  # espeak 0..99
SNR_DB = (-5.0, 25.0)
GAIN_DB = (-12.0, 0.0)


def load_digits_images(csv: str | None) -> tuple[np.ndarray, np.ndarray]:
    if csv is None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            sys.exit("scikit-learn not importable: install it or pass --digits-csv .../sklearn/datasets/data/digits.csv.gz")
        d = load_digits()
        return d.images.astype(np.uint8), d.target.astype(np.int8)
    with gzip.open(csv, "rt") as f:
        arr = np.loadtxt(f, delimiter=",")
    return arr[:, :64].reshape(-1, 8, 8).astype(np.uint8), arr[:, 64].astype(np.int8)


def espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[3] for line in out.splitlines()[1:] if len(line.split()) >= 4]
    return sorted(set(names))


def speak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        capture_output=True, check=True,
    ).stdout
    with wave.open(io.BytesIO(raw)) as w:
        if w.getframerate() != SR or w.getsampwidth() != 2:
            raise RuntimeError(f"unexpected wav format from espeak-ng: {w.getparams()}")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def trim(x: np.ndarray, frame: int = 220, rel: float = 0.02) -> np.ndarray:
    n = len(x) // frame
    if n == 0:
        return x
    peak = np.abs(x[: n * frame]).reshape(n, frame).max(axis=1)
    on = np.flatnonzero(peak > rel * peak.max())
    return x[on[0] * frame : (on[-1] + 1) * frame] if len(on) else x


def colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random mix of white and pink (1/f power) noise with unit variance."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n=n)
    pink /= pink.std() + 1e-12
    a = rng.uniform()
    noise = np.sqrt(a) * white + np.sqrt(1 - a) * pink
    return noise / (noise.std() + 1e-12)


def make_clip(rng: np.random.Generator, word: str, voice: str, speed: int, pitch: int, snr_db: float) -> np.ndarray:
    speech = trim(speak(word, voice, speed, pitch))
    speech = speech / (np.abs(speech).max() + 1e-12) * 10 ** (rng.uniform(*GAIN_DB) / 20)
    length = SR  # 1 s window
    if len(speech) > length:
        speech = speech[:length]
    out = np.zeros(length)
    off = int(rng.integers(0, length - len(speech) + 1))
    out[off : off + len(speech)] = speech
    p_signal = np.mean(speech**2)
    out += colored_noise(rng, length) * np.sqrt(p_signal / 10 ** (snr_db / 10))
    feat = log_mel(out, SR, **FEAT)
    if len(feat) < FRAMES:
        feat = np.pad(feat, ((0, FRAMES - len(feat)), (0, 0)), constant_values=feat.min())
    return feat[:FRAMES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "parse_actors/data/assets/av_digits.npz"))
    ap.add_argument("--per-digit", type=int, default=200, help="audio clips per digit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digits-csv", default=None, help="scikit-learn's digits.csv.gz, if sklearn is not importable")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    images, image_label = load_digits_images(args.digits_csv)
    var = variants()
    voices = [f"{b}+{v}" for b in BASE_VOICES for v in var]
    print(f"{len(images)} images; {len(voices)} voice combinations; {espeak_version()}", flush=True)

    feats, labels, voice_idx, speeds, pitches, snrs = [], [], [], [], [], []
    for digit, word in enumerate(WORDS):
        for _ in range(args.per_digit):
            v = int(rng.integers(len(voices)))
            s = int(rng.integers(SPEED[0], SPEED[1] + 1))
            p = int(rng.integers(PITCH[0], PITCH[1] + 1))
            snr = float(rng.uniform(*SNR_DB))
            feats.append(make_clip(rng, word, voices[v], s, p, snr))
            labels.append(digit)
            voice_idx.append(v)
            speeds.append(s)
            pitches.append(p)
            snrs.append(snr)
        print(f"  {word}: {args.per_digit} clips", flush=True)

    db = np.stack(feats)
    lo, hi = float(np.percentile(db, 0.5)), float(db.max())
    q = np.round(np.clip((db - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    meta = dict(
        sr=SR, frames=FRAMES, **FEAT, speed_wpm=SPEED, pitch=PITCH, snr_db=SNR_DB, gain_db=GAIN_DB,
        per_digit=args.per_digit, seed=args.seed, espeak=espeak_version(), words=WORDS,
        image_source="scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits, Alpaydin & Kaynak)",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        image=images,
        image_label=image_label,
        audio=q,
        audio_label=np.asarray(labels, np.int8),
        audio_voice=np.asarray(voice_idx, np.int16),
        audio_speed=np.asarray(speeds, np.int16),
        audio_pitch=np.asarray(pitches, np.int16),
        audio_snr_db=np.asarray(snrs, np.float16),
        voices=np.asarray(voices),
        audio_db_range=np.asarray([lo, hi], np.float32),
        meta=np.asarray(json.dumps(meta)),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): audio {q.shape}, dB range [{lo:.1f}, {hi:.1f}]")


if __name__ == "__main__":
    main()
