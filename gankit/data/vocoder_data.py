"""Training and validation data of mel vocoders, as the original HiFi-GAN's `MelDataset` makes it.

Training items are random `segment_size` windows of peak-normalised (×0.95) audio, zero-padded when a
clip is shorter. In fine-tuning mode (`mels_dir`: `<id>.npy` mels made by another model) the audio is
not normalised and a random run of `segment_size // hop` mel frames is cut with the audio it describes:
frame i ↔ samples [i·hop, (i+1)·hop). Every random number comes from (seed, epoch, global position),
the `SampleKey` the sampler yields, so crops do not depend on worker count or on resuming.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.utils.data

from gankit.audio.io import audio_info, read_audio
from gankit.data.filelist import FileListEntry, read_filelist
from gankit.data.replacement import read_with_replacements
from gankit.data.sampler import CROP_STREAM, REPLACED_KEY, SampleKey, rng_for
from gankit.errors import AudioReadError, DataError

if TYPE_CHECKING:  # types only: data must not import the engine at run time
    from gankit.audio.mel import MelFrontend
    from gankit.data.settings import DataSettings

PEAK = 0.95  # the original's `normalize(audio) * 0.95`
MAX_REPLACEMENTS = 16  # unreadable files in a row before a training item gives up
SHOWN_IDS = 5  # ids named per kind of problem in the build report


def _wav_path(wav_dir: Path, utterance_id: str) -> Path:
    return wav_dir / f"{utterance_id}.wav"


def _mel_path(mels_dir: Path, utterance_id: str) -> Path:
    return mels_dir / f"{utterance_id}.npy"


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """audio / max|audio| × 0.95 (silence stays silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (PEAK / peak)).astype(np.float32) if peak > 0 else audio


def _mel_shape_problem(shape: tuple[int, ...], dtype: np.dtype, n_mels: int) -> str | None:
    if not np.issubdtype(dtype, np.floating):
        return f"holds {dtype} values, not floats"
    bands = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape
    if len(bands) != 2 or bands[0] != n_mels or bands[1] < 1:
        return f"has shape {list(shape)}, expected [{n_mels}, frames] or [1, {n_mels}, frames]"
    return None


def _mel_error(path: Path, what: str) -> DataError:
    return DataError(f"mel {path} {what}; re-export the mels with the model's front-end (natural-log values)")


def load_mel(path: Path, n_mels: int) -> np.ndarray:
    """A fine-tuning mel as float32 [n_mels, frames]; `DataError` naming the file when it is unusable."""
    try:
        mel = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _mel_error(path, f"cannot be read as a .npy array ({exc})") from None
    problem = _mel_shape_problem(mel.shape, mel.dtype, n_mels)
    if problem is not None:
        raise _mel_error(path, problem)
    mel = mel.reshape(mel.shape[-2:]).astype(np.float32, copy=False)
    if not np.isfinite(mel).all():
        raise _mel_error(path, "holds NaN or infinite values")
    return mel


def silence_mel(frontend: MelFrontend) -> np.ndarray:
    """The front-end's [n_mels] column for silence (its log floor, after any normalisation): mel padding."""
    samples = 2 * max(int(getattr(frontend, "n_fft", 0)), 4 * frontend.hop_length)
    with torch.no_grad():
        return frontend(torch.zeros(samples)).numpy()[:, 0].astype(np.float32)


