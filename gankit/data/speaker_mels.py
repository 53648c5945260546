"""Speaker corpora for voice conversion (`gankit/data/speakers.py` writes and reads their table): the speakers a
run converts among, and the training dataset of scaled log-mel segments with each item's speaker, conversion
target and gradient-penalty mix drawn from its place in the epoch (so accumulation, any rank layout and a resume draw
the same numbers). Ids are `<speaker>/<utterance>`. A conversion target is always another speaker of the source's
group (a parallel corpus per language converts and is scored within its language)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.audio.io import AudioReadError, read_audio
from gankit.audio.mel import MelFrontend
from gankit.audio.mel_scaling import MelScaling, log_mel_range
from gankit.data.filelist import FileListEntry
from gankit.data.replacement import read_with_replacements
from gankit.data.sampler import REPLACED_KEY, SampleKey, rng_for
from gankit.data.speakers import Speaker, speaker_of
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import DataError

SEGMENT_STREAM = 31  # crop offset, target speaker and gradient-penalty mix of an item: its own random stream
MAX_REPLACEMENTS = 8


@dataclass(frozen=True)
class SpeakerSet:
    """The speakers a run converts among, labelled 0 … N−1 in this order, and each one's group."""

    names: tuple[str, ...]
    groups: tuple[str, ...]

    @classmethod
    def select(cls, table: Sequence[Speaker], speakers: Sequence[str] | None, groups: Sequence[str] | None,
               origin: str) -> SpeakerSet:
        chosen = list(table)
        if groups:
            unknown = sorted(set(groups) - {s.group for s in table})
            if unknown:
                raise DataError(f"data.groups: {', '.join(unknown)} not in {origin} (groups there: "
                                f"{', '.join(sorted({s.group for s in table})) or 'none'})")
            chosen = [s for s in chosen if s.group in groups]
        if speakers:
            names = {s.name for s in chosen}
            unknown = [name for name in speakers if name not in names]
            if unknown:
                raise DataError(f"data.speakers: {', '.join(unknown)} not in {origin}"
                                + (" (or not in data.groups)" if groups else ""))
            chosen = [s for s in chosen if s.name in set(speakers)]
        result = cls(tuple(s.name for s in chosen), tuple(s.group for s in chosen))
        for group in sorted(set(result.groups)):
            if result.groups.count(group) < 2:
                raise DataError(f"group {group or '(none)'!r} of {origin} has a single speaker: conversion needs "
                                "at least two per group; add speakers or leave the group out (data.groups)")
        return result

    def __len__(self) -> int:
        return len(self.names)

    def label(self, name: str) -> int:
        return self.names.index(name)

    def partners(self, label: int) -> list[int]:
        """The other speakers of `label`'s group: its conversion targets."""
        return [i for i, g in enumerate(self.groups) if g == self.groups[label] and i != label]


class SpeakerMelDataset(torch.utils.data.Dataset):
    """Items `{"mel": [n_mels, frames] scaled, "speaker": label, "target": label, "gp_mix": α, "id"}` (labels
    and α as 0-d tensors, so batches stack them).

    Indexed by `SampleKey`. `item_domains` (each item's speaker) makes the engine's sampler put every speaker in
    every batch, as the original's data set does (one segment per speaker per batch item); None turns that off
    (many speakers, small batches). A short file is padded with the front-end's silence."""

    def __init__(self, entries: Sequence[FileListEntry], wav_dir: str | os.PathLike[str], frontend: MelFrontend,
                 speakers: SpeakerSet, scaling: MelScaling, frames: int, seed: int, balanced: bool = True) -> None:
        if not entries:
            raise DataError("no training files are left to train on; see the report above")
        self.entries = list(entries)
        self.wav_dir = Path(wav_dir)
        self.frontend = frontend
        self.speakers = speakers
        self.labels = [speakers.label(speaker_of(e.id)) for e in self.entries]
        self.ids = [e.id for e in self.entries]
        self.scaling = scaling
        self.frames = frames
        self.segment_samples = frontend.output_length(frames)
        self.seed = seed
        self.item_domains: list[int] | None = list(self.labels) if balanced else None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        rng = rng_for(self.seed, SEGMENT_STREAM, key.epoch, key.position)
        # A replacement is another file of the same speaker: the batch stays balanced.
        mel, index, replaced = read_with_replacements(
            lambda i: self._segment(i, rng), key, self.ids, self.seed, SEGMENT_STREAM, self.wav_dir, MAX_REPLACEMENTS,
            pool=lambda: [i for i, label in enumerate(self.labels) if label == self.labels[key.index]])
        source = self.labels[index]
        partners = self.speakers.partners(source)
        target = partners[int(rng.integers(len(partners)))]
        item: dict[str, Any] = {
            "mel": mel, "speaker": torch.tensor(source), "target": torch.tensor(target),
            "gp_mix": torch.tensor(float(rng.random())), "id": self.entries[index].id,
        }
        if replaced:
            item[REPLACED_KEY] = replaced
        return item

    def _segment(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        entry = self.entries[index]
        path = self.wav_dir / f"{entry.id}.wav"
        audio, rate = read_audio(path)
        if rate != self.frontend.sample_rate:
            raise AudioReadError(f"{path}: {rate} Hz, the front-end expects {self.frontend.sample_rate} Hz; "
                                 "prepare the corpus again with --sample-rate")
        audio = peak_normalise(audio)  # as the corpus statistics and gankit's vocoders saw their audio
        # Draw the offset whatever the length, so every item consumes the same random numbers.
        offset = rng.random()
        if len(audio) > self.segment_samples:
            start = int(offset * (len(audio) - self.segment_samples + 1))
            audio = audio[start: start + self.segment_samples]
        else:
            audio = np.pad(audio, (0, self.segment_samples - len(audio)))
        with torch.no_grad():
            mel = self.frontend(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        return self.scaling.normalise(mel[:, : self.frames]).contiguous()


def _log_mel(path: str | os.PathLike[str], frontend: MelFrontend) -> tuple[torch.Tensor, np.ndarray]:
    audio, rate = read_audio(path)
    if rate != frontend.sample_rate:
        raise DataError(f"{path}: {rate} Hz, the front-end expects {frontend.sample_rate} Hz")
    audio = peak_normalise(audio)
    with torch.no_grad():
        mel = frontend(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
    return mel, audio


def utterance_mel(path: str | os.PathLike[str], frontend: MelFrontend,
                  scaling: MelScaling) -> tuple[torch.Tensor, np.ndarray]:
    """(scaled log-mel [n_mels, frames] of a whole file, its peak-normalised audio) at the front-end's rate."""
    mel, audio = _log_mel(path, frontend)
    return scaling.normalise(mel), audio


def corpus_log_mel_range(entries: Sequence[FileListEntry], wav_dir: str | os.PathLike[str], frontend: MelFrontend,
                         max_files: int) -> tuple[float, float]:
    """(lowest, highest) log-mel value over up to `max_files` of `entries`, evenly spaced in id order (the same files
    whenever the list is the same): a min–max scaling's range, taken from training files only."""
    ordered = sorted(entries, key=lambda e: e.id)
    if not ordered:
        raise DataError("no training files to take the log-mel range from")
    step = max(1, len(ordered) / max_files)
    chosen = [ordered[int(i * step)] for i in range(min(max_files, len(ordered)))]
    return log_mel_range([_log_mel(Path(wav_dir) / f"{e.id}.wav", frontend)[0] for e in chosen])
