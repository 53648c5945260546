"""Window, mel filterbank and per-band statistics tensors, built once per (parameters, device, dtype)."""

from __future__ import annotations

import functools

import numpy as np
import torch

# Small bounds: a run uses a handful of front-ends (input mel, loss mel) on one or two devices.
_CACHE_SIZE = 64


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _filterbank_array(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None,
    float64: bool,
) -> np.ndarray:
    # librosa costs ~3 s to import; only the first mel of a process should pay for it.
    import librosa

    # The originals build the filterbank in librosa's default float32; float64 is kept for float64 callers.
    weights = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
        dtype=np.float64 if float64 else np.float32,
    )
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=_CACHE_SIZE)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None,
    device: torch.device, dtype: torch.dtype,
) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] librosa mel filterbank; shared between calls, so never modify it."""
    weights = _filterbank_array(
        sample_rate, n_fft, n_mels, float(fmin), float(fmax), htk, norm, dtype == torch.float64
    )
    # A tensor first made under inference_mode could never join autograd later (training loss mel).
    with torch.inference_mode(False):
        return torch.tensor(weights, device=device, dtype=dtype)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def hann_window(win_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """torch's default periodic Hann window (what HiFi-GAN, MelGAN and torchaudio use); never modify it."""
    with torch.inference_mode(False):
        return torch.hann_window(win_length, device=device, dtype=dtype)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def band_vector(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[n_mels, 1] column of per-band values (normalisation mean or scale); never modify it."""
    with torch.inference_mode(False):
        return torch.tensor(values, device=device, dtype=dtype).unsqueeze(-1)


def clear_caches() -> None:
    """Drop every cached tensor (tests, or freeing device memory)."""
    for cached in (_filterbank_array, mel_filterbank, hann_window, band_vector):
        cached.cache_clear()
