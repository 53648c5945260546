"""Corpus mel statistics for `parallel_wavegan`: `gankit prepare --mel-stats` computes them over the training
files only, training puts them into the front-end its checkpoints store, and inference normalises with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gankit.audio.io import read_audio
from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.commands.prepare import stats_frontend_config
from gankit.config import config_for_run
from gankit.data.corpus_stats import STATS_FILE, read_statistics, with_corpus_statistics, write_corpus_statistics
from gankit.data.filelist import read_filelist
from gankit.data.prepare import prepare_corpus
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import ConfigError, DataError
from gankit.infer import load_vocoder
from tests.support.corpus import write_corpus
from tests.support.training import FAST, tiny_config, train_tiny

# hifigan_v1's frontend section sets fmin 0 / fmax 8000; these make it the preset's own 80–7600.
PWG = ("frontend.preset=parallel_wavegan", "frontend.fmin=80", "frontend.fmax=7600")


def numpy_statistics(data_dir: Path, ids: list[str], cfg: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and population std per band over every frame of `ids`, all frames in one array."""
    frontend = build_frontend(cfg)
    mels = []
    for utt in ids:
        audio, _ = read_audio(data_dir / "wavs" / f"{utt}.wav")
        mels.append(frontend.log_mel(torch.from_numpy(peak_normalise(audio))).double().numpy())
    frames = np.concatenate(mels, axis=1)
    return frames.mean(axis=1), frames.std(axis=1), frames.shape[1]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A `folder`-format corpus of 8 clips at 22.05 kHz (6 train, 2 val after prepare)."""
    src = write_corpus(tmp_path / "src", n_train=8, n_val=0)
    (src / "train.txt").unlink()
    (src / "val.txt").unlink()
    return src


def test_prepare_writes_statistics_of_the_training_files_only(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = prepare_corpus(source, out, "folder", val_size=2, workers=1, progress=False, log=lambda _: None,
                            mel_stats=stats_frontend_config("parallel_wavegan"))
    train_ids = [e.id for e in read_filelist(out / "train.txt")]
    val_ids = [e.id for e in read_filelist(out / "val.txt")]
    assert len(train_ids) == 6 and len(val_ids) == 2 and report.mel_stats == out / STATS_FILE
    assert "mel_stats.json" in report.summary()

    saved = json.loads((out / STATS_FILE).read_text())
    assert saved["preset"] == "parallel_wavegan" and saved["files"] == 6
    assert saved["frontend"] == {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024,
                                 "n_mels": 80, "fmin": 80, "fmax": 7600}
    cfg = {"preset": "parallel_wavegan", **saved["frontend"]}
    mean, std, frames = numpy_statistics(out, train_ids, cfg)
    assert saved["frames"] == frames
    np.testing.assert_allclose(saved["mean"], mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(saved["scale"], std, rtol=1e-9, atol=1e-9)
    with_val, _, _ = numpy_statistics(out, train_ids + val_ids, cfg)
    assert np.abs(with_val - mean).max() > 1e-3  # the validation files would have moved them

    # A rerun without --mel-stats removes the file: it would describe another run's files.
    again = prepare_corpus(source, out, "folder", val_size=2, workers=1, progress=False, log=lambda _: None)
    assert not (out / STATS_FILE).exists() and "removed" in again.summary()


def test_prepare_refuses_a_preset_without_statistics_or_another_rate(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="hifigan does not normalise"):
        prepare_corpus(source, out, "folder", workers=1, progress=False,
                       mel_stats=stats_frontend_config("hifigan_tiny"))
    with pytest.raises(DataError, match="16000 Hz but OUT is prepared at 22050 Hz"):
        prepare_corpus(source, out, "folder", workers=1, progress=False, log=lambda _: None,
                       mel_stats={"preset": "parallel_wavegan", "sample_rate": 16000})
    assert not out.exists()  # both refused before converting anything
    with pytest.raises(ConfigError, match="not a mel preset"):
        stats_frontend_config("no_such_thing")


def test_command_takes_a_config_frontend(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pwg.yaml"
    config.write_text(yaml.safe_dump({"base": "hifigan_tiny", "frontend": {"preset": "parallel_wavegan", "fmin": 0}}))
    out = tmp_path / "out"
    code = main(["prepare", str(source), str(out), "--format", "folder", "--val-size", "2", "--workers", "1",
                 "--no-progress", "--mel-stats", str(config)])
    assert code == 0
    assert f"wrote {out / STATS_FILE}" in capsys.readouterr().out
    assert read_statistics(out / STATS_FILE).frontend["fmin"] == 0  # the config's, over the preset's 80
    assert read_statistics(out / STATS_FILE).frontend["fmax"] == 8000  # hifigan_v1's section


def test_training_stores_the_statistics_and_vocoding_normalises(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = Path(shutil.copytree(tiny_corpus, tmp_path / "corpus"))
    stats = write_corpus_statistics(corpus, {"preset": "parallel_wavegan"}, progress=False)
    run = tmp_path / "run"
    assert train_tiny(corpus, run, *PWG, "train.max_steps=1") == 0

    saved_config = yaml.safe_load((run / "config.yaml").read_text())
    assert saved_config["frontend"]["mean"] == stats.mean and saved_config["frontend"]["scale"] == stats.scale
    manifest = json.loads((run / "checkpoints" / "manifest.json").read_text())
    generator = torch.load(run / "checkpoints" / manifest["latest_generator"], weights_only=True)
    assert generator["frontend"]["mean"] == stats.mean and generator["frontend"]["scale"] == stats.scale

    vocoder = load_vocoder(run)
    assert vocoder.frontend.mean == tuple(stats.mean) and vocoder.frontend.scale == tuple(stats.scale)
    audio, _ = read_audio(corpus / "wavs" / "utt_000.wav")
    wave = torch.from_numpy(audio)
    expected = (vocoder.frontend.log_mel(wave) - torch.tensor(stats.mean)[:, None]) / torch.tensor(stats.scale)[:, None]
    torch.testing.assert_close(vocoder.frontend(wave), expected)
    assert vocoder.resynthesize(wave).shape[-1] > 0

    # Resuming through `gankit train` keeps the saved statistics and reads no file: configs compare equal.
    (corpus / STATS_FILE).unlink()
    overrides = [f"data.dir={corpus}", "device=cpu", *FAST, *PWG, "train.max_steps=2"]
    _, resumed, changed = config_for_run("hifigan_tiny", overrides, run / "config.yaml")
    assert changed == ["train.max_steps"] and resumed["frontend"]["mean"] == stats.mean


def test_missing_statistics_say_how_to_make_them(tiny_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        train_tiny(tiny_corpus, tmp_path / "run", *PWG, "train.max_steps=1")
    message = str(caught.value)
    assert f"{tiny_corpus / STATS_FILE} not found" in message and "--mel-stats parallel_wavegan" in message
    assert "\n" not in message and not (tmp_path / "run" / "checkpoints").exists()
    # Statistics given in the config need no file; a preset without statistics never looks for one.
    given = tiny_config(tiny_corpus, *PWG)
    given["frontend"] = {**given["frontend"], "mean": [0.0] * 80, "scale": [1.0] * 80}
    assert with_corpus_statistics(given) == given
    plain = tiny_config(tiny_corpus)
    assert with_corpus_statistics(plain) == plain


def test_statistics_of_another_frontend_are_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    corpus = Path(shutil.copytree(tiny_corpus, tmp_path / "corpus"))
    write_corpus_statistics(corpus, {"preset": "parallel_wavegan"}, progress=False)  # fmin 80, fmax 7600
    config = tiny_config(corpus, "frontend.preset=parallel_wavegan")  # hifigan_v1's fmin 0, fmax 8000
    with pytest.raises(ConfigError) as caught:
        with_corpus_statistics(config)
    message = str(caught.value)
    assert "fmin: 80 there, 0 in the config" in message and "fmax: 7600 there, 8000 in the config" in message
    assert str(corpus / STATS_FILE) in message and "--mel-stats" in message
