"""A small synthetic speech-like corpus in the layout `gankit prepare` writes (wavs/, train.txt, val.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def voiced_clip(seconds: float, sample_rate: int, f0: float, seed: int) -> np.ndarray:
    """A harmonic tone with a gliding pitch, formant-like emphasis and a noise burst: speech-like enough
    that a vocoder has pitch, harmonics and unvoiced energy to learn."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wave = np.zeros(n)
    for k in range(1, 25):
        formant = np.exp(-(((k * f0) - 700) / 500) ** 2) + 0.5 * np.exp(-(((k * f0) - 1800) / 700) ** 2) + 0.05
        wave += formant * np.sin(k * phase) / k
    envelope = np.clip(np.sin(np.pi * t / seconds) * 3, 0, 1)
    wave = wave * envelope
    burst = slice(int(0.6 * n), int(0.7 * n))
    wave[burst] += 0.3 * rng.standard_normal(burst.stop - burst.start)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def write_corpus(root: Path, n_train: int = 10, n_val: int = 2, sample_rate: int = 22050,
                 seconds: tuple[float, float] = (0.8, 1.6)) -> Path:
    """Write `root/wavs/utt_XXX.wav`, `root/train.txt`, `root/val.txt` (id|text) and return `root`."""
    wavs = root / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"utt_{i:03d}" for i in range(n_train + n_val)]
    for i, utt in enumerate(ids):
        length = float(rng.uniform(*seconds))
        clip = voiced_clip(length, sample_rate, f0=100 + 15 * (i % 7), seed=i)
        soundfile.write(wavs / f"{utt}.wav", clip, sample_rate, subtype="PCM_16")
    (root / "train.txt").write_text("".join(f"{u}|text {u}\n" for u in ids[:n_train]), encoding="utf-8")
    (root / "val.txt").write_text("".join(f"{u}|text {u}\n" for u in ids[n_train:]), encoding="utf-8")
    return root
