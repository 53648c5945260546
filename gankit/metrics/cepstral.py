"""Mel-cepstral distortion (MCD) without SPTK: mel-cepstra by all-pass frequency warping of each frame's
log-spectrum cepstrum (SPTK's `freqt`, as `pysptk.sp2mc` does), frames aligned by construction."""

from __future__ import annotations

import functools
import math

import numpy as np

from gankit.metrics.spectral import Scored, align_pair

# SPTK's customary all-pass constants; other rates use the standard fit to the mel scale (`mcep_alpha`).
_KNOWN_ALPHAS = {16000: 0.42, 22050: 0.455, 24000: 0.466, 44100: 0.544}
# 10/ln10 · sqrt(2 Σ Δc²): converts a mel-cepstral (natural-log amplitude) distance to dB.
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)
# Power floor before the log: a digital-silence bin would otherwise be log(0).
_POWER_FLOOR = 1e-10


def _warping_fit(alpha: float, points: int) -> np.ndarray:
    omega = np.pi * np.arange(points) / points
    warped = np.arctan2((1 - alpha * alpha) * np.sin(omega), (1 + alpha * alpha) * np.cos(omega) - 2 * alpha)
    warped[warped < 0] += np.pi
    return warped / warped[-1]


@functools.lru_cache(maxsize=16)
def mcep_alpha(sample_rate: int) -> float:
    """All-pass constant α whose frequency warping best approximates the mel scale at `sample_rate`.

    SPTK's customary values for 16, 22.05, 24 and 44.1 kHz (0.42, 0.455, 0.466, 0.544); otherwise the
    α in [0, 1) (step 0.001) minimising the RMS gap between the normalised warping and the normalised mel
    scale 1000/ln2 · ln(1 + f/1000) — the search `pysptk.util.mcepalpha` does (0.41 at 16 kHz).
    """
    if sample_rate in _KNOWN_ALPHAS:
        return _KNOWN_ALPHAS[sample_rate]
    points = 1000
    freqs = (sample_rate / 2) / points * np.arange(points)
    mel = np.log1p(freqs / 1000.0)
    mel /= mel[-1]
    candidates = np.arange(0.0, 1.0, 0.001)
    errors = [np.sqrt(np.mean((mel - _warping_fit(a, points)) ** 2)) for a in candidates]
    return round(float(candidates[int(np.argmin(errors))]), 3)


@functools.lru_cache(maxsize=16)
def freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """[order + 1, n_in] matrix of SPTK's `freqt`: cepstrum c(0..n_in−1) → warped cepstrum c̃(0..order).

    freqt is linear, so running its recursion on the identity gives the matrix once per (size, order, α);
    every frame then costs one matrix product instead of n_in × order Python steps.
    """
    b = 1.0 - alpha * alpha
    out = np.zeros((order + 1, n_in))
    for i in range(n_in - 1, -1, -1):  # SPTK feeds the input from the highest coefficient down
        prev = out.copy()
        out[0] = alpha * prev[0]
        out[0, i] += 1.0
        if order >= 1:
            out[1] = b * prev[0] + alpha * prev[1]
        for j in range(2, order + 1):
            out[j] = prev[j - 1] + alpha * (prev[j] - out[j - 1])
    out.setflags(write=False)
    return out


