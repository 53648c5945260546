"""Every error a user can cause is one line (issue 13): for each command, inputs and paths a user gets wrong end in
exit status 2, exactly one `error: …` line on stderr, no traceback, and a folder tree where nothing but the intended
outputs appeared. A bug (any other exception) still shows its traceback, and `gankit --debug` shows every one.

Most cases run `gankit.cli.main` in this process (the CLI returns the exit status); two run the real process."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gankit.cli import main
from tests.support.corpus import voiced_clip, write_corpus
from tests.support.tree import assert_unchanged, snapshot
from tests.test_vocode_cli import ln_mel, save_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

REPO = Path(__file__).resolve().parents[1]
GENERATOR = "generator_00000005.pt"


def _chmod_denies() -> bool:
    """Whether a folder without write permission refuses this process (not for root, which may write anywhere)."""
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.mkdir(mode=0o555)
        denied = not os.access(locked, os.W_OK)
        locked.chmod(0o755)
    return denied


AS_ROOT = not _chmod_denies()
ROOT_SKIP = "running as root: chmod does not deny root, so a permission error cannot be made"
NOT_UTF8 = b"caf\xe9"  # Latin-1 "café": byte 0xe9 starts no valid UTF-8 sequence here


class Payload:
    """Unpickling an instance imports and calls this class: what a checkpoint carrying code holds."""

    def __init__(self) -> None:
        self.note = "not weights"


PAYLOAD_GLOBAL = f"{Payload.__module__}.{Payload.__qualname__}"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared corpus (3 train, 2 val, short clips) and a tiny HiFi-GAN generator file; copied into each test."""
    root = tmp_path_factory.mktemp("assets")
    write_corpus(root / "corpus", n_train=3, n_val=2, seconds=(0.5, 0.6))
    save_generator(root / GENERATOR, {"preset": "hifigan"})
    return root


