"""Reading, writing and resampling audio files, with one-line errors that say which file and what to do.

Everything here works on float32 mono numpy arrays in [-1, 1]; torch is not needed.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from gankit.atomic import atomic_open
from gankit.errors import AudioReadError

ProblemKind = Literal["missing", "unreadable", "truncated", "empty"]

# What to do about each kind of problem, appended to every message.
_ADVICE: dict[str, str] = {
    "missing": "check the path, or remove the id from the list",
    "unreadable": "convert it to WAV/FLAC/OGG, or remove it from the corpus",
    "truncated": "re-copy or re-export it (the copy is incomplete), or remove it from the corpus",
    "empty": "remove it from the corpus",
}


class UnusableAudioError(AudioReadError):
    """An `AudioReadError` that also says which kind of problem it is, so `prepare` can count skips by reason."""

    def __init__(self, path: str | os.PathLike[str], kind: ProblemKind, what: str, advice: str | None = None) -> None:
        self.path = str(path)
        self.kind: ProblemKind = kind
        self.what = what  # the problem alone, without file name and advice (for skip lists)
        super().__init__(f"{path}: {what}; {advice or _ADVICE[kind]}")


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, a description of how its data chunk is cut short, else None.

    libsndfile silently reads what is there when a WAV's data chunk is shorter than its header says, so
    a half-copied file would train as a shorter one. Walking the chunk headers costs a few small reads.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # not a plain RIFF WAV (RF64, FLAC, OGG…): libsndfile's own checks apply
            pos = 12
            while pos + 8 <= size:
                handle.seek(pos)
                chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
                if chunk_id == b"data":
                    available = size - (pos + 8)
                    # 0 and 0xFFFFFFFF are placeholders of streaming writers; libsndfile then uses the file size.
                    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                        return f"its data chunk holds {available} of the {chunk_size} bytes its header declares"
                    return None
                pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    except OSError:
        return None  # the caller's open reports unreadable files
    return "it has no data chunk"


def audio_info(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the file header, without decoding the audio.

    Raises `AudioReadError` (an `UnusableAudioError`) for missing, unreadable, truncated and zero-length files.
    """
    p = Path(path)
    if not p.is_file():
        raise UnusableAudioError(p, "missing", "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise UnusableAudioError(p, "empty", "the file is empty (0 bytes)")
    truncated = _wav_truncation(p)
    if truncated is not None:
        raise UnusableAudioError(p, "truncated", f"truncated WAV: {truncated}")
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise UnusableAudioError(p, "unreadable", f"not a readable audio file ({_reason(exc)})") from None
    if info.frames <= 0:
        raise UnusableAudioError(p, "empty", "the file holds no audio samples")
    return int(info.samplerate), int(info.frames), int(info.channels)


def _reason(exc: BaseException) -> str:
    """libsndfile's own words without the file name it repeats ("Error opening 'x.wav': …")."""
    text = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0].removeprefix("Error : ").rstrip(".")


def read_audio(path: str | os.PathLike[str], target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 mono in [-1, 1] (channels averaged), resampled when `target_sr` differs.

    Integer PCM of any width (8/16/24/32-bit) and float WAV/FLAC/OGG are converted; float files that
    overshoot ±1 are clipped. Raises `AudioReadError` for missing, unreadable, truncated/corrupt and
    zero-length files and for float files holding NaN or infinity.
    """
    p = Path(path)
    sample_rate, frames, _ = audio_info(p)
    try:
        data, sample_rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise UnusableAudioError(p, "truncated", f"truncated or corrupt audio ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise UnusableAudioError(p, "empty", "the file holds no audio samples")
    if data.shape[0] < frames:
        raise UnusableAudioError(
            p, "truncated", f"truncated or corrupt audio: decoded {data.shape[0]} of {frames} samples"
        )
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        # It decoded fine: converting it would not help. Its samples are not numbers (a diverged model's output?).
        raise UnusableAudioError(
            p, "unreadable", f"it holds NaN/inf samples ({bad} of {audio.shape[0]}), not audio",
            "re-export it from its source, or remove it from the corpus",
        )
    audio = np.clip(audio, -1.0, 1.0)
    if target_sr is not None and target_sr != sample_rate:
        audio = resample(audio, sample_rate, target_sr)
        sample_rate = target_sr
    return np.ascontiguousarray(audio, dtype=np.float32), int(sample_rate)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of a 1-D float signal; the duration is kept."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} → {target_sr}")
    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    import librosa  # heavy import (numba); only callers that resample pay for it

    signal = np.asarray(audio, dtype=np.float32)
    out = librosa.resample(signal, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")
    return out.astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM, clipped to [-1, 1], atomically (a reader never sees half a file).

    The float → int16 step is done here (×32767, rounded) rather than by libsndfile so the result does
    not depend on its clipping mode; NaN samples (a diverged model's output) become silence.
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        samples = samples.squeeze()
    if samples.ndim != 1:
        raise ValueError(f"write_wav expects mono audio, got an array of shape {np.shape(audio)} for {path}")
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    with atomic_open(path, "wb") as handle:
        sf.write(handle, pcm, int(sample_rate), subtype="PCM_16", format="WAV")
