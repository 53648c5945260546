"""Log-mel spectrogram images of sample wavs, in numpy (librosa's Slaney mel scale, without importing
librosa: its scipy.signal import alone takes seconds, and a report is rebuilt often during training)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from gankit import atomic

_FLOOR = 1e-5  # the clamp HiFi-GAN uses before log: −100 dB
DB_RANGE = (-100.0, 20.0)  # one fixed colour scale, so a quiet or silent generator looks dark, not normal


@dataclass(frozen=True)
class MelParams:
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None → sample_rate / 2


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    seconds: float
    peak_dbfs: float  # −inf for digital silence
    rms_dbfs: float


def _frontend_section(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The run's `frontend:` with its preset's defaults filled in (a saved config may hold only `{preset: hifigan}`,
    whose 8 kHz top the report must draw to); None when there is none or it does not build."""
    frontend = config.get("frontend") if isinstance(config, Mapping) else None
    if not isinstance(frontend, Mapping) or "preset" not in frontend:
        return None
    from gankit.audio.mel import build_frontend
    from gankit.errors import ConfigError

    try:
        return build_frontend(frontend).to_config()
    except (ConfigError, TypeError, ValueError):
        return None


def mel_params_from_config(config: Mapping[str, Any] | None) -> MelParams:
    """The run's own mel settings if the config holds a mapping with n_mels (at most 3 levels deep)."""

    def find(node: Any, depth: int) -> Mapping[str, Any] | None:
        if not isinstance(node, Mapping) or depth > 3:
            return None
        if "n_mels" in node:
            return node
        for child in node.values():
            found = find(child, depth + 1)
            if found is not None:
                return found
        return None

    section = _frontend_section(config) or find(config, 0)
    if section is None:
        return MelParams()

    def number(key: str, default: Any) -> Any:
        value = section.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default

    base = MelParams()
    fmax = section.get("fmax")
    return MelParams(
        n_fft=int(number("n_fft", base.n_fft)),
        hop_length=int(number("hop_length", base.hop_length)),
        n_mels=int(number("n_mels", base.n_mels)),
        fmin=float(number("fmin", base.fmin)),
        fmax=float(fmax) if isinstance(fmax, (int, float)) and not isinstance(fmax, bool) else None,
    )


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney: linear below 1 kHz, logarithmic above (librosa's default, htk=False).
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_step = math.log(6.4) / 27.0
    above = hz >= 1000.0
    mel[above] = 15.0 + np.log(hz[above] / 1000.0) / log_step
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_step = math.log(6.4) / 27.0
    above = mel >= 15.0
    hz[above] = 1000.0 * np.exp(log_step * (mel[above] - 15.0))
    return hz


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_mels, n_fft//2 + 1] triangular filters, Slaney area-normalised (= librosa.filters.mel)."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def log_mel_db(audio: np.ndarray, sample_rate: int, params: MelParams) -> np.ndarray:
    """[n_mels, frames] magnitude mel spectrogram in dB (20·log10, floored at −100 dB); centred frames."""
    audio = np.asarray(audio, dtype=np.float64)
    n_fft, hop = params.n_fft, params.hop_length
    pad = n_fft // 2
    if audio.size <= pad:  # reflect padding needs more samples than the pad
        audio = np.pad(audio, (0, pad + 1 - audio.size))
    padded = np.pad(audio, (pad, pad), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T
    fmax = params.fmax if params.fmax is not None else sample_rate / 2.0
    fmax = min(fmax, sample_rate / 2.0)
    mel = mel_filterbank(sample_rate, n_fft, params.n_mels, params.fmin, fmax) @ magnitude
    return 20.0 * np.log10(np.maximum(mel, _FLOOR))


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sample_rate)


def audio_info(audio: np.ndarray, sample_rate: int) -> AudioInfo:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0

    def dbfs(x: float) -> float:
        return 20.0 * math.log10(x) if x > 0 else -math.inf

    return AudioInfo(sample_rate, audio.size / sample_rate if sample_rate else 0.0, dbfs(peak), dbfs(rms))


def write_spectrogram_png(audio: np.ndarray, sample_rate: int, params: MelParams, png: Path) -> None:
    """Low frequencies at the bottom, fixed dB colour scale; written atomically (a page may be open)."""
    import io

    from matplotlib import image  # lazily: only rendering needs matplotlib

    db = log_mel_db(audio, sample_rate, params)
    # Repeat rows so an 80-band image is not a thin strip when the browser scales it up.
    scale = max(1, 160 // max(1, db.shape[0]))
    pixels = np.repeat(db[::-1], scale, axis=0)
    buffer = io.BytesIO()
    image.imsave(buffer, pixels, vmin=DB_RANGE[0], vmax=DB_RANGE[1], cmap="magma", format="png")
    atomic.write_bytes(png, buffer.getvalue())
