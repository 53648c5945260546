"""Score a vocoder the way the field does: resynthesise reference utterances from their mels, and the same
mels through a Griffin-Lim baseline, then measure both against the references (gankit evaluate)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gankit.audio.io import read_audio, write_wav
from gankit.errors import ConfigError, DataError, GankitError, OutputPathError
from gankit.metrics.summary import ALL_MEASURES, Summary, evaluate_pair_with_reasons, summarise

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
GRIFFIN_LIM = "griffin_lim"
MODEL = "model"


@dataclass
class Reference:
    id: str
    path: Path


@dataclass
class SystemScores:
    """Per-file rows and their summary for one system (the model or a baseline)."""

    rows: list[dict[str, float | None]] = field(default_factory=list)
    reasons: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"}: files left out of every system

    def summary(self) -> dict[str, Summary]:
        return summarise(_numeric(self.rows))  # rows hold the "id" string beside the numbers


def check_measures(measures: Sequence[str]) -> list[str]:
    """The requested measure names, stripped, each once, in order; ConfigError for none or an unknown one
    (checked before any audio is read, so a typo costs no vocoding)."""
    chosen = list(dict.fromkeys(m.strip() for m in measures if m.strip()))
    if not chosen:
        raise ConfigError(f"no measure chosen; choose from {', '.join(ALL_MEASURES)}")
    unknown = [m for m in chosen if m not in ALL_MEASURES]
    if unknown:
        raise ConfigError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(ALL_MEASURES)}")
    return chosen


def find_references(data: str | Path, wav_dir: str | Path | None = None, limit: int | None = None) -> list[Reference]:
    """DATA is a prepared corpus (its val.txt and wavs/), a file list (`id|text`) with `wav_dir`, or a folder
    of audio files (searched recursively; ids are paths relative to it without the suffix). `limit` keeps the
    first N."""
    from gankit.data.filelist import read_filelist

    if limit is not None and limit < 1:  # refs[:0] or refs[:-1] would silently score all or all but one
        raise ConfigError(f"limit must be at least 1 (the number of utterances to score), got {limit}")
    path = Path(data)
    if path.is_dir() and (path / "val.txt").is_file():
        entries, folder = read_filelist(path / "val.txt"), Path(wav_dir or path / "wavs")
        refs = [Reference(e.id, folder / f"{e.id}.wav") for e in entries]
    elif path.is_file():
        if wav_dir is None:
            raise DataError(f"{path}: a file list needs --wav-dir (the folder holding <id>.wav).")
        refs = [Reference(e.id, Path(wav_dir) / f"{e.id}.wav") for e in read_filelist(path)]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
        refs = [Reference(str(p.relative_to(path).with_suffix("")), p) for p in files]
    else:
        raise DataError(f"{path}: no such corpus folder, file list or audio folder.")
    if not refs:
        raise DataError(f"{path}: no reference utterances found (expected val.txt, a file list or audio files).")
    return refs[:limit] if limit is not None else refs


def input_files(data: str | Path, checkpoint: str | Path | None, references: Sequence[Reference]) -> list[Path]:
    """The files `evaluate` reads: the file list (DATA itself, or a corpus's val.txt), the checkpoint when it is a
    file, and every reference recording. An output on one of them is refused even with --overwrite."""
    path = Path(data)
    files = [path if path.is_file() else path / "val.txt"]  # a folder of audio has none: missing files are ignored
    if checkpoint is not None and Path(checkpoint).is_file():
        files.append(Path(checkpoint))
    return [*files, *(ref.path for ref in references)]


def _identities(paths: Sequence[Path]) -> dict[tuple[int, int], Path]:
    """(device, inode) → path of each existing file, so a path through a link or a hard link is recognised."""
    found: dict[tuple[int, int], Path] = {}
    for path in paths:
        with contextlib.suppress(OSError):  # a missing input is reported when it is read
            st = path.stat()
            found.setdefault((st.st_dev, st.st_ino), path)
    return found


def _input_at(path: Path, inputs: dict[tuple[int, int], Path]) -> Path | None:
    try:
        st = path.stat()
    except OSError:  # absent, or a dangling link: not an input
        return None
    return inputs.get((st.st_dev, st.st_ino))


def check_results_file(out: Path, inputs: Sequence[Path], overwrite: bool) -> bool:
    """Refuse an --out that is one of the inputs (always) or that exists (unless `overwrite`), before any scoring.
    Returns whether an existing file will be replaced."""
    source = _input_at(out, _identities(inputs))
    if source is not None:
        which = "" if source == out else f" ({source})"
        raise OutputPathError(f"{out}: --out is a file evaluate reads{which}; choose another --out (an input is "
                              "never replaced, even with --overwrite)")
    if not os.path.lexists(out):
        return False
    if not overwrite:
        raise OutputPathError(f"{out}: --out already exists; pass --overwrite to replace it or choose another --out")
    return True


def audio_outputs(references: Sequence[Reference], audio_dir: Path, systems: Sequence[str]) -> list[Path]:
    """`audio_dir/<system>/<id>.wav` for every reference and system: what `audio_dir` would receive."""
    return [audio_dir / name / f"{ref.id}.wav" for name in systems for ref in references]


def check_audio_outputs(references: Sequence[Reference], audio_dir: Path, systems: Sequence[str],
                        overwrite: bool, inputs: Sequence[Path] = ()) -> set[Path]:
    """Refuse, before any scoring, a resynthesis that would land on an input (always: the references are inputs
    too), on a folder, or on an existing file (unless `overwrite`). Returns the existing files that will be
    replaced."""
    identities = _identities([*inputs, *(ref.path for ref in references)])
    planned = audio_outputs(references, audio_dir, systems)
    existing: list[Path] = []
    for path in planned:
        if not os.path.lexists(path):
            continue
        if path.is_dir():
            raise OutputPathError(f"{path}: a folder is in the way of a resynthesis written there; move it or choose "
                                  "another --audio-dir")
        source = _input_at(path, identities)
        if source is not None:
            which = "" if source == path else f" ({source})"
            raise OutputPathError(f"{path}: is a file evaluate reads{which}, and a resynthesis would replace it; "
                                  "choose an --audio-dir apart from the data (an input is never replaced, even with "
                                  "--overwrite)")
        existing.append(path)
    if existing and not overwrite:
        n = len(existing)
        count = "" if len(planned) == 1 else f" ({n} of the {len(planned)} resyntheses already exist in {audio_dir})"
        raise OutputPathError(f"{existing[0]}: already exists{count}; pass --overwrite to replace "
                              f"{'it' if n == 1 else 'them'} or choose another --audio-dir")
    return set(existing)


def written_audio(systems: dict[str, SystemScores], audio_dir: Path) -> list[Path]:
    """The resyntheses `evaluate_vocoder` wrote into `audio_dir` (one per scored file and system)."""
    return [audio_dir / name / f"{row['id']}.wav" for name, scores in systems.items() for row in scores.rows]


class FileScorer:
    """Resynthesises one reference with every system and scores each against it: the unit of work `evaluate_vocoder`
    runs here or shares among forked workers (`parallel.mapped`)."""

    def __init__(self, vocoder: Any, systems: Sequence[str], measures: Sequence[str], griffin_lim_iters: int) -> None:
        self.vocoder = vocoder
        self.systems = list(systems)
        self.measures = list(measures)
        self.griffin_lim_iters = griffin_lim_iters
        self.loss_frontend = vocoder.frontend.with_fmax(None)

    def score(self, ref: Reference) -> tuple[dict[str, Any], dict[str, tuple[dict[str, Any], dict[str, str]]]] | str:
        """({system: estimate}, {system: (row, reasons)}), or why the file cannot be scored."""
        from gankit.metrics.griffin_lim import griffin_lim_from_mel

        vocoder, frontend = self.vocoder, self.vocoder.frontend
        try:
            wave, _ = read_audio(ref.path, target_sr=vocoder.sample_rate)
            mel = frontend(torch.from_numpy(wave))
            estimates = {MODEL: vocoder(mel).cpu().numpy()}
            if GRIFFIN_LIM in self.systems:
                estimates[GRIFFIN_LIM] = griffin_lim_from_mel(mel.numpy(), frontend, n_iter=self.griffin_lim_iters)
            # Every system scored before any row is kept: a file one system cannot score counts for none.
            scored = {name: evaluate_pair_with_reasons(wave, estimate, vocoder.sample_rate, self.loss_frontend,
                                                       self.measures)
                      for name, estimate in estimates.items()}
        except (GankitError, ValueError, OSError) as exc:  # unreadable, too short, NaN output: report, score the rest
            return str(exc)
        return estimates, scored


def evaluate_vocoder(
    vocoder: Any,
    references: Sequence[Reference],
    baseline: str | None = GRIFFIN_LIM,
    measures: Sequence[str] = ALL_MEASURES,
    audio_dir: Path | None = None,
    griffin_lim_iters: int = 32,
    progress: bool = True,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    workers: int | None = None,
) -> dict[str, SystemScores]:
    """Scores per system ("model" and, unless `baseline` is None, "griffin_lim"), file by file.

    Mel L1 is measured on the loss mel (fmax = sample_rate / 2, as HiFi-GAN's validation). A reference that
    cannot be read or scored (e.g. too short for the front-end or the 2048-point STFT) is reported through
    `log`, listed in every system's `skipped`, and left out of every system, so all systems score the same
    files. With `audio_dir`, the resyntheses are written there as `<system>/<id>.wav`; files already there are
    refused before anything is scored (OutputPathError) unless `overwrite` (see `check_audio_outputs`).
    `workers`: processes the files are shared among (default one per core, at most 8; one for a model not on the
    CPU). torch and BLAS run one thread each in every path, so the results do not depend on `workers`.
    """
    from tqdm import tqdm

    from gankit.infer.parallel import default_workers, mapped, one_thread

    measures = check_measures(measures)
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    systems = {MODEL: SystemScores()}
    if baseline is not None:
        if baseline != GRIFFIN_LIM:
            raise DataError(f"unknown baseline '{baseline}'; the one available is griffin-lim.")
        systems[GRIFFIN_LIM] = SystemScores()
    if audio_dir is not None:
        check_audio_outputs(references, Path(audio_dir), list(systems), overwrite)
    on_cpu = str(getattr(vocoder, "device", "cpu")).startswith("cpu")
    processes = (workers or default_workers()) if on_cpu else 1  # a forked CUDA context is unusable
    scorer = FileScorer(vocoder, list(systems), measures, griffin_lim_iters)
    skipped: list[dict[str, str]] = []
    with one_thread(), mapped(scorer, "score", list(references), processes) as results:
        for ref, result in zip(references, tqdm(results, total=len(references), desc="evaluate", unit="file",
                                                 disable=not progress), strict=True):
            if isinstance(result, str):
                log(f"skipped {ref.id}: {result}")
                skipped.append({"id": ref.id, "reason": result})
                continue
            estimates, scored = result
            for name, (row, reasons) in scored.items():
                systems[name].rows.append({"id": ref.id, **row})
                systems[name].reasons.append(reasons)
                if audio_dir is not None:
                    write_wav(audio_dir / name / f"{ref.id}.wav", estimates[name], vocoder.sample_rate)
    for scores in systems.values():
        scores.skipped = list(skipped)
    if not systems[MODEL].rows:
        raise DataError(f"none of the {len(references)} reference utterance(s) could be scored; see the messages "
                        "above.")
    return systems


def _numeric(rows: list[dict[str, Any]]) -> list[dict[str, float | None]]:
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


def results_json(systems: dict[str, SystemScores], meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` plus {"systems": {name: {"summary": {measure: Summary.to_dict()}, "files": [{"id", measures…,
    "unscored": {measure: reason}}], "skipped": [{"id", "reason"}]}}} — plain types, ready for json.dumps."""
    out: dict[str, Any] = {**meta, "systems": {}}
    for name, scores in systems.items():
        out["systems"][name] = {
            "summary": {k: s.to_dict() for k, s in summarise(_numeric(scores.rows)).items()},
            "files": [{**row, "unscored": reasons} for row, reasons in zip(scores.rows, scores.reasons, strict=True)],
            "skipped": scores.skipped,
        }
    return out


# Which direction is better, for the table.
HIGHER_IS_BETTER = {"pesq_wb", "stoi"}


def format_table(systems: dict[str, SystemScores]) -> str:
    """A terminal table: one row per measure, one column per system, mean ± 95% interval half-width (n)."""
    summaries = {name: summarise(_numeric(s.rows)) for name, s in systems.items()}
    measures = list(next(iter(summaries.values())))
    names = list(summaries)
    header = ["measure", *names]
    lines = [header]
    for measure in measures:
        arrow = "↑" if measure in HIGHER_IS_BETTER else "↓"
        cells = [f"{measure} {arrow}"]
        for name in names:
            s = summaries[name].get(measure)
            cells.append("—" if s is None or s.mean is None else f"{s.mean:.3f} ± {s.half_width:.3f} (n={s.n})")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def write_results(path: Path, data: dict[str, Any]) -> None:
    from gankit import atomic

    atomic.write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def mean_of(systems: dict[str, SystemScores], system: str, measure: str) -> float | None:
    """The mean of one measure for one system (None when nothing scored)."""
    summary = summarise(_numeric(systems[system].rows)).get(measure)
    return None if summary is None else summary.mean

