"""Files in, files out: collect inputs, batch them by length, vocode, write `<stem>.wav`, account for speed.

Policy for bad inputs (shared by `gankit vocode` and `gankit resynth`):
- Problems with the command line itself — a path that does not exist, a folder without matching files, two inputs
  that would write the same output name, an output that is one of the inputs, outputs that already exist (without
  --overwrite) — stop before the checkpoint is even loaded (nothing written). An input is never replaced.
- A bad file among several (unreadable, wrong shape, too short, …) is skipped with its reason printed as it happens;
  every good file is still written, and the command exits non-zero at the end naming the skipped ones. With a single
  input its own error is the one-line message.
Each output is written atomically, so nothing already written is lost or half-written if a later file fails.

Speed is audio seconds per compute second ("× real time"). Compute is the mel analysis (resynth) plus the generator,
synchronised on CUDA; reading, resampling and writing files are not compute but are in the wall time. In a batch,
each file's share of the generator time is proportional to its frames.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from gankit.audio.io import write_wav
from gankit.errors import GankitError

if TYPE_CHECKING:  # no torch at run time: the loop serves the torch Vocoder and the torch-free OnnxVocoder alike
    import torch

    from gankit.infer.onnx_vocoder import OnnxVocoder
    from gankit.infer.vocoder import Vocoder

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class Job:
    """One input file and the output it becomes; `length` (frames or samples) only orders the batches."""

    source: Path
    out: Path
    length: int = 0


@dataclass
class FileResult:
    source: Path
    out: Path
    audio_seconds: float
    compute_seconds: float

    @property
    def real_time(self) -> float:
        return self.audio_seconds / self.compute_seconds if self.compute_seconds > 0 else float("inf")


@dataclass
class Skipped:
    source: Path
    error: GankitError


@dataclass
class RunReport:
    device: str
    batch_size: int
    written: list[FileResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def audio_seconds(self) -> float:
        return sum(r.audio_seconds for r in self.written)

    @property
    def compute_seconds(self) -> float:
        return sum(r.compute_seconds for r in self.written)

    @property
    def real_time(self) -> float:
        compute = self.compute_seconds
        return self.audio_seconds / compute if compute > 0 else float("inf")

    def speed_line(self, verb: str, replacing: Collection[Path] = ()) -> str:
        """The summary line; `replacing`: the outputs that existed before (--overwrite), counted when written."""
        n = len(self.written)
        line = (
            f"{verb} {n} file{'s' if n != 1 else ''}: {self.audio_seconds:.2f} s of audio in "
            f"{self.compute_seconds:.2f} s of compute = {self.real_time:.1f}× real time ({self.device}, batch "
            f"{self.batch_size}); {self.wall_seconds:.2f} s in all with reading and writing"
        )
        replaced = sum(1 for r in self.written if r.out in replacing)
        if replaced:
            where = self.written[0].out.parent
            line += f"; replaced {replaced} existing file{'s' if replaced != 1 else ''} in {where}"
        return line


# --- inputs -------------------------------------------------------------------------------------------------


def collect_inputs(
    paths: Iterable[str | Path],
    suffixes: Sequence[str],
    error: type[GankitError],
    refuse: dict[str, str] | None = None,
) -> list[Path]:
    """Files given directly (any name) and the files with `suffixes` in folders given (not recursive, sorted).

    A missing path or a folder without matching files raises `error`; `refuse` maps suffixes to advice for files
    given directly that belong to another command (e.g. ".wav" given to vocode).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not inside:
                raise error(f"{path}: no {'/'.join(suffixes)} files in this folder; check the path")
            found.extend(inside)
        elif path.is_file():
            advice = (refuse or {}).get(path.suffix.lower())
            if advice:
                raise error(f"{path}: {advice}")
            found.append(path)
        else:
            raise error(f"{path}: no such file or folder; check the path")
    if not found:
        raise error("no inputs given")
    unique: dict[Path, Path] = {}
    for p in found:  # the same file twice (e.g. a folder and a file in it) is vocoded once
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def plan_jobs(inputs: Sequence[Path], out_dir: Path, length: Callable[[Path], int]) -> list[Job]:
    """`out_dir/<stem>.wav` per input; two inputs with one stem are refused (one output would overwrite the other)."""
    by_out: dict[Path, Path] = {}
    for source in inputs:
        out = out_dir / f"{source.stem}.wav"
        if out in by_out:
            raise GankitError(
                f"{by_out[out]} and {source} would both be written to {out}; vocode them into separate --out-dir "
                "folders or rename one"
            )
        by_out[out] = source
    return [Job(source, out, length(source)) for out, source in by_out.items()]


def check_outputs(jobs: Sequence[Job], inputs: Sequence[Path], out_dir: Path, overwrite: bool) -> set[Path]:
    """Refuse an output that is one of the inputs (symlinks and hard links followed), always; refuse outputs that
    already exist unless `overwrite`. Returns the existing outputs that will be replaced."""
    by_file: dict[tuple[int, int], Path] = {}
    for source in inputs:
        with contextlib.suppress(OSError):  # a vanished input is reported when it is read
            st = source.stat()
            by_file[(st.st_dev, st.st_ino)] = source
    existing: list[Path] = []
    for job in jobs:
        if not os.path.lexists(job.out):
            continue
        try:
            st = job.out.stat()
            source = by_file.get((st.st_dev, st.st_ino))
        except OSError:  # a dangling link: not an input
            source = None
        if source is not None:
            which = "" if source == job.out else f" ({source})"
            raise GankitError(
                f"{job.out}: is an input{which}, and the output of {job.source.name} would replace it; choose an "
                "--out-dir apart from the inputs (an input is never replaced, even with --overwrite)"
            )
        existing.append(job.out)
    if existing and not overwrite:
        n = len(existing)
        count = "" if len(jobs) == 1 else f" ({n} of the {len(jobs)} outputs already exist in {out_dir})"
        raise GankitError(
            f"{existing[0]}: already exists{count}; pass --overwrite to replace {'it' if n == 1 else 'them'} or "
            "choose another --out-dir"
        )
    return set(existing)


