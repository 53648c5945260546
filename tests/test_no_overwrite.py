"""gankit never overwrites or deletes a file it did not write (issue 13): `prepare` with SRC and OUT overlapping or
foreign files in OUT, `vocode`/`resynth` with outputs on their inputs or on existing files, `evaluate --out` and
`--audio-dir` and `export --to-original` on existing files or on what they read.

Every refusal is checked the same way: exit status 2, one `error:` line on stderr naming the file, no traceback,
and the whole test folder unchanged (tests/support/tree.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gankit.cli import main
from tests.support.corpus import voiced_clip, write_corpus
from tests.support.tree import assert_unchanged, changes, snapshot
from tests.support.vocoder_files import ln_mel, save_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

REPO = Path(__file__).resolve().parents[1]
RECORD = ".gankit_prepared.json"


def gankit(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """`gankit ARGS…` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(code: int, err: str, *needles: str | Path) -> str:
    """Assert a one-line refusal (exit 2, no traceback) that names every needle; return the line."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def prepare(capsys: pytest.CaptureFixture[str], src: Path, out: Path) -> tuple[int, str, str]:
    return gankit(capsys, "prepare", src, out, "--format", "folder", "--val-size", "1", "--workers", "1",
                  "--no-progress")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """`tmp_path/corpus/wavs/utt_00{0..3}.wav` (22.05 kHz) and its lists; SRC is `corpus/wavs` (folder format)."""
    return write_corpus(tmp_path / "corpus", n_train=3, n_val=1, seconds=(0.6, 0.7))


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "generator_00000005.pt"
    save_generator(path, {"preset": "hifigan"})
    return path


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals come before any work: loading the checkpoint fails the test."""
    import gankit.infer.vocoder

    def load_vocoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was loaded before the outputs were checked")

    monkeypatch.setattr(gankit.infer.vocoder, "load_vocoder", load_vocoder)


def foreign_wav(path: Path, seed: int = 9) -> Path:
    """A recording gankit did not write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voiced_clip(0.3, 16000, 180.0, seed=seed), 16000, subtype="PCM_16")
    return path


# ---- prepare: SRC and OUT must be apart ------------------------------------------------------------------------
def test_prepare_refuses_src_inside_out(capsys, tmp_path, corpus):
    """Bug 1: `gankit prepare OUT/wavs OUT` rewrote every source recording with a resampled copy."""
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", corpus)
    refused(code, err, f"{corpus}: OUT contains the corpus folder SRC", corpus / "wavs", "choose an OUT apart from SRC")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_refuses_out_inside_src(capsys, tmp_path, corpus):
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus, corpus / "prepared")
    refused(code, err, f"{corpus / 'prepared'}: OUT lies inside the corpus folder SRC {corpus}")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_refuses_out_equal_to_src(capsys, tmp_path, corpus):
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", corpus / "wavs" / ".." / "wavs")
    refused(code, err, f"OUT is the corpus folder SRC {corpus / 'wavs'}", "itself")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_resolves_a_symlinked_out(capsys, tmp_path, corpus):
    """OUT a link to the corpus folder: the same as SRC inside OUT, named with what the link resolves to."""
    (tmp_path / "link").symlink_to(corpus, target_is_directory=True)
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", tmp_path / "link")
    refused(code, err, f"{tmp_path / 'link'} (= {corpus.resolve()}): OUT contains the corpus folder SRC",
            corpus / "wavs")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_refuses_out_wavs_linked_into_src(capsys, tmp_path, corpus):
    """OUT itself apart, but OUT/wavs a link to SRC: the writes would land on the recordings."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "wavs").symlink_to(corpus / "wavs", target_is_directory=True)
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", tmp_path / "out")
    refused(code, err, f"{tmp_path / 'out' / 'wavs'}: resolves to", "inside the corpus folder SRC", "remove the link")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_as_a_user_runs_it_refuses_in_one_line(tmp_path, corpus):
    """The same refusal from `python -m gankit`: exit 2, one line, no traceback, nothing written."""
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, "-m", "gankit", "prepare", str(corpus / "wavs"), str(corpus), "--format",
                           "folder", "--no-progress"], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    refused(done.returncode, done.stderr, corpus / "wavs", "OUT contains the corpus folder SRC")
    assert done.stdout == ""
    assert_unchanged(before, snapshot(tmp_path))


