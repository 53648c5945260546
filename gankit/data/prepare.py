"""`gankit prepare`: turn a corpus into `OUT/wavs/<id>.wav` (mono 16-bit PCM at one rate), `train.txt`,
`val.txt`, `skipped.txt` and, with `mel_stats`, `mel_stats.json` (gankit.data.corpus_stats); a corpus of group
folders — speakers (`speakers`) or domains (`domains`) — also its group table (`speakers.tsv`, gankit.data.speakers;
`domains.tsv`, gankit.data.domains) and a split per group.

Files are converted by a process pool, one file per task, and each worker returns only a small result,
so a 22,200-file corpus never sits in memory. A bad file becomes a line in `skipped.txt`, never a stop.

prepare overwrites or deletes only files a gankit prepare wrote: OUT and SRC must not overlap, and
`OUT/.gankit_prepared.json` records every file written into OUT. Before converting, it records what it is about
to write (so a killed run's files are known as its own); at the end, what it wrote. A rerun removes the files
of the record that it did not write again; any other file in OUT/wavs is left and reported, and a file it did not
write standing where it would write is refused before any work.

Image corpora (`--format images`, `--builtin digits`) are written by gankit/data/images.py and gankit/data/digits.py
with the same rules, through the helpers here (`_check_apart`, `_read_record`, `_refuse_foreign`, `_write_record`,
`_remove_stale`, `_run_jobs`, `_split_ids`, `_write_skipped`); a rerun of another kind into the same OUT removes
the files of the record that it does not write (an image run removes an audio run's wavs, and the reverse).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from gankit.atomic import write_text
from gankit.audio.io import audio_info, read_audio, resample, write_wav
from gankit.data.domains import domain_table, write_domain_table
from gankit.data.filelist import FileListEntry, write_filelist
from gankit.data.formats import (
    DOMAINS,
    FORMATS,
    GROUP_LAYOUTS,
    REASONS,
    SPEAKERS,
    GroupLayout,
    Skip,
    SourceItem,
    read_corpus,
)
from gankit.data.speakers import (
    MIN_FILES,
    count_files,
    default_val_sentences,
    speaker_of,
    speaker_table,
    split_by_sentence,
    write_speaker_table,
)
from gankit.errors import AudioReadError, DataError

DEFAULT_MIN_SECONDS = 0.5
DEFAULT_MAX_VAL_SIZE = 100  # without --val-size: min(100, 10 % of the usable files)
# One 16-bit step: a file whose peak stays at or below it writes as digital silence.
SILENCE_PEAK = 1.0 / 32768.0
RECORD_FILE = ".gankit_prepared.json"  # in OUT: the relative paths gankit prepare wrote there
RECORD_VERSION = 1
LISTS = ("train.txt", "val.txt", "skipped.txt")
SKIPPED_HEADER = "# reason\tid\tsource\tdetail"
JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


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
    removed_stale: int = 0  # in OUT/wavs
    removed_other: int = 0  # elsewhere in OUT (an earlier image run's files, interrupted writes' temporaries)
    foreign: list[str] = field(default_factory=list)  # files in OUT/wavs gankit did not write (left alone)
    mel_stats: Path | None = None  # OUT/mel_stats.json when written
    mel_stats_line: str = ""
    speakers: int = 0  # --format speakers: speakers in OUT/speakers.tsv
    domains: int = 0  # --format domains: domains in OUT/domains.tsv

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
        for layout, count in ((SPEAKERS, self.speakers), (DOMAINS, self.domains)):
            if count:
                lines.append(f"{layout.format} {count} → {self.out / layout.table_file}")
        if self.mel_stats_line:
            lines.append(self.mel_stats_line)
        if self.removed_stale:
            lines.append(f"removed {self.removed_stale} file(s) a previous run left in {self.out / 'wavs'}")
        if self.removed_other:
            lines.append(f"removed {self.removed_other} other file(s) a previous run left in {self.out}")
        if self.foreign:
            n = len(self.foreign)
            names = ", ".join(self.foreign[:5]) + (f" … (+{n - 5})" if n > 5 else "")
            lines.append(f"left {n} file{'s' if n != 1 else ''} gankit did not write in {self.out / 'wavs'}: {names}")
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
    fn: Callable[[JobT], ResultT], jobs: list[JobT], workers: int, desc: str, progress: bool, unit: str = "file"
) -> Iterator[ResultT]:
    """fn over jobs in `workers` processes (in this one when 1), results in completion order, with a bar."""
    from tqdm import tqdm

    def bar(results: Iterable[ResultT]) -> Iterator[ResultT]:
        yield from tqdm(results, total=len(jobs), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)

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


def _check_apart(src: Path, out: Path) -> None:
    """Refuse an OUT that is SRC, holds it or lies inside it (symlinks resolved): prepare would overwrite the
    recordings it reads, or read its own output as corpus."""
    src_r, out_r = src.resolve(), out.resolve()

    def named(path: Path, resolved: Path) -> str:
        return f"{path} (= {resolved})" if path.absolute() != resolved else str(path)

    source = named(src, src_r)
    if out_r == src_r:
        what = f"is the corpus folder SRC {source} itself"
    elif src_r.is_relative_to(out_r):
        what = f"contains the corpus folder SRC {source}, whose recordings prepare would overwrite"
    elif out_r.is_relative_to(src_r):
        what = f"lies inside the corpus folder SRC {source}"
    else:
        return
    raise DataError(f"{named(out, out_r)}: OUT {what}; choose an OUT apart from SRC (neither inside the other)")


def _check_targets(src: Path, out: Path, planned: set[str]) -> None:
    """Refuse a folder prepare would write into that a link takes inside SRC (e.g. OUT/wavs → SRC/wavs)."""
    src_r = src.resolve()
    for folder in sorted({(out / rel).parent for rel in planned}):
        resolved = folder.resolve()
        if resolved.is_relative_to(src_r):
            raise DataError(f"{folder}: resolves to {resolved}, inside the corpus folder SRC {src}, whose "
                            "recordings prepare would overwrite; remove the link or choose another OUT")


def _read_record(out: Path) -> set[str]:
    """The relative paths an earlier gankit prepare wrote into `out` (see the module docstring).

    A corpus prepared before the record existed is known by its skipped.txt header: its lists, mel_stats.json
    and the wavs its train.txt and val.txt name are gankit's; anything else is not.
    """
    from gankit.data.corpus_stats import STATS_FILE
    from gankit.data.filelist import read_filelist

    path = out / RECORD_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            written = data["written"]
            if not isinstance(written, list) or not all(isinstance(p, str) for p in written):
                raise ValueError("'written' is not a list of paths")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a readable gankit prepare record ({exc}); remove it only if OUT holds "
                            "nothing but what gankit prepare wrote, or choose another OUT") from None
        return {p for p in written if not Path(p).is_absolute() and ".." not in Path(p).parts}  # never outside OUT
    try:
        with open(out / "skipped.txt", encoding="utf-8") as handle:
            if handle.readline().rstrip("\n") != SKIPPED_HEADER:
                return set()
        entries = read_filelist(out / "train.txt") + read_filelist(out / "val.txt")
    except (OSError, UnicodeDecodeError, DataError):
        return set()
    return {*LISTS, STATS_FILE, *(f"wavs/{e.id}.wav" for e in entries)}


def _write_record(out: Path, written: set[str]) -> None:
    body = {"version": RECORD_VERSION, "written_by": "gankit prepare", "written": sorted(written)}
    write_text(out / RECORD_FILE, json.dumps(body, indent=1, ensure_ascii=False) + "\n")


def _refuse_foreign(out: Path, planned: set[str], recorded: set[str]) -> None:
    """Refuse, before any work, when a file gankit did not write stands where this run would write."""
    foreign = sorted(p for p in planned - recorded if os.path.lexists(out / p))
    if foreign:
        more = f" (and {len(foreign) - 1} more such files in {out})" if len(foreign) > 1 else ""
        raise DataError(f"{out / foreign[0]}: exists and no gankit prepare wrote it{more}, so prepare will not "
                        f"replace it; move it away or choose another OUT")


def _temporary_of(path: Path) -> Path | None:
    """The target of an atomic write's temporary `.<name>.<random>.tmp` (gankit.atomic), else None."""
    name = path.name
    if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 3:
        return None
    return path.with_name(name[1:-4].rsplit(".", 1)[0])


