"""The shared STFT → mel → log pipeline, framing arithmetic and config handling of every mel preset."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import torch
import torch.nn.functional as F
from typing_extensions import Self

from gankit.audio.mel_cache import hann_window, mel_filterbank
from gankit.errors import ConfigError

_INT_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels")


@dataclass(frozen=True)
class StftMelFrontend:
    """Log-mel of a reflect-padded STFT; subclasses choose framing, filterbank, magnitude and log.

    Frozen dataclass: equal parameters give equal (and hashable) front-ends, and every change
    (`with_fmax`, `with_statistics`) makes a new object.
    """

    preset: ClassVar[str]
    # centred: pad n_fft // 2 per side (librosa/torchaudio center=True);
    # otherwise (n_fft − hop) // 2 per side with center=False, as HiFi-GAN and MelGAN do.
    centered: ClassVar[bool]
    htk: ClassVar[bool]
    filter_norm: ClassVar[str | None]
    # Keys and default values of the preset; fmax None means sample_rate / 2.
    defaults: ClassVar[Mapping[str, Any]]

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Self:
        """Preset defaults overridden by `cfg` (which may also hold "preset"); unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known - {"preset"})
        if unknown:
            raise ConfigError(
                f"mel preset {cls.preset}: unknown key(s) {', '.join(unknown)}; "
                f"the keys it takes are {', '.join(sorted(known))}"
            )
        values = {**cls.defaults, **{k: v for k, v in cfg.items() if k != "preset"}}
        return cls(**values)

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            object.__setattr__(self, name, self._positive_int(name, getattr(self, name)))
        fmin = self._number("fmin", self.fmin)
        fmax = self.sample_rate / 2 if self.fmax is None else self._number("fmax", self.fmax)
        object.__setattr__(self, "fmin", fmin)
        object.__setattr__(self, "fmax", fmax)
        if self.win_length > self.n_fft:
            self._fail(f"win_length {self.win_length} is longer than n_fft {self.n_fft}; make it ≤ n_fft")
        if self.hop_length > self.n_fft:
            self._fail(f"hop_length {self.hop_length} is longer than n_fft {self.n_fft}; frames would skip audio")
        if not 0 <= fmin < fmax <= self.sample_rate / 2:
            self._fail(
                f"needs 0 ≤ fmin < fmax ≤ sample_rate/2 = {self.sample_rate / 2:g}, got fmin {fmin:g}, "
                f"fmax {fmax:g}; fix fmin/fmax (fmax null means sample_rate/2)"
            )

    def _fail(self, what: str) -> NoReturn:
        raise ConfigError(f"mel preset {self.preset}: {what}")

    def _positive_int(self, name: str, value: Any) -> int:
        try:
            if isinstance(value, bool):
                raise TypeError
            number = operator.index(value)
        except TypeError:
            number = 0
        if number <= 0:
            self._fail(f"{name} must be a positive integer, got {value!r}")
        return number

    def _number(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._fail(f"{name} must be a finite number, got {value!r}")
        return float(value)

    def to_config(self) -> dict[str, Any]:
        """Plain python values; `build_frontend(to_config())` rebuilds an equal front-end."""
        config: dict[str, Any] = {"preset": self.preset}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 8000 reads better than 8000.0 in a saved config
            elif isinstance(value, tuple):
                value = list(value)
            config[f.name] = value
        return config

    def with_fmax(self, fmax: float | None) -> Self:
        """The same front-end with another upper band edge (None → sample_rate / 2), e.g. a loss mel."""
        return dataclasses.replace(self, fmax=self.sample_rate / 2 if fmax is None else fmax)

    # ---- framing --------------------------------------------------------------------------------
    @property
    def padding(self) -> int:
        """Reflect padding added to each side of the signal before framing."""
        return self.n_fft // 2 if self.centered else (self.n_fft - self.hop_length) // 2

    @property
    def min_samples(self) -> int:
        """Shortest signal the front-end accepts: reflect padding needs more samples than it pads."""
        return max(self.padding + 1, self.n_fft - 2 * self.padding)

    def num_frames(self, n_samples: int) -> int:
        """Frames `__call__` makes from `n_samples` samples; 0 below `min_samples` (which it refuses)."""
        if n_samples < self.min_samples:
            return 0
        return 1 + (n_samples + 2 * self.padding - self.n_fft) // self.hop_length

    def output_length(self, n_frames: int) -> int:
        """Samples a vocoder makes from `n_frames` frames."""
        return n_frames * self.hop_length

    def frames_for_segment(self, segment_size: int) -> int:
        """Mel frames that go with a training segment of `segment_size` samples.

        Frame i goes with samples [i·hop, (i+1)·hop), so `output_length(frames_for_segment(s)) == s`.
        With centred framing this is one less than `num_frames(s)`: the extra frame sits on the
        segment's right edge and belongs to the next segment.
        """
        if segment_size <= 0 or segment_size % self.hop_length:
            self._fail(
                f"segment_size {segment_size} is not a positive multiple of hop_length {self.hop_length}; "
                f"use {max(1, round(segment_size / self.hop_length)) * self.hop_length}"
            )
        return segment_size // self.hop_length

    def sample_offset(self, frame_index: int) -> int:
        """First audio sample that goes with mel frame `frame_index`."""
        return frame_index * self.hop_length

    # ---- cached tensors -------------------------------------------------------------------------
    def window(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return hann_window(self.win_length, torch.device(device), dtype)

    def filterbank(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """[n_mels, n_fft // 2 + 1] mel filterbank, shared by every call with these parameters."""
        return mel_filterbank(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, self.htk, self.filter_norm,
            torch.device(device), dtype,
        )

    # ---- computation ----------------------------------------------------------------------------
    def _magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        # |STFT| via complex abs: its gradient at 0 is 0 where sqrt(re² + im²) would give NaN.
        return spec.abs()

    def _compress(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define its log compression")

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel before any normalisation: [B, T] → [B, n_mels, frames], [T] → [n_mels, frames]."""
        if wave.dim() not in (1, 2):
            raise ValueError(f"mel {self.preset}: expected a [T] or [B, T] wave, got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"mel {self.preset}: expected a float wave in [-1, 1], got {wave.dtype}")
        if wave.shape[-1] < self.min_samples:
            raise ValueError(
                f"mel {self.preset}: a wave of {wave.shape[-1]} samples is too short; "
                f"it needs at least {self.min_samples}"
            )
        # STFT has no half-precision CPU kernel; float64 stays float64 for exact comparisons.
        x = wave if wave.dtype in (torch.float32, torch.float64) else wave.float()
        batched = x.unsqueeze(0) if x.dim() == 1 else x
        if self.padding:
            batched = F.pad(batched.unsqueeze(1), (self.padding, self.padding), mode="reflect").squeeze(1)
        spec = torch.stft(
            batched, self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            window=self.window(x.device, x.dtype), center=False, normalized=False, onesided=True,
            return_complex=True,
        )
        mel = torch.matmul(self.filterbank(x.device, x.dtype), self._magnitude(spec))
        out = self._compress(mel)
        return out.squeeze(0) if wave.dim() == 1 else out

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """The preset's mel: [B, T] → [B, n_mels, frames], [T] → [n_mels, frames]."""
        return self.log_mel(wave)
