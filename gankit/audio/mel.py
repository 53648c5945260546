"""Mel front-ends: the `MelFrontend` interface and `build_frontend`, which makes one from a config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from gankit.audio.mel_base import StftMelFrontend
from gankit.audio.mel_presets import (
    PRESETS,
    HifiGanMel,
    MelGanMel,
    ParallelWaveGanMel,
    VocosMel,
    register_preset,
)
from gankit.audio.mel_stats import compute_mel_statistics
from gankit.errors import ConfigError

__all__ = [
    "PRESETS",
    "HifiGanMel",
    "MelFrontend",
    "MelGanMel",
    "ParallelWaveGanMel",
    "StftMelFrontend",
    "VocosMel",
    "build_frontend",
    "compute_mel_statistics",
    "preset_defaults",
    "register_preset",
]


@runtime_checkable
class MelFrontend(Protocol):
    preset: str
    sample_rate: int
    hop_length: int
    n_mels: int

    def __call__(self, wave: torch.Tensor) -> torch.Tensor: ...  # [B, T] → [B, n_mels, F]; [T] → [n_mels, F]
    def num_frames(self, n_samples: int) -> int: ...
    def output_length(self, n_frames: int) -> int: ...
    def frames_for_segment(self, segment_size: int) -> int: ...
    def sample_offset(self, frame_index: int) -> int: ...
    def to_config(self) -> dict[str, Any]: ...
    def with_fmax(self, fmax: float | None) -> MelFrontend: ...


def _preset_class(name: Any) -> type[StftMelFrontend]:
    if name not in PRESETS:
        raise ConfigError(
            f"unknown mel preset {name!r}; known presets: {', '.join(sorted(PRESETS))}; "
            "set mel.preset to one of them"
        )
    return PRESETS[name]


def build_frontend(cfg: Mapping[str, Any]) -> StftMelFrontend:
    """The front-end `cfg["preset"]` names, with the preset's defaults for every key `cfg` leaves out."""
    if "preset" not in cfg:
        raise ConfigError(f"mel config has no 'preset'; known presets: {', '.join(sorted(PRESETS))}")
    return _preset_class(cfg["preset"]).from_config(cfg)


def preset_defaults(name: str) -> dict[str, Any]:
    """A preset's full default config (fmax resolved), e.g. to say which preset makes 100 bands."""
    return _preset_class(name).from_config({}).to_config()
