"""Training data for music translation: µ-law segments of each domain's audio (`gankit prepare --format domains`
or `--builtin instruments`), each with a pitch-augmented copy for the encoder and its domain label.

Every random choice of an item (crop offset, the augmented stretch, its pitch shift) is drawn from the item's place
in the epoch (`SampleKey`), so accumulation, any rank layout and a resume draw the same numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.audio.io import AudioReadError, read_audio
from gankit.audio.mulaw import mu_law_encode
from gankit.data.filelist import FileListEntry
from gankit.data.replacement import read_with_replacements
from gankit.data.sampler import REPLACED_KEY, SampleKey, rng_for
from gankit.data.speakers import speaker_of
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import ConfigError, DataError

SEGMENT_STREAM = 37  # an item's crop, augmented stretch and pitch shift: its own random stream
MAX_REPLACEMENTS = 8


@dataclass
class PitchAugment:
    """`data.augment`: a random stretch of each segment (a fraction in [min_fraction, max_fraction] of it, starting
    in its first half) pitch-shifted by U(−max_semitones, +max_semitones) with librosa, as the original's
    augmentation (magnitude 0.5). The encoder sees the augmented copy; the decoder reconstructs the clean one."""

    enabled: bool = True
    max_semitones: float = 0.5
    min_fraction: float = 0.25
    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.max_semitones < 0 or not 0 < self.min_fraction <= self.max_fraction <= 1:
            raise ConfigError("data.augment: max_semitones ≥ 0 and 0 < min_fraction ≤ max_fraction ≤ 1")

    def __call__(self, wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        """A copy of `wave` with one stretch pitch-shifted (the draws happen whether or not augmentation is on, so
        an item's other numbers do not depend on it)."""
        length = len(wave)
        stretch = int(length * (self.min_fraction + rng.random() * (self.max_fraction - self.min_fraction)))
        start = int(rng.random() * (length // 2))
        semitones = (rng.random() * 2 - 1) * self.max_semitones
        if not self.enabled or stretch < 2 or semitones == 0:
            return wave.copy()
        import librosa

        end = min(length, start + stretch)
        # A short STFT: the stretch is a fraction of a segment (librosa's default 2,048 would not fit a small one).
        n_fft = 1 << int(np.log2(min(512, end - start)))
        shifted = librosa.effects.pitch_shift(y=np.ascontiguousarray(wave[start:end]), sr=rate, n_steps=semitones,
                                              n_fft=n_fft, hop_length=n_fft // 4)
        out = wave.copy()
        out[start:end] = shifted[: end - start]
        return out


class DomainAudioDataset(torch.utils.data.Dataset):
    """Items `{"audio": int64 [segment] µ-law classes, "augmented": int64 [segment], "domain": label, "id"}` keyed
    by `SampleKey`; `item_domains` makes the engine's sampler put every domain in every batch. A file shorter than
    a segment is padded with silence; an unreadable one is replaced by another of its domain (and warned)."""

    def __init__(self, entries: Sequence[FileListEntry], wav_dir: str | os.PathLike[str], domains: Sequence[str],
                 sample_rate: int, segment: int, seed: int, augment: PitchAugment) -> None:
        if not entries:
            raise DataError("no training files are left to train on; see the report above")
        self.entries = list(entries)
        self.wav_dir = Path(wav_dir)
        self.domains = list(domains)
        self.labels = [self.domains.index(speaker_of(e.id)) for e in self.entries]
        self.ids = [e.id for e in self.entries]
        self.sample_rate = sample_rate
        self.segment = segment
        self.seed = seed
        self.augment = augment
        self.item_domains: list[int] = list(self.labels)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        rng = rng_for(self.seed, SEGMENT_STREAM, key.epoch, key.position)
        wave, index, replaced = read_with_replacements(
            lambda i: self._segment(i, rng), key, self.ids, self.seed, SEGMENT_STREAM, self.wav_dir, MAX_REPLACEMENTS,
            pool=lambda: [i for i, label in enumerate(self.labels) if label == self.labels[key.index]])
        augmented = self.augment(wave, self.sample_rate, rng)
        item: dict[str, Any] = {
            "audio": torch.from_numpy(mu_law_encode(wave)), "augmented": torch.from_numpy(mu_law_encode(augmented)),
            "domain": torch.tensor(self.labels[index]), "id": self.entries[index].id,
        }
        if replaced:
            item[REPLACED_KEY] = replaced
        return item

    def _segment(self, index: int, rng: np.random.Generator) -> np.ndarray:
        path = self.wav_dir / f"{self.entries[index].id}.wav"
        audio = read_clip(path, self.sample_rate)
        offset = rng.random()  # drawn whatever the length: every item consumes the same numbers
        if len(audio) > self.segment:
            start = int(offset * (len(audio) - self.segment + 1))
            return audio[start: start + self.segment]
        return np.pad(audio, (0, self.segment - len(audio)))


def read_clip(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """A file's audio as float32 at `sample_rate`, peak-normalised (µ-law then spans its classes)."""
    audio, rate = read_audio(path)
    if rate != sample_rate:
        raise AudioReadError(f"{path}: {rate} Hz, the model expects {sample_rate} Hz; prepare the corpus again with "
                             f"--sample-rate {sample_rate}")
    return np.ascontiguousarray(peak_normalise(audio), dtype=np.float32)