# ---- prepare: only its own files are replaced or removed -------------------------------------------------------
def test_prepare_keeps_a_foreign_wav_on_a_first_run(capsys, tmp_path, corpus):
    out = tmp_path / "out"
    foreign_wav(out / "wavs" / "x.wav")
    before = snapshot(tmp_path)
    code, stdout, err = prepare(capsys, corpus / "wavs", out)
    assert code == 0 and "error:" not in err and "Traceback" not in err, err
    assert f"left 1 file gankit did not write in {out / 'wavs'}: x.wav" in stdout
    assert_unchanged(before, snapshot(tmp_path),
                     allowed_new=("out/wavs/utt_", "out/train.txt", "out/val.txt", "out/skipped.txt", f"out/{RECORD}"))
    record = json.loads((out / RECORD).read_text())["written"]
    assert "wavs/x.wav" not in record and "wavs/utt_000.wav" in record and "train.txt" in record


def test_prepare_keeps_a_foreign_wav_on_a_rerun(capsys, tmp_path, corpus):
    """Bug 2: a rerun deleted a wav in OUT/wavs that no gankit run wrote, as "a previous run's"."""
    out = tmp_path / "out"
    assert prepare(capsys, corpus / "wavs", out)[0] == 0
    foreign_wav(out / "wavs" / "x.wav")
    foreign_wav(out / "wavs" / "spk" / "y.wav", seed=3)
    before = snapshot(tmp_path)
    code, stdout, err = prepare(capsys, corpus / "wavs", out)
    assert code == 0 and "error:" not in err, err
    assert f"left 2 files gankit did not write in {out / 'wavs'}: spk/y.wav, x.wav" in stdout
    assert "removed" not in stdout
    diff = changes(before, snapshot(tmp_path))
    # only gankit's own files are rewritten (the record; the wavs and lists get the same bytes again)
    assert diff["removed"] == [] and diff["added"] == [] and diff["changed"] in ([], [f"out/{RECORD}"]), diff


def test_prepare_removes_a_stale_file_it_wrote(capsys, tmp_path, corpus):
    out = tmp_path / "out"
    assert prepare(capsys, corpus / "wavs", out)[0] == 0
    foreign_wav(out / "wavs" / "x.wav")
    (out / "wavs" / ".x.wav.abcdefgh.tmp").write_bytes(b"not a temporary of gankit's")
    (out / "wavs" / ".utt_001.wav.abcdefgh.tmp").write_bytes(b"left by a killed run")
    (corpus / "wavs" / "utt_002.wav").unlink()
    before = snapshot(tmp_path)
    code, stdout, err = prepare(capsys, corpus / "wavs", out)
    assert code == 0 and "error:" not in err, err
    assert f"removed 2 file(s) a previous run left in {out / 'wavs'}" in stdout
    assert f"left 2 files gankit did not write in {out / 'wavs'}: .x.wav.abcdefgh.tmp, x.wav" in stdout
    diff = changes(before, snapshot(tmp_path))
    assert diff["removed"] == ["out/wavs/.utt_001.wav.abcdefgh.tmp", "out/wavs/utt_002.wav"], diff
    assert diff["added"] == [] and set(diff["changed"]) <= {f"out/{RECORD}", "out/train.txt", "out/val.txt"}
    assert "wavs/utt_002.wav" not in json.loads((out / RECORD).read_text())["written"]


def test_prepare_records_its_files_before_writing_them(capsys, tmp_path, corpus, monkeypatch):
    """A run stopped half-way (killed, or a full disk) leaves files the record already names: the rerun replaces
    them rather than refusing them as foreign, and a killed run needs no cleanup to be known."""
    import gankit.data.prepare as module

    out = tmp_path / "out"
    convert = module._convert
    seen: list[str] = []

    def failing_convert(job):  # runs in this process (--workers 1); the third file meets a full disk
        record = json.loads((out / RECORD).read_text())["written"]
        assert Path(job.target).relative_to(out).as_posix() in record  # named before it is written
        seen.append(job.id)
        if len(seen) == 3:
            raise module.DataError(f"cannot write {job.target}: No space left on device; free space")
        return convert(job)

    monkeypatch.setattr(module, "_convert", failing_convert)
    code, _, err = prepare(capsys, corpus / "wavs", out)
    refused(code, err, "No space left on device")
    assert len(list((out / "wavs").iterdir())) == 2
    monkeypatch.setattr(module, "_convert", convert)
    code, stdout, err = prepare(capsys, corpus / "wavs", out)
    assert code == 0 and "error:" not in err and "left" not in stdout, err
    assert sorted(p.name for p in (out / "wavs").iterdir()) == [f"utt_00{i}.wav" for i in range(4)]


