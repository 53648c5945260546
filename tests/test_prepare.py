"""`gankit prepare`: every corpus format on tiny synthetic corpora, every bad input reported as a skip, the
deterministic split, resampling, clean reruns, the command's printed counts, and festvox-ru when present."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gankit.data.filelist import FileListEntry, read_filelist, write_filelist
from gankit.data.prepare import prepare_corpus
from gankit.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")


def noise(seconds: float, sr: int, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))).astype(np.float32)


def wav(path: Path, seconds: float = 0.6, sr: int = 16000, seed: int = 0, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, noise(seconds, sr, seed), sr, **kw)  # type: ignore[arg-type]
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def prepare(src: Path, out: Path, fmt: str, **kw: object) -> object:
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return prepare_corpus(src, out, fmt, log=lambda _: None, **kw)  # type: ignore[arg-type]


def reasons(report: object) -> dict[str, int]:
    return report.skipped_by_reason()  # type: ignore[attr-defined]


# ---- ljspeech, with every kind of bad input -------------------------------------------------------------
@pytest.fixture
def ljspeech(tmp_path: Path) -> Path:
    src = tmp_path / "LJ"
    good = [f"LJ001-000{i}" for i in range(1, 6)]
    for i, name in enumerate(good):
        wav(src / "wavs" / f"{name}.wav", seed=i)
    sf.write(src / "wavs" / "LJ002-stereo24.wav", np.stack([noise(0.6, 16000, 1), noise(0.6, 16000, 2)], 1),
             16000, subtype="PCM_24")
    truncate(wav(src / "wavs" / "LJ003-cut.wav"))
    (src / "wavs" / "LJ003-junk.wav").write_bytes(b"not audio at all" * 100)
    (src / "wavs" / "LJ003-zero.wav").write_bytes(b"")
    sf.write(src / "wavs" / "LJ003-silent.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    wav(src / "wavs" / "LJ003-short.wav", seconds=0.2)
    lines = [f"{n}|Text {n}.|Normalized {n}." for n in good]
    lines[0] = f"{good[0]}|Only raw text"  # no normalized field → the raw text
    lines += [f"{n}|t|t" for n in ("LJ002-stereo24", "LJ003-cut", "LJ003-junk", "LJ003-zero", "LJ003-silent",
                                    "LJ003-short", "LJ004-nofile")]
    lines.append("LJ005-fieldless")
    raw = "\n".join(lines).encode() + b"\nLJ006-bad|caf\xe9|x\n"
    (src / "metadata.csv").write_bytes(raw)
    return src


def test_ljspeech_every_bad_input_is_a_reported_skip(ljspeech: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = prepare(ljspeech, out, "ljspeech", val_size=2)
    assert reasons(report) == {
        "missing": 1, "unreadable": 1, "truncated": 1, "empty": 1, "silent": 1, "too_short": 1,
        "bad_metadata": 1, "invalid_utf8": 1,
    }
    assert report.found == 14 and report.written == 6  # type: ignore[attr-defined]
    assert report.written + len(report.skipped) == report.found  # type: ignore[attr-defined]
    train, val = read_filelist(out / "train.txt"), read_filelist(out / "val.txt")
    assert [e.id for e in val] == ["LJ001-0005", "LJ002-stereo24"]  # the last 2 ids in sorted order
    texts = {e.id: e.text for e in train + val}
    assert texts["LJ001-0001"] == "Only raw text" and texts["LJ001-0002"] == "Normalized LJ001-0002."
    stereo = sf.info(out / "wavs" / "LJ002-stereo24.wav")
    assert (stereo.channels, stereo.subtype, stereo.samplerate) == (1, "PCM_16", 16000)
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 1 + 8 and all(len(row.split("\t")) == 4 for row in skipped)
    by_reason = {row.split("\t")[0]: row for row in skipped[1:]}
    assert "LJ004-nofile" in by_reason["missing"] and "metadata.csv:13" in by_reason["bad_metadata"]
    assert "metadata.csv:14" in by_reason["invalid_utf8"] and "LJ003-cut" in by_reason["truncated"]
    assert "0.20 s" in by_reason["too_short"]
    assert not (out / "wavs" / "LJ003-silent.wav").exists()


def test_min_seconds_is_a_threshold(ljspeech: Path, tmp_path: Path) -> None:
    report = prepare(ljspeech, tmp_path / "out", "ljspeech", val_size=0, min_seconds=0.1)
    assert "too_short" not in reasons(report) and report.written == 7  # type: ignore[attr-defined]
    assert read_filelist(tmp_path / "out" / "val.txt") == []


# ---- other formats ------------------------------------------------------------------------------------
def test_ruslan_is_resampled_to_the_requested_rate(tmp_path: Path) -> None:
    src = tmp_path / "RUSLAN"
    ids = [f"{i:06d}_RUSLAN" for i in range(3)]
    for i, name in enumerate(ids):
        wav(src / "ruslan_dataset" / f"{name}.wav", seconds=0.75, sr=44100, seed=i)
    (src / "metadata_RUSLAN_22200.csv").write_text("".join(f"{n}|Привет {n}\n" for n in ids), encoding="utf-8")
    report = prepare(src, tmp_path / "out", "ruslan", sample_rate=22050, val_size=1)
    assert report.sample_rate == 22050 and report.source_rates == {44100: 3}  # type: ignore[attr-defined]
    info = sf.info(tmp_path / "out" / "wavs" / f"{ids[0]}.wav")
    assert info.samplerate == 22050 and abs(info.frames - int(0.75 * 22050)) <= 1  # duration kept
    assert read_filelist(tmp_path / "out" / "train.txt")[0] == FileListEntry(ids[0], f"Привет {ids[0]}")
    assert "resampled 3 from 44100 Hz" in report.summary()  # type: ignore[attr-defined]


def test_festvox_lines_with_quotes(tmp_path: Path) -> None:
    src = tmp_path / "fv"
    for i in (1, 2, 3):
        wav(src / "wav" / f"ru_000{i}.wav", seed=i)
    (src / "etc").mkdir()
    (src / "etc" / "txt.done.data").write_text(
        '( ru_0001 "Да, \\"так\\" и есть." )\n( ru_0002 "Нет." )\n(ru_0003 "Без пробела")\nbroken line\n',
        encoding="utf-8",
    )
    report = prepare(src, tmp_path / "out", "festvox", val_size=1)
    entries = read_filelist(tmp_path / "out" / "train.txt")
    assert entries[0] == FileListEntry("ru_0001", 'Да, "так" и есть.')
    assert [e.id for e in read_filelist(tmp_path / "out" / "val.txt")] == ["ru_0003"]
    assert reasons(report) == {"bad_metadata": 1}


def test_folder_format_walks_subfolders_and_reruns_alike(tmp_path: Path) -> None:
    src = tmp_path / "clips"
    wav(src / "a.wav")
    wav(src / "spk1" / "b.flac", seed=1, format="FLAC")
    wav(src / "spk1" / "c.ogg", seed=2, format="OGG")
    wav(src / "spk1" / "a.flac", seed=3, format="FLAC")  # spk1/a differs from a
    wav(src / "a.flac", seed=4, format="FLAC")  # same id as a.wav
    wav(src / ".hidden" / "x.wav")
    wav(src / "._a.wav")
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "prepared"  # OUT inside SRC is refused (tests/test_no_overwrite.py)
    for _ in range(2):
        report = prepare(src, out, "folder", val_size=1)
        assert report.found == 5 and reasons(report) == {"duplicate_id": 1}  # type: ignore[attr-defined]
    ids = [e.id for e in read_filelist(out / "train.txt") + read_filelist(out / "val.txt")]
    assert ids == ["a", "spk1/a", "spk1/b", "spk1/c"]
    assert all(e.text == "" for e in read_filelist(out / "train.txt"))
    assert (out / "wavs" / "spk1" / "c.wav").is_file()


def test_mixed_rates_are_resampled_to_the_most_common_and_said(tmp_path: Path) -> None:
    src = tmp_path / "mixed"
    for i in range(3):
        wav(src / f"a{i}.wav", sr=22050, seed=i)
    wav(src / "b.wav", sr=44100, seconds=0.8)
    said: list[str] = []
    report = prepare_corpus(src, tmp_path / "out", "folder", val_size=0, workers=2, progress=False, log=said.append)
    assert report.sample_rate == 22050 and report.source_rates == {22050: 3, 44100: 1}
    assert len(said) == 1 and "22050 Hz ×3, 44100 Hz ×1" in said[0] and "--sample-rate" in said[0]
    info = sf.info(tmp_path / "out" / "wavs" / "b.wav")
    assert info.samplerate == 22050 and abs(info.frames - int(0.8 * 22050)) <= 1


# ---- split, reruns, failures -----------------------------------------------------------------------------
def test_split_is_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    src = tmp_path / "c"
    for i in np.random.default_rng(1).permutation(12):
        wav(src / f"utt{i:02d}.wav", seed=int(i))
    lists = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        prepare(src, out, "folder", val_size=3, workers=workers)
        lists.append(((out / "train.txt").read_text(), (out / "val.txt").read_text()))
    assert lists[0] == lists[1]
    assert [e.id for e in read_filelist(tmp_path / "out1" / "val.txt")] == ["utt09", "utt10", "utt11"]
    default = prepare(src, tmp_path / "out3", "folder")
    assert default.val == 1  # type: ignore[attr-defined]  # min(100, 10 % of 12)


def test_rerun_into_the_same_out_overwrites_cleanly(tmp_path: Path) -> None:
    src = tmp_path / "c"
    for i in range(4):
        wav(src / f"u{i}.wav", seed=i)
    out = tmp_path / "out"
    prepare(src, out, "folder", val_size=1)
    (out / "wavs" / ".u0.wav.abc.tmp").write_bytes(b"left by a killed run")
    truncate(src / "u2.wav")
    report = prepare(src, out, "folder", val_size=1)
    assert report.removed_stale == 2  # type: ignore[attr-defined]  # u2.wav and the temporary
    assert sorted(p.name for p in (out / "wavs").iterdir()) == ["u0.wav", "u1.wav", "u3.wav"]
    assert [e.id for e in read_filelist(out / "train.txt")] == ["u0", "u1"]
    assert "truncated" in (out / "skipped.txt").read_text()


def test_nothing_usable_is_one_line_data_error(tmp_path: Path) -> None:
    src = tmp_path / "bad"
    (src / "wavs").mkdir(parents=True)
    (src / "wavs" / "a.wav").write_bytes(b"")
    (src / "metadata.csv").write_text("a|x|y\nb|x|y\n")
    with pytest.raises(DataError) as info:
        prepare(src, tmp_path / "out", "ljspeech")
    message = str(info.value)
    assert "\n" not in message and "no usable audio" in message and "1 empty" in message and "1 missing" in message
    assert (tmp_path / "out" / "skipped.txt").is_file()
    with pytest.raises(DataError, match="not found"):
        prepare(tmp_path / "absent", tmp_path / "out", "festvox")
    with pytest.raises(DataError, match=r"metadata\.csv not found"):
        prepare(src / "wavs", tmp_path / "out", "ljspeech")


def test_val_size_that_leaves_no_training_files_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "c"
    wav(src / "a.wav")
    wav(src / "b.wav", seed=1)
    with pytest.raises(DataError, match="lower --val-size"):
        prepare(src, tmp_path / "out", "folder", val_size=2)


def test_filelist_round_trip_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    write_filelist(path, [FileListEntry("a/b", "x|y"), FileListEntry("c", "two\nlines")])
    assert read_filelist(path) == [FileListEntry("a/b", "x|y"), FileListEntry("c", "two lines")]
    for body, needle in ((b"a|x\n\xff|y\n", "line 2: not valid UTF-8"), (b"a|x\na|y\n", "line 2: id 'a'"),
                         (b"../up|x\n", "line 1"), (b"|x\n", "line 1: the id is empty")):
        path.write_bytes(body)
        with pytest.raises(DataError, match=needle):
            read_filelist(path)


def test_command_accepts_every_format_and_refuses_others(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from gankit.commands import prepare as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    for fmt in ("ljspeech", "ruslan", "festvox", "folder"):
        args = parser.parse_args(["prepare", "s", "o", "--format", fmt, "--sample-rate", "22050"])
        assert args.run is command.run and args.format == fmt and args.sample_rate == 22050
    with pytest.raises(SystemExit):
        parser.parse_args(["prepare", "s", "o", "--format", "csv"])
    assert "invalid choice" in capsys.readouterr().err


# ---- the command, as a user runs it ------------------------------------------------------------------------
def _command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gankit prepare …` once every subcommand module exists; until then the same parser and error
    handling built around gankit.commands.prepare alone."""
    from gankit.cli import COMMANDS

    if all(importlib.util.find_spec(f"gankit.commands.{name}") for name in COMMANDS):
        argv = [sys.executable, "-m", "gankit", "prepare", *args]
    else:
        script = (
            "import argparse, sys\n"
            "from gankit.commands import prepare\n"
            "from gankit.errors import GankitError\n"
            "p = argparse.ArgumentParser(prog='gankit'); prepare.register(p.add_subparsers())\n"
            "a = p.parse_args(sys.argv[1:])\n"
            "try:\n    sys.exit(a.run(a))\n"
            "except GankitError as e:\n    print(f'error: {e}', file=sys.stderr); sys.exit(2)\n"
        )
        argv = [sys.executable, "-c", script, "prepare", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def test_command_prints_the_counts(tmp_path: Path) -> None:
    src = tmp_path / "c"
    for i in range(5):
        wav(src / f"u{i}.wav", seed=i)
    (src / "u9.wav").write_bytes(b"junk" * 50)
    done = _command(str(src), str(tmp_path / "out"), "--format", "folder", "--val-size", "2", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "found 6 | written 5 | skipped 1 (1 unreadable)" in done.stdout
    assert "train 3 | val 2" in done.stdout and "16000 Hz" in done.stdout
    failed = _command(str(tmp_path / "nowhere"), str(tmp_path / "out2"), "--format", "folder")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("error: ") and len(failed.stderr.strip().splitlines()) == 1


# ---- the real festvox-ru voice ---------------------------------------------------------------------------------
@pytest.mark.skipif(not (FESTVOX_RU / "etc" / "txt.done.data").is_file(),
                    reason=f"festvox-ru voice not installed at {FESTVOX_RU} (Debian package festvox-ru)")
def test_festvox_ru_holds_out_its_last_20_recordings(tmp_path: Path) -> None:
    report = prepare(FESTVOX_RU, tmp_path / "ru", "festvox", val_size=20, workers=2)
    assert report.found == 620 and report.sample_rate == 16000  # type: ignore[attr-defined]
    assert report.written + len(report.skipped) == 620  # type: ignore[attr-defined]
    val = [e.id for e in read_filelist(tmp_path / "ru" / "val.txt")]
    assert len(val) == 20 and val[0] == "ru_0818" and val[-1] == "ru_0844"
    assert all(e.text for e in read_filelist(tmp_path / "ru" / "train.txt"))
    assert sf.info(tmp_path / "ru" / "wavs" / "ru_0001.wav").subtype == "PCM_16"
