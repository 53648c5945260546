"""What makes `gankit evaluate` faster changes no result: pyin's sparse Viterbi pass decodes the same states as
librosa's dense one (real speech, noise, ties), a reference's F0 is tracked once and handed out as copies, and
scoring in worker processes gives the same rows as scoring here."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from gankit.infer import load_vocoder
from gankit.infer.evaluation import GRIFFIN_LIM, MODEL, evaluate_vocoder, find_references
from gankit.metrics import pitch
from gankit.metrics.viterbi import faster_pyin, sparse_viterbi
from tests.support.corpus import write_corpus
from tests.test_evaluate import save_random_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

FESTVOX_WAV = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav")
SR = 16000


def _pyin(wave: np.ndarray, sparse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def run() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return librosa.pyin(wave, fmin=50.0, fmax=600.0, sr=SR, frame_length=1024, hop_length=160)

    if not sparse:
        return run()
    with faster_pyin():
        return run()


def _speech() -> np.ndarray:
    source = FESTVOX_WAV / "ru_0045.wav"
    if not source.exists():
        pytest.skip(f"festvox-ru recording {source} is not installed (Debian package festvox-ru)")
    wave, rate = soundfile.read(source, dtype="float32")
    assert rate == SR
    return wave[: 3 * SR]


@pytest.mark.parametrize("kind", ["speech", "noisy speech", "noise"])
def test_faster_pyin_tracks_exactly_what_librosa_tracks(kind: str) -> None:
    rng = np.random.default_rng(3)
    if kind == "noise":
        wave = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    else:
        wave = _speech()
        if kind == "noisy speech":
            wave = (wave + 0.05 * np.abs(wave).max() * rng.standard_normal(wave.size)).astype(np.float32)
    dense = _pyin(wave, sparse=False)
    fast = _pyin(wave, sparse=True)
    assert librosa.sequence.viterbi.__module__ == "librosa.sequence"  # restored after the block
    np.testing.assert_array_equal(fast[0], dense[0])  # NaN where unvoiced, in the same places
    np.testing.assert_array_equal(fast[1], dense[1])
    np.testing.assert_array_equal(fast[2], dense[2])
    if kind != "noise":
        assert 0.2 < dense[1].mean() < 0.95  # speech: both voiced and unvoiced frames were decided


def test_sparse_viterbi_equals_librosa_with_ties_zero_rows_and_batches() -> None:
    rng = np.random.default_rng(0)
    states, frames = 40, 60
    transition = librosa.sequence.transition_local(states, 5, window="triangle", wrap=False)
    prob = rng.random((2, states, frames))
    prob[:, :, 10] = 0.5  # every state tied at one frame
    prob[0, 7:, 20:30] = 0.0  # most states impossible for a while: the zero-transition candidate must be exact
    prob[1] = np.round(prob[1], 1)  # many ties everywhere
    np.testing.assert_array_equal(sparse_viterbi(prob, transition), librosa.sequence.viterbi(prob, transition))
    p_init = np.zeros(states)
    p_init[3] = 1.0
    np.testing.assert_array_equal(sparse_viterbi(prob[0], transition, p_init=p_init),
                                  librosa.sequence.viterbi(prob[0], transition, p_init=p_init))
    with pytest.raises(librosa.ParameterError):
        sparse_viterbi(prob, transition[:-1])


def test_a_reference_is_tracked_once_and_handed_out_as_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_pyin = librosa.pyin

    def counting_pyin(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_pyin(*args, **kwargs)

    monkeypatch.setattr(librosa, "pyin", counting_pyin)
    wave = np.sin(2 * np.pi * 150.0 * np.arange(SR // 2) / SR).astype(np.float32) * 0.5
    first_f0, first_voiced = pitch.f0_track(wave, SR)
    first_f0[:] = -1.0  # a caller writing into its arrays must not change what the next caller gets
    again_f0, again_voiced = pitch.f0_track(wave.copy(), SR)
    assert len(calls) == 1
    assert np.nanmedian(again_f0) == pytest.approx(150.0, rel=0.01)
    np.testing.assert_array_equal(again_voiced, first_voiced)
    pitch.f0_track(wave, SR, fmax=500.0)  # other settings: tracked anew
    shifted = wave.copy()
    shifted[100] += 1e-3  # other content: tracked anew
    pitch.f0_track(shifted, SR)
    assert len(calls) == 3


def test_scoring_in_worker_processes_gives_the_serial_rows(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=1, n_val=3, seconds=(0.6, 0.9), sample_rate=SR)
    vocoder = load_vocoder(save_random_generator(tmp_path / "generator.pt", SR))
    references = find_references(corpus)
    serial = evaluate_vocoder(vocoder, references, workers=1, progress=False)
    pooled = evaluate_vocoder(vocoder, references, workers=2, progress=False, audio_dir=tmp_path / "audio")
    for system in (MODEL, GRIFFIN_LIM):
        assert len(serial[system].rows) == 3
        assert pooled[system].rows == serial[system].rows  # exactly: every measure of every file
        assert pooled[system].reasons == serial[system].reasons
    assert sorted(p.name for p in (tmp_path / "audio" / MODEL).iterdir()) == sorted(
        f"{r.id}.wav" for r in references)


def test_evaluate_workers_and_no_progress_on_the_command_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gankit.cli import main

    corpus = write_corpus(tmp_path / "corpus", n_train=1, n_val=2, seconds=(0.6, 0.8), sample_rate=SR)
    generator = save_random_generator(tmp_path / "generator.pt", SR)
    results = {}
    for workers in ("1", "2"):
        out = tmp_path / f"workers_{workers}.json"
        assert main(["evaluate", "--checkpoint", str(generator), "--data", str(corpus), "--workers", workers,
                     "--no-progress", "--measures", "mel_l1,f0", "--out", str(out)]) == 0
        captured = capsys.readouterr()
        assert "evaluate:" not in captured.err and "it/s" not in captured.err  # no bar drawn
        results[workers] = json.loads(out.read_text())["systems"]
    assert results["1"] == results["2"]