def test_prepare_refuses_a_foreign_file_where_it_would_write(capsys, tmp_path, corpus):
    out = tmp_path / "out"
    foreign_wav(out / "wavs" / "utt_001.wav")
    foreign_wav(out / "wavs" / "utt_003.wav", seed=4)
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", out)
    refused(code, err, f"{out / 'wavs' / 'utt_001.wav'}: exists and no gankit prepare wrote it", "1 more",
            "move it away or choose another OUT")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_refuses_foreign_lists_in_out(capsys, tmp_path, corpus):
    """OUT = a folder holding someone's own train.txt: not replaced."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.txt").write_text("my|own list\n")
    before = snapshot(tmp_path)
    code, _, err = prepare(capsys, corpus / "wavs", tmp_path / "mine")
    refused(code, err, f"{tmp_path / 'mine' / 'train.txt'}: exists and no gankit prepare wrote it")
    assert_unchanged(before, snapshot(tmp_path))


def test_prepare_reads_a_corpus_prepared_before_the_record(capsys, tmp_path, corpus):
    """An OUT an older gankit wrote (no record): its lists name its wavs; a foreign wav is still kept."""
    out = tmp_path / "out"
    assert prepare(capsys, corpus / "wavs", out)[0] == 0
    (out / RECORD).unlink()
    foreign_wav(out / "wavs" / "x.wav")
    (corpus / "wavs" / "utt_000.wav").unlink()
    before = snapshot(tmp_path)
    code, stdout, err = prepare(capsys, corpus / "wavs", out)
    assert code == 0 and "error:" not in err, err
    assert "removed 1 file(s)" in stdout and "left 1 file gankit did not write" in stdout
    diff = changes(before, snapshot(tmp_path))
    assert diff["removed"] == ["out/wavs/utt_000.wav"] and diff["added"] == [f"out/{RECORD}"], diff


# ---- vocode / resynth: never onto an input, never onto an existing file without --overwrite ---------------------
def resynth_inputs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        sf.write(folder / f"r{i}.wav", voiced_clip(0.3, 22050, 120.0 + 20 * i, seed=i), 22050, subtype="PCM_16")
    return folder


@pytest.mark.usefixtures("no_loading")
def test_resynth_refuses_out_dir_equal_to_the_input_folder(capsys, tmp_path, generator_file):
    """Bug 3: `gankit resynth DIR --out-dir DIR` replaced the inputs with their resyntheses, even --overwrite."""
    recordings = resynth_inputs(tmp_path / "rec")
    before = snapshot(tmp_path)
    for extra in ((), ("--overwrite",)):
        code, _, err = gankit(capsys, "resynth", "--checkpoint", generator_file, recordings, "--out-dir",
                              recordings, *extra)
        refused(code, err, f"{recordings / 'r0.wav'}: is an input, and the output of r0.wav would replace it",
                "never replaced")
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.usefixtures("no_loading")
def test_resynth_refuses_an_output_equal_to_an_input_through_a_link(capsys, tmp_path, generator_file):
    """A file given directly, --out-dir a link to its folder: the output path is the input file."""
    recordings = resynth_inputs(tmp_path / "rec")
    (tmp_path / "out").symlink_to(recordings, target_is_directory=True)
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "resynth", "--checkpoint", generator_file, recordings / "r1.wav", "--out-dir",
                          tmp_path / "out", "--overwrite")
    refused(code, err, f"{tmp_path / 'out' / 'r1.wav'}: is an input ({recordings / 'r1.wav'}), and the output "
            "of r1.wav would replace it")
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.usefixtures("no_loading")
def test_resynth_refuses_an_existing_file_in_out_dir(capsys, tmp_path, generator_file):
    recordings = resynth_inputs(tmp_path / "rec")
    foreign_wav(tmp_path / "out" / "r1.wav")
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "resynth", "--checkpoint", generator_file, recordings, "--out-dir", tmp_path / "out")
    refused(code, err, f"{tmp_path / 'out' / 'r1.wav'}: already exists (1 of the 2 outputs already exist",
            "pass --overwrite to replace it or choose another --out-dir")
    assert_unchanged(before, snapshot(tmp_path))


@pytest.fixture
def mels_beside_recordings(tmp_path: Path) -> Path:
    """`tmp_path/data`: a.npy + a.wav (its recording), b.npy + b.wav, c.npy alone."""
    data = tmp_path / "data"
    data.mkdir()
    for i, stem in enumerate("abc"):
        np.save(data / f"{stem}.npy", ln_mel(9, seed=i))
        if stem != "c":
            foreign_wav(data / f"{stem}.wav", seed=i)
    return data


@pytest.mark.usefixtures("no_loading")
def test_vocode_refuses_to_replace_a_recording_beside_its_mel(capsys, tmp_path, generator_file,
                                                               mels_beside_recordings):
    """Bug 3: `gankit vocode DIR --out-dir DIR` replaced a.wav, a recording beside a.npy, silently. --force
    (interpolate mismatched mel bands) keeps its meaning and replaces nothing."""
    data = mels_beside_recordings
    before = snapshot(tmp_path)
    for extra in ((), ("--force",)):
        code, _, err = gankit(capsys, "vocode", "--checkpoint", generator_file, data, "--out-dir", data, *extra)
        refused(code, err, f"{data / 'a.wav'}: already exists (2 of the 3 outputs already exist in {data})",
                "pass --overwrite to replace them or choose another --out-dir")
    assert_unchanged(before, snapshot(tmp_path))


def test_vocode_overwrite_replaces_and_says_how_many(capsys, tmp_path, generator_file, mels_beside_recordings):
    data = mels_beside_recordings
    before = snapshot(tmp_path)
    code, stdout, err = gankit(capsys, "vocode", "--checkpoint", generator_file, data, "--out-dir", data,
                               "--overwrite", "--no-progress")
    assert code == 0 and "error:" not in err and "Traceback" not in err, err
    summary = [line for line in stdout.splitlines() if line.startswith("vocoded 3 files")]
    assert len(summary) == 1 and summary[0].endswith(f"; replaced 2 existing files in {data}"), stdout
    diff = changes(before, snapshot(tmp_path))
    assert diff == {"removed": [], "changed": ["data/a.wav", "data/b.wav"], "added": ["data/c.wav"]}, diff
    assert sf.info(data / "a.wav").frames == 9 * 256  # the vocoded mel, not the recording


def test_vocode_into_a_fresh_folder_mentions_no_replacement(capsys, tmp_path, generator_file):
    np.save(tmp_path / "m.npy", ln_mel(7, seed=1))
    before = snapshot(tmp_path)
    code, stdout, err = gankit(capsys, "vocode", "--checkpoint", generator_file, tmp_path / "m.npy", "--out-dir",
                               tmp_path / "out", "--overwrite")
    assert code == 0 and "error:" not in err, err
    assert "vocoded 1 file:" in stdout and "replaced" not in stdout
    assert_unchanged(before, snapshot(tmp_path), allowed_new=("out",))
    # the second run finds its own earlier output: refused without --overwrite, like any existing file
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "vocode", "--checkpoint", generator_file, tmp_path / "m.npy", "--out-dir",
                          tmp_path / "out")
    refused(code, err, f"{tmp_path / 'out' / 'm.wav'}: already exists; pass --overwrite to replace it")
    assert_unchanged(before, snapshot(tmp_path))


# ---- evaluate: --out and --audio-dir never replace a file without --overwrite, never an input ------------------
def evaluate(capsys: pytest.CaptureFixture[str], checkpoint: Path, data: Path, *extra: str | Path):
    return gankit(capsys, "evaluate", "--checkpoint", checkpoint, "--data", data, "--measures", "mel_l1", *extra)


@pytest.fixture
def nothing_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals come before any work: loading the checkpoint or scoring fails the test."""
    import gankit.infer
    import gankit.infer.evaluation

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluate loaded or scored before it checked its outputs")

    monkeypatch.setattr(gankit.infer, "load_vocoder", never)
    monkeypatch.setattr(gankit.infer.evaluation, "evaluate_vocoder", never)


