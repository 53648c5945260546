"""What both vocoders (torch `Vocoder`, numpy-only `OnnxVocoder`) check of a mel's shape and length before running it,
in one wording; torch-free at import, as the ONNX path needs. The dtype and finiteness checks stay with each vocoder,
in its own array library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gankit.errors import MelInputError


def check_mel_shape(shape: Sequence[int], *, n_mels: int, preset: str, min_frames: int, whole: bool = True,
                    dims: tuple[int, ...] = (2, 3)) -> None:
    """[n_mels, frames] (or [batch, n_mels, frames] where `dims` allows) of at least `min_frames` frames; `whole=False`
    for a piece of a mel, which may be shorter."""
    shape = tuple(shape)
    if len(shape) not in dims or shape[-2] != n_mels:
        takes = " or ".join(f"[{'batch, ' if d == 3 else ''}{n_mels}, frames]" for d in dims)
        raise MelInputError(f"mel of shape {list(shape)}: this vocoder takes {takes} (preset {preset})")
    if whole:
        check_length(shape[-1], min_frames)


def check_length(frames: int, min_frames: int) -> None:
    if frames < min_frames:
        raise MelInputError(f"mel of {frames} frames: the generator needs at least {min_frames}")


def check_batch_item(shape: Sequence[int]) -> None:
    """An item of `vocode_batch`: one [n_mels, frames] mel, not a batch."""
    if len(shape) != 2:
        raise MelInputError(f"vocode_batch takes [n_mels, frames] mels, got shape {list(shape)}")


def chunk_source_frames(mel: Any, *, n_mels: int, preset: str, min_frames: int) -> int:
    """The frames of a `vocode_chunked` source: an in-memory [n_mels, T] array or tensor (its shape checked), or a
    `chunking.MelFrames` (its `frames`); at least `min_frames` of them."""
    shape = getattr(mel, "shape", None)
    if shape is not None:
        if len(shape) != 2 or shape[0] != n_mels:
            raise MelInputError(
                f"mel of shape {list(shape)}: vocode_chunked takes [{n_mels}, frames] (preset {preset})")
        total = int(shape[-1])
    else:
        total = int(mel.frames)
    check_length(total, min_frames)
    return total
