"""`gankit vocode`, `resynth` and `export` as users run them: separate processes, real files, exit codes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.compat.hifigan_original import read_original_generator
from gankit.infer import Vocoder, load_vocoder
from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig
from tests.support.corpus import voiced_clip
from tests.support.original_hifigan import original_inference_e2e
from tests.support.vocoder_files import ln_mel, save_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

REPO = Path(__file__).resolve().parents[1]
HOP = 256
# Modules `gankit vocode` must not import: each costs 0.3-3 s of start-up and vocoding given mels needs none.
HEAVY = ("librosa", "numba", "matplotlib", "tensorboard", "scipy", "omegaconf", "gankit.tasks", "gankit.engine.trainer",
         # another system's inference code (infer/registry.py dispatches by task name, importing only on demand)
         "gankit.infer.images", "gankit.models.dcgan", "gankit.models.inception_fid", "PIL")


def gankit(*args: str | Path, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # One thread: on a shared 2-core machine, OpenMP workers spinning against other jobs cost 10-50×.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "gankit", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "generator_00000005.pt"
    save_generator(path, {"preset": "hifigan"})
    return path


def test_vocode_writes_16bit_wavs_and_imports_little(generator_file, tmp_path):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "two_d.npy", ln_mel(21, 1))
    np.save(mels / "three_d.npy", ln_mel(13, 2)[None])
    out = tmp_path / "out"
    done = gankit("vocode", "--checkpoint", generator_file, mels, "--out-dir", out, "--verbose",
                  python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    for name, frames in (("two_d", 21), ("three_d", 13)):
        info = sf.info(out / f"{name}.wav")
        assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_16", 22050, 1, frames * HOP)
        audio, _ = sf.read(out / f"{name}.wav", dtype="int16")
        assert np.abs(audio.astype(int)).max() > 100  # not silence
    assert "vocoded 2 files" in done.stdout and "× real time" in done.stdout
    assert "two_d.npy → " in done.stdout  # --verbose: a line per file with its own speed
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "torch" in imported  # the check itself works
    heavy = sorted(m for m in imported if m.startswith(HEAVY))
    assert not heavy, f"gankit vocode imported {heavy[:8]}"


def test_another_systems_file_is_refused_by_name(generator_file, tmp_path):
    other = torch.load(generator_file, weights_only=True)
    other["task"] = "dcgan"
    torch.save(other, tmp_path / "generator_00000001.pt")
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "a.npy", ln_mel(8, 0))
    done = gankit("vocode", "--checkpoint", tmp_path / "generator_00000001.pt", mels, "--out-dir", tmp_path / "out")
    assert done.returncode == 2 and "holds a 'dcgan' model" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "a.wav").exists()


def test_the_registry_names_what_a_file_holds_and_which_commands_take_it(monkeypatch):
    from gankit.errors import CheckpointError
    from gankit.infer import registry

    monkeypatch.setitem(registry.TASKS, "toy_images", registry.InferenceKind("image", "gankit.no_such", "sample"))
    with pytest.raises(CheckpointError, match=r"holds a 'toy_images' model, not a vocoder \(hifigan, melgan\); "
                                              r"vocode takes vocoders\. A 'toy_images' file is for: sample"):
        registry.require_kind("toy_images", "vocoder", Path("g.pt"), "vocode takes vocoders")
    with pytest.raises(CheckpointError, match="does not know"):
        registry.require_kind("nobody", "vocoder", Path("g.pt"), "vocode takes vocoders")
    assert registry.require_kind("melgan", "vocoder", Path("g.pt"), "-").module == "gankit.infer.vocoder"
    assert registry.inference_module("hifigan").__name__ == "gankit.infer.vocoder"


def test_bad_mel_exits_2_with_one_line_error(generator_file, tmp_path):
    bad = tmp_path / "vocos_mel.npy"
    np.save(bad, np.zeros((100, 30), np.float32))
    done = gankit("vocode", "--checkpoint", generator_file, bad, "--out-dir", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: has 100 mel bands"), done.stderr
    assert "expects 80 bands" in lines[0]
    assert not (tmp_path / "out" / "vocos_mel.wav").exists()


def test_corrupt_checkpoint_exits_2_with_one_line_error(generator_file, tmp_path):
    corrupt = tmp_path / "generator_00000009.pt"
    corrupt.write_bytes(generator_file.read_bytes()[:3000])
    np.save(tmp_path / "m.npy", ln_mel(5, 0))
    done = gankit("vocode", "--checkpoint", corrupt, tmp_path / "m.npy", "--out-dir", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {corrupt}: not a readable checkpoint"), done.stderr


def test_resynth_resamples_and_says_so(generator_file, tmp_path):
    wav = tmp_path / "speech16k.wav"
    clip = voiced_clip(0.7, 16000, 120.0, seed=2)
    sf.write(wav, clip, 16000, subtype="PCM_16")
    done = gankit("resynth", "--checkpoint", generator_file, wav, "--out-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "16000 Hz" in done.stderr and "resampling it to the model's 22050 Hz" in done.stderr
    assert "resynthesised 1 file" in done.stdout and "× real time" in done.stdout
    info = sf.info(tmp_path / "out" / "speech16k.wav")
    resampled = math.ceil(len(clip) * 22050 / 16000)  # librosa.resample's output length
    frames = build_frontend({"preset": "hifigan"}).num_frames(resampled)
    assert (info.samplerate, info.subtype, info.frames) == (22050, "PCM_16", frames * HOP)


@pytest.mark.slow  # the slow step: keeps the default suite well inside its 8-minute budget
def test_export_to_original_round_trips(generator_file, tmp_path):
    out = tmp_path / "original"
    done = gankit("export", "--checkpoint", generator_file, "--to-original", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "g_00000005").is_file() and (out / "config.json").is_file()

    read = read_original_generator(out / "g_00000005")
    generator = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(read.generator_config))
    generator.load_state_dict(read.state_dict, strict=True)
    exported = Vocoder(generator, read.frontend, "hifigan")
    source = load_vocoder(generator_file)
    mel = ln_mel(24, 3)
    torch.testing.assert_close(exported(mel), source(mel), atol=0, rtol=0)

    # and the original inference_e2e.py loads it and writes the same audio (within its int16 truncation)
    np.save(tmp_path / "utt.npy", mel[None])
    theirs = original_inference_e2e(out / "g_00000005", tmp_path / "utt.npy")
    ours = np.round(np.clip(source(mel).numpy(), -1, 1) * 32767).astype(int)
    assert np.abs(theirs.astype(int)).max() > 100 and np.abs(ours - theirs).max() <= 2


def test_export_refuses_another_mel_preset(tmp_path, capsys):
    path = tmp_path / "generator_00000001.pt"
    save_generator(path, {"preset": "melgan"})
    assert main(["export", "--checkpoint", str(path), "--to-original", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: trained on mel preset 'melgan'")
    assert not (tmp_path / "out").exists()