@pytest.mark.usefixtures("nothing_scored")
def test_evaluate_refuses_an_existing_out_file(capsys, tmp_path, corpus, generator_file):
    """Bug 4: `gankit evaluate --out FILE` replaced any existing file with the results, silently."""
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}\n')
    before = snapshot(tmp_path)
    code, _, err = evaluate(capsys, generator_file, corpus, "--out", mine)
    refused(code, err, f"{mine}: --out already exists; pass --overwrite to replace it or choose another --out")
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.usefixtures("nothing_scored")
def test_evaluate_never_replaces_the_list_it_reads(capsys, tmp_path, corpus, generator_file):
    """`--out data/val.txt` (a slip of the keyboard) is refused even with --overwrite: evaluate reads that file."""
    before = snapshot(tmp_path)
    for extra in ((), ("--overwrite",)):
        code, _, err = evaluate(capsys, generator_file, corpus, "--out", corpus / "val.txt", *extra)
        refused(code, err, f"{corpus / 'val.txt'}: --out is a file evaluate reads", "never replaced")
    assert_unchanged(before, snapshot(tmp_path))


def test_evaluate_overwrite_replaces_the_out_file_and_says_so(capsys, tmp_path, corpus, generator_file):
    out = tmp_path / "results.json"
    out.write_text('{"an earlier run": true}\n')
    before = snapshot(tmp_path)
    code, stdout, err = evaluate(capsys, generator_file, corpus, "--baseline", "none", "--out", out, "--overwrite")
    assert code == 0 and "error:" not in err and "Traceback" not in err, err
    assert f"results: {out}; replaced the existing file" in stdout.splitlines(), stdout
    assert changes(before, snapshot(tmp_path)) == {"removed": [], "changed": ["results.json"], "added": []}
    assert json.loads(out.read_text())["systems"]["model"]["files"][0]["id"] == "utt_003"


