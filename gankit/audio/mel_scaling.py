"""How a conversion model's log-mel is scaled for its network and back: per-band standardisation with corpus
statistics (StarGAN-VC's 1-D networks), or one min–max range onto [0, 1] (the spec256 network's sigmoid output).

Both work on tensors [..., n_mels, frames] and describe themselves as a plain dict, which a checkpoint stores so
that inference scales exactly as training did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor


class MelScaling(Protocol):
    kind: ClassVar[str]

    def normalise(self, log_mel: Tensor) -> Tensor: ...

    def denormalise(self, scaled: Tensor) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BandStandardisation:
    """(log-mel − mean) / scale per band, with a corpus' per-band statistics."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    kind: ClassVar[str] = "band_standardisation"

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.scale) or not self.mean:
            raise ValueError(f"mean and scale need one value per band ({len(self.mean)} and {len(self.scale)} given)")
        if min(self.scale) <= 0:
            raise ValueError("every band's scale must be > 0")

    @property
    def n_mels(self) -> int:
        return len(self.mean)

    def _vectors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device)[:, None]
        scale = torch.tensor(self.scale, dtype=like.dtype, device=like.device)[:, None]
        return mean, scale

    def normalise(self, log_mel: Tensor) -> Tensor:
        mean, scale = self._vectors(log_mel)
        return (log_mel - mean) / scale

    def denormalise(self, scaled: Tensor) -> Tensor:
        mean, scale = self._vectors(scaled)
        return scaled * scale + mean

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": list(self.mean), "scale": list(self.scale)}


@dataclass(frozen=True)
class MinMaxScaling:
    """(log-mel − low) / (high − low), clipped to [0, 1]: one range for every band, as an image's pixels."""

    low: float
    high: float
    kind: ClassVar[str] = "min_max"

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"the range's high ({self.high}) must be above its low ({self.low})")

    def normalise(self, log_mel: Tensor) -> Tensor:
        return ((log_mel - self.low) / (self.high - self.low)).clamp(0.0, 1.0)

    def denormalise(self, scaled: Tensor) -> Tensor:
        return scaled * (self.high - self.low) + self.low

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high}


def _numbers(d: Mapping[str, Any], key: str) -> list[float]:
    value = d.get(key)
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{key!r} must be a list of numbers")
    return [float(v) for v in value]


def scaling_from_dict(d: Mapping[str, Any]) -> BandStandardisation | MinMaxScaling:
    """The scaling a `to_dict()` describes; ValueError naming what is wrong."""
    kind = d.get("kind")
    if kind == BandStandardisation.kind:
        return BandStandardisation(tuple(_numbers(d, "mean")), tuple(_numbers(d, "scale")))
    if kind == MinMaxScaling.kind:
        low, high = d.get("low"), d.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError("'low' and 'high' must be numbers")
        return MinMaxScaling(float(low), float(high))  # type: ignore[arg-type]
    raise ValueError(f"unknown mel scaling {kind!r}; known: {BandStandardisation.kind}, {MinMaxScaling.kind}")


def log_mel_range(mels: Sequence[Tensor]) -> tuple[float, float]:
    """(lowest, highest) value over log-mels: a min–max range from a corpus' files."""
    if not mels:
        raise ValueError("no mels to take a range from")
    return min(float(m.min()) for m in mels), max(float(m.max()) for m in mels)
