"""Sample audio and spectrogram images placed inside the report folder, so the folder works on its own
(copied to a laptop, served by any static server). Rebuilding skips files that are already up to date."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gankit.report.spectrogram import AudioInfo, MelParams, audio_info, read_mono, write_spectrogram_png


@dataclass(frozen=True)
class SampleMedia:
    """One wav as the page shows it; paths are relative to the report folder."""

    audio: str | None  # None when the wav could not be placed
    image: str | None  # spectrogram PNG; None when the wav could not be decoded
    info: AudioInfo | None
    problem: str | None  # why audio or image is missing, shown on the page


def _up_to_date(target: Path, source: Path) -> bool:
    try:
        return target.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def place_file(source: Path, target: Path) -> None:
    """Hard link (free, and self-contained unlike a symlink); a copy where links are impossible."""
    if target.exists() and _up_to_date(target, source) and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # other file system, or links not allowed
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


class MediaWriter:
    """Places wavs under `root/audio/` and their spectrograms under `root/spectrograms/`; remembers what it
    wrote so files of samples no longer shown can be removed afterwards."""

    def __init__(self, root: Path, mel: MelParams) -> None:
        self.root = root
        self.mel = mel
        self.written: set[Path] = set()

    def sample(self, wav: Path, name: str) -> SampleMedia:
        """`name` is a relative stem such as "step_00000100/utt_1"; it must be unique per wav."""
        audio_path = self.root / "audio" / f"{name}.wav"
        image_path = self.root / "spectrograms" / f"{name}.png"
        try:
            place_file(wav, audio_path)
        except OSError as exc:
            return SampleMedia(None, None, None, f"could not copy {wav}: {exc.strerror or exc}")
        self.written.add(audio_path)
        try:
            audio, sample_rate = read_mono(wav)
        except (RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
            return SampleMedia(self._relative(audio_path), None, None, f"{wav.name} does not decode: {exc}")
        info = audio_info(audio, sample_rate)
        if not (image_path.exists() and _up_to_date(image_path, wav)):
            write_spectrogram_png(audio, sample_rate, self.mel, image_path)
        self.written.add(image_path)
        problem = "digital silence" if math.isinf(info.peak_dbfs) else None
        return SampleMedia(self._relative(audio_path), self._relative(image_path), info, problem)

    def image(self, png: Path, name: str) -> str | None:
        """A task's own image (a sample grid, a spectrogram) placed under `root/images/`; None if it cannot be."""
        target = self.root / "images" / f"{name}{png.suffix or '.png'}"
        try:
            place_file(png, target)
        except OSError:
            return None
        self.written.add(target)
        return self._relative(target)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def remove_stale(self) -> int:
        """Delete media of an earlier build that this build did not write (e.g. samples of a trimmed run)."""
        return sum(remove_unlisted(self.root / sub, self.written) for sub in ("audio", "spectrograms", "images"))


def remove_unlisted(folder: Path, keep: set[Path]) -> int:
    """Delete files under `folder` not in `keep`, then emptied sub-folders; returns how many files went."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in sorted(folder.rglob("*"), reverse=True):  # deepest first: files before their folders
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif path not in keep:
            path.unlink()
            removed += 1
    return removed
