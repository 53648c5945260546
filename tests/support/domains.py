"""A small synthetic domain corpus in the layout `gankit prepare --format domains` writes: each "domain" a timbre
(sine, square-like, sawtooth-like harmonics) playing the same note sequences, 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from gankit.data.domains import Domain, write_domain_table

RATE = 16000
# name → harmonic amplitude of harmonic k (k = 1, 2, …)
TIMBRES = {"saw": lambda k: 1.0 / k, "sine": lambda k: 1.0 if k == 1 else 0.0,
           "square": lambda k: 1.0 / k if k % 2 else 0.0}


def phrase(timbre: str, index: int, seconds: float = 0.6) -> np.ndarray:
    """Three notes of phrase `index` (the same notes in every timbre)."""
    rng = np.random.default_rng(100 + index)
    notes = 220.0 * 2 ** (rng.integers(0, 12, size=3) / 12)
    n = int(seconds * RATE)
    t = np.arange(n // 3) / RATE
    amplitude = TIMBRES[timbre]
    pieces = [sum(amplitude(k) * np.sin(2 * np.pi * k * f * t) for k in range(1, 12) if k * f < RATE / 2)
              for f in notes]
    wave = np.concatenate(pieces)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def write_domain_corpus(out: Path, phrases: int = 4, val_phrases: int = 1) -> Path:
    """OUT/wavs/<domain>/pNN.wav, train.txt/val.txt (the last `val_phrases` phrases of every domain), domains.tsv."""
    train, val = [], []
    for domain in sorted(TIMBRES):
        (out / "wavs" / domain).mkdir(parents=True, exist_ok=True)
        for i in range(phrases):
            utterance = f"{domain}/p{i:02d}"
            sf.write(out / "wavs" / f"{utterance}.wav", phrase(domain, i), RATE, subtype="PCM_16")
            (val if i >= phrases - val_phrases else train).append(f"{utterance}|")
    (out / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "val.txt").write_text("\n".join(val) + "\n", encoding="utf-8")
    write_domain_table(out / "domains.tsv", [Domain(d, i) for i, d in enumerate(sorted(TIMBRES))])
    return out
