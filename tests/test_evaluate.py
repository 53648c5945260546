"""`gankit evaluate`: the three DATA forms, the JSON and the table, options, one-line errors, and scores that
rank a perfect resynthesis above Griffin-Lim above an untrained generator on a real recording."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from torch import Tensor, nn

from gankit.audio.io import read_audio
from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.infer import Vocoder, load_vocoder
from gankit.infer.evaluation import GRIFFIN_LIM, MODEL, Reference, evaluate_vocoder
from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig
from gankit.tasks.vocoder import vocoder_inference_file
from tests.support.corpus import voiced_clip, write_corpus

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

REPO = Path(__file__).resolve().parents[1]
FESTVOX_WAV = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav")
SR = 22050
# What each --measures name puts in a row (gankit.metrics.summary), and which direction is better.
KEYS = {"mel_l1": ["mel_l1"], "mrstft": ["mrstft_sc", "mrstft_mag", "mrstft_total"], "pesq": ["pesq_wb"],
        "stoi": ["stoi"], "mcd": ["mcd_db"], "f0": ["f0_rmse_cents", "vuv_error"]}
ALL_KEYS = [k for keys in KEYS.values() for k in keys]
HIGHER_IS_BETTER = {"pesq_wb", "stoi"}
T_975_1DOF = 12.706204736174707  # Student t quantile 0.975 with 1 degree of freedom (two files)


def save_random_generator(path: Path, sample_rate: int) -> Path:
    """An untrained tiny HiFi-GAN (V1's layout at 1/16 width) in gankit's generator-file format."""
    torch.manual_seed(0)
    generator = HifiGanGenerator(HifiGanGeneratorConfig.from_dict({"upsample_initial_channel": 32}))
    frontend = build_frontend({"preset": "hifigan", "sample_rate": sample_rate})
    torch.save(vocoder_inference_file("hifigan", generator.cfg.to_dict(), frontend.to_config(),
                                      generator.state_dict(), 7), path)
    return path


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_generator(tmp_path_factory.mktemp("ckpt") / "generator_00000007.pt", SR)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`gankit prepare`'s layout with two short val utterances (utt_001, utt_002)."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), n_train=1, n_val=2, seconds=(0.7, 1.0))


def evaluate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_lines(out: str) -> dict[str, str]:
    """The terminal table's rows by measure key (the first word of a row)."""
    return {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in ALL_KEYS}


# ---- the three DATA forms ---------------------------------------------------------------------------------
def test_prepared_corpus_all_measures_json_and_table(generator_file: Path, corpus: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "results" / "eval.json"
    code, out, err = evaluate(capsys, "--checkpoint", generator_file, "--data", corpus, "--out", out_json)
    assert code == 0, err
    assert "evaluate: 100%" in err  # the progress bar ran to the end
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["sample_rate"] == SR and data["step"] == 7 and data["baseline"] == GRIFFIN_LIM
    assert data["measures"] == list(KEYS)
    assert set(data["systems"]) == {MODEL, GRIFFIN_LIM}
    val_ids = [line.split("|")[0] for line in (corpus / "val.txt").read_text().splitlines()]
    for name, system in data["systems"].items():
        assert [f["id"] for f in system["files"]] == val_ids, name
        assert system["skipped"] == []
        assert list(system["summary"]) == ALL_KEYS
        for key, summary in system["summary"].items():
            values = [f[key] for f in system["files"] if f[key] is not None]
            unscored = [f["id"] for f in system["files"] if key in f["unscored"]]
            assert summary["n"] == len(values) == len(val_ids) - len(unscored), (name, key)
            if summary["n"] == 2:  # the mean of the per-file values and its 95% Student-t interval
                half = T_975_1DOF * np.std(values, ddof=1) / math.sqrt(2)
                assert summary["mean"] == pytest.approx(np.mean(values))
                assert summary["half_width"] == pytest.approx(half, rel=1e-9, abs=1e-12)
                assert summary["low"] == pytest.approx(summary["mean"] - half)
                assert summary["high"] == pytest.approx(summary["mean"] + half)
    # The resynthesised mel's error is the front-end's: Griffin-Lim inverts it, a random generator does not.
    model, gl = (data["systems"][s]["summary"] for s in (MODEL, GRIFFIN_LIM))
    assert gl["mel_l1"]["mean"] < model["mel_l1"]["mean"]
    rows = table_lines(out)
    assert set(rows) == set(ALL_KEYS)
    header = next(line for line in out.splitlines() if line.startswith("measure"))
    assert header.split() == ["measure", MODEL, GRIFFIN_LIM]
    assert "↑" in rows["pesq_wb"] and "↑" in rows["stoi"] and "↓" in rows["mcd_db"] and "↓" in rows["mel_l1"]
    assert f"{model['mel_l1']['mean']:.3f} ± {model['mel_l1']['half_width']:.3f} (n=2)" in rows["mel_l1"]
    assert f"{gl['mel_l1']['mean']:.3f}" in rows["mel_l1"]
    assert f"results: {out_json}" in out


def test_file_list_with_wav_dir_limit_baseline_none_and_measure_subset(
    generator_file: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filelist = tmp_path / "list.txt"
    filelist.write_text("utt_002|second\nutt_000|first\n", encoding="utf-8")
    out_json = tmp_path / "eval.json"
    code, out, err = evaluate(capsys, "--checkpoint", generator_file, "--data", filelist, "--wav-dir",
                              corpus / "wavs", "--baseline", "none", "--measures", "mel_l1", "--limit", "1",
                              "--out", out_json)
    assert code == 0, err
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert list(data["systems"]) == [MODEL] and data["baseline"] is None
    files = data["systems"][MODEL]["files"]
    assert [f["id"] for f in files] == ["utt_002"]  # the list's order, cut to --limit
    assert set(files[0]) == {"id", "mel_l1", "unscored"}
    assert list(data["systems"][MODEL]["summary"]) == ["mel_l1"]
    assert set(table_lines(out)) == {"mel_l1"}
    assert GRIFFIN_LIM not in out
    # The score is the one the library computes for that file from the same vocoder.
    wave, _ = read_audio(corpus / "wavs" / "utt_002.wav", target_sr=SR)
    vocoder = load_vocoder(generator_file)
    from gankit.metrics import mel_l1

    expected = mel_l1(wave, vocoder.resynthesize(wave).numpy(), vocoder.frontend.with_fmax(None))
    assert files[0]["mel_l1"] == pytest.approx(expected, rel=1e-5)


def test_folder_of_wavs_recursive_ids_and_too_short_file_skipped(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audio"
    (folder / "spk1").mkdir(parents=True)
    soundfile.write(folder / "spk1" / "a.wav", voiced_clip(0.6, SR, 120.0, seed=3), SR, subtype="PCM_16")
    soundfile.write(folder / "b.flac", voiced_clip(0.5, 16000, 150.0, seed=4), 16000)  # resampled to 22.05 kHz
    soundfile.write(folder / "c_short.wav", voiced_clip(0.03, SR, 120.0, seed=5), SR, subtype="PCM_16")
    (folder / "notes.txt").write_text("not audio")
    out_json = tmp_path / "eval.json"
    code, out, err = evaluate(capsys, "--checkpoint", generator_file, "--data", folder, "--measures",
                              "mrstft,mel_l1", "--out", out_json)
    assert code == 0, err
    data = json.loads(out_json.read_text(encoding="utf-8"))
    for name in (MODEL, GRIFFIN_LIM):
        system = data["systems"][name]
        assert [f["id"] for f in system["files"]] == ["b", "spk1/a"]
        assert list(system["summary"]) == ["mrstft_sc", "mrstft_mag", "mrstft_total", "mel_l1"]
        # 0.03 s is shorter than the 2048-point STFT needs: reported, and left out of both systems alike.
        assert [s["id"] for s in system["skipped"]] == ["c_short"]
        assert "too few" in system["skipped"][0]["reason"]
    assert "skipped c_short:" in out and "2 utterances" in out and "(1 skipped)" in out


# ---- errors a user sees -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing", (), "no such corpus folder"),
        ("empty", (), "no reference utterances found"),
        ("ok", ("--measures", "mel_l1,pesqq"), "unknown measure(s) pesqq"),
        ("ok", ("--measures", " , "), "no measure chosen"),
        ("ok", ("--limit", "0"), "limit must be at least 1"),
    ],
)
def test_bad_input_is_one_line_error_exit_2(case: str, extra: tuple[str, ...], message: str, corpus: Path,
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {"missing": tmp_path / "nowhere", "empty": tmp_path, "ok": corpus}[case]
    # The checkpoint does not exist either: options and data are checked before it is loaded.
    code, out, err = evaluate(capsys, "--checkpoint", tmp_path / "absent.pt", "--data", data, *extra)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and out == ""


def test_process_exit_code_and_message(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "gankit", "evaluate", "--checkpoint", "x.pt", "--data",
                           str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


# ---- scores that mean something ---------------------------------------------------------------------------
class Playback(nn.Module):
    """A "generator" that outputs the reference itself (its first frames × hop samples): a perfect vocoder."""

    def __init__(self, wave: np.ndarray, hop: int) -> None:
        super().__init__()
        self.register_buffer("wave", torch.from_numpy(wave))
        self.hop = hop
        self.anchor = nn.Parameter(torch.zeros(()))  # Vocoder finds its device from a parameter

    def forward(self, mel: Tensor) -> Tensor:
        return self.wave[: mel.shape[-1] * self.hop].view(1, 1, -1) + self.anchor


@pytest.fixture(scope="module")
def festvox_excerpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.8 s of a real Russian recording (festvox-ru, 16 kHz), cut so the test stays short."""
    source = FESTVOX_WAV / "ru_0045.wav"
    if not source.exists():
        pytest.skip(f"festvox-ru recording {source} is not installed (Debian package festvox-ru)")
    wave, rate = soundfile.read(source, dtype="float32")
    path = tmp_path_factory.mktemp("festvox") / "ru_0045_excerpt.wav"
    soundfile.write(path, wave[int(0.5 * rate) : int(2.3 * rate)], rate, subtype="PCM_16")
    return path


def test_perfect_beats_griffin_lim_beats_untrained_generator_on_real_speech(festvox_excerpt: Path,
                                                                          tmp_path: Path) -> None:
    rate = soundfile.info(festvox_excerpt).samplerate
    random_vocoder = load_vocoder(save_random_generator(tmp_path / "generator.pt", rate))
    reference, _ = read_audio(festvox_excerpt, target_sr=rate)
    perfect = Vocoder(Playback(reference, random_vocoder.hop_length), random_vocoder.frontend.to_config())
    refs = [Reference("ru_0045", festvox_excerpt)]
    scored = evaluate_vocoder(random_vocoder, refs, progress=False)  # every measure, Griffin-Lim beside it
    best = evaluate_vocoder(perfect, refs, baseline=None, progress=False)[MODEL].rows[0]
    untrained, gl = scored[MODEL].rows[0], scored[GRIFFIN_LIM].rows[0]

    # Griffin-Lim from the true mel keeps speech recognisable (≈2.0 here); untrained output is noise (≈1.0).
    assert gl["pesq_wb"] > max(1.5, untrained["pesq_wb"] + 0.5), (gl, untrained)
    for key in [k for k in ALL_KEYS if k != "f0_rmse_cents"]:
        sign = 1 if key in HIGHER_IS_BETTER else -1
        assert sign * best[key] > sign * gl[key] > sign * untrained[key], (key, best[key], gl[key], untrained[key])
    # Pitch: a random generator rarely shares a voiced frame with the speech, so only its V/UV error is ranked.
    assert best["f0_rmse_cents"] == best["vuv_error"] == 0.0 < gl["f0_rmse_cents"]
    assert best["mel_l1"] == best["mrstft_total"] == best["mcd_db"] == 0.0
    assert best["pesq_wb"] > 4.5 and best["stoi"] > 0.999
    summary = scored[GRIFFIN_LIM].summary()  # the API's summary of one file is that file's scores
    assert summary["pesq_wb"].mean == gl["pesq_wb"] and summary["pesq_wb"].n == 1 and list(summary) == ALL_KEYS
