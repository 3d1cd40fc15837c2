"""Log-mel spectrograms in plain numpy.

Used by `scripts/make_av_digits.py` to turn synthesized speech into features,
and available to users who bring their own audio. Written here (not taken
from librosa/torchaudio) so that rebuilding the shipped asset needs nothing
beyond numpy, and so the exact transform is visible and tested.

Mel scale: HTK (`mel = 2595 log10(1 + f / 700)`); triangular filters with
peak 1 between `n_mels + 2` points equally spaced on that scale; power
spectrum of Hann-windowed frames without centre padding.
"""

from __future__ import annotations

import numpy as np


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters, shape (n_mels, n_fft // 2 + 1), each peaking at 1."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sr / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-12)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-12)
    return np.clip(np.minimum(up, down), 0.0, None)


def frame_signal(x: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """Frames (n_frames, frame_length); the tail is zero-padded to a full frame."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < frame_length:
        x = np.pad(x, (0, frame_length - len(x)))
    n = 1 + int(np.ceil((len(x) - frame_length) / hop))
    x = np.pad(x, (0, (n - 1) * hop + frame_length - len(x)))
    idx = np.arange(frame_length)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT|^2 with a Hann window, shape (n_frames, n_fft // 2 + 1)."""
    frames = frame_signal(x, n_fft, hop) * np.hanning(n_fft)[None, :]
    return np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2


def log_mel(
    x: np.ndarray,
    sr: int,
    n_fft: int = 512,
    hop: int = 441,
    n_mels: int = 32,
    fmin: float = 60.0,
    fmax: float | None = 8000.0,
    floor_db: float = -100.0,
) -> np.ndarray:
    """Log-mel power in dB, shape (n_frames, n_mels), float32."""
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    mel = power_spectrogram(x, n_fft, hop) @ fb.T
    db = 10.0 * np.log10(np.maximum(mel, 1e-30))
    return np.maximum(db, floor_db).astype(np.float32)
