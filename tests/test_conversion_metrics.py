"""Voice-conversion measures (gankit.metrics.conversion) on synthetic vowel sequences with known properties, and
one check on real speech (festvox-ru) when it is installed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from gankit.metrics.conversion import (
    SpeakerClassifier,
    content_distance,
    content_margin,
    f0_shift_toward,
    log_f0_stats,
    mcd_dtw,
    mfcc_frames,
    normalised,
    summarise_conversions,
    voicing_agreement,
)

SR = 16000
# Peterson & Barney-like first three formants (Hz) of five vowels.
FORMANTS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480),
            "o": (570, 840, 2410)}
FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav")
# One pyin pitch bin (librosa's default resolution is 0.1 semitone): the quantum of a frame's F0.
PYIN_BIN_LOG = math.log(2.0) / 120.0


def _resonator(signal: np.ndarray, centre: float, bandwidth: float) -> np.ndarray:
    radius = math.exp(-math.pi * bandwidth / SR)
    return lfilter([1 - radius], [1, -2 * radius * math.cos(2 * math.pi * centre / SR), radius * radius], signal)


def utterance(vowels: str, f0: float = 120.0, tilt: float = 0.0, seed: int = 0, whisper: bool = False,
              vowel_s: float = 0.18, pause_s: float = 0.06) -> np.ndarray:
    """A 'sentence': vowels (harmonic source with 3 Hz vibrato, or noise when whispered, through three formant
    resonators) separated by pauses holding faint noise; `tilt` is a one-pole low-pass (a darker voice)."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(pause_s * SR))]
    for index, vowel in enumerate(vowels):
        n = int(vowel_s * SR)
        time = np.arange(n) / SR
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * time + index))) / SR
        if whisper:
            excitation = 0.3 * rng.standard_normal(n)
        else:
            excitation = sum(np.sin(k * phase) / k for k in range(1, int(4000 / f0)))
        sound = sum(_resonator(excitation, f, 80 + 40 * j) for j, f in enumerate(FORMANTS[vowel]))
        parts += [sound * np.hanning(n) ** 0.3, np.zeros(int(pause_s * SR))]
    wave = np.concatenate(parts)
    if tilt:
        wave = lfilter([1.0], [1.0, -tilt], wave)
    wave = 0.5 * wave / np.abs(wave).max() + 1e-4 * rng.standard_normal(wave.size)
    return wave.astype(np.float32)


SENTENCE = "aiueoaiu"
OTHER_SENTENCE = "ouaeiuoa"


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return utterance(SENTENCE)


