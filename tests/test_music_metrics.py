"""The music-translation checks on cases with known answers: the same notes in another timbre keep the chroma, other
notes do not; silence has nothing to compare."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gankit.metrics.music import chroma_frames, chroma_margin, chroma_similarity

RATE = 16000


def notes(midi: list[int], harmonics: int = 1, seconds: float = 0.5) -> np.ndarray:
    """One note after another (each `seconds`), `harmonics` partials of falling amplitude."""
    t = np.arange(int(seconds * RATE)) / RATE
    parts = []
    for m in midi:
        f = 440.0 * 2 ** ((m - 69) / 12)
        parts.append(sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, harmonics + 1) if k * f < RATE / 2))
    wave = np.concatenate(parts)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def test_identical_waves_have_similarity_one_and_silence_none() -> None:
    melody = notes([60, 64, 67, 72])
    assert chroma_similarity(melody, melody, RATE) == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(chroma_similarity(np.zeros(8000, np.float32), melody, RATE))
    assert chroma_frames(melody, RATE).shape[1] == 12
    with pytest.raises(ValueError, match="mono"):
        chroma_frames(np.zeros((2, 100)), RATE)


def test_the_same_notes_in_another_timbre_keep_the_chroma_and_other_notes_do_not() -> None:
    source = notes([60, 64, 67, 72])  # C E G C, sine
    same_notes_saw = notes([60, 64, 67, 72], harmonics=8)  # the same notes, a brighter timbre
    other_phrase = notes([62, 65, 69, 71])  # D F A B
    kept = chroma_similarity(same_notes_saw, source, RATE)
    assert kept > 0.85
    assert chroma_similarity(other_phrase, source, RATE) < kept - 0.4
    assert chroma_margin(same_notes_saw, source, other_phrase, RATE) > 0.4
    assert chroma_margin(other_phrase, source, other_phrase, RATE) < -0.4  # "translated" into the other phrase
