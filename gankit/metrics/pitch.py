"""Pitch accuracy of a resynthesis: log-F0 RMSE in cents and voicing decision errors, from `librosa.pyin`.

Speed: pyin's Viterbi pass runs over the non-zero transitions only (`viterbi.faster_pyin`, the same states), and the
last few tracks are kept by the wave's content, so a reference scored against several systems is tracked once."""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import TypedDict

import numpy as np

from gankit.metrics.spectral import align_pair


class F0Result(TypedDict):
    f0_rmse_cents: float | None
    vuv_error: float
    frames: int
    voiced_reference: int
    voiced_estimate: int
    voiced_both: int


def default_frame_length(sample_rate: int, fmin: float) -> int:
    """Power-of-two pyin frame holding at least two periods of `fmin` (YIN needs two to see one lag):
    1024 at 16 and 22.05 kHz with fmin 50, 2048 at 44.1 kHz."""
    return 1 << (math.ceil(2 * sample_rate / fmin) - 1).bit_length()


def f0_track(
    wave: np.ndarray,
    sample_rate: int,
    fmin: float = 50.0,
    fmax: float = 600.0,
    frame_length: int | None = None,
    hop_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, NaN where unvoiced; voiced flags) per frame, from `librosa.pyin`.

    Defaults: `default_frame_length` and a 10 ms hop — pyin's Viterbi pass costs per frame, and 10 ms is
    finer than any pitch error a listener hears.
    """
    import librosa

    from gankit.metrics.viterbi import faster_pyin

    frame = default_frame_length(sample_rate, fmin) if frame_length is None else frame_length
    hop = max(1, round(0.01 * sample_rate)) if hop_length is None else hop_length
    samples = np.ascontiguousarray(wave, dtype=np.float32)
    key = (hashlib.blake2b(samples.tobytes(), digest_size=16).digest(), samples.shape, sample_rate, float(fmin),
           float(fmax), frame, hop)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        with faster_pyin():
            f0, voiced, _ = librosa.pyin(samples, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame,
                                         hop_length=hop)
        hit = (f0, voiced.astype(bool))
        with _CACHE_LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > CACHED_TRACKS:
                _CACHE.popitem(last=False)
    return hit[0].copy(), hit[1].copy()  # copies: a caller may write into its arrays, the cache must not change


# The tracks of the last few waves, by content and settings: `f0_metrics` tracks a reference once for all the systems
# scored against it (the model, Griffin-Lim). Small: a 5 s track is a few kB.
CACHED_TRACKS = 8
_CACHE: OrderedDict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def f0_metrics(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    fmin: float = 50.0,
    fmax: float = 600.0,
    frame_length: int | None = None,
    hop_length: int | None = None,
) -> F0Result:
    """F0 agreement of `estimate` with `reference`, both tracked by pyin with the same frames and range.

    Returns
    - "f0_rmse_cents": sqrt(mean (1200 · log2(f̂0 / f0))²) over frames voiced in both; None when there is none,
    - "vuv_error": fraction of frames whose voiced/unvoiced decision differs,
    - "frames", "voiced_reference", "voiced_estimate", "voiced_both": the counts behind them.

    pyin's voicing decision is probabilistic: on white noise it calls a varying share of frames voiced (0–30%
    seen), so a noisy resynthesis of silence shows up as V/UV error as well as in the spectral measures.
    """
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"f0_metrics: needs 0 < fmin < fmax < sample_rate/2, got fmin {fmin}, fmax {fmax}")
    ref, est = align_pair(reference, estimate)
    ref_f0, ref_voiced = f0_track(ref, sample_rate, fmin, fmax, frame_length, hop_length)
    est_f0, est_voiced = f0_track(est, sample_rate, fmin, fmax, frame_length, hop_length)
    both = ref_voiced & est_voiced
    rmse: float | None = None
    if both.any():
        cents = 1200.0 * np.log2(est_f0[both] / ref_f0[both])
        rmse = float(np.sqrt(np.mean(cents**2)))
    return {
        "f0_rmse_cents": rmse,
        "vuv_error": float(np.mean(ref_voiced != est_voiced)),
        "frames": int(ref_voiced.size),
        "voiced_reference": int(ref_voiced.sum()),
        "voiced_estimate": int(est_voiced.sum()),
        "voiced_both": int(both.sum()),
    }
