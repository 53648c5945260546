"""`gankit prepare --builtin vc-demo OUT`: a parallel multi-speaker corpus for voice conversion, synthesised offline.

Two groups, each of whose speakers reads the group's own sentences (so utterance `s007` is the same sentence for
every speaker of a group — what makes it parallel):

- `en` (40 sentences written for gankit, gankit.data.vc_demo_text): festival's `kal_diphone`, `ked_diphone` and
  `cmu_us_slt_arctic_hts` (32 kHz) and espeak-ng's `en-us+m3` and `en+f3`;
- `ru` (40 sentences of festvox-ru's own transcripts, cleaned for festival): festival's `msu_ru_nsh_clunits` and
  espeak-ng's `ru+m2` and `ru+f3`. festvox-ru's natural recordings are the same man as msu_ru_nsh_clunits and are
  left out.

The sentences are synthesised in `--workers` processes into a scratch folder in the speakers layout
(`<speaker>/<sentence id>.wav` with its `.txt`), which `prepare_corpus(…, "speakers")` then turns into OUT as for
any speaker corpus: `wavs/<speaker>/s001.wav` … at 22050 Hz mono 16-bit (soxr), `train.txt`/`val.txt`/
`skipped.txt`, `speakers.tsv` (group `en`/`ru`), `mel_stats.json` of the `hifigan` preset over the training files,
and `.gankit_prepared.json`. The same 5 sentences of each group (s036–s040) are held out for every speaker of it.

Time on the project's 2-core sandbox: 180 s for the full corpus (320 files, 0.36 h of audio, 56 MB), measured with
`nice -n 10` while other jobs held the load average at 4–5, so an idle machine is faster. festival's voices take
most of it (one sentence on one core: kal/ked 0.4 s, slt 0.8 s, msu_ru_nsh 1.7 s; espeak-ng 0.05 s); the resampling
and the mel statistics take seconds. The command prints its own time.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from gankit.data.prepare import PrepareReport, _run_jobs, prepare_corpus
from gankit.data.tts import ESPEAK, FESTIVAL, Voice, check_voices, synthesise
from gankit.data.vc_demo_text import ENGLISH_SENTENCES, russian_sentences
from gankit.errors import DataError

SAMPLE_RATE = 22050
MEL_PRESET = "hifigan"
SENTENCES_PER_GROUP = 40
DEFAULT_VAL_SENTENCES = 5

VOICES: tuple[Voice, ...] = (
    Voice("en_kal", "en", FESTIVAL, "kal_diphone", "festvox-kallpc16k"),
    Voice("en_ked", "en", FESTIVAL, "ked_diphone", "festvox-kdlpc16k"),
    Voice("en_slt", "en", FESTIVAL, "cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    Voice("en_espeak_m3", "en", ESPEAK, "en-us+m3", "espeak-ng"),
    Voice("en_espeak_f3", "en", ESPEAK, "en+f3", "espeak-ng"),
    Voice("ru_nsh", "ru", FESTIVAL, "msu_ru_nsh_clunits", "festvox-ru"),
    Voice("ru_espeak_m2", "ru", ESPEAK, "ru+m2", "espeak-ng"),
    Voice("ru_espeak_f3", "ru", ESPEAK, "ru+f3", "espeak-ng"),
)


class _Line(NamedTuple):
    """One sentence for one voice (a pool job)."""

    voice: Voice
    sentence_id: str
    text: str
    wav: str


def _speak(line: _Line) -> str:
    synthesise(line.voice, line.text, line.wav, sentence=line.sentence_id)
    return line.sentence_id


def group_sentences(group: str, count: int) -> list[str]:
    """The first `count` sentences of group `en` or `ru`."""
    if group == "en":
        if count > len(ENGLISH_SENTENCES):
            raise DataError(f"vc-demo has {len(ENGLISH_SENTENCES)} English sentences, {count} asked for")
        return list(ENGLISH_SENTENCES[:count])
    if group == "ru":
        return russian_sentences(SENTENCES_PER_GROUP)[:count]
    raise DataError(f"vc-demo has no sentence group {group!r} (en, ru)")


def select_voices(speakers: Sequence[str] | None) -> list[Voice]:
    """VOICES, or those of `speakers` (names as in VOICES) in VOICES' order."""
    if speakers is None:
        return list(VOICES)
    known = {v.speaker for v in VOICES}
    unknown = sorted(set(speakers) - known)
    if unknown:
        raise DataError(f"vc-demo has no speaker {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [v for v in VOICES if v.speaker in set(speakers)]


def prepare_vc_demo(
    out: str | os.PathLike[str],
    val_size: int = DEFAULT_VAL_SENTENCES,
    workers: int | None = None,
    progress: bool = True,
    sentences_per_group: int = SENTENCES_PER_GROUP,
    speakers: Sequence[str] | None = None,
    voices: Sequence[Voice] | None = None,
    log: Callable[[str], None] = print,
) -> PrepareReport:
    """Synthesise and prepare the vc-demo corpus into `out` (module docstring); its report, with the time taken.

    `sentences_per_group` and `speakers` (names from VOICES) build a smaller corpus (tests); `voices` replaces the
    voice table. `val_size` sentences per group are held out for every speaker. DataError when a program, voice or
    package is missing (naming the Debian package) or a voice writes no audio for a sentence (naming both).
    """
    started = time.perf_counter()
    chosen = list(voices) if voices is not None else select_voices(speakers)
    if not chosen:
        raise DataError("vc-demo: no voices chosen")
    if not 2 <= sentences_per_group <= SENTENCES_PER_GROUP:
        raise DataError(f"vc-demo: sentences per group must be 2..{SENTENCES_PER_GROUP}, got {sentences_per_group}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be ≥ 1, got {workers}")
    check_voices(chosen)
    texts = {g: group_sentences(g, sentences_per_group) for g in sorted({v.group for v in chosen})}
    with tempfile.TemporaryDirectory(prefix="gankit-vc-demo-") as scratch:
        lines: list[_Line] = []
        for voice in chosen:
            for number, text in enumerate(texts[voice.group], start=1):
                sentence_id = f"s{number:03d}"
                folder = Path(scratch) / voice.speaker
                folder.mkdir(exist_ok=True)
                (folder / f"{sentence_id}.txt").write_text(text + "\n", encoding="utf-8")
                lines.append(_Line(voice, sentence_id, text, str(folder / f"{sentence_id}.wav")))
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(lines)))
        for _ in _run_jobs(_speak, lines, n_workers, "synthesising", progress, unit="sentence"):
            pass
        report = prepare_corpus(
            scratch, out, "speakers", sample_rate=SAMPLE_RATE, val_size=val_size, workers=n_workers,
            progress=progress, log=log, mel_stats={"preset": MEL_PRESET},
            speaker_groups={v.speaker: v.group for v in chosen},
        )
    if report.skipped:
        first = report.skipped[0]
        raise DataError(f"vc-demo: {len(report.skipped)} synthesised file(s) unusable, so the corpus is not parallel "
                        f"(first: {first.id}, {first.detail}); see {report.out / 'skipped.txt'}")
    per_group = ", ".join(f"{g}: {sum(v.group == g for v in chosen)} speakers × {len(t)} sentences"
                          for g, t in texts.items())
    log(f"vc-demo {per_group}: synthesised and prepared in {time.perf_counter() - started:.0f} s "
        f"with {n_workers} worker(s)")
    return report
