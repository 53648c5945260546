"""A small synthetic parallel speaker corpus in the layout `gankit prepare --format speakers` writes: each "speaker"
a glottal-pulse-like harmonic source at its own pitch and spectral tilt, each "sentence" a sequence of vowel-like
formant patterns shared by every speaker (so the corpus is parallel), per-band statistics of the hifigan mel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 22050
# (name, group, F0 in Hz, spectral tilt: harmonic amplitude ∝ k^-tilt)
SPEAKERS = (("a_low", "a", 95.0, 1.0), ("a_high", "a", 230.0, 1.6), ("b_low", "b", 120.0, 0.7),
            ("b_high", "b", 280.0, 1.3))
VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720), (440, 1020))


def utterance(f0: float, tilt: float, sentence: int, seconds: float = 0.8, seed: int = 0) -> np.ndarray:
    """A harmonic source at `f0` shaped by the formant pairs of sentence `sentence`, one vowel every 0.2 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    order = np.random.default_rng(1000 + sentence).permutation(len(VOWELS))
    segment = int(0.2 * RATE)
    wave = np.zeros(n)
    vibrato = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(vibrato) / RATE
    for k in range(1, int(5000 // f0)):
        freq = k * f0
        gains = np.zeros(n)
        for j in range(0, n, segment):
            f1, f2 = VOWELS[order[(j // segment) % len(order)]]
            gains[j: j + segment] = (np.exp(-((freq - f1) / 120) ** 2) + np.exp(-((freq - f2) / 160) ** 2)) + 0.05
        wave += gains * k ** (-tilt) * np.sin(k * phase)
    wave += 0.003 * rng.standard_normal(n)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def write_corpus(out: Path, sentences: int = 5, val_sentences: int = 1) -> Path:
    """OUT/wavs/<speaker>/sNNN.wav, train.txt/val.txt (the last `val_sentences` sentences for every speaker),
    speakers.tsv and mel_stats.json for the hifigan preset."""
    import soundfile as sf

    from gankit.audio.mel import build_frontend
    from gankit.data.corpus_stats import compute_corpus_statistics, write_statistics

    train, val = [], []
    for number, (name, _, f0, tilt) in enumerate(SPEAKERS):
        (out / "wavs" / name).mkdir(parents=True, exist_ok=True)
        for s in range(sentences):
            uid = f"{name}/s{s:03d}"
            sf.write(out / "wavs" / f"{uid}.wav", utterance(f0, tilt, s, seed=100 * number + s), RATE,
                     subtype="PCM_16")
            (val if s >= sentences - val_sentences else train).append(f"{uid}|sentence {s}")
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "val.txt").write_text("\n".join(val) + "\n")
    rows = [f"{name}\t{i}\t{group}" for i, (name, group, _, _) in enumerate(sorted(SPEAKERS))]
    (out / "speakers.tsv").write_text("speaker\tlabel\tgroup\n" + "\n".join(rows) + "\n")
    frontend = build_frontend({"preset": "hifigan"})
    paths = [out / "wavs" / f"{line.split('|')[0]}.wav" for line in train]
    write_statistics(out / "mel_stats.json", compute_corpus_statistics(frontend, paths, progress=False))
    return out