@pytest.mark.usefixtures("nothing_scored")
def test_evaluate_refuses_existing_resyntheses_in_audio_dir(capsys, tmp_path, corpus, generator_file):
    """Bug 5: `--audio-dir DIR` replaced DIR/model/<id>.wav and DIR/griffin_lim/<id>.wav, silently."""
    listen = tmp_path / "listen"
    foreign_wav(listen / "model" / "utt_003.wav")
    before = snapshot(tmp_path)
    code, _, err = evaluate(capsys, generator_file, corpus, "--audio-dir", listen)
    refused(code, err, f"{listen / 'model' / 'utt_003.wav'}: already exists (1 of the 2 resyntheses already exist "
            f"in {listen}); pass --overwrite to replace it or choose another --audio-dir")
    assert_unchanged(before, snapshot(tmp_path))


def test_evaluate_audio_dir_overwrite_replaces_and_says_how_many(capsys, tmp_path, corpus, generator_file):
    listen = tmp_path / "listen"
    foreign_wav(listen / "model" / "utt_003.wav")
    before = snapshot(tmp_path)
    code, stdout, err = evaluate(capsys, generator_file, corpus, "--audio-dir", listen, "--overwrite",
                                 "--limit", "1")
    assert code == 0 and "error:" not in err and "Traceback" not in err, err
    assert (f"audio: 2 files in {listen / 'model'}, {listen / 'griffin_lim'}; replaced 1 existing file"
            in stdout.splitlines()), stdout
    diff = changes(before, snapshot(tmp_path))
    assert diff == {"removed": [], "changed": ["listen/model/utt_003.wav"],
                    "added": ["listen/griffin_lim", "listen/griffin_lim/utt_003.wav"]}, diff


@pytest.mark.usefixtures("nothing_scored")
def test_evaluate_never_writes_a_resynthesis_onto_a_reference(capsys, tmp_path, generator_file):
    """Scoring last time's resyntheses (`--data listen/model`) into the same --audio-dir would replace the very
    recordings read: refused even with --overwrite."""
    listen = tmp_path / "listen"
    foreign_wav(listen / "model" / "a.wav")
    before = snapshot(tmp_path)
    for extra in ((), ("--overwrite",)):
        code, _, err = evaluate(capsys, generator_file, listen / "model", "--audio-dir", listen, *extra)
        refused(code, err, f"{listen / 'model' / 'a.wav'}: is a file evaluate reads", "never replaced")
    assert_unchanged(before, snapshot(tmp_path))


