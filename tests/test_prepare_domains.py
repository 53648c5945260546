"""Domain corpora for music translation: `gankit prepare --format domains` (domain folders at any depth, reported
skips, a validation split per domain, domains.tsv), the Standard MIDI File writer, and `--builtin instruments`
rendered small with fluidsynth, with its failures: a missing fluidsynth or soundfont naming its Debian package, a
silent or empty render naming the instrument and the phrase."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from gankit.cli import main
from gankit.data import instruments
from gankit.data.domains import DOMAINS_FILE, Domain, read_domain_table
from gankit.data.filelist import read_filelist
from gankit.data.formats import read_domains
from gankit.data.instruments import INSTRUMENTS, find_renderer, make_phrases, prepare_instruments
from gankit.data.midi import Note, midi_file, variable_length, write_midi
from gankit.data.prepare import RECORD_FILE
from gankit.errors import DataError

HAS_FLUIDSYNTH = shutil.which("fluidsynth") is not None and any(p.is_file() for p in instruments.SOUNDFONTS)
needs_fluidsynth = pytest.mark.skipif(
    not HAS_FLUIDSYNTH,
    reason="needs fluidsynth and a General-MIDI soundfont: Debian packages fluidsynth, timgm6mb-soundfont",
)


def clip(path: Path, seconds: float = 0.6, sr: int = 22050, seed: int = 0, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.3 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))
    sf.write(path, noise.astype(np.float32), sr, **kw)  # type: ignore[arg-type]
    return path


def ids_of(out: Path, name: str) -> list[str]:
    return [e.id for e in read_filelist(out / name)]


def fake_program(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


# ---- domain folders ---------------------------------------------------------------------------------------------
def test_domain_folders_any_depth_skips_split_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "music"
    for i in range(3):
        clip(src / "piano" / f"a{i}.wav", seed=i)
    clip(src / "piano" / "live" / "2019" / "deep.flac", seed=3, format="FLAC")  # any depth below the domain
    (src / "piano" / "a0.txt").write_text("not a transcript\n", encoding="utf-8")  # domains read no text
    clip(src / "violin" / "x" / "v0.wav", seed=10)
    clip(src / "violin" / "v1.ogg", seed=11, format="OGG")
    clip(src / "violin" / "v2.wav", seed=12)
    clip(src / "violin" / "short.wav", seconds=0.2, seed=13)  # under --min-seconds
    (src / "violin" / "broken.wav").write_bytes(b"RIFF, but nothing else of a wav" * 4)
    clip(src / "drums" / "d0.wav", seed=20)  # one file only: a reported skip, not a crash
    clip(src / "loose.wav", seed=30)  # in no domain's folder
    out = tmp_path / "out"
    code = main(["prepare", str(src), str(out), "--format", "domains", "--sample-rate", "16000", "--val-size", "1",
                 "--workers", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and f"domains 2 → {out / DOMAINS_FILE}" in printed

    rows = {row.split("\t")[0]: row.split("\t") for row in (out / "skipped.txt").read_text().splitlines()[1:]}
    assert set(rows) == {"unreadable", "too_short", "no_domain", "few_domain_files"}
    assert rows["no_domain"][1] == "loose" and "not in a domain folder" in rows["no_domain"][3]
    assert rows["few_domain_files"][1] == "drums/d0" and "domain drums has 1 usable file" in rows["few_domain_files"][3]
    assert rows["too_short"][1] == "violin/short" and rows["unreadable"][1] == "violin/broken"
    assert not (out / "wavs" / "drums").exists()

    assert ids_of(out, "val.txt") == ["piano/live/2019/deep", "violin/x/v0"]  # each domain's last, sorted
    assert ids_of(out, "train.txt") == ["piano/a0", "piano/a1", "piano/a2", "violin/v1", "violin/v2"]
    assert all(e.text == "" for e in read_filelist(out / "train.txt"))
    info = sf.info(out / "wavs" / "piano" / "live" / "2019" / "deep.wav")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert (out / DOMAINS_FILE).read_text() == "domain\tlabel\npiano\t0\nviolin\t1\n"
    assert read_domain_table(out / DOMAINS_FILE) == [Domain("piano", 0), Domain("violin", 1)]
    assert DOMAINS_FILE in (out / RECORD_FILE).read_text()

    # Without --val-size every domain still keeps one file for validation (10 % of the median domain, at least 1).
    code = main(["prepare", str(src), str(out), "--format", "domains", "--workers", "1", "--no-progress"])
    assert code == 0 and ids_of(out, "val.txt") == ["piano/live/2019/deep", "violin/x/v0"]


def test_a_single_domain_folder_stays_one_domain(tmp_path: Path) -> None:
    # speaker_root would take `organ` for the root and its subfolders for speakers; domains are SRC's folders.
    clip(tmp_path / "organ" / "church" / "o1.wav")
    clip(tmp_path / "organ" / "hall" / "o2.wav")
    assert [i.id for i in read_domains(tmp_path).items] == ["organ/church/o1", "organ/hall/o2"]
    (tmp_path / DOMAINS_FILE).write_text("domain\tlabel\norgan\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: expected `domain<TAB>0`"):
        read_domain_table(tmp_path / DOMAINS_FILE)


# ---- the MIDI writer ------------------------------------------------------------------------------------------
def test_midi_bytes_of_a_known_phrase() -> None:
    assert [variable_length(v) for v in (0, 127, 128, 480, 0x3FFF, 0x200000)] == [
        b"\x00", b"\x7f", b"\x81\x00", b"\x83\x60", b"\xff\x7f", b"\x81\x80\x80\x00"]
    # C4 for a beat, then E4 for half a beat (a legato repeat of E4 right after it), violin, 120 bpm.
    notes = [Note(60, 0, 1, 100), Note(64, 1, 0.5, 90), Note(64, 1.5, 0.5, 80)]
    data = midi_file(notes, program=40, tempo_bpm=120, tail_beats=1)
    assert data[:14] == b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"  # format 0, one track, 480 ticks a beat
    track = (
        b"\x00\xff\x51\x03\x07\xa1\x20"  # tempo: 500,000 µs a beat
        b"\x00\xc0\x28"  # program change: 40 (violin)
        b"\x00\x90\x3c\x64"  # note-on C4, velocity 100
        b"\x83\x60\x80\x3c\x40"  # 480 ticks later: note-off C4
        b"\x00\x90\x40\x5a"  # note-on E4, velocity 90
        b"\x81\x70\x80\x40\x40"  # 240 ticks: note-off E4 before the next note-on of the same pitch
        b"\x00\x90\x40\x50"
        b"\x81\x70\x80\x40\x40"
        b"\x83\x60\xff\x2f\x00"  # end of track a beat after the last note-off
    )
    assert data[14:] == b"MTrk" + len(track).to_bytes(4, "big") + track
    with pytest.raises(DataError, match="not 9"):
        midi_file(notes, program=0, channel=9)
    with pytest.raises(DataError, match=r"pitch must be 0\.\.127"):
        midi_file([Note(128, 0, 1)], program=0)


@needs_fluidsynth
def test_fluidsynth_renders_the_written_file(tmp_path: Path) -> None:
    midi = tmp_path / "phrase.mid"
    write_midi(midi, [Note(60 + step, i * 0.5, 0.45) for i, step in enumerate((0, 4, 7, 12))], program=73)
    program, soundfont = find_renderer()
    wav = tmp_path / "phrase.wav"
    subprocess.run([program, "-ni", "-q", "-F", str(wav), "-r", "16000", str(soundfont), str(midi)], check=True,
                   capture_output=True, timeout=60)
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == 16000 and len(audio) / rate >= 2.0 and float(np.abs(audio).max()) > 0.01


# ---- --builtin instruments ------------------------------------------------------------------------------------
def test_phrases_are_drawn_from_the_seed_and_fit_every_instrument() -> None:
    phrases = make_phrases(30, seed=0)
    assert phrases == make_phrases(30, seed=0) and phrases != make_phrases(30, seed=1)
    assert [p.id for p in phrases[:3]] == ["p001", "p002", "p003"]
    assert ["scale" in phrases[0].description, "arpeggio" in phrases[1].description,
            "melody" in phrases[2].description, "scale" in phrases[3].description] == [True] * 4  # in turn
    assert all(instruments.LOWEST_PITCH <= n.pitch <= instruments.HIGHEST_PITCH for p in phrases for n in p.notes)
    assert all(1.5 <= p.seconds <= 4.5 for p in phrases)


@needs_fluidsynth
def test_instruments_small_build(tmp_path: Path) -> None:
    out = tmp_path / "instruments"
    report = prepare_instruments(out, val_size=1, workers=2, progress=False, phrases=3, log=lambda _: None)
    names = sorted(i.name for i in INSTRUMENTS)
    assert report.written == 3 * len(INSTRUMENTS) and not report.skipped and report.domains == len(INSTRUMENTS)
    assert [d.name for d in read_domain_table(out / DOMAINS_FILE)] == names
    assert ids_of(out, "val.txt") == [f"{name}/p003" for name in names]  # the same phrase for every instrument
    phrase_seconds = {p.id: p.seconds for p in make_phrases(3)}
    for name in names:
        assert sorted(p.stem for p in (out / "wavs" / name).iterdir()) == ["p001", "p002", "p003"]
        for phrase, seconds in phrase_seconds.items():
            audio, rate = sf.read(out / "wavs" / name / f"{phrase}.wav", dtype="float32")
            assert rate == 16000 and audio.ndim == 1
            assert seconds <= len(audio) / rate <= seconds + 1.5  # the notes and their release, no long silence
            assert 0.45 <= float(np.abs(audio).max()) <= 0.55 and float(np.sqrt(np.mean(audio**2))) > 0.03

    def centroid(instrument: str) -> float:
        audio, rate = sf.read(out / "wavs" / instrument / "p001.wav", dtype="float32")
        return float(np.mean(librosa.feature.spectral_centroid(y=audio, sr=rate)))

    # The same notes, another timbre: the bowed violin's spectrum lies far above the piano's (~1800 vs ~950 Hz).
    assert centroid("violin") > 1.4 * centroid("piano")


def test_missing_fluidsynth_or_soundfont_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(instruments, "SOUNDFONTS", (tmp_path / "FluidR3_GM.sf2", tmp_path / "TimGM6mb.sf2"))
    with pytest.raises(DataError) as caught:
        prepare_instruments(tmp_path / "out", phrases=2, val_size=1, progress=False)
    message = str(caught.value)
    assert "the program fluidsynth (Debian package fluidsynth)" in message
    assert "a General-MIDI soundfont" in message and "Debian package timgm6mb-soundfont" in message
    assert message.endswith("install with: bash scripts/bootstrap.sh fluidsynth timgm6mb-soundfont")
    assert not (tmp_path / "out").exists()

    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "fluidsynth", "exit 0\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DataError, match=r"missing a General-MIDI soundfont") as caught:
        find_renderer()
    assert "fluidsynth (Debian" not in str(caught.value)
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"sfbk")
    assert find_renderer() == (str(bin_dir / "fluidsynth"), tmp_path / "TimGM6mb.sf2")
    (tmp_path / "FluidR3_GM.sf2").write_bytes(b"sfbk")
    assert find_renderer()[1] == tmp_path / "FluidR3_GM.sf2"  # fluid-soundfont-gm's, when installed, first


def test_a_silent_or_empty_render_names_the_instrument_and_phrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, soundfont = tmp_path / "bin", tmp_path / "any.sf2"
    soundfont.write_bytes(b"sfbk")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((16000, 2), np.float32), 16000, subtype="FLOAT")
    # A fluidsynth that writes silence to its -F file, as one does for a program the soundfont lacks.
    fake_program(bin_dir, "fluidsynth", f'while [ $# -gt 0 ]; do [ "$1" = -F ] && /bin/cp {silent} "$2"; shift; done\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DataError, match=r"instrument flute \(General-MIDI program 73\), phrase p001 \(.*scale.*\): "
                                        r"fluidsynth rendered only silence"):
        prepare_instruments(tmp_path / "out", instruments=["flute"], phrases=2, val_size=1, workers=1, progress=False,
                            soundfont=soundfont, log=lambda _: None)
    fake_program(bin_dir, "fluidsynth", "exit 0\n")  # exits 0 and writes nothing
    with pytest.raises(DataError, match=r"instrument cello .*phrase p001 .*fluidsynth wrote no audio"):
        prepare_instruments(tmp_path / "out", instruments=["cello"], phrases=2, val_size=1, workers=1, progress=False,
                            soundfont=soundfont, log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_instruments_command_refuses_what_it_fixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "--builtin", "instruments", str(tmp_path / "o"), "--sample-rate", "22050"]) == 2
    assert "--sample-rate: not used by --builtin instruments" in capsys.readouterr().err
    with pytest.raises(DataError, match="no instrument banjo"):
        prepare_instruments(tmp_path / "o", instruments=["banjo"])
    with pytest.raises(DataError, match=r"--val-size 3: must be 0..2"):
        prepare_instruments(tmp_path / "o", phrases=3, val_size=3)
    assert not (tmp_path / "o").exists()