@pytest.fixture
def here(tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's folder, holding its own copy of the assets, as the working directory (paths stay relative)."""
    shutil.copytree(assets, tmp_path, dirs_exist_ok=True)
    (tmp_path / "a_file").write_text("in the way\n")
    (tmp_path / "a_folder").mkdir()
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for path in tmp_path.rglob("*"):  # give back write permission taken by a case, so pytest can clean up
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def fails(capsys: pytest.CaptureFixture[str], *args: str | Path, allowed_new: tuple[str, ...] = ()) -> str:
    """Run `gankit ARGS` in this process: exit 2, one `error:` line, no traceback, nothing else changed under the
    working folder (but paths starting with `allowed_new`). Returns the error line."""
    root = Path.cwd()
    before = snapshot(root)
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line on stderr:\n{err[-3000:]}"
    assert "Traceback" not in out + err
    assert_unchanged(before, snapshot(root), allowed_new)
    return lines[0]


# With a check broken, a case must fail, not train for hours: every training is also limited to one step.
ONE_STEP = "train.max_steps=1"


def train_args(*extra: str, run_dir: str = "run") -> list[str]:
    return ["train", "hifigan_tiny", "data.dir=corpus", ONE_STEP, "--run-dir", run_dir, "--no-progress", *extra]


def demo_args(*extra: str, run_dir: str = "run") -> list[str]:
    return ["demo", "--data", "corpus", "--run-dir", run_dir, "--minutes", "0.01", "--no-progress", ONE_STEP, *extra]


def read_only(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    path.chmod(0o555)
    return path


def random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def code_carrying(path: Path) -> Path:
    torch.save({"format": "gankit", "kind": "generator", "payload": Payload()}, path)
    return path


def nan_wav(path: Path) -> Path:
    sf.write(path, np.array([0.1, np.nan, -0.1] * 4000, np.float32), 22050, subtype="FLOAT")
    return path


# --- demo -----------------------------------------------------------------------------------------------------


def test_demo_without_festvox_says_how_to_get_it(here, capsys):
    line = fails(capsys, "demo", "--source", "no_festvox", "--data", "prepared", "--run-dir", "run", "--no-progress")
    assert "no_festvox: festvox-ru is not installed" in line


def test_demo_run_dir_that_is_a_file(here, capsys):
    line = fails(capsys, *demo_args(run_dir="a_file"))
    assert line.startswith("error: a_file: the run directory is a file, not a folder"), line


def test_demo_negative_learning_rate(here, capsys):
    line = fails(capsys, *demo_args("optim.d.lr=-0.5"))
    assert line == "error: optim.d.lr: must be > 0 (or 0 to freeze the group), got -0.5", line


# --- prepare --------------------------------------------------------------------------------------------------


@pytest.fixture
def ljspeech(here: Path) -> Path:
    src = here / "lj"
    (src / "wavs").mkdir(parents=True)
    shutil.copy(here / "corpus" / "wavs" / "utt_000.wav", src / "wavs" / "a.wav")
    (src / "metadata.csv").write_text("a|some text|some text\n", encoding="utf-8")
    return src


def test_prepare_missing_source(here, capsys):
    line = fails(capsys, "prepare", "no_such_corpus", "out", "--format", "ljspeech", "--workers", "1")
    assert "no_such_corpus" in line and "not found" in line


def test_prepare_out_that_is_a_file(ljspeech, capsys):
    line = fails(capsys, "prepare", "lj", "a_file", "--format", "ljspeech", "--workers", "1", "--no-progress")
    assert line.startswith("error: a_file: "), line


def test_prepare_out_inside_a_file(ljspeech, capsys):
    line = fails(capsys, "prepare", "lj", "a_file/out", "--format", "ljspeech", "--workers", "1", "--no-progress")
    assert "a_file" in line


def test_prepare_metadata_that_is_not_utf8(ljspeech, capsys):
    (ljspeech / "metadata.csv").write_bytes(b"a|" + NOT_UTF8 + b"|x\n")
    # Nothing usable: the one intended output is OUT/skipped.txt (with its record), saying why.
    line = fails(capsys, "prepare", "lj", "out", "--format", "ljspeech", "--workers", "1", "--no-progress",
                 allowed_new=("out",))
    assert "UTF-8" in line and "out/skipped.txt" in line, line


# --- train ----------------------------------------------------------------------------------------------------


def test_train_negative_learning_rate(here, capsys):
    line = fails(capsys, *train_args("optim.g.lr=-1"))
    assert line == "error: optim.g.lr: must be > 0 (or 0 to freeze the group), got -1", line


def test_train_unknown_optimizer_type(here, capsys):
    line = fails(capsys, *train_args("optim.d.type=Adamm"))
    assert line.startswith("error: optim.d.type: 'Adamm' is not a torch.optim class; choose one of"), line
    assert "AdamW" in line


def test_train_betas_outside_0_1(here, capsys):
    line = fails(capsys, *train_args("optim.g.betas=[0.8,1.2]"))
    assert line == "error: optim.g.betas: must be two numbers in [0, 1), got [0.8, 1.2]", line


def test_train_optimizer_argument_it_does_not_take(here, capsys):
    Path("mine.yaml").write_text("base: hifigan_tiny\noptim:\n  g:\n    momentum: 0.9\n", encoding="utf-8")
    line = fails(capsys, "train", "mine.yaml", "data.dir=corpus", ONE_STEP, "--run-dir", "run", "--no-progress")
    assert line.startswith("error: optim.g.momentum: AdamW takes no argument 'momentum'; its arguments are lr, betas")


def test_train_scheduler_value(here, capsys):
    line = fails(capsys, *train_args("optim.g.scheduler.gamma=0"))
    assert line == "error: optim.g.scheduler.gamma: must be > 0, got 0", line


def test_train_unknown_device(here, capsys):
    line = fails(capsys, *train_args("device=tpu7"))
    assert line == "error: device='tpu7': not a device; use cpu, cuda, cuda:N or auto", line


def test_train_device_this_machine_lacks(here, capsys):
    line = fails(capsys, *train_args("device=cuda:99"))
    assert line.startswith("error: device=cuda:99: "), line  # no CUDA here, or not 100 GPUs


def test_train_run_dir_that_is_a_file(here, capsys):
    line = fails(capsys, *train_args(run_dir="a_file"))
    assert line == "error: a_file: the run directory is a file, not a folder; choose another path (or move the file)"


def test_train_run_dir_inside_a_file(here, capsys):
    line = fails(capsys, *train_args(run_dir="a_file/run"))
    assert line.startswith("error: a_file/run: the run directory would be made inside a_file, which is a file"), line


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_train_run_dir_that_is_not_writable(here, capsys):
    read_only(here / "locked")
    line = fails(capsys, *train_args(run_dir="locked"))
    assert line.startswith("error: locked: the run directory is not writable (permission denied)"), line


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_train_run_dir_in_a_folder_that_is_not_writable(here, capsys):
    read_only(here / "locked")
    line = fails(capsys, *train_args(run_dir="locked/run"))
    assert "locked/run: the run directory cannot be made there: locked is not writable" in line, line


def test_train_run_dir_on_a_read_only_file_system(here, capsys, monkeypatch):
    """A read-only mount cannot be made here: the file system's answers for one folder are replaced instead."""
    mount = (here / "mounted").resolve()
    mount.mkdir()
    access, statvfs = os.access, os.statvfs

    def ro_access(path, mode, *args, **kwargs):
        return False if Path(path).resolve() == mount and mode & os.W_OK else access(path, mode, *args, **kwargs)

    def ro_statvfs(path):
        if Path(path).resolve() != mount:
            return statvfs(path)
        real = statvfs(path)
        return os.statvfs_result((*real[:8], real.f_flag | os.ST_RDONLY, real.f_namemax))

    monkeypatch.setattr(os, "access", ro_access)
    monkeypatch.setattr(os, "statvfs", ro_statvfs)
    line = fails(capsys, *train_args(run_dir="mounted/run"))
    assert line.startswith("error: mounted/run: the run directory cannot be made there: mounted is on a read-only "
                           "file system"), line


def test_train_config_that_is_not_utf8(here, capsys):
    Path("latin1.yaml").write_bytes(b"base: hifigan_tiny\n# " + NOT_UTF8 + b"\n")
    line = fails(capsys, "train", "latin1.yaml", "--run-dir", "run")
    assert line == "error: latin1.yaml: not valid UTF-8 text (byte 0xe9 at offset 24); re-save it as UTF-8", line


def test_train_file_list_that_is_not_utf8(here, capsys):
    (here / "corpus" / "train.txt").write_bytes(b"utt_000|" + NOT_UTF8 + b"\n")
    line = fails(capsys, *train_args())
    assert line == "error: corpus/train.txt, line 1: not valid UTF-8; re-save the list as UTF-8", line


def test_train_missing_data_dir_leaves_no_run_dir(here, capsys):
    line = fails(capsys, "train", "hifigan_tiny", "data.dir=nowhere", ONE_STEP, "--run-dir", "run", "--no-progress")
    assert line.startswith("error: data.dir nowhere not found"), line


def test_train_init_from_random_bytes(here, capsys):
    random_bytes(here / "noise.pt")
    line = fails(capsys, *train_args("--init-from", "noise.pt"))
    assert line.startswith("error: noise.pt: not a checkpoint — neither a PyTorch zip archive"), line


def test_train_init_from_a_checkpoint_carrying_code(here, capsys):
    code_carrying(here / "evil.pt")
    line = fails(capsys, *train_args("--init-from", "evil.pt"))
    assert line.startswith("error: evil.pt: refused to load") and f"call {PAYLOAD_GLOBAL}." in line, line


# --- vocode ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mel(here: Path) -> Path:
    np.save(here / "m.npy", ln_mel(12, 0))
    return here / "m.npy"


def vocode(*args: str) -> list[str]:
    return ["vocode", "m.npy", "--device", "cpu", "--no-progress", *args]


def test_vocode_random_bytes_are_not_a_checkpoint(mel, capsys):
    random_bytes(mel.parent / "noise.pt")
    line = fails(capsys, *vocode("--checkpoint", "noise.pt", "--out-dir", "out"))
    assert line.startswith("error: noise.pt: not a checkpoint"), line
    assert "pickled" not in line


def test_vocode_checkpoint_carrying_code_names_the_global(mel, capsys):
    code_carrying(mel.parent / "evil.pt")
    line = fails(capsys, *vocode("--checkpoint", "evil.pt", "--out-dir", "out"))
    assert line.startswith("error: evil.pt: refused to load — it holds pickled Python objects"), line
    assert f"it would import and call {PAYLOAD_GLOBAL}." in line, line


def test_vocode_text_file_as_checkpoint(mel, capsys):
    Path("notes.pt").write_text("these are not weights\n")
    line = fails(capsys, *vocode("--checkpoint", "notes.pt", "--out-dir", "out"))
    assert line.startswith("error: notes.pt: not a checkpoint"), line


def test_vocode_out_dir_that_is_a_file(mel, capsys):
    line = fails(capsys, *vocode("--checkpoint", GENERATOR, "--out-dir", "a_file"))
    assert line.startswith("error: a_file: --out-dir exists and is not a folder"), line


def test_vocode_out_dir_inside_a_file(mel, capsys):
    line = fails(capsys, *vocode("--checkpoint", GENERATOR, "--out-dir", "a_file/out"))
    assert "a_file/out" in line, line


def test_vocode_unknown_device(mel, capsys):
    line = fails(capsys, "vocode", "m.npy", "--checkpoint", GENERATOR, "--out-dir", "out", "--device", "tpu7")
    assert line == "error: --device 'tpu7': not a device; use cpu, cuda, cuda:N or auto", line


# --- resynth --------------------------------------------------------------------------------------------------


def test_resynth_wav_with_nan_samples(here, capsys):
    nan_wav(here / "nan.wav")
    line = fails(capsys, "resynth", "nan.wav", "--checkpoint", GENERATOR, "--out-dir", "out", "--device", "cpu",
                 "--no-progress")
    assert line.startswith("error: nan.wav: it holds NaN/inf samples (4000 of 12000)"), line
    assert "convert" not in line


def test_resynth_checkpoint_carrying_code(here, capsys):
    code_carrying(here / "evil.pt")
    line = fails(capsys, "resynth", "corpus/wavs/utt_000.wav", "--checkpoint", "evil.pt", "--out-dir", "out",
                 "--no-progress")
    assert PAYLOAD_GLOBAL in line, line


def test_resynth_out_dir_that_is_a_file(here, capsys):
    line = fails(capsys, "resynth", "corpus/wavs/utt_000.wav", "--checkpoint", GENERATOR, "--out-dir", "a_file")
    assert line.startswith("error: a_file: --out-dir exists and is not a folder"), line


# --- evaluate -------------------------------------------------------------------------------------------------


def evaluate(*args: str) -> list[str]:
    return ["evaluate", "--checkpoint", GENERATOR, "--data", "corpus", "--measures", "mel_l1", "--baseline", "none",
            *args]


@pytest.fixture
def nothing_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error must come before the checkpoint is read and anything is scored."""
    import gankit.infer
    import gankit.infer.evaluation

    def never(*args, **kwargs):
        raise AssertionError("evaluate loaded or scored before it checked its outputs")

    monkeypatch.setattr(gankit.infer, "load_vocoder", never)
    monkeypatch.setattr(gankit.infer.evaluation, "evaluate_vocoder", never)


def test_evaluate_out_onto_a_folder_fails_before_scoring(here, capsys, nothing_scored):
    line = fails(capsys, *evaluate("--out", "a_folder"))
    assert line == ("error: a_folder: --out is a folder, but a file is written there; give a file path (e.g. "
                    "a_folder/results.json)"), line


def test_evaluate_out_inside_a_file(here, capsys, nothing_scored):
    line = fails(capsys, *evaluate("--out", "a_file/results.json"))
    assert line.startswith("error: a_file: the folder of --out is a file, not a folder"), line


def test_evaluate_audio_dir_that_is_a_file(here, capsys, nothing_scored):
    line = fails(capsys, *evaluate("--audio-dir", "a_file"))
    assert line.startswith("error: a_file: --audio-dir is a file, not a folder"), line


def test_evaluate_audio_dir_whose_system_folder_is_a_file(here, capsys, nothing_scored):
    (here / "a_folder" / "model").write_text("in the way\n")
    line = fails(capsys, *evaluate("--audio-dir", "a_folder"))
    assert line.startswith("error: a_folder/model: --audio-dir's folder for each system is a file"), line


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_evaluate_out_in_a_folder_that_is_not_writable(here, capsys, nothing_scored):
    read_only(here / "locked")
    line = fails(capsys, *evaluate("--out", "locked/results.json"))
    assert "locked: the folder of --out is not writable" in line, line


def test_evaluate_file_list_that_is_not_utf8(here, capsys, nothing_scored):
    Path("list.txt").write_bytes(b"utt_003|" + NOT_UTF8 + b"\n")
    line = fails(capsys, "evaluate", "--checkpoint", GENERATOR, "--data", "list.txt", "--wav-dir", "corpus/wavs")
    assert line == "error: list.txt, line 1: not valid UTF-8; re-save the list as UTF-8", line


def test_evaluate_random_bytes_as_checkpoint(here, capsys):
    random_bytes(here / "noise.pt")
    line = fails(capsys, "evaluate", "--checkpoint", "noise.pt", "--data", "corpus", "--out", "results.json")
    assert line.startswith("error: noise.pt: not a checkpoint"), line


@pytest.mark.parametrize("failure", ["nan_samples", "os_error"])
def test_evaluate_writes_its_results_when_one_file_fails(here, capsys, monkeypatch, failure):
    refs = here / "refs"
    refs.mkdir()
    sf.write(refs / "good.wav", voiced_clip(0.3, 22050, 120.0, seed=3), 22050, subtype="PCM_16")
    if failure == "nan_samples":
        nan_wav(refs / "bad.wav")
    else:  # a read the system refuses (as an unreadable disk or a lost network mount does)
        import gankit.infer.evaluation

        shutil.copy(refs / "good.wav", refs / "bad.wav")
        real = gankit.infer.evaluation.read_audio

        def read_audio(path, *args, **kwargs):
            if Path(path).name == "bad.wav":
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(gankit.infer.evaluation, "read_audio", read_audio)
    code = main(["evaluate", "--checkpoint", GENERATOR, "--data", "refs", "--measures", "mel_l1", "--baseline", "none",
                 "--out", "results.json"])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]

    model = json.loads(Path("results.json").read_text(encoding="utf-8"))["systems"]["model"]
    assert [row["id"] for row in model["files"]] == ["good"] and model["summary"]["mel_l1"]["n"] == 1, model
    assert [s["id"] for s in model["skipped"]] == ["bad"], model["skipped"]
    assert ("NaN/inf samples" if failure == "nan_samples" else "Input/output error") in model["skipped"][0]["reason"]
    assert "Traceback" not in err


# --- export ---------------------------------------------------------------------------------------------------


def test_export_to_original_that_is_a_file(here, capsys):
    line = fails(capsys, "export", "--checkpoint", GENERATOR, "--to-original", "a_file")
    assert line.startswith("error: a_file: --to-original is a file, not a folder"), line


def test_export_to_original_inside_a_file(here, capsys):
    line = fails(capsys, "export", "--checkpoint", GENERATOR, "--to-original", "a_file/original")
    assert line.startswith("error: a_file/original: --to-original would be made inside a_file"), line


def test_export_generator_file_name_taken_by_a_folder(here, capsys):
    (here / "a_folder" / "g_00000005").mkdir()
    line = fails(capsys, "export", "--checkpoint", GENERATOR, "--to-original", "a_folder")
    assert line.startswith("error: a_folder/g_00000005: a folder is in the way"), line


def test_export_random_bytes_as_checkpoint(here, capsys):
    random_bytes(here / "noise.pt")
    line = fails(capsys, "export", "--checkpoint", "noise.pt", "--to-original", "original")
    assert line.startswith("error: noise.pt: not a checkpoint"), line


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_export_to_a_folder_that_is_not_writable(here, capsys):
    read_only(here / "locked")
    line = fails(capsys, "export", "--checkpoint", GENERATOR, "--to-original", "locked")
    assert line.startswith("error: locked: --to-original is not writable"), line


# --- sample ---------------------------------------------------------------------------------------------------


def test_sample_missing_checkpoint(here, capsys):
    line = fails(capsys, "sample", "--checkpoint", "no_such.pt", "--n", "4", "--out", "grid.png", "--device", "cpu")
    assert line.startswith("error: no_such.pt: no such checkpoint file or run directory; check the path"), line


def test_sample_a_vocoder_generator_names_what_it_holds(here, capsys):
    """A HiFi-GAN generator file given to `sample`: refused by what it holds, and which commands take it."""
    line = fails(capsys, "sample", "--checkpoint", GENERATOR, "--n", "4", "--out", "grid.png", "--device", "cpu")
    assert line.startswith(f"error: {GENERATOR}: holds a 'hifigan' model, not a"), line
    assert "(dcgan)" in line and "sample takes image generators" in line, line
    assert line.endswith("A 'hifigan' file is for: vocode, resynth, evaluate, export."), line


@pytest.mark.parametrize("out", ["a_folder", "shots.png"])
def test_sample_out_that_is_a_folder(here, capsys, out):
    """Refused before the checkpoint is read (a random-bytes file would fail later, with another message)."""
    (here / "shots.png").mkdir()
    random_bytes(here / "noise.pt")
    line = fails(capsys, "sample", "--checkpoint", "noise.pt", "--n", "4", "--out", out, "--device", "cpu")
    assert line.startswith(f"error: {out}: "), line
    assert "not a checkpoint" not in line, line
    if out == "shots.png":
        assert line == "error: shots.png: is a folder; give a file name", line


# --- report ---------------------------------------------------------------------------------------------------


@pytest.fixture
def run_dir(here: Path) -> Path:
    run = here / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: hifigan\n", encoding="utf-8")
    return run


def test_report_missing_run_dir(here, capsys):
    line = fails(capsys, "report", "no_run")
    assert line.startswith("error: no_run: run directory not found"), line


def test_report_folder_that_is_a_file(run_dir, capsys):
    (run_dir / "report").write_text("in the way\n")
    line = fails(capsys, "report", "run")
    assert line.startswith("error: run/report: the report folder (RUN_DIR/report; --out DIR writes elsewhere) is a "
                           "file"), line


def test_report_out_inside_a_file(run_dir, capsys):
    line = fails(capsys, "report", "run", "--out", "a_file/page")
    assert line.startswith("error: a_file/page: --out would be made inside a_file"), line


def test_report_bad_percentile(run_dir, capsys):
    line = fails(capsys, "report", "run", "--percentile", "10")
    assert line == "error: --percentile must be in (50, 100], got 10.0", line


# --- operating-system errors, bugs, --debug ---------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "expected"), [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "run/report/index.html"),
     "error: run/report/index.html: no space left on the device; free some space or write somewhere else"),
    (OSError(errno.EROFS, os.strerror(errno.EROFS), "run/report"),
     "error: run/report: on a read-only file system; choose a writable location"),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "run/report"),
     "error: run/report: permission denied; check its permissions (and its folder's), or choose another path"),
    # os.replace(temporary, target): the target is the path the user chose.
    (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "run/.index.html.x.tmp", None, "run/report/index.html"),
     "error: run/report/index.html: is a folder where a file is needed; give a file path, or move the folder"),
], ids=["ENOSPC", "EROFS", "EACCES", "EISDIR-rename"])
def test_os_errors_while_writing_are_one_line(run_dir, capsys, monkeypatch, exc, expected):
    import gankit.report.build

    def build_report(*args, **kwargs):
        raise exc

    monkeypatch.setattr(gankit.report.build, "build_report", build_report)
    assert fails(capsys, "report", "run") == expected


def test_a_bug_still_shows_its_traceback(run_dir, monkeypatch):
    import gankit.report.build

    def build_report(*args, **kwargs):
        return {}["a bug"]

    monkeypatch.setattr(gankit.report.build, "build_report", build_report)
    with pytest.raises(KeyError, match="a bug"):
        main(["report", "run"])


def test_debug_shows_the_traceback_of_a_user_error(here, capsys):
    before = snapshot(here)
    assert main(["--debug", *train_args("device=tpu7")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):"), err
    assert "gankit.errors.ConfigError: device='tpu7'" in err
    assert err.strip().splitlines()[-1] == "error: device='tpu7': not a device; use cpu, cuda, cuda:N or auto"
    assert_unchanged(before, snapshot(here))


def gankit_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def test_the_real_process_prints_one_line_and_with_debug_the_traceback(here):
    Path("latin1.yaml").write_bytes(b"base: hifigan_tiny\n# " + NOT_UTF8 + b"\n")
    before = snapshot(here)
    done = gankit_process("train", "latin1.yaml", "--run-dir", "run", cwd=here)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        "error: latin1.yaml: not valid UTF-8 text (byte 0xe9 at offset 24); re-save it as UTF-8"], done.stderr
    debug = gankit_process("--debug", "train", "latin1.yaml", "--run-dir", "run", cwd=here)
    assert debug.returncode == 2, debug.stderr[-2000:]
    assert "Traceback (most recent call last):" in debug.stderr and "UnicodeDecodeError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == done.stderr.strip()
    assert_unchanged(before, snapshot(here))