def test_evaluate_vocoder_refuses_existing_audio_unless_overwrite(tmp_path, corpus):
    """The library call checks too (`gankit demo` passes overwrite=True for its own run folder): before scoring."""
    from gankit.audio.mel import build_frontend
    from gankit.errors import OutputPathError
    from gankit.infer.evaluation import evaluate_vocoder, find_references

    class Unscored:
        frontend = build_frontend({"preset": "hifigan"})
        sample_rate = 22050

        def __call__(self, mel: object) -> None:
            raise AssertionError("scored")

    listen = tmp_path / "listen"
    foreign_wav(listen / "griffin_lim" / "utt_003.wav")
    references = find_references(corpus)
    before = snapshot(tmp_path)
    with pytest.raises(OutputPathError, match=re.escape("griffin_lim/utt_003.wav: already exists (1 of the 2")):
        evaluate_vocoder(Unscored(), references, measures=["mel_l1"], audio_dir=listen, progress=False)
    assert_unchanged(before, snapshot(tmp_path))
    with pytest.raises(AssertionError, match="scored"):  # past the check: it started scoring
        evaluate_vocoder(Unscored(), references, measures=["mel_l1"], audio_dir=listen, progress=False,
                         overwrite=True)


# ---- export: an existing g_<step> is refused without --overwrite; the exported checkpoint never replaced -------
@pytest.fixture
def nothing_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal comes right after the checkpoint is read: building the generator or writing fails the test."""
    import gankit.compat.hifigan_original
    import gankit.infer.loading

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("export built or wrote before it checked its output")

    monkeypatch.setattr(gankit.infer.loading, "build_generator_from", never)
    monkeypatch.setattr(gankit.compat.hifigan_original, "write_original_generator", never)


@pytest.mark.usefixtures("nothing_exported")
def test_export_refuses_an_existing_generator_file(capsys, tmp_path, generator_file):
    """Bug 6: `gankit export --to-original DIR` replaced DIR/g_<step>, silently."""
    out = tmp_path / "original"
    out.mkdir()
    (out / "g_00000005").write_bytes(b"someone's own g_ file")
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "export", "--checkpoint", generator_file, "--to-original", out)
    refused(code, err, f"{out / 'g_00000005'}: already exists; pass --overwrite to replace it or choose another "
            "--to-original")
    assert_unchanged(before, snapshot(tmp_path))


def test_export_overwrite_replaces_and_says_so(capsys, tmp_path, generator_file):
    out = tmp_path / "original"
    out.mkdir()
    (out / "g_00000005").write_bytes(b"someone's own g_ file")
    before = snapshot(tmp_path)
    code, stdout, err = gankit(capsys, "export", "--checkpoint", generator_file, "--to-original", out, "--overwrite")
    assert code == 0 and "error:" not in err and "Traceback" not in err, err
    assert f"→ {out / 'g_00000005'} and {out / 'config.json'}; replaced 1 existing file;" in stdout, stdout
    diff = changes(before, snapshot(tmp_path))
    assert diff == {"removed": [], "changed": ["original/g_00000005"], "added": ["original/config.json"]}, diff


def test_export_never_replaces_the_checkpoint_it_reads(capsys, tmp_path, generator_file, monkeypatch):
    """An original g_ file exported into its own folder: the output is the input, refused even with --overwrite."""
    out = tmp_path / "original"
    assert gankit(capsys, "export", "--checkpoint", generator_file, "--to-original", out)[0] == 0
    from gankit.compat import hifigan_original  # (a plain `import gankit.…` would hide gankit() here)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("export wrote before it checked its output")

    monkeypatch.setattr(hifigan_original, "write_original_generator", never)
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "export", "--checkpoint", out / "g_00000005", "--to-original", out, "--overwrite")
    refused(code, err, f"{out / 'g_00000005'}: is the checkpoint being exported", "never replaced")
    assert_unchanged(before, snapshot(tmp_path))
