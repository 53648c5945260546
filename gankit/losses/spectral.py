"""Multi-resolution STFT loss as ParallelWaveGAN's: spectral convergence + log-magnitude L1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PWG_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (n_fft, hop, win)


class MultiResolutionSTFTLoss(nn.Module):
    """`forward(fake [B, T], real [B, T]) -> (spectral convergence, log-magnitude L1)`, each averaged over
    the resolutions. Centred STFT (reflect pad), periodic Hann window, power clamped at 1e-7 before the square
    root — ParallelWaveGAN's numbers."""

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = PWG_RESOLUTIONS) -> None:
        super().__init__()
        if not resolutions:
            raise ValueError("MultiResolutionSTFTLoss needs at least one (n_fft, hop, win) resolution")
        for n_fft, hop, win in resolutions:
            if not 0 < win <= n_fft or hop < 1:
                raise ValueError(f"bad STFT resolution (n_fft {n_fft}, hop {hop}, win {win}): need 0 < win ≤ n_fft")
        self.resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
        # Plain dict, not buffers: windows are derived data and must not enter state dicts.
        self._windows: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}

    def _window(self, win: int, like: Tensor) -> Tensor:
        key = (win, like.device, like.dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(win, device=like.device, dtype=like.dtype)
        return self._windows[key]

    def _magnitude(self, x: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
        spec = torch.stft(x, n_fft, hop, win, self._window(win, x), return_complex=True)
        return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-7))

    def forward(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
        if fake.shape != real.shape:
            raise ValueError(f"MR-STFT loss: generated {tuple(fake.shape)} and real {tuple(real.shape)} differ")
        sc = fake.new_zeros(())
        mag = fake.new_zeros(())
        for n_fft, hop, win in self.resolutions:
            fake_mag = self._magnitude(fake, n_fft, hop, win)
            real_mag = self._magnitude(real, n_fft, hop, win)
            sc = sc + torch.linalg.norm(real_mag - fake_mag) / torch.linalg.norm(real_mag)
            mag = mag + F.l1_loss(torch.log(fake_mag), torch.log(real_mag))
        n = len(self.resolutions)
        return sc / n, mag / n
