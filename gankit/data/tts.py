"""Offline text-to-speech with the Debian voices `--builtin vc-demo` reads with: festival's `text2wave` and
`espeak-ng`, run as subprocesses (never through a shell), each sentence checked for audio.

A missing program or voice is a `DataError` naming the Debian package to install. A synthesiser that exits 0 but
writes nothing — festival's Russian voice on « » — № — or only silence is a `DataError` naming the voice and the
sentence, never a silently missing file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from gankit.errors import DataError

FESTIVAL = "festival"
ESPEAK = "espeak-ng"
ENGINES = (FESTIVAL, ESPEAK)
TIMEOUT_SECONDS = 60.0  # per sentence; the HTS voice takes ~1 s for a 14-word sentence on one core
SILENCE_PEAK = 1.0 / 32768.0  # one 16-bit step, as prepare's silence test
# Debian packages of the programs (espeak-ng's voices come with it, in espeak-ng-data).
PROGRAM_PACKAGES = {"text2wave": "festival", "festival": "festival", "espeak-ng": "espeak-ng"}
_NAME = re.compile(r"^[A-Za-z0-9_+-]+$")  # voice names go into a Scheme expression and an argument


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: `name` is festival's voice (`kal_diphone`) or espeak-ng's `language+variant`."""

    speaker: str
    group: str
    engine: str
    name: str
    package: str  # the Debian package holding the voice

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DataError(f"voice {self.speaker}: engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not _NAME.match(self.name):
            raise DataError(f"voice {self.speaker}: {self.name!r} is not a voice name (letters, digits, _ + -)")

    def describe(self) -> str:
        return f"{self.engine} voice {self.name} (speaker {self.speaker})"


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DataError(f"{name} not found: install the Debian package {PROGRAM_PACKAGES[name]} "
                        f"(sudo apt-get install {PROGRAM_PACKAGES[name]})")
    return path


def _output(command: list[str], stdin: str = "") -> str:
    try:
        done = subprocess.run(command, input=stdin.encode("utf-8"), capture_output=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"{' '.join(command)} did not answer within {TIMEOUT_SECONDS:g} s") from None
    return done.stdout.decode("utf-8", "replace")


def festival_voices() -> set[str]:
    """The voices festival can load (its `voice.list`)."""
    listing = _output([_program("festival"), "--pipe"], "(print (voice.list))\n")
    return set(re.findall(r"[A-Za-z0-9_]+", listing))


def espeak_voices() -> tuple[set[str], set[str]]:
    """(languages, variants) espeak-ng knows: `en-us`, `ru`, …; `m3`, `f3`, …"""
    program = _program("espeak-ng")
    languages: set[str] = set()
    for row in _output([program, "--voices"]).splitlines()[1:]:
        fields = row.split()
        if len(fields) > 1:  # the language, and the others it answers to: "(en 2)" makes `-v en` one of them
            languages |= {fields[1], *re.findall(r"\(([\w-]+) \d+\)", row)}
    variants = {row.split()[4].removeprefix("!v/") for row in _output([program, "--voices=variant"]).splitlines()[1:]
                if len(row.split()) > 4}
    return languages, variants


def check_voices(voices: Sequence[Voice]) -> None:
    """DataError naming every Debian package that a missing program or voice of `voices` needs."""
    missing: dict[str, list[str]] = {}  # package → what is missing
    engines = {v.engine for v in voices}
    programs = {FESTIVAL: ("text2wave", "festival"), ESPEAK: ("espeak-ng",)}
    for engine in sorted(engines):
        for program in programs[engine]:
            if shutil.which(program) is None:
                missing.setdefault(PROGRAM_PACKAGES[program], []).append(f"the program {program}")
    known_festival = festival_voices() if FESTIVAL in engines and shutil.which("festival") else None
    known_espeak = espeak_voices() if ESPEAK in engines and shutil.which("espeak-ng") else None
    for voice in voices:
        if voice.engine == FESTIVAL and known_festival is not None and voice.name not in known_festival:
            missing.setdefault(voice.package, []).append(f"festival's voice {voice.name}")
        if voice.engine == ESPEAK and known_espeak is not None:
            language, _, variant = voice.name.partition("+")
            languages, variants = known_espeak
            if language not in languages or (variant and variant not in variants):
                missing.setdefault(voice.package, []).append(f"espeak-ng's voice {voice.name}")
    if missing:
        what = "; ".join(f"{', '.join(items)} (Debian package {package})" for package, items in missing.items())
        raise DataError(f"missing {what}; install with: sudo apt-get install {' '.join(missing)}")


def synthesise(voice: Voice, text: str, wav_path: str | os.PathLike[str], sentence: str = "") -> float:
    """Speak `text` with `voice` into `wav_path` (the synthesiser's own rate); its duration in seconds.

    DataError naming the voice and the sentence when the synthesiser fails, times out, or writes no audio or
    only silence. `sentence` is the sentence's id, for the message.
    """
    path = Path(wav_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a file left from before must not pass for this sentence's audio
    if voice.engine == FESTIVAL:
        command = [_program("text2wave"), "-eval", f"(voice_{voice.name})", "-o", str(path)]
    else:
        command = [_program("espeak-ng"), "--stdin", "-v", voice.name, "-w", str(path)]
    which = f"{voice.describe()}, sentence {sentence + ' ' if sentence else ''}{text!r}"
    try:
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"{which}: no audio within {TIMEOUT_SECONDS:g} s") from None
    said = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
    if done.returncode != 0:
        raise DataError(f"{which}: {command[0]} exited with status {done.returncode}: {said or 'no message'}")
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"{which}: wrote no audio (festival does so on characters its voice cannot read, such as "
                        f"« » — №){': ' + said if said else ''}")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise DataError(f"{which}: wrote an unreadable file {path} ({exc})") from None
    if audio.size == 0 or float(np.max(np.abs(audio))) <= SILENCE_PEAK:
        raise DataError(f"{which}: wrote {'no samples' if audio.size == 0 else 'only silence'} to {path}")
    return audio.shape[0] / rate
