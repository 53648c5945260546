"""Long mel files to WAV in constant memory: `gankit vocode --chunk-frames N` for inputs longer than N frames.

Each file is opened memory-mapped (`gankit.infer.mel_input.open_mel`: checked, warned about and never read whole),
vocoded `N` frames at a time with the generator's context (`Vocoder.vocode_chunked`: the audio equals the
whole-utterance audio within float rounding), and written block by block through soundfile's `SoundFile` into a
temporary file renamed over the output when complete (`gankit.atomic`). Memory is one chunk's activations plus one
block of mel and audio, whatever the length. The bad-input policy, console and speed accounting are
`gankit.infer.files`'; compute is the generator's time (reading mel blocks from the map is timed apart and left out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from gankit.atomic import atomic_open
from gankit.errors import GankitError, MelInputError
from gankit.infer.files import Console, FileResult, Job, RunReport, Skipped, _sync, as_numpy
from gankit.infer.mel_input import MappedMel

if TYPE_CHECKING:  # no torch at run time: the torch-free OnnxVocoder vocodes in chunks through this loop too
    from gankit.infer.onnx_vocoder import OnnxVocoder
    from gankit.infer.vocoder import Vocoder

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_freed_tensors_to_the_os(threshold_bytes: int = 128 * 1024) -> bool:
    """Make glibc serve every allocation above `threshold_bytes` (a chunk's activations) from its own mmap, returned
    to the OS when freed. By default glibc raises that threshold each time a large block is freed (up to 32 MB), after
    which chunk-sized tensors come from the heap, whose free space stays resident and fragments: over hundreds of
    chunks the peak drifts upwards with the length. A fixed threshold keeps every chunk's peak the same (at the cost
    of re-faulting those pages per chunk, a few % of the compute). Process-wide, so called by the command only;
    returns whether it applied (glibc only)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))
    except (OSError, AttributeError):
        return False


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float → int16 as `gankit.audio.io.write_wav` converts: NaN → 0, ±inf → ±1, clipped, ×32767, rounded."""
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.round(np.clip(clean, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav_blocks(path: Path, blocks: Iterable[np.ndarray], sample_rate: int) -> tuple[int, bool]:
    """Mono 16-bit PCM WAV from float blocks as they come, atomically (a reader never sees half a file; on any error
    the output is untouched). Returns (samples written, whether any sample was NaN/infinite)."""
    written, nonfinite = 0, False
    with atomic_open(path, "wb") as handle, sf.SoundFile(
        handle, "w", samplerate=int(sample_rate), channels=1, subtype="PCM_16", format="WAV"
    ) as out:
        for block in blocks:
            nonfinite = nonfinite or not bool(np.isfinite(block).all())
            out.write(to_pcm16(block))
            written += len(block)
    return written, nonfinite


class _TimedFrames:
    """A `MelFrames` source that times its reads, so they can be left out of the compute time."""

    def __init__(self, mel: MappedMel) -> None:
        self.mel = mel
        self.seconds = 0.0

    @property
    def frames(self) -> int:
        return self.mel.frames

    def read(self, start: int, end: int) -> np.ndarray:
        t0 = time.perf_counter()
        block = self.mel.read(start, end)
        self.seconds += time.perf_counter() - t0
        return block


def run_chunked_jobs(
    jobs: Sequence[Job],
    vocoder: Vocoder | OnnxVocoder,
    open_source: Callable[[Job, Console], MappedMel],
    chunk_frames: int,
    *,
    announce_skips: bool = True,
    verbose: bool = False,
    progress: bool = True,
) -> RunReport:
    """Vocode each job's mel in chunks of `chunk_frames` and write `<stem>.wav` as it goes. `open_source` opens and
    checks the mel (a `GankitError` skips the job, announced when `announce_skips`); the progress bar counts frames
    (`Job.length`)."""
    device = vocoder.device
    report = RunReport(device=str(device), batch_size=1)
    console = Console(sum(job.length for job in jobs), progress, unit="frame")
    started = time.perf_counter()
    try:
        for job in jobs:
            try:
                mel = open_source(job, console)
            except GankitError as exc:
                report.skipped.append(Skipped(job.source, exc))
                if announce_skips:
                    console.warn(f"skipped: {exc}")
                console.advance(job.length)
                continue
            try:
                result = _vocode_file(job, mel, vocoder, chunk_frames, console)
            except MelInputError as exc:  # a window the checking pass passed and the vocoder refused: skip the file
                report.skipped.append(Skipped(job.source, exc))
                if announce_skips:
                    console.warn(f"skipped: {exc}")
                continue
            finally:
                mel.close()
            report.written.append(result)
            if verbose:
                console.say(
                    f"{job.source.name} → {job.out}: {result.audio_seconds:.2f} s of audio in chunks of "
                    f"{chunk_frames} frames, {result.real_time:.1f}× real time"
                )
    finally:
        console.close()
        report.wall_seconds = time.perf_counter() - started
    return report


def _vocode_file(
    job: Job, mel: MappedMel, vocoder: Vocoder | OnnxVocoder, chunk_frames: int, console: Console
) -> FileResult:
    source = _TimedFrames(mel)
    pieces = vocoder.vocode_chunked(source, chunk_frames)
    compute = 0.0

    def blocks() -> Iterable[np.ndarray]:
        nonlocal compute
        while True:
            _sync(vocoder.device)
            t0, read_before = time.perf_counter(), source.seconds
            wave = next(pieces, None)
            _sync(vocoder.device)
            compute += time.perf_counter() - t0 - (source.seconds - read_before)
            if wave is None:
                return
            yield as_numpy(wave)
            console.advance(wave.shape[-1] // vocoder.hop_length)

    try:
        samples, nonfinite = write_wav_blocks(job.out, blocks(), vocoder.sample_rate)
    except OSError as exc:
        raise GankitError(
            f"{job.out}: could not write ({exc.strerror or exc}); the files written before it are complete"
        ) from None
    if nonfinite:
        console.warn(
            f"warning: {job.source}: the generator produced NaN/infinite samples (written as silence); "
            f"is the checkpoint {vocoder.source} diverged?"
        )
    return FileResult(job.source, job.out, samples / vocoder.sample_rate, compute)


def merge_reports(first: RunReport, second: RunReport) -> RunReport:
    """One report of two runs over disjoint jobs (the whole-file run and the chunked one)."""
    return RunReport(
        device=first.device,
        batch_size=first.batch_size,
        written=[*first.written, *second.written],
        skipped=[*first.skipped, *second.skipped],
        wall_seconds=first.wall_seconds + second.wall_seconds,
    )
