"""Per-band mean and standard deviation of a front-end's log-mel over a corpus, in one streaming pass."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from gankit.audio.mel_base import StftMelFrontend


class _BandMoments:
    """Chan et al.'s parallel update of count, mean and M2 in float64: stable over millions of frames,
    where sum / sum-of-squares in float32 would cancel catastrophically."""

    def __init__(self, n_bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(n_bands, dtype=np.float64)
        self.m2 = np.zeros(n_bands, dtype=np.float64)

    def add(self, frames: np.ndarray) -> None:
        """frames: [n_bands, n_frames]."""
        n = frames.shape[1]
        if n == 0:
            return
        batch_mean = frames.mean(axis=1)
        batch_m2 = ((frames - batch_mean[:, None]) ** 2).sum(axis=1)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta**2 * (self.count * n / total)
        self.count = total


def compute_mel_statistics(
    frontend: StftMelFrontend, waves: Iterable[torch.Tensor | np.ndarray]
) -> tuple[list[float], list[float]]:
    """(mean, scale) per band of `frontend.log_mel` over every frame of `waves` ([T] or [B, T] each).

    scale is the population standard deviation (as scikit-learn's StandardScaler, which
    ParallelWaveGAN's statistics come from); a constant band gets scale 1.0 so it cannot divide by 0.
    """
    moments = _BandMoments(frontend.n_mels)
    with torch.no_grad():
        for wave in waves:
            tensor = torch.from_numpy(np.asarray(wave)) if isinstance(wave, np.ndarray) else wave
            mel = frontend.log_mel(tensor)  # [n_mels, F] or [B, n_mels, F]
            if mel.dim() == 3:
                mel = mel.transpose(0, 1).reshape(frontend.n_mels, -1)
            moments.add(mel.to(torch.float64).cpu().numpy())
    if moments.count == 0:
        raise ValueError("compute_mel_statistics: no waves were given; statistics need at least one frame")
    std = np.sqrt(moments.m2 / moments.count)
    scale = np.where(std > 0, std, 1.0)
    return [float(v) for v in moments.mean], [float(v) for v in scale]
