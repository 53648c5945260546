"""`gankit prepare --builtin instruments OUT`: a music-translation corpus rendered offline, one domain per instrument,
the domains differing in timbre only.

Phrases (scales, arpeggios and short melodies in turn, each 2–3.5 s of notes; keys, modes, tempi, rhythms and
velocities drawn from a seeded `random.Random`, so the same seed gives the same phrases) are written as Standard MIDI
Files (gankit.data.midi) and rendered by fluidsynth with a General-MIDI soundfont (FluidR3_GM when Debian's
fluid-soundfont-gm is installed, else TimGM6mb from timgm6mb-soundfont) once per instrument: every instrument plays
the same phrases, so phrase `p007` of the violin and of the flute are the same notes, and translations can be
compared with the real thing. Notes stay within C4–C6, in every instrument's range.

Each render is dry (no reverb, no chorus), mixed to mono, cut after its last audible sample (fluidsynth renders
seconds of silence past the end) and scaled to a peak of −6 dBFS, so loudness is not a trait of a domain. The renders
go to a scratch folder in the domains layout (`<instrument>/<phrase>.wav`), which `prepare_corpus(…, "domains")` turns
into OUT: `wavs/<instrument>/p001.wav` … at 16 kHz mono 16-bit, `train.txt`/`val.txt`/`skipped.txt`, `domains.tsv`,
and `.gankit_prepared.json`. The same last 3 phrases (p028–p030: one scale, one arpeggio, one melody) are held out
for every instrument.

Size and time: 6 instruments × 30 phrases = 180 files of 2.1–4.4 s, 10 minutes of audio, 19 MB. On the project's
busy 2-core sandbox (measured with `nice -n 10`, load average 2–3) the whole command takes 18–26 s, almost all of it
rendering (fluidsynth: ~0.12 s a phrase, mostly loading the soundfont). A missing fluidsynth or soundfont is a
DataError naming the Debian package; a render that fails, or writes nothing or only silence, one naming the
instrument and the phrase.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from gankit.data.midi import Note, write_midi
from gankit.data.prepare import PrepareReport, _run_jobs, prepare_corpus
from gankit.errors import DataError

SAMPLE_RATE = 16000
PHRASES = 30
DEFAULT_VAL_PHRASES = 3
SEED = 0
SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
# In order of preference: fluid-soundfont-gm's (141 MB, richer), timgm6mb-soundfont's (6 MB), the system's default.
SOUNDFONTS = (SOUNDFONT_DIR / "FluidR3_GM.sf2", SOUNDFONT_DIR / "TimGM6mb.sf2", SOUNDFONT_DIR / "default-GM.sf2")
FLUIDSYNTH_PACKAGE = "fluidsynth"
SOUNDFONT_PACKAGE = "timgm6mb-soundfont"
INSTALL = f"bash scripts/bootstrap.sh {FLUIDSYNTH_PACKAGE} {SOUNDFONT_PACKAGE}"
TIMEOUT_SECONDS = 60.0  # per phrase; a 4 s phrase renders in ~0.1 s
AUDIBLE_PEAK = 1e-3  # −60 dBFS: a render whose peak stays below it is taken as silent
TRIM_FLOOR_DB = -50.0  # the end of a render: its last sample above this, relative to its peak
TRIM_MARGIN_SECONDS = 0.1
OUTPUT_PEAK = 0.5  # −6 dBFS
TAIL_SECONDS = 0.6  # MIDI time after the last note-off, for the release

LOWEST_PITCH, HIGHEST_PITCH = 60, 84  # C4..C6: the flute's lowest note up to where the cello still sounds well
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
}
TEMPI = (84, 96, 108, 120, 132)
KINDS = ("scale", "arpeggio", "melody")
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


class Instrument(NamedTuple):
    """A domain: its name and its General-MIDI program (0-based: 0 = acoustic grand piano)."""

    name: str
    program: int


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("piano", 0),
    Instrument("violin", 40),
    Instrument("cello", 42),
    Instrument("trumpet", 56),
    Instrument("clarinet", 71),
    Instrument("flute", 73),
)


class Phrase(NamedTuple):
    id: str
    description: str
    tempo_bpm: int
    notes: tuple[Note, ...]

    @property
    def seconds(self) -> float:
        """From the first note-on to the last note-off."""
        return max(n.start + n.length for n in self.notes) * 60.0 / self.tempo_bpm


# ---- phrases ---------------------------------------------------------------------------------------------------
def _pitch(tonic: int, mode: Sequence[int], degree: int) -> int:
    """The pitch of scale `degree` (0 = the tonic, 7 = its octave) of `mode` above `tonic`."""
    return tonic + 12 * (degree // len(mode)) + mode[degree % len(mode)]


def _even_notes(rng: random.Random, pitches: Sequence[int], beats: float) -> list[Note]:
    """`pitches` at an even step (a multiple of ¼ beat) filling about `beats`, slightly detached, the last held."""
    step = max(0.25, round(beats / (len(pitches) + 1) * 4) / 4)
    notes = [Note(p, i * step, 0.9 * step, rng.randint(76, 104)) for i, p in enumerate(pitches)]
    last = notes[-1]
    return [*notes[:-1], last._replace(length=1.9 * step)]


def _scale(rng: random.Random, tonic: int, mode: str, beats: float) -> tuple[str, list[Note]]:
    direction = rng.choice(("up", "down", "up and down"))
    degrees = {"up": list(range(8)), "down": list(range(7, -1, -1)),
               "up and down": [*range(8), *range(6, -1, -1)]}[direction]
    return f"{mode} scale {direction}", _even_notes(rng, [_pitch(tonic, MODES[mode], d) for d in degrees], beats)


def _arpeggio(rng: random.Random, tonic: int, mode: str, beats: float) -> tuple[str, list[Note]]:
    shape = rng.choice(("rising", "falling", "rising and falling", "broken"))
    degrees = {"rising": [0, 2, 4, 7, 9, 11], "falling": [11, 9, 7, 4, 2, 0],
               "rising and falling": [0, 2, 4, 7, 9, 11, 9, 7, 4, 2, 0], "broken": [0, 4, 2, 7, 4, 9, 7, 11]}
    return f"{mode} arpeggio, {shape}", _even_notes(rng, [_pitch(tonic, MODES[mode], d) for d in degrees[shape]], beats)


def _melody(rng: random.Random, tonic: int, mode: str, beats: float) -> tuple[str, list[Note]]:
    """A walk over the scale (mostly steps, some leaps) in mixed note lengths, ending on the tonic."""
    degree, start, notes = rng.choice((0, 2, 4)), 0.0, []
    while start < beats - 1.0:
        length = rng.choice((0.5, 0.5, 1.0, 1.0, 1.5, 2.0))
        notes.append(Note(_pitch(tonic, MODES[mode], degree), start, 0.92 * length, rng.randint(76, 104)))
        start += length
        degree = min(10, max(0, degree + rng.choice((-2, -1, -1, 1, 1, 2, 3, -3))))
    final = 7 if degree > 4 else 0
    notes.append(Note(_pitch(tonic, MODES[mode], final), start, 1.5, rng.randint(76, 104)))
    return f"{mode} melody", notes


BUILDERS: dict[str, Callable[[random.Random, int, str, float], tuple[str, list[Note]]]] = {
    "scale": _scale, "arpeggio": _arpeggio, "melody": _melody,
}


def make_phrases(count: int = PHRASES, seed: int = SEED) -> list[Phrase]:
    """`count` phrases `p001`…: a scale, an arpeggio and a melody in turn, each in a key from C to F (so its highest
    note, an octave and a fifth up, stays within C6), a mode, a tempo and about 2–3.5 s of notes drawn from `seed`."""
    rng = random.Random(seed)
    phrases: list[Phrase] = []
    for number in range(1, count + 1):
        kind = KINDS[(number - 1) % len(KINDS)]
        tonic = rng.randint(LOWEST_PITCH, LOWEST_PITCH + 5)
        mode = rng.choice(sorted(MODES))
        tempo = rng.choice(TEMPI)
        beats = rng.uniform(2.0, 3.5) * tempo / 60.0
        what, notes = BUILDERS[kind](rng, tonic, mode, beats)
        assert all(LOWEST_PITCH <= n.pitch <= HIGHEST_PITCH for n in notes), (number, notes)
        phrases.append(Phrase(f"p{number:03d}", f"{NOTE_NAMES[tonic % 12]} {what}, {tempo} bpm", tempo,
                              tuple(notes)))
    return phrases


# ---- rendering ---------------------------------------------------------------------------------------------------
def find_renderer(soundfont: str | os.PathLike[str] | None = None) -> tuple[str, Path]:
    """(fluidsynth's path, the soundfont): `soundfont`, else the first of SOUNDFONTS present. DataError naming the
    Debian package of whatever is missing."""
    missing: list[str] = []
    program = shutil.which("fluidsynth")
    if program is None:
        missing.append(f"the program fluidsynth (Debian package {FLUIDSYNTH_PACKAGE})")
    if soundfont is not None:
        chosen: Path | None = Path(soundfont)
        if not chosen.is_file():
            raise DataError(f"soundfont {chosen} not found; give an .sf2 file, or none to use {SOUNDFONTS[1]} "
                            f"(Debian package {SOUNDFONT_PACKAGE})")
    else:
        chosen = next((path for path in SOUNDFONTS if path.is_file()), None)
        if chosen is None:
            looked = ", ".join(str(path) for path in SOUNDFONTS)
            missing.append(f"a General-MIDI soundfont (looked for {looked}; Debian package {SOUNDFONT_PACKAGE})")
    if missing:
        raise DataError(f"--builtin instruments renders with fluidsynth: missing {'; '.join(missing)}; install "
                        f"with: {INSTALL}")
    assert program is not None and chosen is not None
    return program, chosen


class _Render(NamedTuple):
    """One phrase on one instrument (a pool job)."""

    instrument: Instrument
    phrase: Phrase
    fluidsynth: str
    soundfont: str
    midi: str
    wav: str


def render(job: _Render) -> float:
    """Write `job.phrase` as MIDI, render it with fluidsynth at SAMPLE_RATE and write the mono, trimmed, peak-scaled
    result to `job.wav`; its duration in seconds. DataError naming the instrument and the phrase when fluidsynth
    fails, times out, or writes no audio or only silence."""
    instrument, phrase = job.instrument, job.phrase
    which = f"instrument {instrument.name} (General-MIDI program {instrument.program}), phrase {phrase.id} " \
            f"({phrase.description})"
    write_midi(job.midi, phrase.notes, instrument.program, tempo_bpm=phrase.tempo_bpm,
               tail_beats=TAIL_SECONDS * phrase.tempo_bpm / 60.0)
    raw = Path(job.wav).with_suffix(".raw.wav")
    raw.unlink(missing_ok=True)  # a file left from before must not pass for this render
    command = [job.fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-O", "float", "-F", str(raw),
               "-r", str(SAMPLE_RATE), job.soundfont, job.midi]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"{which}: fluidsynth wrote no audio within {TIMEOUT_SECONDS:g} s") from None
    said = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
    if done.returncode != 0:
        raise DataError(f"{which}: fluidsynth exited with status {done.returncode}: {said or 'no message'}")
    if not raw.is_file() or raw.stat().st_size == 0:
        raise DataError(f"{which}: fluidsynth wrote no audio{': ' + said if said else ''}")
    try:
        audio, rate = sf.read(raw, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise DataError(f"{which}: fluidsynth wrote an unreadable file {raw} ({exc})") from None
    raw.unlink()
    mono = audio.mean(axis=1)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak <= AUDIBLE_PEAK:
        what = "no samples" if mono.size == 0 else f"only silence (peak {peak:.1e})"
        raise DataError(f"{which}: fluidsynth rendered {what} with {Path(job.soundfont).name}; does the soundfont "
                        f"hold program {instrument.program}?")
    audible = np.flatnonzero(np.abs(mono) > peak * 10.0 ** (TRIM_FLOOR_DB / 20.0))
    end = min(mono.size, int(audible[-1]) + 1 + int(TRIM_MARGIN_SECONDS * rate))
    sf.write(job.wav, mono[:end] * (OUTPUT_PEAK / peak), rate, subtype="PCM_16")
    return end / rate


def select_instruments(names: Sequence[str] | None) -> list[Instrument]:
    """INSTRUMENTS, or those named (in INSTRUMENTS' order)."""
    if names is None:
        return list(INSTRUMENTS)
    known = {i.name for i in INSTRUMENTS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise DataError(f"instruments: no instrument {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [i for i in INSTRUMENTS if i.name in set(names)]


def prepare_instruments(
    out: str | os.PathLike[str],
    val_size: int = DEFAULT_VAL_PHRASES,
    workers: int | None = None,
    progress: bool = True,
    phrases: int = PHRASES,
    instruments: Sequence[str] | None = None,
    seed: int = SEED,
    soundfont: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> PrepareReport:
    """Render and prepare the instruments corpus into `out` (module docstring); its report, with the time taken.

    `phrases` and `instruments` (names from INSTRUMENTS) build a smaller corpus (tests); `seed` draws other phrases;
    `soundfont` replaces the default soundfont. `val_size` phrases (the last ones) are held out for every instrument.
    """
    started = time.perf_counter()
    chosen = select_instruments(instruments)
    if not chosen:
        raise DataError("instruments: no instruments chosen")
    if phrases < 2:
        raise DataError(f"instruments: at least 2 phrases are needed (one to train on, one to validate), got {phrases}")
    if not 0 <= val_size < phrases:
        raise DataError(f"--val-size {val_size}: must be 0..{phrases - 1} (phrases held out of {phrases})")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be ≥ 1, got {workers}")
    fluidsynth, font = find_renderer(soundfont)
    with tempfile.TemporaryDirectory(prefix="gankit-instruments-") as scratch:
        audio_dir, midi_dir = Path(scratch) / "audio", Path(scratch) / "midi"
        jobs: list[_Render] = []
        for instrument in chosen:
            (audio_dir / instrument.name).mkdir(parents=True)
            (midi_dir / instrument.name).mkdir(parents=True)
            jobs += [_Render(instrument, phrase, fluidsynth, str(font),
                             str(midi_dir / instrument.name / f"{phrase.id}.mid"),
                             str(audio_dir / instrument.name / f"{phrase.id}.wav"))
                     for phrase in make_phrases(phrases, seed)]
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        for _ in _run_jobs(render, jobs, n_workers, "rendering", progress, unit="phrase"):
            pass
        report = prepare_corpus(audio_dir, out, "domains", sample_rate=SAMPLE_RATE, val_size=val_size,
                                workers=n_workers, progress=progress, log=log)
    if report.skipped:
        first = report.skipped[0]
        raise DataError(f"instruments: {len(report.skipped)} rendered file(s) unusable, so the instruments no longer "
                        f"play the same phrases (first: {first.id}, {first.detail}); see {report.out / 'skipped.txt'}")
    log(f"instruments: {len(chosen)} instruments × {phrases} phrases rendered with {font.name} and prepared in "
        f"{time.perf_counter() - started:.0f} s with {n_workers} worker(s)")
    return report