def batches(jobs: Sequence[Job], batch_size: int) -> list[list[Job]]:
    """One job at a time in the given order, or batches of similar length (longest first, so memory runs out on
    the first batch if at all)."""
    if batch_size <= 1:
        return [[job] for job in jobs]
    ordered = sorted(jobs, key=lambda j: j.length, reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


# --- running ------------------------------------------------------------------------------------------------


class Console:
    """Messages that do not tear a progress bar: through tqdm.write while a bar is shown."""

    def __init__(self, total: int, progress: bool, unit: str = "file") -> None:
        self.bar: Any = None
        if progress and total > 1:
            from tqdm import tqdm  # only when there is a bar to show

            # disable=None: no bar when stderr is not a terminal (logs, pipes)
            self.bar = tqdm(total=total, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)

    def say(self, message: str, stream: TextIO | None = None) -> None:
        out = stream or sys.stdout
        if self.bar is not None and not self.bar.disable:
            self.bar.write(message, file=out)
        else:
            print(message, file=out, flush=True)

    def warn(self, message: str) -> None:
        self.say(message, sys.stderr)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _sync(device: torch.device | str) -> None:
    if getattr(device, "type", None) == "cuda":  # an OnnxVocoder's device is a plain "cpu": nothing to wait for
        import torch

        torch.cuda.synchronize(device)


def as_numpy(wave: Any) -> np.ndarray:
    """A generator's output (a tensor on any device and dtype, or a numpy array) as a float32 numpy array."""
    if isinstance(wave, np.ndarray):
        return wave.astype(np.float32, copy=False)
    return wave.detach().float().cpu().numpy()


def run_jobs(
    jobs: Sequence[Job],
    vocoder: Vocoder | OnnxVocoder,
    read: Callable[[Job, Console], Any],
    analyse: Callable[[Any], Any],
    *,
    batch_size: int = 1,
    verbose: bool = False,
    progress: bool = True,
) -> RunReport:
    """For each batch: `read` every job (file I/O; a GankitError skips the job), `analyse` each into a
    [n_mels, T] mel (timed), vocode the batch (timed), write `<stem>.wav`. See the module docstring."""
    device = vocoder.device
    report = RunReport(device=str(device), batch_size=max(1, batch_size))
    console = Console(len(jobs), progress)
    started = time.perf_counter()
    try:
        for group in batches(jobs, batch_size):
            ready: list[tuple[Job, Any, float]] = []
            for job in group:
                try:
                    data = read(job, console)
                    _sync(device)
                    t0 = time.perf_counter()
                    mel = analyse(data)
                    _sync(device)
                    ready.append((job, mel, time.perf_counter() - t0))
                except GankitError as exc:
                    report.skipped.append(Skipped(job.source, exc))
                    if len(jobs) > 1:  # a lone input's error is the command's one-line error (see finish)
                        console.warn(f"skipped: {exc}")
                    console.advance()
            if not ready:
                continue
            t0 = time.perf_counter()
            waves = vocoder.vocode_batch([mel for _, mel, _ in ready])
            _sync(device)
            generator_seconds = time.perf_counter() - t0
            total_frames = sum(int(mel.shape[-1]) for _, mel, _ in ready)
            for (job, mel, analysis_seconds), wave in zip(ready, waves, strict=True):
                share = generator_seconds * int(mel.shape[-1]) / total_frames
                _write(job, wave, vocoder, console)
                result = FileResult(job.source, job.out, wave.shape[-1] / vocoder.sample_rate, analysis_seconds + share)
                report.written.append(result)
                if verbose:
                    console.say(
                        f"{job.source.name} → {job.out}: {result.audio_seconds:.2f} s of audio, "
                        f"{result.real_time:.1f}× real time"
                    )
                console.advance()
    finally:
        console.close()
        report.wall_seconds = time.perf_counter() - started
    return report


def _write(job: Job, wave: Any, vocoder: Vocoder | OnnxVocoder, console: Console) -> None:
    samples = as_numpy(wave)
    if not bool(np.isfinite(samples).all()):
        console.warn(
            f"warning: {job.source}: the generator produced NaN/infinite samples (written as silence); "
            f"is the checkpoint {vocoder.source} diverged?"
        )
    try:
        write_wav(job.out, samples, vocoder.sample_rate)
    except OSError as exc:
        raise GankitError(
            f"{job.out}: could not write ({exc.strerror or exc}); the files written before it are complete"
        ) from None


def finish(report: RunReport, what: str, out_dir: Path) -> None:
    """Raise the single input's own error, or a summary naming every skipped input (after the good ones are out)."""
    if not report.skipped:
        return
    if len(report.skipped) == 1 and not report.written:
        raise report.skipped[0].error
    names = ", ".join(s.source.name for s in report.skipped[:5])
    more = f" … (+{len(report.skipped) - 5})" if len(report.skipped) > 5 else ""
    kept = f"the other {len(report.written)} are in {out_dir}" if report.written else "nothing was written"
    raise GankitError(
        f"{len(report.skipped)} of {len(report.skipped) + len(report.written)} {what} could not be used "
        f"({names}{more}; reasons above); {kept}"
    )
