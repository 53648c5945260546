"""A keyed training item whose file cannot be read is replaced by another chosen from its `SampleKey` alone, so every
worker and rank layout (and a resume) picks the same replacement; the replaced files are reported once by the loader
(`REPLACED_KEY`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from gankit.audio.io import AudioReadError
from gankit.data.sampler import SampleKey, rng_for
from gankit.errors import DataError

T = TypeVar("T")


def read_with_replacements(
    read: Callable[[int], T],
    key: SampleKey,
    ids: Sequence[str],
    seed: int,
    stream: int,
    where: str | os.PathLike[str],
    attempts: int,
    pool: Callable[[], Sequence[int]] | None = None,
) -> tuple[T, int, list[tuple[str, str]]]:
    """`read(key.index)`; while it raises AudioReadError or FileNotFoundError, `read` another index drawn from
    (seed, stream, epoch, position, attempt) among `pool()` (e.g. the same speaker's items; default: every item), up
    to `attempts` reads. Returns (what was read, the index it came from, [(id, reason)] of the files replaced);
    DataError naming `where` when every attempt failed."""
    index, replaced = key.index, []
    for attempt in range(1, attempts + 1):
        try:
            return read(index), index, replaced
        except (AudioReadError, FileNotFoundError) as exc:
            replaced.append((ids[index], str(exc)))
            choices = pool() if pool is not None else range(len(ids))
            index = choices[int(rng_for(seed, stream, key.epoch, key.position, attempt).integers(len(choices)))]
    raise DataError(f"{attempts} training files in a row could not be read (last: {replaced[-1][1]}); check that "
                    f"{where} is still there")
