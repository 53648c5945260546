"""The named mel presets: each reproduces one original project's feature extractor."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from typing_extensions import Self

from gankit.audio.mel_base import StftMelFrontend
from gankit.audio.mel_cache import band_vector
from gankit.errors import ConfigError

_LJ_22K = {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 80}


@dataclass(frozen=True)
class HifiGanMel(StftMelFrontend):
    """HiFi-GAN's `mel_spectrogram`: √(re² + im² + 1e-9), Slaney mel, ln(clamp(x, 1e-5))."""

    preset: ClassVar[str] = "hifigan"
    centered: ClassVar[bool] = False
    htk: ClassVar[bool] = False
    filter_norm: ClassVar[str | None] = "slaney"
    defaults: ClassVar[dict[str, Any]] = {**_LJ_22K, "fmin": 0, "fmax": 8000}

    def _magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        # The epsilon is part of the original's numbers (and keeps the sqrt's gradient finite).
        return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)

    def _compress(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(mel, min=1e-5))


@dataclass(frozen=True)
class MelGanMel(StftMelFrontend):
    """MelGAN's `Audio2Mel`: |STFT| without epsilon, Slaney mel up to sr/2, log10(clamp(x, 1e-5))."""

    preset: ClassVar[str] = "melgan"
    centered: ClassVar[bool] = False
    htk: ClassVar[bool] = False
    filter_norm: ClassVar[str | None] = "slaney"
    defaults: ClassVar[dict[str, Any]] = {**_LJ_22K, "fmin": 0, "fmax": None}

    def _compress(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log10(torch.clamp(mel, min=1e-5))


@dataclass(frozen=True)
class ParallelWaveGanMel(StftMelFrontend):
    """ParallelWaveGAN's `logmelfilterbank` (centred librosa STFT, log10, floor 1e-10), then
    (x − mean) / scale per band with the corpus statistics it carries (identity without them)."""

    preset: ClassVar[str] = "parallel_wavegan"
    centered: ClassVar[bool] = True
    htk: ClassVar[bool] = False
    filter_norm: ClassVar[str | None] = "slaney"
    defaults: ClassVar[dict[str, Any]] = {
        **_LJ_22K, "fmin": 80, "fmax": 7600, "mean": None, "scale": None,
    }

    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.mean is None) != (self.scale is None):
            self._fail("mean and scale come together; give both or neither")
        if self.mean is not None and self.scale is not None:
            object.__setattr__(self, "mean", self._bands("mean", self.mean, positive=False))
            object.__setattr__(self, "scale", self._bands("scale", self.scale, positive=True))

    def _bands(self, name: str, values: Sequence[Any], positive: bool) -> tuple[float, ...]:
        try:
            floats = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            floats = ()
        if len(floats) != self.n_mels:
            self._fail(f"{name} must be a list of {self.n_mels} numbers (one per band), got {values!r:.80}")
        bad = [v for v in floats if not math.isfinite(v) or (positive and v <= 0)]
        if bad:
            need = "finite and > 0" if positive else "finite"
            self._fail(f"{name} values must be {need}, got {bad[0]!r}; recompute the statistics")
        return floats

    def with_statistics(self, mean: Sequence[float] | None, scale: Sequence[float] | None) -> Self:
        """The same front-end normalising with these per-band statistics (None, None: no normalisation)."""
        return dataclasses.replace(
            self,
            mean=None if mean is None else tuple(mean),
            scale=None if scale is None else tuple(scale),
        )

    def _compress(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log10(torch.clamp(mel, min=1e-10))

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        out = self.log_mel(wave)
        if self.mean is None or self.scale is None:
            return out
        mean = band_vector(self.mean, out.device, out.dtype)
        scale = band_vector(self.scale, out.device, out.dtype)
        return (out - mean) / scale


@dataclass(frozen=True)
class VocosMel(StftMelFrontend):
    """Vocos' `MelSpectrogramFeatures` (torchaudio, centred, power 1, HTK mel without filter
    normalisation), ln(clip(x, 1e-7))."""

    preset: ClassVar[str] = "vocos"
    centered: ClassVar[bool] = True
    htk: ClassVar[bool] = True
    filter_norm: ClassVar[str | None] = None
    defaults: ClassVar[dict[str, Any]] = {
        "sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 100,
        "fmin": 0, "fmax": None,
    }

    def _compress(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(mel, min=1e-7))


PRESETS: dict[str, type[StftMelFrontend]] = {
    cls.preset: cls for cls in (HifiGanMel, MelGanMel, ParallelWaveGanMel, VocosMel)
}


def register_preset(cls: type[StftMelFrontend]) -> type[StftMelFrontend]:
    """Class decorator adding a preset to the registry `build_frontend` reads."""
    if cls.preset in PRESETS and PRESETS[cls.preset] is not cls:
        raise ConfigError(f"mel preset {cls.preset} is already registered by {PRESETS[cls.preset].__name__}")
    PRESETS[cls.preset] = cls
    return cls