def _remove_stale(out: Path, recorded: set[str], written: set[str]) -> list[str]:
    """Delete the recorded files this run did not write again (an earlier run's wavs, or the images, labels and
    classifier of an image run), and the temporaries of interrupted writes to recorded files; nothing gankit did
    not write. The record itself is rewritten, never removed. Returns the removed paths, relative to OUT."""
    removed: list[str] = []
    for rel in sorted(recorded - written - {RECORD_FILE}):
        path = out / rel
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(rel)
    known = recorded | written | {RECORD_FILE}
    for folder in sorted({(out / rel).parent for rel in known}):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            target = _temporary_of(path)
            if target is not None and path.is_file() and target.relative_to(out).as_posix() in known:
                path.unlink()
                removed.append(path.relative_to(out).as_posix())
    return removed


def _foreign_wavs(out: Path, recorded: set[str]) -> list[str]:
    """Files in OUT/wavs that the record does not list (relative to OUT/wavs, sorted)."""
    wav_dir = out / "wavs"
    if not wav_dir.is_dir():
        return []
    return sorted(p.relative_to(wav_dir).as_posix() for p in wav_dir.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.relative_to(out).as_posix() not in recorded)


def _split_ids(ids: list[str], val_size: int | None, skipped_path: Path) -> tuple[list[str], list[str]]:
    """(train, val) of sorted `ids`: the last `val_size` ids validate (None: min(100, 10 % of them))."""
    n_val = min(DEFAULT_MAX_VAL_SIZE, len(ids) // 10) if val_size is None else val_size
    if n_val >= len(ids):
        raise DataError(f"--val-size {n_val} leaves no training files: only {len(ids)} files are usable "
                        f"(see {skipped_path}); lower --val-size")
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def _write_skipped(path: Path, skipped: list[Skip], reasons: Mapping[str, str] = REASONS) -> None:
    """skipped.txt: the header, then `reason<TAB>id<TAB>source<TAB>detail` rows in the order of `reasons`."""
    order = list(reasons)
    rows = sorted(skipped, key=lambda s: (order.index(s.reason), s.id, s.source))
    lines = [f"{SKIPPED_HEADER}\n"]
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
    speaker_groups: Mapping[str, str] | None = None,
) -> PrepareReport:
    """Convert corpus `src` (layout `fmt`) into `out`; see the module docstring for what is written.

    `sample_rate` None keeps the source rate (the most common one when files differ). The validation
    set is the last `val_size` ids in sorted order (None: min(100, 10 % of the usable files)); for the
    `speakers` format `val_size` counts sentences per speaker, held out alike for every speaker
    (`gankit.data.speakers.split_by_sentence`; None: 10 % of the median speaker's files, 1..10), a speaker with
    fewer than 2 usable files is skipped, and `speaker_groups` (speaker → group) fills speakers.tsv's group column.
    The `domains` format splits the same way per domain: having no texts, each domain holds out its last
    `val_size` files in sorted order.
    `mel_stats`, a front-end config (its sample_rate, when given, must be the output rate), adds
    `OUT/mel_stats.json`: that front-end's per-band statistics over the training files; without it a
    `mel_stats.json` an earlier run left is removed, as it would describe other files.
    Raises `DataError` when nothing is usable, the split would leave no training files, OUT and SRC overlap, or
    a file no gankit prepare wrote stands where this run would write (checked before any work).
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
    _check_apart(src_path, out_path)
    if mel_stats is not None:
        _stats_frontend(mel_stats, sample_rate)  # a wrong preset or rate fails before any conversion
    layout = GROUP_LAYOUTS.get(fmt)  # None: not a corpus of group folders
    if speaker_groups is not None and layout is not SPEAKERS:
        raise DataError(f"speaker groups are a column of speakers.tsv; the format {fmt} writes none")
    listing = read_corpus(fmt, src_path, exclude=out_path)
    found = len(listing.items) + len(listing.problems)
    if val_size is not None and listing.items and val_size >= len(listing.items) and layout is None:
        raise DataError(f"--val-size {val_size} leaves no training files: {src_path} has {len(listing.items)} "
                        "audio files; lower --val-size")

    wav_dir = out_path / "wavs"
    items: dict[str, SourceItem] = {item.id: item for item in listing.items}
    skipped: list[Skip] = list(listing.problems)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    notes: list[str] = []

    def jobs(rate: int | None) -> list[_Job]:
        return [_Job(i.id, str(i.path), str(wav_dir / f"{i.id}.wav"), rate, min_seconds) for i in items.values()]

    from gankit.data.corpus_stats import STATS_FILE

    recorded = _read_record(out_path)
    tables = [layout.table_file] if layout is not None else []
    planned = {*LISTS, *tables, *(f"wavs/{i}.wav" for i in items), *([STATS_FILE] if mel_stats is not None else [])}
    _check_targets(src_path, out_path, planned)
    _refuse_foreign(out_path, planned, recorded)

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

    # Recorded before the first write: the files of a run killed half-way are then known as gankit's.
    _write_record(out_path, recorded | planned)
    try:
        converted: dict[str, _Result] = {}
        for result in _run_jobs(_convert, jobs(sample_rate), n_workers, "converting", progress):
            if result.reason is None:
                converted[result.id] = result
            else:
                skipped.append(Skip(result.id, str(items[result.id].path), result.reason, result.detail))
        if layout is not None:
            skipped += _drop_small_groups(wav_dir, converted, items, layout)
        written = {i: result.seconds for i, result in converted.items()}
        source_rates = Counter(result.source_rate for result in converted.values())

        _write_skipped(out_path / "skipped.txt", skipped)
        if not written:
            counts = Counter(s.reason for s in skipped)
            why = ", ".join(f"{n} {REASONS[r]}" for r, n in counts.most_common()) or "no audio files found"
            raise DataError(f"no usable audio in {src_path} (format {fmt}): {why}; see {out_path / 'skipped.txt'}")
        texts = {item.id: item.text for item in listing.items}
        if layout is not None:
            train_ids, val_ids = _split_groups(out_path, layout, sorted(written), texts, val_size, speaker_groups)
        else:
            train_ids, val_ids = _split_ids(sorted(written), val_size, out_path / "skipped.txt")
        write_filelist(out_path / "train.txt", [FileListEntry(i, texts[i]) for i in train_ids])
        write_filelist(out_path / "val.txt", [FileListEntry(i, texts[i]) for i in val_ids])
        assert sample_rate is not None  # set by the probe whenever a file was written
        stats_path, stats_line = _mel_statistics(out_path, mel_stats, sample_rate, progress, recorded)
        this_run = {*LISTS, *tables, *(f"wavs/{i}.wav" for i in written), *([STATS_FILE] if stats_path else [])}
        removed = _remove_stale(out_path, recorded, this_run)
        removed_wavs = sum(p.startswith("wavs/") for p in removed)
    finally:  # what OUT now holds of gankit's: the earlier record and this run's files, where they exist
        _write_record(out_path, {p for p in recorded | planned if os.path.lexists(out_path / p)})
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
        removed_stale=removed_wavs,
        removed_other=len(removed) - removed_wavs,
        foreign=_foreign_wavs(out_path, this_run),
        mel_stats=stats_path,
        mel_stats_line=stats_line,
        speakers=len(count_files(list(written))) if layout is SPEAKERS else 0,
        domains=len(count_files(list(written))) if layout is DOMAINS else 0,
    )


def _drop_small_groups(
    wav_dir: Path, converted: dict[str, _Result], items: Mapping[str, SourceItem], layout: GroupLayout
) -> list[Skip]:
    """Remove from `converted` (and OUT) the files of groups (speakers, domains) with fewer than MIN_FILES usable
    files; their skips."""
    skips: list[Skip] = []
    counts = count_files(list(converted))
    for utterance_id in sorted(converted):
        n = counts[speaker_of(utterance_id)]
        if n >= MIN_FILES:
            continue
        del converted[utterance_id]
        target = wav_dir / f"{utterance_id}.wav"
        target.unlink(missing_ok=True)
        for folder in target.parents:  # the group's folders, left empty
            if folder == wav_dir or not folder.is_relative_to(wav_dir) or any(folder.iterdir()):
                break
            folder.rmdir()
        skips.append(Skip(utterance_id, str(items[utterance_id].path), layout.few_reason,
                          f"{layout.noun} {speaker_of(utterance_id)} has {n} usable file(s); a {layout.noun} needs "
                          f"{MIN_FILES} (one to train on, one to validate)"))
    return skips


def _split_groups(
    out: Path,
    layout: GroupLayout,
    ids: list[str],
    texts: Mapping[str, str],
    val_size: int | None,
    speaker_groups: Mapping[str, str] | None,
) -> tuple[list[str], list[str]]:
    """(train, val) holding out the same sentences for every group that read them (without texts: each group's
    last files), and the group table: OUT/speakers.tsv or OUT/domains.tsv."""
    sentences = default_val_sentences(ids) if val_size is None else val_size
    train_ids, val_ids = split_by_sentence(ids, texts, sentences)
    if layout is SPEAKERS:
        write_speaker_table(out / layout.table_file, speaker_table(ids, speaker_groups))
    else:
        write_domain_table(out / layout.table_file, domain_table(ids))
    return train_ids, val_ids


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
    out: Path, cfg: Mapping[str, Any] | None, sample_rate: int, progress: bool, recorded: set[str]
) -> tuple[Path | None, str]:
    """Write OUT/mel_stats.json over train.txt's files, or remove a stale one an earlier run wrote; (its path, a
    summary line)."""
    from gankit.data.corpus_stats import STATS_FILE, write_corpus_statistics

    path = out / STATS_FILE
    if cfg is None:
        if not path.is_file():
            return None, ""
        if STATS_FILE in recorded and not path.is_symlink():
            path.unlink()
            return None, f"removed {path}: it described an earlier run's files (pass --mel-stats to recompute)"
        return None, (f"left {path}: gankit prepare did not write it, and it may not describe these files "
                      "(pass --mel-stats to write one)")
    stats = write_corpus_statistics(out, _stats_frontend(cfg, sample_rate), progress=progress)
    return path, (f"wrote {path}: preset {stats.preset} statistics of {stats.files} training files "
                  f"({stats.frames} frames)")