class VocoderTrainDataset(torch.utils.data.Dataset):
    """Items `{"audio": [segment_size], "id": str}` (+ `"mel": [n_mels, segment_size // hop]` with mels).

    Indexed by `SampleKey` (a plain int i means epoch 0, position i). A file that fails to read (deleted
    mid-run) is replaced by another item chosen from the same key, and the item lists it under
    `REPLACED_KEY` so the loader can warn once per file.
    """

    def __init__(
        self,
        entries: Sequence[FileListEntry],
        wav_dir: str | os.PathLike[str],
        frontend: MelFrontend,
        segment_size: int,
        seed: int,
        mels_dir: str | os.PathLike[str] | None = None,
        random_gain: tuple[float, float] | None = None,
    ) -> None:
        if not entries:
            raise DataError("no training files are left to train on; see the report above")
        if segment_size < 1:
            raise DataError(f"data.segment_size must be ≥ 1, got {segment_size}")
        self.entries = list(entries)
        self.ids = [e.id for e in self.entries]
        self.wav_dir = Path(wav_dir)
        self.mels_dir = Path(mels_dir) if mels_dir is not None else None
        if random_gain is not None and self.mels_dir is not None:
            raise DataError("random gain would change the audio that the given mels describe; use one or the other")
        self.random_gain = random_gain
        self.segment_size = segment_size
        self.seed = seed
        self.sample_rate: int = frontend.sample_rate
        self.hop_length: int = frontend.hop_length
        self.n_mels: int = frontend.n_mels
        self.total_seconds: float | None = None  # set by build_vocoder_datasets from the headers it reads
        self.frames = frontend.frames_for_segment(segment_size) if self.mels_dir is not None else 0
        self.mel_floor = silence_mel(frontend) if self.mels_dir is not None else None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        rng = rng_for(self.seed, CROP_STREAM, key.epoch, key.position)
        item, _, replaced = read_with_replacements(lambda i: self._item(i, rng), key, self.ids, self.seed,
                                                   CROP_STREAM, self.wav_dir, MAX_REPLACEMENTS)
        if replaced:
            item[REPLACED_KEY] = replaced
        return item

    def _item(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        entry = self.entries[index]
        path = _wav_path(self.wav_dir, entry.id)
        audio, rate = read_audio(path)
        if rate != self.sample_rate:  # the file changed since the build-time check
            raise AudioReadError(f"{path}: {rate} Hz, the model expects {self.sample_rate} Hz; re-run gankit prepare")
        if self.mels_dir is None:
            crop = self._crop(peak_normalise(audio), rng)
            if self.random_gain is not None:  # MelGAN's amplitude augmentation; drawn after the crop's offset
                crop = (crop * rng.uniform(*self.random_gain)).astype(np.float32)
            return {"audio": torch.from_numpy(crop), "id": entry.id}
        mel = load_mel(_mel_path(self.mels_dir, entry.id), self.n_mels)
        audio, mel = self._crop_in_step(audio, mel, rng)
        return {"audio": torch.from_numpy(audio), "mel": torch.from_numpy(mel), "id": entry.id}

    def _crop(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(audio) >= self.segment_size:
            start = int(rng.integers(0, len(audio) - self.segment_size + 1))
            return np.ascontiguousarray(audio[start : start + self.segment_size])
        return np.pad(audio, (0, self.segment_size - len(audio)))

    def _crop_in_step(
        self, audio: np.ndarray, mel: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        hop, frames = self.hop_length, self.frames
        usable = min(mel.shape[1], len(audio) // hop)  # frames that have all their samples
        if usable >= frames:
            start = int(rng.integers(0, usable - frames + 1))
            return (
                np.ascontiguousarray(audio[start * hop : (start + frames) * hop]),
                np.ascontiguousarray(mel[:, start : start + frames]),
            )
        assert self.mel_floor is not None
        pad = np.repeat(self.mel_floor[:, None], frames - usable, axis=1)
        mel = np.concatenate([mel[:, :usable], pad], axis=1)
        return np.pad(audio[: usable * hop], (0, self.segment_size - usable * hop)), mel


# ---- build-time checks --------------------------------------------------------------------------------
_REPROCESS = "re-run gankit prepare on the corpus"
_ADVICE = {"missing": "check data.dir / data.wav_dir", "unreadable": _REPROCESS, "truncated": _REPROCESS,
           "empty": _REPROCESS}


@dataclass
class CheckedEntries:
    usable: list[FileListEntry] = field(default_factory=list)
    seconds: float = 0.0
    problems: dict[str, list[str]] = field(default_factory=dict)  # what is wrong → ids
    advice: list[str] = field(default_factory=list)  # what to do, once each

    def leave_out(self, utterance_id: str, what: str, advice: str) -> None:
        self.problems.setdefault(what, []).append(utterance_id)
        if advice not in self.advice:
            self.advice.append(advice)

    def report(self, listed: int, source: Path) -> str | None:
        """One line naming what was left out and what to do, or None when nothing was."""
        if not self.problems:
            return None
        parts = []
        for what, ids in self.problems.items():
            shown = ", ".join(ids[:SHOWN_IDS]) + (", …" if len(ids) > SHOWN_IDS else "")
            parts.append(f"{len(ids)} {what} ({shown})")
        left = sum(len(ids) for ids in self.problems.values())
        return f"data: left out {left} of {listed} files in {source}: {'; '.join(parts)}; {'; '.join(self.advice)}"


def check_entries(
    entries: Sequence[FileListEntry], wav_dir: Path, frontend: MelFrontend, mels_dir: Path | None
) -> CheckedEntries:
    """Read every file's header (and mel header): missing, unreadable and other-rate files are left out."""
    checked = CheckedEntries()
    for entry in entries:
        try:
            rate, frames, _ = audio_info(_wav_path(wav_dir, entry.id))
        except AudioReadError as exc:
            kind = getattr(exc, "kind", "unreadable")
            checked.leave_out(entry.id, kind, _ADVICE.get(kind, _REPROCESS))
            continue
        if rate != frontend.sample_rate:
            checked.leave_out(
                entry.id,
                f"at {rate} Hz instead of the model's {frontend.sample_rate} Hz",
                f"run `gankit prepare SRC OUT --sample-rate {frontend.sample_rate}` to resample the corpus",
            )
            continue
        if mels_dir is not None:
            mel_path = _mel_path(mels_dir, entry.id)
            try:
                header = np.load(mel_path, mmap_mode="r", allow_pickle=False)  # reads the header only
            except FileNotFoundError:
                checked.leave_out(entry.id, f"without a mel in {mels_dir}", "export their mels into data.mels_dir")
                continue
            except (ValueError, OSError) as exc:
                raise _mel_error(mel_path, f"cannot be read as a .npy array ({exc})") from None
            problem = _mel_shape_problem(header.shape, header.dtype, frontend.n_mels)
            if problem is not None:
                raise _mel_error(mel_path, problem)
        checked.usable.append(entry)
        checked.seconds += frames / rate
    return checked


# ---- building ---------------------------------------------------------------------------------------------
def _resolve_paths(data: DataSettings) -> tuple[Path, Path | None, Path]:
    """(train list, val list or None, wav folder) from data.dir and/or the explicit settings."""
    if data.dir:
        root = Path(data.dir)
        if not root.is_dir():
            raise DataError(f"data.dir {root} not found; make it with `gankit prepare SRC {root} --format …`")
        train = Path(data.train_list) if data.train_list else root / "train.txt"
        val = Path(data.val_list) if data.val_list else root / "val.txt"
        wav_dir = Path(data.wav_dir) if data.wav_dir else root / "wavs"
        if not data.val_list and not val.exists():
            val = None
    else:
        if not data.train_list or not data.wav_dir:
            raise DataError(
                "no training data configured: set data.dir to a folder made by `gankit prepare`, "
                "or both data.train_list and data.wav_dir"
            )
        train, wav_dir = Path(data.train_list), Path(data.wav_dir)
        val = Path(data.val_list) if data.val_list else None
    if not wav_dir.is_dir():
        raise DataError(f"wav folder {wav_dir} not found; check data.dir / data.wav_dir")
    return train, val, wav_dir


def _validation_batch(
    entry: FileListEntry, wav_dir: Path, frontend: MelFrontend, mels_dir: Path | None
) -> dict[str, Any]:
    """One whole utterance, batch of 1; with given mels the audio is cut to frames × hop."""
    audio, _ = read_audio(_wav_path(wav_dir, entry.id))
    if mels_dir is None:
        if frontend.num_frames(len(audio)) < 1:
            raise AudioReadError(f"{_wav_path(wav_dir, entry.id)}: too short for one mel frame; use a longer file")
        return {"audio": torch.from_numpy(peak_normalise(audio))[None], "id": [entry.id]}
    mel = load_mel(_mel_path(mels_dir, entry.id), frontend.n_mels)
    frames = min(mel.shape[1], len(audio) // frontend.hop_length)
    if frames < 1:
        raise AudioReadError(f"{_wav_path(wav_dir, entry.id)}: too short for one mel frame; use a longer file")
    audio = np.ascontiguousarray(audio[: frames * frontend.hop_length])
    mel = np.ascontiguousarray(mel[:, :frames])
    return {"audio": torch.from_numpy(audio)[None], "mel": torch.from_numpy(mel)[None], "id": [entry.id]}


def build_vocoder_datasets(
    data: DataSettings,
    frontend: MelFrontend,
    seed: int,
    log: Callable[[str], None] = print,
    random_gain: tuple[float, float] | None = None,
) -> tuple[VocoderTrainDataset, list[dict[str, Any]]]:
    """The training dataset and up to `data.val_items` ready validation batches (`DataSettings` → data).

    `random_gain` (low, high) scales each training crop by U(low, high) (MelGAN's augmentation); validation
    audio is never scaled.

    Every listed file's header is read once: missing, unreadable and other-rate files are reported in
    one line through `log` and left out; `DataError` when no training file is left.
    """
    train_list, val_list, wav_dir = _resolve_paths(data)
    mels_dir = Path(data.mels_dir) if data.mels_dir else None
    if mels_dir is not None and not mels_dir.is_dir():
        raise DataError(f"data.mels_dir {mels_dir} not found; export the fine-tuning mels there or unset it")
    entries = read_filelist(train_list)
    checked = check_entries(entries, wav_dir, frontend, mels_dir)
    line = checked.report(len(entries), train_list)
    if line is not None:
        log(line)
    if not checked.usable:
        raise DataError(f"none of the {len(entries)} files in {train_list} can be used (see above)"
                        if entries else f"{train_list} lists no files; add `id|text` lines or re-run gankit prepare")
    train = VocoderTrainDataset(checked.usable, wav_dir, frontend, data.segment_size, seed, mels_dir, random_gain)
    train.total_seconds = checked.seconds

    batches: list[dict[str, Any]] = []
    if val_list is None:
        log(f"data: no validation list ({train_list.parent / 'val.txt'} absent, data.val_list unset); "
            "validation is skipped")
        return train, batches
    val_entries = read_filelist(val_list)
    val_checked = check_entries(val_entries, wav_dir, frontend, mels_dir)
    line = val_checked.report(len(val_entries), val_list)
    if line is not None:
        log(line)
    for entry in val_checked.usable:
        if len(batches) >= data.val_items:
            break
        try:
            batches.append(_validation_batch(entry, wav_dir, frontend, mels_dir))
        except (AudioReadError, FileNotFoundError) as exc:
            log(f"data: validation file left out: {exc}")
    if not batches:
        log(f"data: no usable validation files in {val_list}; validation is skipped")
    return train, batches
