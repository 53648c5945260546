"""Spectral distances between a reference wave and its resynthesis: the training mel's L1 and the
multi-resolution STFT distance. Also the pair handling every measure in `gankit.metrics` shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:
    from gankit.audio.mel import MelFrontend

# Resynthesis keeps alignment, so lengths differ by at most a hop or so (frames × hop against the original
# length). A larger gap means the pair was not aligned by construction, and every frame-wise measure would
# compare different sounds: refuse rather than report a meaningless number.
MAX_LENGTH_MISMATCH = 4096

DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
# ParallelWaveGAN clamps the *power* at 1e-7 before the square root (the MR-STFT loss in
# gankit.losses.spectral does the same), so log-magnitudes never see log(0).
_POWER_FLOOR = 1e-7


class Scored(NamedTuple):
    """A measure's value, or None with the reason it could not score this pair."""

    value: float | None
    reason: str | None = None


def align_pair(
    reference: np.ndarray, estimate: np.ndarray, max_mismatch: int = MAX_LENGTH_MISMATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Both waves as 1-D float32 arrays trimmed to the shorter length.

    Raises ValueError for non-1-D or non-finite input, empty input, or lengths further apart than `max_mismatch`.
    """
    waves = []
    for name, wave in (("reference", reference), ("estimate", estimate)):
        array = np.asarray(wave)
        if array.ndim != 1:
            raise ValueError(f"metrics: the {name} must be a mono [T] wave, got shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"metrics: the {name} wave is empty")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"metrics: the {name} must be a float wave in [-1, 1], got {array.dtype}")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise ValueError(f"metrics: the {name} wave has NaN or infinite samples")
        waves.append(array)
    ref, est = waves
    if abs(ref.size - est.size) > max_mismatch:
        raise ValueError(
            f"metrics: reference has {ref.size} samples and estimate {est.size}; more than {max_mismatch} apart, "
            "so they are not time-aligned resyntheses of each other"
        )
    n = min(ref.size, est.size)
    return ref[:n], est[:n]


def mel_l1(reference: np.ndarray, estimate: np.ndarray, frontend: MelFrontend) -> float:
    """Mean absolute difference between the front-end's mels of the two waves (HiFi-GAN's validation
    mel error when `frontend` is the loss front-end). Waves are trimmed to the shorter one first, so both
    mels have the same frames."""
    ref, est = align_pair(reference, estimate)
    with torch.inference_mode():
        mels = frontend(torch.from_numpy(np.stack([ref, est])))
    return float((mels[0] - mels[1]).abs().mean())


def _stft_magnitude(waves: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    # torch.stft's defaults (centred, reflect padding) with a periodic Hann window: ParallelWaveGAN's STFT.
    window = torch.hann_window(win, dtype=waves.dtype)
    spec = torch.stft(waves, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=_POWER_FLOOR))


def mrstft_distance(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS,
) -> dict[str, float]:
    """Multi-resolution STFT distance with ParallelWaveGAN's definitions, per (n_fft, hop, win):

    - spectral convergence SC = ‖|S| − |Ŝ|‖_F / ‖|S|‖_F (S the reference's STFT),
    - log-magnitude distance = mean |log|S| − log|Ŝ||,

    with |S| = sqrt(max(re² + im², 1e-7)) (PWG floors the power, not the magnitude) over a centred,
    reflect-padded STFT with a periodic Hann window. Returns {"mrstft_sc", "mrstft_mag", "mrstft_total"}:
    the two averaged over resolutions and their sum. `sample_rate` is only checked: the resolutions are in
    samples, as in PWG's loss.
    """
    if sample_rate <= 0:
        raise ValueError(f"mrstft_distance: sample_rate must be positive, got {sample_rate}")
    if not resolutions:
        raise ValueError("mrstft_distance: needs at least one (n_fft, hop, win) resolution")
    ref, est = align_pair(reference, estimate)
    waves = torch.from_numpy(np.stack([ref, est])).double()  # float64: an identical pair scores exactly 0
    sc_total = 0.0
    mag_total = 0.0
    for n_fft, hop, win in resolutions:
        if not 0 < win <= n_fft or hop < 1:
            raise ValueError(f"mrstft_distance: bad resolution (n_fft {n_fft}, hop {hop}, win {win})")
        if ref.size <= n_fft // 2:
            raise ValueError(
                f"mrstft_distance: {ref.size} samples are too few for an n_fft {n_fft} STFT (reflect padding "
                f"needs more than {n_fft // 2}); use smaller resolutions"
            )
        with torch.inference_mode():
            mags = _stft_magnitude(waves, n_fft, hop, win)
        ref_mag, est_mag = mags[0], mags[1]
        sc_total += float(torch.linalg.norm(ref_mag - est_mag) / torch.linalg.norm(ref_mag))
        mag_total += float((torch.log(ref_mag) - torch.log(est_mag)).abs().mean())
    sc = sc_total / len(resolutions)
    mag = mag_total / len(resolutions)
    return {"mrstft_sc": sc, "mrstft_mag": mag, "mrstft_total": sc + mag}
