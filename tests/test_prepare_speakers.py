"""Speaker corpora for voice conversion: `gankit prepare --format speakers` (folders at depth 1 and VCTK's layout,
ids `<speaker>/<utterance>`, speakers.tsv, the same-sentence validation split, reported skips), mel statistics of
a preset that does not normalise (`read_band_statistics`), and `--builtin vc-demo` synthesised small with festival
and espeak-ng, with its failures: a voice writing nothing, a missing voice or program naming its Debian package."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.data.corpus_stats import STATS_FILE, read_band_statistics, read_statistics
from gankit.data.filelist import read_filelist
from gankit.data.formats import read_speakers, speaker_root
from gankit.data.prepare import RECORD_FILE, prepare_corpus
from gankit.data.speakers import SPEAKERS_FILE, Speaker, read_speaker_table, split_by_sentence
from gankit.data.tts import FESTIVAL, Voice, check_voices, synthesise
from gankit.data.vc_demo import VOICES, prepare_vc_demo
from gankit.data.vc_demo_text import ENGLISH_SENTENCES, FESTVOX_RU_TRANSCRIPTS, clean_russian, russian_sentences
from gankit.errors import DataError

VOICE_DIRS = Path("/usr/share/festival/voices")
HAS_KAL = shutil.which("text2wave") is not None and (VOICE_DIRS / "english" / "kal_diphone").is_dir()
HAS_RU = shutil.which("text2wave") is not None and (VOICE_DIRS / "russian" / "msu_ru_nsh_clunits").is_dir()
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_kal_and_espeak = pytest.mark.skipif(
    not (HAS_KAL and HAS_ESPEAK),
    reason="needs festival's kal_diphone and espeak-ng: Debian packages festival, festvox-kallpc16k, espeak-ng",
)
needs_festvox_ru = pytest.mark.skipif(not HAS_RU, reason="needs Debian packages festival and festvox-ru")


def clip(path: Path, seconds: float = 0.6, sr: int = 16000, seed: int = 0, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.3 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))
    sf.write(path, noise.astype(np.float32), sr, **kw)  # type: ignore[arg-type]
    return path


def prepare(src: Path, out: Path, **kw: object) -> object:
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return prepare_corpus(src, out, "speakers", log=lambda _: None, **kw)  # type: ignore[arg-type]


def ids_of(out: Path, name: str) -> list[str]:
    return [e.id for e in read_filelist(out / name)]


# ---- speaker folders at depth 1 ------------------------------------------------------------------------------
def test_speaker_folders_ids_table_and_reported_skips(tmp_path: Path) -> None:
    src = tmp_path / "voices"
    for i in range(3):
        clip(src / "alice" / f"a{i}.wav", seed=i)
    (src / "alice" / "a0.txt").write_text("Hello there.\n", encoding="utf-8")
    clip(src / "bob" / "day1" / "b0.flac", seed=10, format="FLAC")
    clip(src / "bob" / "day2" / "b1.ogg", seed=11, format="OGG")
    clip(src / "bob" / "b2.wav", seed=12)
    (src / "bob" / "b3.wav").write_bytes(b"")  # empty
    (src / "bob" / "b4.wav").write_bytes(b"RIFF, but nothing else of a wav" * 4)  # corrupt
    clip(src / "carol" / "c0.wav", seed=20)  # one file only: a reported skip, not a crash
    clip(src / "loose.wav", seed=30)  # in no speaker's folder
    out = tmp_path / "out"
    report = prepare(src, out, val_size=1)

    by_reason = report.skipped_by_reason()  # type: ignore[attr-defined]
    assert by_reason == {"unreadable": 1, "empty": 1, "no_speaker": 1, "few_files": 1}
    skipped = (out / "skipped.txt").read_text().splitlines()
    rows = {row.split("\t")[0]: row.split("\t") for row in skipped[1:]}
    assert rows["few_files"][1] == "carol/c0" and "speaker carol has 1 usable file" in rows["few_files"][3]
    assert rows["no_speaker"][1] == "loose" and rows["empty"][1] == "bob/b3"
    assert not (out / "wavs" / "carol").exists()

    everything = ids_of(out, "train.txt") + ids_of(out, "val.txt")
    assert sorted(everything) == ["alice/a0", "alice/a1", "alice/a2", "bob/b2", "bob/day1/b0", "bob/day2/b1"]
    assert ids_of(out, "val.txt") == ["alice/a2", "bob/day2/b1"]  # no texts: each speaker's last, sorted
    assert read_filelist(out / "train.txt")[0].text == "Hello there."  # the transcript beside the audio
    info = sf.info(out / "wavs" / "bob" / "day1" / "b0.wav")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert (out / SPEAKERS_FILE).read_text() == "speaker\tlabel\tgroup\nalice\t0\t\nbob\t1\t\n"
    assert read_speaker_table(out / SPEAKERS_FILE) == [Speaker("alice", 0, ""), Speaker("bob", 1, "")]
    assert report.speakers == 2 and "speakers 2" in report.summary()  # type: ignore[attr-defined]
    assert SPEAKERS_FILE in (out / RECORD_FILE).read_text()

    # Rerun as a plain folder corpus: the speaker table this prepare wrote goes with the rest of its files.
    prepare_corpus(src / "alice", out, "folder", val_size=1, workers=1, progress=False, log=lambda _: None)
    assert not (out / SPEAKERS_FILE).exists()


def test_speaker_root_rule(tmp_path: Path) -> None:
    clip(tmp_path / "one" / "p225" / "x.wav")
    assert speaker_root(tmp_path / "one") == tmp_path / "one"  # a speaker folder holding audio is a speaker
    clip(tmp_path / "vctk" / "wav48" / "p1" / "x.wav")
    clip(tmp_path / "vctk" / "wav48" / "p2" / "x.wav")
    (tmp_path / "vctk" / "txt" / "p1").mkdir(parents=True)
    assert speaker_root(tmp_path / "vctk") == tmp_path / "vctk" / "wav48"  # a single folder of speaker folders
    clip(tmp_path / "vctk" / "readme.wav")
    assert speaker_root(tmp_path / "vctk") == tmp_path / "vctk"  # audio of its own: SRC's folders are speakers


def test_transcripts_in_a_txt_folder_beside_the_speakers(tmp_path: Path) -> None:
    for speaker in ("p1", "p2"):
        clip(tmp_path / speaker / "u1.wav")
        clip(tmp_path / speaker / "u2.wav")
    (tmp_path / "txt" / "p1").mkdir(parents=True)
    (tmp_path / "txt" / "p1" / "u1.txt").write_text("  Hi\nthere. \n", encoding="utf-8")
    (tmp_path / "p2" / "u2.txt").write_bytes(b"caf\xe9")  # beside the audio, and not UTF-8
    listing = read_speakers(tmp_path)
    assert {i.id: i.text for i in listing.items} == {"p1/u1": "Hi there.", "p1/u2": "", "p2/u1": ""}
    assert [(p.id, p.reason) for p in listing.problems] == [("p2/u2", "invalid_utf8")]


# ---- VCTK's layout: the same sentences held out for every speaker -----------------------------------------------
SHARED = ["Please call Stella.", "Ask her to bring these.", "Six spoons of fresh snow peas."]


def test_vctk_layout_holds_out_the_same_sentences(tmp_path: Path) -> None:
    src = tmp_path / "VCTK-Corpus"
    # Shared sentences under different numbers and spelling per speaker, then sentences of each speaker's own.
    scripts = {
        "p225": [SHARED[0], SHARED[1], SHARED[2], "The rainbow is a division of white light."],
        "p226": ["Some have accepted it as a miracle.", "please call stella", SHARED[2], "ASK HER TO BRING THESE!"],
        "p227": [SHARED[2], "When the sunlight strikes raindrops.", SHARED[0], "These take the shape of a long arch."],
    }
    for s, (speaker, lines) in enumerate(scripts.items()):
        for n, text in enumerate(lines, start=1):
            mic = "_mic1" if speaker == "p227" else ""  # VCTK 0.92: p227_001_mic1.flac reads txt/p227/p227_001.txt
            clip(src / "wav48" / speaker / f"{speaker}_{n:03d}{mic}.wav", seed=10 * s + n)
            (src / "txt" / speaker).mkdir(parents=True, exist_ok=True)
            (src / "txt" / speaker / f"{speaker}_{n:03d}.txt").write_text(text + "\n", encoding="utf-8")
    for n in range(1, 4):  # VCTK's p315 has no transcripts
        clip(src / "wav48" / "p315" / f"p315_{n:03d}.wav", seed=100 + n)
    out = tmp_path / "out"
    prepare(src, out, val_size=2)

    val = read_filelist(out / "val.txt")
    assert [e.id for e in val] == [
        "p225/p225_001", "p225/p225_003",  # Stella and the snow peas: the two sentences most speakers read
        "p226/p226_002", "p226/p226_003",
        "p227/p227_001_mic1", "p227/p227_003_mic1",
        "p315/p315_002", "p315/p315_003",  # no texts: its last two
    ]
    train = read_filelist(out / "train.txt")
    assert {e.id.split("/")[0] for e in train} == {"p225", "p226", "p227", "p315"}
    assert dict(val)["p226/p226_002"] == "please call stella" and dict(train)["p315/p315_001"] == ""
    assert (out / "wavs" / "p227" / "p227_001_mic1.wav").is_file()
    assert [s.name for s in read_speaker_table(out / SPEAKERS_FILE)] == ["p225", "p226", "p227", "p315"]


def test_split_by_sentence_keeps_training_files_and_repeats_together() -> None:
    ids = ["a/1", "a/2", "a/3", "b/1", "b/2", "c/1", "c/2", "c/3"]
    texts = {"a/1": "One.", "a/2": "Two.", "a/3": "one", "b/1": "One", "b/2": "Two", "c/1": "Three", "c/2": "Two"}
    train, val = split_by_sentence(ids, texts, 5)
    # "two" (3 speakers) goes first; "one" would leave b nothing to train on, so b keeps it and a keeps it too.
    assert "b/1" in train and all(any(t.startswith(f"{s}/") for t in train) for s in "abc")
    assert {"a/2", "b/2", "c/2"} <= set(val)
    train, val = split_by_sentence(["a/1", "a/2", "a/3", "a/4"], {"a/1": "x", "a/3": "x", "a/2": "y"}, 1)
    assert val == ["a/4"]  # no text: a sentence of its own, last in sorted order
    train, val = split_by_sentence(["a/1", "a/2", "a/3", "a/4"], {"a/1": "y", "a/2": "x", "a/3": "z", "a/4": "X!"}, 1)
    assert val == ["a/2", "a/4"]  # a sentence read twice is held out whole (it sorts last by a/4)
    assert split_by_sentence(ids, texts, 0) == (sorted(ids), [])


# ---- mel statistics of a preset that does not normalise -------------------------------------------------------
def test_hifigan_statistics_for_a_speaker_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "voices"
    for s, speaker in enumerate(("anna", "boris")):
        for i in range(3):
            clip(src / speaker / f"u{i}.wav", seconds=0.7, sr=16000, seed=10 * s + i)
    out = tmp_path / "out"
    code = main(["prepare", str(src), str(out), "--format", "speakers", "--val-size", "1", "--workers", "1",
                 "--no-progress", "--mel-stats", "hifigan"])
    assert code == 0 and f"wrote {out / STATS_FILE}" in capsys.readouterr().out
    assert read_statistics(out / STATS_FILE).files == 4  # the training files only

    hifigan_16k = build_frontend({"preset": "hifigan", "sample_rate": 16000})
    mean, scale = read_band_statistics(out / STATS_FILE, hifigan_16k)
    assert len(mean) == len(scale) == 80 and min(scale) > 0
    assert read_band_statistics(out / STATS_FILE, {"preset": "hifigan", "sample_rate": 16000}) == (mean, scale)
    with pytest.raises(DataError, match=r"sample_rate: 16000 there, 22050 here"):
        read_band_statistics(out / STATS_FILE, build_frontend({"preset": "hifigan"}))
    with pytest.raises(DataError, match=r"n_mels: 80 there, 64 here.*preset: 'hifigan' there, 'melgan' here"):
        read_band_statistics(out / STATS_FILE, {"preset": "melgan", "sample_rate": 16000, "n_mels": 64})
    assert main(["prepare", str(src), str(tmp_path / "o2"), "--format", "speakers", "--mel-stats", "hifigan_tiny"]) == 2
    assert "would not use them" in capsys.readouterr().err  # a training config whose front-end ignores them


# ---- synthesis: failures name the voice, the sentence and the package -----------------------------------------
def fake_program(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_voice_writing_nothing_or_silence_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    voice = Voice("en_fake", "en", FESTIVAL, "fake_voice", "festvox-fake")
    # A text2wave that exits 0 after writing an empty file: what festival does on « ».
    fake_program(bin_dir, "text2wave", 'while [ $# -gt 0 ]; do [ "$1" = -o ] && : > "$2"; shift; done\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DataError, match=r"festival voice fake_voice \(speaker en_fake\), sentence s007 'Hi\.'.*no aud"):
        synthesise(voice, "Hi.", tmp_path / "out.wav", sentence="s007")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000, subtype="PCM_16")
    fake_program(bin_dir, "text2wave", f'while [ $# -gt 0 ]; do [ "$1" = -o ] && cp {silent} "$2"; shift; done\n')
    with pytest.raises(DataError, match=r"fake_voice.*only silence"):
        synthesise(voice, "Hi.", tmp_path / "out.wav")


@needs_festvox_ru
def test_festival_russian_on_guillemets_is_an_error_and_cleaning_avoids_it(tmp_path: Path) -> None:
    ru = next(v for v in VOICES if v.speaker == "ru_nsh")
    with pytest.raises(DataError, match=r"msu_ru_nsh_clunits.*Да «нет».*wrote no audio"):
        synthesise(ru, "Да «нет».", tmp_path / "a.wav")
    cleaned = clean_russian("Да «нет» — № 5, - сказал он: - нет.")
    assert cleaned == "Да нет, номер 5, сказал он: нет."
    assert synthesise(ru, clean_russian("Он сказал: - «Да» — и ушёл."), tmp_path / "b.wav") > 0.5
    sentences = russian_sentences(40)
    assert len(set(sentences)) == 40 and FESTVOX_RU_TRANSCRIPTS.is_file()
    assert not any(c in s for s in sentences for c in "«»—№+\"")


def test_missing_programs_and_voices_name_their_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DataError) as caught:
        check_voices(VOICES)
    message = str(caught.value)
    assert "the program text2wave, the program festival (Debian package festival)" in message
    assert "the program espeak-ng (Debian package espeak-ng)" in message
    assert message.endswith("sudo apt-get install espeak-ng festival")
    # festival present, knowing one voice: every other festival voice names its package.
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "festival", 'echo "(kal_diphone)"\n')
    fake_program(bin_dir, "text2wave", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    festival_voices = [v for v in VOICES if v.engine == FESTIVAL]
    with pytest.raises(DataError) as caught:
        check_voices(festival_voices)
    message = str(caught.value)
    for package in ("festvox-kdlpc16k", "festvox-us-slt-hts", "festvox-ru"):
        assert package in message
    assert "festvox-kallpc16k" not in message and "sudo apt-get install festvox-kdlpc16k" in message


# ---- vc-demo, small: 2 speakers × 4 sentences --------------------------------------------------------------------
@needs_kal_and_espeak
def test_vc_demo_small_build(tmp_path: Path) -> None:
    out = tmp_path / "vc"
    report = prepare_vc_demo(out, val_size=1, workers=2, progress=False, sentences_per_group=4,
                             speakers=["en_kal", "en_espeak_m3"], log=lambda _: None)
    assert report.written == 8 and not report.skipped and report.source_rates == {16000: 4, 22050: 4}
    for speaker in ("en_kal", "en_espeak_m3"):
        for n in range(1, 5):
            info = sf.info(out / "wavs" / speaker / f"s{n:03d}.wav")
            assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16") and info.duration > 1
    train, val = read_filelist(out / "train.txt"), read_filelist(out / "val.txt")
    assert [e.id for e in val] == ["en_espeak_m3/s004", "en_kal/s004"]  # the same sentence for both
    texts = dict(train + val)
    assert texts["en_kal/s002"] == texts["en_espeak_m3/s002"] == ENGLISH_SENTENCES[1]
    assert read_speaker_table(out / SPEAKERS_FILE) == [Speaker("en_espeak_m3", 0, "en"), Speaker("en_kal", 1, "en")]
    mean, _ = read_band_statistics(out / STATS_FILE, build_frontend({"preset": "hifigan"}))
    assert len(mean) == 80 and read_statistics(out / STATS_FILE).files == 6
    with pytest.raises(DataError, match="fmax: 8000 there, 11025 here"):
        read_band_statistics(out / STATS_FILE, {"preset": "hifigan", "fmax": 11025})
    assert "wavs/en_kal/s001.wav" in (out / RECORD_FILE).read_text()


def test_vc_demo_command_refuses_what_it_fixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "--builtin", "vc-demo", str(tmp_path / "o"), "--sample-rate", "16000"]) == 2
    assert "--sample-rate: not used by --builtin vc-demo" in capsys.readouterr().err
    with pytest.raises(DataError, match="no speaker nobody"):
        prepare_vc_demo(tmp_path / "o", speakers=["nobody"])
    assert not (tmp_path / "o").exists()
