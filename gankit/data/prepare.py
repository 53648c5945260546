"""`gankit prepare`: turn a corpus into `OUT/wavs/<id>.wav` (mono 16-bit PCM at one rate), `train.txt`,
`val.txt`, `skipped.txt` and, with `mel_stats`, `mel_stats.json` (gankit.data.corpus_stats).

Files are converted by a process pool, one file per task, and each worker returns only a small result,
so a 22,200-file corpus never sits in memory. A bad file becomes a line in `skipped.txt`, never a stop.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gankit.atomic import write_text
from gankit.audio.io import audio_info, read_audio, resample, write_wav
from gankit.data.filelist import FileListEntry, write_filelist
from gankit.data.formats import FORMATS, REASONS, Skip, SourceItem, read_corpus
from gankit.errors import AudioReadError, DataError

DEFAULT_MIN_SECONDS = 0.5
DEFAULT_MAX_VAL_SIZE = 100  # without --val-size: min(100, 10 % of the usable files)
# One 16-bit step: a file whose peak stays at or below it writes as digital silence.
SILENCE_PEAK = 1.0 / 32768.0


class _Job(NamedTuple):
    id: str
    source: str
    target: str
    sample_rate: int | None  # None: keep the file's own rate
    min_seconds: float


class _Result(NamedTuple):
    id: str
    reason: str | None  # None when written
    detail: str
    seconds: float = 0.0
    source_rate: int = 0


@dataclass
class PrepareReport:
    out: Path
    sample_rate: int
    found: int
    written: int
    train: int
    val: int
    seconds: float
    skipped: list[Skip] = field(default_factory=list)
    source_rates: dict[int, int] = field(default_factory=dict)  # source rate → files written from it
    notes: list[str] = field(default_factory=list)
    removed_stale: int = 0
    mel_stats: Path | None = None  # OUT/mel_stats.json when written
    mel_stats_line: str = ""

    def skipped_by_reason(self) -> dict[str, int]:
        counts = Counter(s.reason for s in self.skipped)
        return {reason: counts[reason] for reason in REASONS if counts[reason]}

    def summary(self) -> str:
        """The counts `gankit prepare` prints at the end."""
        reasons = ", ".join(f"{n} {REASONS[r]}" for r, n in self.skipped_by_reason().items())
        skipped = f"skipped {len(self.skipped)}" + (f" ({reasons}) → {self.out / 'skipped.txt'}" if reasons else "")
        resampled = {rate: n for rate, n in sorted(self.source_rates.items()) if rate != self.sample_rate}
        converted = "".join(f", resampled {n} from {rate} Hz" for rate, n in resampled.items())
        lines = [
            f"found {self.found} | written {self.written} | {skipped}",
            f"train {self.train} | val {self.val} | {self.seconds / 3600:.2f} h at {self.sample_rate} Hz{converted}",
            f"wrote {self.out / 'train.txt'}, {self.out / 'val.txt'} and {self.out / 'wavs'}/",
        ]
        if self.mel_stats_line:
            lines.append(self.mel_stats_line)
        if self.removed_stale:
            lines.append(f"removed {self.removed_stale} file(s) a previous run left in {self.out / 'wavs'}")
        return "\n".join(lines)


# ---- per-file work (runs in the pool's processes) ---------------------------------------------------
def _failed(job: _Job, exc: AudioReadError) -> _Result:
    return _Result(job.id, getattr(exc, "kind", "unreadable"), getattr(exc, "what", str(exc)))


def _probe(job: _Job) -> _Result:
    try:
        rate, _, _ = audio_info(job.source)
    except AudioReadError as exc:
        return _failed(job, exc)
    return _Result(job.id, None, "", source_rate=rate)


def _convert(job: _Job) -> _Result:
    try:
        audio, rate = read_audio(job.source)
    except AudioReadError as exc:
        return _failed(job, exc)
    except Exception as exc:  # a decoder crash on one odd file must not end a 20,000-file run
        return _Result(job.id, "unreadable", f"{type(exc).__name__}: {exc}")
    seconds = len(audio) / rate
    if seconds < job.min_seconds:
        return _Result(job.id, "too_short", f"{seconds:.2f} s < --min-seconds {job.min_seconds:g}", seconds, rate)
    if float(np.max(np.abs(audio))) <= SILENCE_PEAK:
        return _Result(job.id, "silent", "every sample is silent (peak ≤ one 16-bit step)", seconds, rate)
    if job.sample_rate is not None and job.sample_rate != rate:
        audio = resample(audio, rate, job.sample_rate)
    try:
        write_wav(job.target, audio, job.sample_rate or rate)
    except OSError as exc:  # the output side failing is not the file's fault: stop with the reason
        raise DataError(f"cannot write {job.target}: {exc.strerror or exc}; free space or choose another OUT") from None
    return _Result(job.id, None, "", seconds, rate)


# ---- orchestration ----------------------------------------------------------------------------------
def _run_jobs(
    fn: Callable[[_Job], _Result], jobs: list[_Job], workers: int, desc: str, progress: bool
) -> Iterator[_Result]:
    """fn over jobs in `workers` processes (in this one when 1), results in completion order, with a bar."""
    from tqdm import tqdm

    def bar(results: Iterable[_Result]) -> Iterator[_Result]:
        yield from tqdm(results, total=len(jobs), desc=desc, unit="file", disable=not progress, dynamic_ncols=True)

    if workers <= 1 or len(jobs) <= 1:
        yield from bar(map(fn, jobs))
        return
    # fork where there is one: workers inherit the modules already imported (librosa's resampler costs ~3 s
    # per fresh process) and scripts calling prepare_corpus need no `if __name__ == "__main__"` guard. The
    # workers run numpy/soundfile/soxr only, never torch, so torch threads in the parent cannot deadlock them.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
        # Small chunks keep the bar moving and the load even; large enough to amortise the pickling.
        chunk = max(1, min(32, len(jobs) // (workers * 16)))
        yield from bar(pool.imap_unordered(fn, jobs, chunksize=chunk))


def _choose_rate(rates: Counter[int]) -> tuple[int, str | None]:
    """The most common source rate (ties → the higher, keeping more bandwidth), and a note when rates are mixed."""
    rate = max(rates, key=lambda r: (rates[r], r))
    if len(rates) == 1:
        return rate, None
    mix = ", ".join(f"{r} Hz ×{n}" for r, n in sorted(rates.items()))
    return rate, (f"note: source files have {len(rates)} sample rates ({mix}); resampling all to {rate} Hz, "
                  "the most common; pass --sample-rate to choose another")


def _remove_stale(wav_dir: Path, written: set[str]) -> int:
    """Delete wavs of an earlier run that this run did not write (and its interrupted temporaries)."""
    removed = 0
    if not wav_dir.is_dir():
        return 0
    for path in wav_dir.rglob("*"):
        stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
        stale_wav = path.suffix == ".wav" and path.relative_to(wav_dir).with_suffix("").as_posix() not in written
        if path.is_file() and (stale_tmp or stale_wav):
            path.unlink()
            removed += 1
    return removed


def _write_skipped(path: Path, skipped: list[Skip]) -> None:
    order = list(REASONS)
    rows = sorted(skipped, key=lambda s: (order.index(s.reason), s.id, s.source))
    lines = ["# reason\tid\tsource\tdetail\n"]
    lines += [f"{s.reason}\t{s.id}\t{s.source}\t{' '.join(s.detail.splitlines())}\n" for s in rows]
    write_text(path, "".join(lines))


def prepare_corpus(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str,
    sample_rate: int | None = None,
    val_size: int | None = None,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    mel_stats: Mapping[str, Any] | None = None,
) -> PrepareReport:
    """Convert corpus `src` (layout `fmt`) into `out`; see the module docstring for what is written.

    `sample_rate` None keeps the source rate (the most common one when files differ). The validation
    set is the last `val_size` ids in sorted order (None: min(100, 10 % of the usable files)).
    `mel_stats`, a front-end config (its sample_rate, when given, must be the output rate), adds
    `OUT/mel_stats.json`: that front-end's per-band statistics over the training files; without it a
    `mel_stats.json` an earlier run left is removed, as it would describe other files.
    Raises `DataError` when nothing is usable or the split would leave no training files.
    """
    src_path, out_path = Path(src), Path(out)
    if fmt not in FORMATS:
        raise DataError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if sample_rate is not None and sample_rate <= 0:
        raise DataError(f"--sample-rate must be a positive number of Hz, got {sample_rate}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be ≥ 1, got {workers}")
    if val_size is not None and val_size < 0:
        raise DataError(f"--val-size must be ≥ 0, got {val_size}")
    if src_path.resolve() == out_path.resolve():
        raise DataError(f"OUT {out_path} is the corpus folder itself; choose another OUT")
    if mel_stats is not None:
        _stats_frontend(mel_stats, sample_rate)  # a wrong preset or rate fails before any conversion
    listing = read_corpus(fmt, src_path, exclude=out_path)
    found = len(listing.items) + len(listing.problems)
    if val_size is not None and listing.items and val_size >= len(listing.items):
        raise DataError(f"--val-size {val_size} leaves no training files: {src_path} has {len(listing.items)} "
                        "audio files; lower --val-size")

    wav_dir = out_path / "wavs"
    items: dict[str, SourceItem] = {item.id: item for item in listing.items}
    skipped: list[Skip] = list(listing.problems)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    notes: list[str] = []

    def jobs(rate: int | None) -> list[_Job]:
        return [_Job(i.id, str(i.path), str(wav_dir / f"{i.id}.wav"), rate, min_seconds) for i in items.values()]

    # Pass 1 reads headers only: it classifies unreadable files early and learns the source rates, which
    # choose the output rate when none is given and tell whether the resampler is needed.
    rates: Counter[int] = Counter()
    for result in _run_jobs(_probe, jobs(None), n_workers, "reading headers", progress):
        if result.reason is None:
            rates[result.source_rate] += 1
        else:
            skipped.append(Skip(result.id, str(items.pop(result.id).path), result.reason, result.detail))
    if sample_rate is None and rates:
        sample_rate, note = _choose_rate(rates)
        if note is not None:
            notes.append(note)
            log(note)
    if mel_stats is not None and sample_rate is not None:
        _stats_frontend(mel_stats, sample_rate)
    if any(rate != sample_rate for rate in rates):
        import librosa.core.audio  # noqa: F401  (loaded once here, inherited by the forked workers)

    written: dict[str, float] = {}
    source_rates: Counter[int] = Counter()
    for result in _run_jobs(_convert, jobs(sample_rate), n_workers, "converting", progress):
        if result.reason is None:
            written[result.id] = result.seconds
            source_rates[result.source_rate] += 1
        else:
            skipped.append(Skip(result.id, str(items[result.id].path), result.reason, result.detail))

    out_path.mkdir(parents=True, exist_ok=True)
    _write_skipped(out_path / "skipped.txt", skipped)
    if not written:
        counts = Counter(s.reason for s in skipped)
        why = ", ".join(f"{n} {REASONS[r]}" for r, n in counts.most_common()) or "no audio files found"
        raise DataError(f"no usable audio in {src_path} (format {fmt}): {why}; see {out_path / 'skipped.txt'}")
    ids = sorted(written)
    n_val = min(DEFAULT_MAX_VAL_SIZE, len(ids) // 10) if val_size is None else val_size
    if n_val >= len(ids):
        raise DataError(f"--val-size {n_val} leaves no training files: only {len(ids)} files are usable "
                        f"(see {out_path / 'skipped.txt'}); lower --val-size")
    train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
    texts = {item.id: item.text for item in listing.items}
    write_filelist(out_path / "train.txt", [FileListEntry(i, texts[i]) for i in train_ids])
    write_filelist(out_path / "val.txt", [FileListEntry(i, texts[i]) for i in val_ids])
    assert sample_rate is not None  # set by the probe whenever a file was written
    stats_path, stats_line = _mel_statistics(out_path, mel_stats, sample_rate, progress)
    return PrepareReport(
        out=out_path,
        sample_rate=sample_rate,
        found=found,
        written=len(written),
        train=len(train_ids),
        val=len(val_ids),
        seconds=sum(written.values()),
        skipped=skipped,
        source_rates=dict(source_rates),
        notes=notes,
        removed_stale=_remove_stale(wav_dir, set(written)),
        mel_stats=stats_path,
        mel_stats_line=stats_line,
    )


def _stats_frontend(cfg: Mapping[str, Any], sample_rate: int | None) -> Mapping[str, Any]:
    """The statistics' front-end config at the output rate; refused when its preset takes no statistics or
    it names another rate (training would then refuse the corpus)."""
    from gankit.data.corpus_stats import statistics_frontend

    rate = cfg.get("sample_rate")
    if rate is not None and sample_rate is not None and rate != sample_rate:
        raise DataError(f"--mel-stats: the front-end is at {rate} Hz but OUT is prepared at {sample_rate} Hz; "
                        f"pass --sample-rate {rate} (or a front-end at {sample_rate} Hz)")
    full = {**cfg, "sample_rate": rate if rate is not None else sample_rate or 22050}  # any rate, to check early
    statistics_frontend(full)
    return full


def _mel_statistics(
    out: Path, cfg: Mapping[str, Any] | None, sample_rate: int, progress: bool
) -> tuple[Path | None, str]:
    """Write OUT/mel_stats.json over train.txt's files, or remove a stale one; (its path, a summary line)."""
    from gankit.data.corpus_stats import STATS_FILE, write_corpus_statistics

    path = out / STATS_FILE
    if cfg is None:
        if path.is_file():
            path.unlink()
            return None, f"removed {path}: it described an earlier run's files (pass --mel-stats to recompute)"
        return None, ""
    stats = write_corpus_statistics(out, _stats_frontend(cfg, sample_rate), progress=progress)
    return path, (f"wrote {path}: preset {stats.preset} statistics of {stats.files} training files "
                  f"({stats.frames} frames)")
