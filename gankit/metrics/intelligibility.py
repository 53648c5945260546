"""Perceptual quality and intelligibility: PESQ wide-band (ITU-T P.862.2, the `pesq` package) and STOI
(`pystoi`). Both packages are imported only when a measure runs."""

from __future__ import annotations

import warnings

import numpy as np

from gankit.metrics.spectral import Scored, align_pair

PESQ_RATE = 16000  # P.862.2 wide-band is defined at 16 kHz only
# The pesq package refuses buffers under 1/4 s (BufferTooShortError); say so before calling it.
_PESQ_MIN_SECONDS = 0.25


def _resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return wave
    import librosa

    # soxr_hq: the resampler gankit.audio.io uses, so a score does not depend on which path read the audio.
    return librosa.resample(wave, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def pesq_wb_scored(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Scored:
    """PESQ-WB (MOS-LQO, about 1.0–4.64) with the reason when it cannot score.

    Waves are trimmed to the shorter one and resampled to 16 kHz (librosa, soxr_hq) when `sample_rate`
    differs. Returns `Scored(None, reason)` for a digitally silent reference or estimate, a pair shorter than
    1/4 s, or when PESQ detects no utterance (the package's BufferTooShortError / NoUtterancesError); other
    PESQ errors propagate.
    """
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    ref, est = align_pair(reference, estimate)
    if not np.any(ref):
        return Scored(None, "the reference is digital silence; PESQ has nothing to compare")
    if not np.any(est):
        # The pesq package fails inside (NaN → int) on an all-zero degraded signal instead of scoring it low.
        return Scored(None, "the estimate is digital silence, which the pesq package cannot score")
    ref = _resample(ref, sample_rate, PESQ_RATE)
    est = _resample(est, sample_rate, PESQ_RATE)
    if ref.size < _PESQ_MIN_SECONDS * PESQ_RATE:
        return Scored(None, f"PESQ needs at least {_PESQ_MIN_SECONDS} s of audio, got {ref.size / PESQ_RATE:.3f} s")
    try:
        score = pesq(PESQ_RATE, ref, est, mode="wb")
    except NoUtterancesError:
        return Scored(None, "PESQ detected no utterance in the reference (too quiet or too short)")
    except BufferTooShortError:
        return Scored(None, "PESQ found the audio too short (needs at least 1/4 s)")
    return Scored(float(score))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float | None:
    """PESQ-WB of `estimate` against `reference`, or None when PESQ cannot score the pair
    (`pesq_wb_scored` says why)."""
    return pesq_wb_scored(reference, estimate, sample_rate).value


def stoi_scored(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, extended: bool = False) -> Scored:
    """STOI (or extended STOI) in [0, 1] from `pystoi`, with the reason when it cannot score.

    pystoi resamples to 10 kHz itself and drops frames 40 dB below the loudest; with fewer than 30 frames
    (≈ 0.4 s of non-silent speech) left it warns and returns 1e-5, a number that looks like a score but is
    not one — that case becomes `Scored(None, reason)` here.
    """
    from pystoi import stoi as pystoi_stoi

    ref, est = align_pair(reference, estimate)
    if not np.any(ref):
        return Scored(None, "the reference is digital silence; STOI has nothing to compare")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pystoi_stoi(ref.astype(np.float64), est.astype(np.float64), sample_rate, extended=extended)
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning) and "Not enough STFT frames" in str(warning.message):
            return Scored(None, "STOI needs about 0.4 s of non-silent reference audio")
    return Scored(float(value))


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, extended: bool = False) -> float | None:
    """STOI (ESTOI when `extended`) of `estimate` against `reference`, or None when the pair is too short
    to score (`stoi_scored` says why)."""
    return stoi_scored(reference, estimate, sample_rate, extended).value