def _frames(wave: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    # Zero-pad half a frame each side so the first and last samples sit in a frame centre.
    padded = np.pad(wave.astype(np.float64), (frame_length // 2, frame_length // 2))
    count = 1 + (padded.size - frame_length) // hop_length
    return np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:count]


def _analysis_sizes(sample_rate: int) -> tuple[int, int, int]:
    frame_length = round(0.025 * sample_rate)  # 25 ms frames, 5 ms hop: SPTK's usual speech analysis
    hop_length = max(1, round(0.005 * sample_rate))
    n_fft = 1 << (frame_length - 1).bit_length()
    return frame_length, hop_length, n_fft


def mel_cepstrum(
    wave: np.ndarray, sample_rate: int, order: int = 24, alpha: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """([frames, order + 1] mel-cepstra c̃(0..order), [frames] frame energy in dB) of a mono wave.

    Per 25 ms Blackman-windowed frame (5 ms hop, FFT size the next power of two): power spectrum floored at
    1e-10 → log → real cepstrum in SPTK's one-sided convention (log|X(ω)| = c(0) + Σ c(n) cos nω, up to n =
    n_fft/2) → `freqt` with all-pass constant α (default `mcep_alpha(sample_rate)`), truncated at `order`.
    """
    frame_length, hop_length, n_fft = _analysis_sizes(sample_rate)
    frames = _frames(np.asarray(wave), frame_length, hop_length) * np.blackman(frame_length)
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=-1)) ** 2
    energy_db = 10.0 * np.log10(power.sum(axis=-1) / n_fft + _POWER_FLOOR)
    # irfft of the log power is twice the symmetric cepstrum of log|X|, i.e. SPTK's c(n) for 0 < n < N/2;
    # c(0) and the Nyquist term occur once in the symmetric sum, so they are halved.
    cepstrum = np.fft.irfft(np.log(np.maximum(power, _POWER_FLOOR)), n=n_fft, axis=-1)[:, : n_fft // 2 + 1]
    cepstrum[:, 0] /= 2.0
    cepstrum[:, -1] /= 2.0
    warp = mcep_alpha(sample_rate) if alpha is None else float(alpha)
    return cepstrum @ freqt_matrix(n_fft // 2 + 1, order, warp).T, energy_db


def loud_frames(energy_db: np.ndarray, silence_db: float) -> np.ndarray:
    """Frames within `silence_db` dB of the loudest and above the power floor. Silent reference frames hold no
    envelope to match; their cepstra are the floor's and would dominate MCD."""
    return (energy_db > energy_db.max() - silence_db) & (energy_db > 10.0 * np.log10(_POWER_FLOOR) + 1.0)


def frame_mcd(reference_mc: np.ndarray, estimate_mc: np.ndarray) -> np.ndarray:
    """Per paired frame, MCD in dB of mel-cepstra [N, order + 1]; c(0) (frame energy) is excluded, as usual."""
    diff = reference_mc[:, 1:] - estimate_mc[:, 1:]
    return _MCD_SCALE * np.sqrt(np.sum(diff**2, axis=-1))


def mcd_scored(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    order: int = 24,
    alpha: float | None = None,
    silence_db: float = 40.0,
) -> Scored:
    """`mcd` with the reason when no reference frame is loud enough to score."""
    if order < 1:
        raise ValueError(f"mcd: order must be at least 1, got {order}")
    ref, est = align_pair(reference, estimate)
    ref_mc, ref_energy = mel_cepstrum(ref, sample_rate, order, alpha)
    est_mc, _ = mel_cepstrum(est, sample_rate, order, alpha)
    loud = loud_frames(ref_energy, silence_db)
    if not loud.any():
        return Scored(None, "the reference has no non-silent frame; MCD has nothing to compare")
    return Scored(float(np.mean(frame_mcd(ref_mc[loud], est_mc[loud]))))


def mcd(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    order: int = 24,
    alpha: float | None = None,
    silence_db: float = 40.0,
) -> float | None:
    """Mel-cepstral distortion in dB, averaged over the reference's non-silent frames; None when it has none.

    What it computes, exactly: both waves (trimmed to the shorter) are cut into the same 25 ms Blackman
    frames with a 5 ms hop (aligned by construction, no DTW). Each frame's log power spectrum becomes a real
    cepstrum, which SPTK's `freqt` recursion warps with the all-pass constant α (0.42 at 16 kHz, 0.455 at
    22.05 kHz, 0.466 at 24 kHz, 0.544 at 44.1 kHz, else the mel-scale fit, see `mcep_alpha`) into mel-cepstra
    c̃(1..order) of log amplitude. Per frame MCD = (10 / ln 10) · sqrt(2 · Σ_{d=1..order} (c̃_d − ĉ_d)²),
    c̃(0) excluded, averaged over frames whose reference energy is within `silence_db` dB of its loudest frame.

    How it differs from SPTK-based MCD: SPTK's `mcep` (and `pysptk.mcep`) estimates mel-cepstra by an
    iterative unbiased log-spectral fit (UELS), which follows the spectral envelope's peaks rather than the
    mean of the periodogram's log. Here the order-`order` truncation of the warped cepstrum of the raw
    periodogram is the envelope (cepstral smoothing on the mel axis) — what `pysptk.sp2mc` gives for a
    periodogram (sp2mc also warps the mirrored half of the FFT cepstrum; here it stops at n_fft/2), not a
    WORLD/CheapTrick envelope. Being a least-squares fit of the log spectrum, it weighs spectral valleys
    like peaks: bands a signal leaves empty (digital silence, synthetic tones, a hard low-pass) sit at the
    1e-10 power floor and cost many dB when the other signal fills them. Harmonic ripple of high-pitched
    voices (f0 ≳ 300 Hz) can leak into the upper coefficients. So absolute values are not comparable with
    SPTK/WORLD-based figures (the gap is unmeasured: pysptk is not installed): compare systems scored here.
    """
    return mcd_scored(reference, estimate, sample_rate, order, alpha, silence_db).value
