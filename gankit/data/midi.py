"""A small Standard MIDI File writer: one track (format 0) of single notes for one General-MIDI program, enough for
`--builtin instruments` to hand phrases to fluidsynth without a MIDI package.

Times are in beats; the file carries the tempo, a program change at tick 0, each note as a note-on and a note-off on
one channel, and an end-of-track `tail_beats` after the last note-off, so a renderer keeps the release of the last
note instead of cutting it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from gankit.errors import DataError

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9  # General MIDI plays channel 10 (index 9) as percussion whatever the program


class Note(NamedTuple):
    """One note: MIDI pitch (60 = middle C), start and length in beats, velocity 1..127."""

    pitch: int
    start: float
    length: float
    velocity: int = 90


def variable_length(value: int) -> bytes:
    """`value` as a MIDI variable-length quantity: 7 bits a byte, most significant first, the high bit on all but
    the last byte."""
    if value < 0:
        raise ValueError(f"a variable-length quantity is never negative, got {value}")
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def _check(notes: Sequence[Note], program: int, channel: int, tempo_bpm: float) -> None:
    if not 0 <= program <= 127:
        raise DataError(f"General-MIDI program must be 0..127, got {program}")
    if not 0 <= channel <= 15 or channel == DRUM_CHANNEL:
        raise DataError(f"MIDI channel must be 0..15 and not {DRUM_CHANNEL} (percussion), got {channel}")
    if not tempo_bpm > 0:
        raise DataError(f"tempo must be a positive number of beats per minute, got {tempo_bpm}")
    for note in notes:
        if not (0 <= note.pitch <= 127 and 1 <= note.velocity <= 127 and note.start >= 0 and note.length > 0):
            raise DataError(f"{note}: pitch must be 0..127, velocity 1..127, start ≥ 0 and length > 0")


def midi_file(
    notes: Sequence[Note], program: int, tempo_bpm: float = 120.0, channel: int = 0, tail_beats: float = 1.0
) -> bytes:
    """The bytes of a format-0 Standard MIDI File playing `notes` with General-MIDI `program` (0-based:
    0 = acoustic grand piano) on `channel` at `tempo_bpm`."""
    _check(notes, program, channel, tempo_bpm)
    microseconds_per_beat = round(60_000_000 / tempo_bpm)
    # (tick, order, bytes): at one tick, set-up first, then note-offs before note-ons (a repeated pitch restarts).
    events: list[tuple[int, int, bytes]] = [
        (0, 0, b"\xff\x51\x03" + microseconds_per_beat.to_bytes(3, "big")),
        (0, 1, bytes((0xC0 | channel, program))),
    ]
    last_tick = 0
    for note in notes:
        on = round(note.start * TICKS_PER_BEAT)
        off = max(on + 1, round((note.start + note.length) * TICKS_PER_BEAT))
        events.append((on, 3, bytes((0x90 | channel, note.pitch, note.velocity))))
        events.append((off, 2, bytes((0x80 | channel, note.pitch, 64))))
        last_tick = max(last_tick, off)
    events.sort(key=lambda event: (event[0], event[1]))
    events.append((last_tick + round(tail_beats * TICKS_PER_BEAT), 4, b"\xff\x2f\x00"))  # end of track

    track = bytearray()
    now = 0
    for tick, _, data in events:
        track += variable_length(tick - now) + data
        now = tick
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += TICKS_PER_BEAT.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def write_midi(
    path: str | os.PathLike[str],
    notes: Sequence[Note],
    program: int,
    tempo_bpm: float = 120.0,
    channel: int = 0,
    tail_beats: float = 1.0,
) -> None:
    """Write `midi_file(...)` to `path` (a scratch file for a renderer: no fsync)."""
    Path(path).write_bytes(midi_file(notes, program, tempo_bpm, channel, tail_beats))