def test_mfcc_frames_have_10_ms_frames_and_no_c0(sentence: np.ndarray) -> None:
    feats = mfcc_frames(sentence, SR, n_mfcc=13)
    assert feats.shape == (1 + sentence.size // 160, 13)
    # Without c0, a gain change leaves the coefficients alone (bar the 60 dB floor, which scales with the peak).
    np.testing.assert_allclose(mfcc_frames(0.1 * sentence, SR, n_mfcc=13), feats, atol=1e-4)  # float32 mel
    cmvn = normalised(feats)
    np.testing.assert_allclose(cmvn.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(cmvn.std(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(normalised(feats, variance=False).std(axis=0), feats.std(axis=0))


def test_identical_files_are_at_distance_zero(sentence: np.ndarray) -> None:
    assert content_distance(sentence, sentence, SR) == 0.0
    assert mcd_dtw(sentence, sentence, SR) == 0.0


def test_time_stretched_copy_keeps_the_words_and_another_sentence_does_not(sentence: np.ndarray) -> None:
    import librosa

    other = utterance(OTHER_SENTENCE)
    to_other = content_distance(sentence, other, SR)
    # Measured: 0.175 (10 % faster), 0.137 (10 % slower) against 0.444 for the other sentence (cosine, ∈ [0, 2]).
    for rate in (1.1, 0.9):
        stretched = librosa.effects.time_stretch(sentence, rate=rate)
        assert content_distance(sentence, stretched, SR) < 0.5 * to_other
    # Another "speaker" (higher F0, darker spectrum) saying the same vowels: measured margin 0.43.
    converted = utterance(SENTENCE, f0=200.0, tilt=0.7, seed=3)
    assert content_margin(converted, sentence, other, SR) > 0.25
    assert content_margin(other, sentence, other, SR) < 0.0  # "output" that says the other sentence


def test_pitch_shift_of_four_semitones_moves_mean_log_f0_by_a_third_of_ln2(sentence: np.ndarray) -> None:
    import librosa

    shifted = librosa.effects.pitch_shift(sentence, sr=SR, n_steps=4)
    source_stats, shifted_stats = log_f0_stats(sentence, SR), log_f0_stats(shifted, SR)
    assert source_stats is not None and shifted_stats is not None
    expected = 4 / 12 * math.log(2.0)
    # Measured change 0.2302 against 0.2310 (1.5 cents short); allowed: one pyin bin (10 cents, 0.0058).
    assert abs((shifted_stats[0] - source_stats[0]) - expected) < PYIN_BIN_LOG
    # The synthetic F0 is 120 Hz ± 5 % vibrato (mean log −0.0006 off ln 120); measured 12 cents high: 2 bins allowed.
    assert abs(source_stats[0] - math.log(120.0)) < 2 * PYIN_BIN_LOG
    # Reaching a target 4 semitones up covers the whole gap; the unchanged source none of it.
    target = source_stats[0] + expected
    covered = f0_shift_toward(shifted, sentence, target, SR)
    assert covered is not None and abs(covered - 1.0) < PYIN_BIN_LOG / expected
    assert f0_shift_toward(sentence, sentence, target, SR) == 0.0
    assert f0_shift_toward(shifted, sentence, source_stats[0] + 0.01, SR) is None  # gap under half a semitone
    assert log_f0_stats(np.zeros(SR, dtype=np.float32), SR) is None


def test_speaker_classifier_tells_two_synthetic_speakers_apart() -> None:
    # Speaker "low": 110 Hz, dark (strong low-pass); "high": 190 Hz, bright. Different sentences for training
    # and held-out files, so it must recognise the voice, not the words.
    rng = np.random.default_rng(7)
    voices = {"low": {"f0": 110.0, "tilt": 0.85}, "high": {"f0": 190.0, "tilt": 0.3}}

    def recordings(count: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
        waves, speakers = [], []
        for index in range(count):
            vowels = "".join(rng.choice(list(FORMANTS), size=5))
            for name, voice in voices.items():
                waves.append(utterance(vowels, seed=seed + index, **voice))
                speakers.append(name)
        return waves, speakers

    train_waves, train_speakers = recordings(6, seed=100)
    test_waves, test_speakers = recordings(4, seed=200)
    classifier = SpeakerClassifier().fit(train_waves, train_speakers, SR)
    assert classifier.speakers == ["high", "low"]
    assert classifier.chance == 0.5
    assert classifier.predict(test_waves) == test_speakers
    assert classifier.target_share(test_waves, test_speakers) == 1.0
    swapped = ["low" if name == "high" else "high" for name in test_speakers]
    assert classifier.target_share(test_waves, swapped) == 0.0
    with pytest.raises(ValueError, match="not in the training speakers"):
        classifier.target_share(test_waves[:1], ["nobody"])


def test_voicing_agreement_is_one_for_a_copy_and_low_when_the_voice_becomes_whisper(sentence: np.ndarray) -> None:
    assert voicing_agreement(sentence, sentence, SR) == 1.0
    # Same formants and timing, noise instead of a pitched voice: only the pauses still agree.
    # Measured 0.25 (pauses are 6 / 24 of the time).
    whispered = utterance(SENTENCE, whisper=True)
    assert voicing_agreement(whispered, sentence, SR) < 0.4


def test_mcd_of_a_noisy_copy_grows_with_the_noise(sentence: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(sentence.size).astype(np.float32)
    # Measured 11.5, 15.1, 17.8 dB for noise at 0.003, 0.01, 0.03 (the peak is 0.5).
    values = [mcd_dtw(sentence, sentence + level * noise, SR) for level in (0.003, 0.01, 0.03)]
    assert all(value is not None for value in values)
    assert 0.0 < values[0] < values[1] < values[2]
    assert mcd_dtw(np.zeros(SR, dtype=np.float32), sentence, SR) is None  # a silent reference has nothing to score


def test_summarise_conversions_gives_t_intervals_per_target_and_pooled() -> None:
    rows = [{"target": "a", "mcd": float(v), "margin": None} for v in (1, 2, 3, 4, 5)]
    rows += [{"target": "b", "mcd": 10.0, "margin": 0.5}]
    result = summarise_conversions(rows)
    assert set(result) == {"a", "b", "all"}
    a = result["a"]["mcd"]
    # mean 3, s = √2.5, t(0.975, 4) = 2.7764 (tables): half width 2.7764 · √2.5 / √5 = 1.9632.
    assert a.n == 5 and a.mean == pytest.approx(3.0)
    assert a.half_width == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), abs=1e-3)
    assert (a.low, a.high) == pytest.approx((3.0 - a.half_width, 3.0 + a.half_width))
    assert result["a"]["margin"].n == 0 and result["a"]["margin"].mean is None
    pooled = result["all"]["mcd"]
    assert pooled.n == 6 and pooled.mean == pytest.approx(25 / 6)
    assert result["b"]["mcd"].half_width == 0.0
    with pytest.raises(ValueError, match="reserved"):
        summarise_conversions([{"target": "all", "mcd": 1.0}])


def test_real_speech_different_sentences_are_farther_apart_than_a_time_stretched_copy() -> None:
    import librosa
    import soundfile

    first, second = FESTVOX_RU / "ru_0063.wav", FESTVOX_RU / "ru_0308.wav"  # both 4.3 s
    if not (first.exists() and second.exists()):
        pytest.skip(f"needs the Debian package festvox-ru ({FESTVOX_RU})")
    waves = []
    for path in (first, second):
        wave, rate = soundfile.read(path, dtype="float32")
        assert rate == SR
        waves.append(wave)
    stretched = librosa.effects.time_stretch(waves[0], rate=1.1)
    to_stretched = content_distance(waves[0], stretched, SR)
    to_other = content_distance(waves[0], waves[1], SR)
    assert to_stretched < 0.6 * to_other
