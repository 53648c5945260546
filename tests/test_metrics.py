"""gankit.metrics: perfect scores for identical waves, monotonic degradation with noise, known pitch and
voicing errors, the definitions against independent formulas, and the Griffin-Lim baseline's alignment."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import scipy.stats
import soundfile
import torch

from gankit.audio.mel import build_frontend
from gankit.metrics import (
    MAX_LENGTH_MISMATCH,
    align_pair,
    evaluate_pair,
    evaluate_pair_with_reasons,
    f0_metrics,
    griffin_lim_from_mel,
    mcd,
    mcd_scored,
    mcep_alpha,
    mel_l1,
    mrstft_distance,
    pesq_wb,
    pesq_wb_scored,
    stoi,
    stoi_scored,
    summarise,
)
from gankit.metrics.cepstral import freqt_matrix

SR = 16000
FESTVOX_WAV = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav")


def syllables(seconds: float, sample_rate: int, seed: int, floor: float = 0.003) -> np.ndarray:
    """Speech-like: voiced syllables (gliding harmonic tone) and noise bursts with sharp onsets at irregular
    times, over a faint background floor as in any recording (PESQ and a log spectrum judge digital
    silence very differently from a room)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 130 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    gate = np.zeros(n)
    pos = int(0.05 * sample_rate)
    while pos < n - int(0.1 * sample_rate):
        on = int(rng.uniform(0.06, 0.2) * sample_rate)
        gate[pos : pos + on] = 1 if rng.random() < 0.7 else 2
        pos += on + int(rng.uniform(0.03, 0.12) * sample_rate)
    wave = np.where(gate == 1, 0.3 * voiced, 0.0) + np.where(gate == 2, 0.15 * rng.standard_normal(n), 0.0)
    wave += floor * np.random.default_rng(seed + 100).standard_normal(n)
    return wave.astype(np.float32)


def harmonic_tone(f0: float, seconds: float, sample_rate: int, vibrato: float = 0.05) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato * np.sin(2 * np.pi * 2 * t))) / sample_rate
    wave = sum(np.sin(k * phase) * 0.8**k for k in range(1, 15))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(wave.size)
    return (wave + noise * math.sqrt(np.mean(wave.astype(np.float64) ** 2) / 10 ** (snr_db / 10))).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return syllables(2.0, SR, seed=0)


@pytest.fixture(scope="module")
def frontend16k():
    return build_frontend({"preset": "hifigan", "sample_rate": SR})


def festvox(name: str) -> np.ndarray:
    path = FESTVOX_WAV / f"{name}.wav"
    if not path.exists():
        pytest.skip(f"festvox-ru recording {path} is not installed (Debian package festvox-ru)")
    wave, sample_rate = soundfile.read(path, dtype="float32")
    assert sample_rate == SR
    return wave


# ---- whole rows -------------------------------------------------------------------------------------
def test_identical_waves_score_perfectly(speech: np.ndarray, frontend16k) -> None:
    row, reasons = evaluate_pair_with_reasons(speech, speech.copy(), SR, frontend16k)
    assert reasons == {}
    assert set(row) == {"mel_l1", "mrstft_sc", "mrstft_mag", "mrstft_total", "pesq_wb", "stoi", "mcd_db",
                        "f0_rmse_cents", "vuv_error"}
    for key in ("mel_l1", "mrstft_sc", "mrstft_mag", "mrstft_total", "mcd_db", "f0_rmse_cents", "vuv_error"):
        assert row[key] == 0.0, key
    assert row["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert row["pesq_wb"] == pytest.approx(4.644, abs=0.01)  # PESQ-WB's ceiling


def test_measures_degrade_monotonically_with_noise(speech: np.ndarray, frontend16k) -> None:
    measures = ("mel_l1", "mrstft", "pesq", "stoi", "mcd")
    rows = [evaluate_pair(speech, add_noise(speech, snr), SR, frontend16k, measures) for snr in (30, 20, 10, 0)]
    for key, falls in [("pesq_wb", True), ("stoi", True), ("mcd_db", False), ("mel_l1", False),
                       ("mrstft_sc", False), ("mrstft_mag", False)]:
        values = [row[key] for row in rows]
        ordered = values == sorted(values, reverse=falls) and len(set(values)) == len(values)
        assert ordered, f"{key} is not strictly {'falling' if falls else 'rising'} with noise: {values}"
    assert rows[0]["pesq_wb"] > 3.5 > 2.0 > rows[1]["pesq_wb"]  # 30 dB SNR is good, 20 dB clearly audible


def test_evaluate_pair_refuses_unknown_measure_and_wrong_rate(speech: np.ndarray, frontend16k) -> None:
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate_pair(speech, speech, SR, frontend16k, ("mel_l1", "fad"))
    with pytest.raises(ValueError, match="22050 Hz"):
        evaluate_pair(speech, speech, SR, build_frontend({"preset": "hifigan"}), ("mel_l1",))
    assert evaluate_pair(speech, speech, SR, None, ("mrstft",))["mrstft_sc"] == 0.0  # no front-end needed


# ---- pairs ----------------------------------------------------------------------------------------
def test_align_pair_trims_to_shorter_and_refuses_unaligned_pairs(speech: np.ndarray) -> None:
    ref, est = align_pair(speech, speech[:-200].astype(np.float64))
    assert ref.size == est.size == speech.size - 200 and est.dtype == np.float32
    with pytest.raises(ValueError, match="not time-aligned"):
        align_pair(speech, speech[: speech.size - MAX_LENGTH_MISMATCH - 1])
    with pytest.raises(ValueError, match="mono"):
        align_pair(np.stack([speech, speech]), speech)
    broken = speech.copy()
    broken[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        align_pair(speech, broken)


# ---- spectral -------------------------------------------------------------------------------------
def test_mel_l1_is_the_frontends_mean_absolute_difference(speech: np.ndarray, frontend16k) -> None:
    noisy = add_noise(speech, 10)[:-100]  # one hop shorter, as a vocoder's output may be
    expected = (frontend16k(torch.from_numpy(speech[:-100])) - frontend16k(torch.from_numpy(noisy))).abs().mean()
    assert mel_l1(speech, noisy, frontend16k) == pytest.approx(float(expected), rel=1e-6)


def test_mrstft_follows_parallel_wavegan_definitions(speech: np.ndarray) -> None:
    noisy = add_noise(speech, 10)
    resolutions = ((512, 128, 512), (1024, 256, 800))

    def magnitude(x: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
        spec = librosa.stft(x.astype(np.float64), n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                            center=True, pad_mode="reflect")
        return np.sqrt(np.maximum(np.abs(spec) ** 2, 1e-7))

    sc, mag = [], []
    for n_fft, hop, win in resolutions:
        s, s_hat = magnitude(speech, n_fft, hop, win), magnitude(noisy, n_fft, hop, win)
        sc.append(np.linalg.norm(s - s_hat) / np.linalg.norm(s))
        mag.append(np.mean(np.abs(np.log(s) - np.log(s_hat))))
    result = mrstft_distance(speech, noisy, SR, resolutions)
    assert result["mrstft_sc"] == pytest.approx(np.mean(sc), rel=1e-5)
    assert result["mrstft_mag"] == pytest.approx(np.mean(mag), rel=1e-5)
    assert result["mrstft_total"] == pytest.approx(result["mrstft_sc"] + result["mrstft_mag"])
    # SC is normalised by the *reference*: swapping the roles changes it.
    assert mrstft_distance(noisy, speech, SR, resolutions)["mrstft_sc"] < result["mrstft_sc"]


# ---- PESQ / STOI ----------------------------------------------------------------------------------
def test_pesq_resamples_other_rates_to_16k() -> None:
    ref = syllables(2.0, 22050, seed=3)
    est = add_noise(ref, 20)
    at_16k = [librosa.resample(x, orig_sr=22050, target_sr=SR, res_type="soxr_hq") for x in (ref, est)]
    assert pesq_wb(ref, est, 22050) == pytest.approx(pesq_wb(*at_16k, SR), abs=1e-6)
    assert pesq_wb(ref, ref, 22050) == pytest.approx(4.644, abs=0.01)


def test_pesq_and_stoi_return_none_with_a_reason(speech: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    silent = np.zeros_like(speech)
    assert pesq_wb(silent, speech, SR) is None
    assert "estimate is digital silence" in (pesq_wb_scored(speech, silent, SR).reason or "")
    short = pesq_wb_scored(speech[:2000], speech[:2000], SR)
    assert short.value is None and "0.25 s" in (short.reason or "")
    assert stoi(speech[:3000], speech[:3000], SR) is None
    assert "0.4 s" in (stoi_scored(speech[:3000], speech[:3000], SR).reason or "")

    import pesq as pesq_package

    def no_utterance(*args: object, **kwargs: object) -> float:
        raise pesq_package.NoUtterancesError(b"No utterances detected")

    monkeypatch.setattr(pesq_package, "pesq", no_utterance)
    result = pesq_wb_scored(speech, speech, SR)
    assert result.value is None and "no utterance" in (result.reason or "")
    row, reasons = evaluate_pair_with_reasons(speech, speech, SR, None, ("pesq",))
    assert row == {"pesq_wb": None} and "no utterance" in reasons["pesq_wb"]


# ---- MCD --------------------------------------------------------------------------------------------
def test_mcep_alpha_values() -> None:
    assert [mcep_alpha(sr) for sr in (16000, 22050, 24000, 44100)] == [0.42, 0.455, 0.466, 0.544]
    assert mcep_alpha(8000) == pytest.approx(0.312)  # the mel-scale fit (pysptk's mcepalpha gives 0.312)
    assert mcep_alpha(48000) == pytest.approx(0.554)


def test_freqt_matrix_warps_the_log_spectrum_exactly() -> None:
    # A smooth log spectrum log|H(ω)| = Σ c_n cos nω must equal Σ c̃_m cos(m·β(ω)), β the all-pass phase.
    rng = np.random.default_rng(0)
    cep = np.zeros(257)
    cep[:15] = rng.standard_normal(15) * np.exp(-np.arange(15) / 4)
    alpha = 0.42
    warped = freqt_matrix(cep.size, 120, alpha) @ cep
    omega = np.linspace(0, np.pi, 300)
    beta = omega + 2 * np.arctan(alpha * np.sin(omega) / (1 - alpha * np.cos(omega)))
    linear = np.cos(np.outer(omega, np.arange(cep.size))) @ cep
    mel = np.cos(np.outer(beta, np.arange(warped.size))) @ warped
    np.testing.assert_allclose(mel, linear, atol=1e-10)
    np.testing.assert_allclose(freqt_matrix(121, 256, -alpha) @ warped, cep, atol=1e-10)  # and back


def test_mcd_ignores_gain_and_reference_silence(speech: np.ndarray) -> None:
    assert mcd(speech, 0.5 * speech, SR) < 0.1  # c0 (energy) is excluded
    pause = 1e-4 * np.random.default_rng(7).standard_normal(SR // 2).astype(np.float32)  # ≈ 65 dB down
    gap = np.concatenate([speech[:SR], pause, speech[SR:]])
    noisy_gap = gap.copy()
    noisy_gap[SR + 600 : SR + SR // 2 - 600] = harmonic_tone(300.0, (SR // 2 - 1200) / SR, SR)  # only in the pause
    assert mcd(gap, noisy_gap, SR) < 0.01  # differences only where the reference is silent
    assert mcd(gap, noisy_gap, SR, silence_db=200.0) > 1.0  # ...which do count when nothing is silent
    result = mcd_scored(np.zeros(SR, np.float32), speech[:SR], SR)
    assert result.value is None and "non-silent" in (result.reason or "")


def test_mcd_is_10_over_ln10_sqrt2_times_the_cepstral_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    """MCD's dB scale on given mel-cepstra: per frame 10/ln10 · sqrt(2 · Σ_{d≥1} Δc_d²), c0 ignored, frames averaged."""
    import gankit.metrics.cepstral as cepstral

    frames, order = 6, 24
    ref_mc = np.random.default_rng(0).standard_normal((frames, order + 1))
    delta = np.zeros_like(ref_mc)
    delta[:, 1:3] = np.outer(np.arange(1, frames + 1), [0.3, 0.4])  # |Δc| = 0.5, 1.0, …, 3.0: mean 1.75
    delta[:, 0] = 5.0  # c0 (energy) differs a lot and must not count
    energy = np.zeros(frames)  # every frame equally loud

    def given_cepstra(wave, sample_rate, order_, alpha):
        assert order_ == order
        return (ref_mc if wave[0] == 0 else ref_mc + delta), energy

    monkeypatch.setattr(cepstral, "mel_cepstrum", given_cepstra)
    reference, estimate = np.zeros(SR, np.float32), np.ones(SR, np.float32)
    expected = 10 / math.log(10) * math.sqrt(2) * 1.75
    assert expected == pytest.approx(10.748, abs=1e-3)
    assert mcd(reference, estimate, SR) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("a", [0.5, -0.4])
def test_mcd_of_a_known_filter_end_to_end(a: float) -> None:
    """Noise and the noise through 1 + a·z⁻¹ (no frequency warping, α = 0): log|1 + a·e^{−jω}| has the cepstrum
    c_n = −(−a)ⁿ/n, so MCD = 10/ln10 · sqrt(2 · Σ_{n=1..24} (aⁿ/n)²) dB (3.177 dB for a = 0.5)."""
    x = 0.1 * np.random.default_rng(0).standard_normal(SR)
    y = scipy.signal.lfilter([1.0, a], [1.0], x)
    expected = 10 / math.log(10) * math.sqrt(2 * sum((a**n / n) ** 2 for n in range(1, 25)))
    assert mcd(x.astype(np.float32), y.astype(np.float32), SR, alpha=0.0) == pytest.approx(expected, rel=2e-3)


# ---- F0 ---------------------------------------------------------------------------------------------
def test_f0_rmse_of_a_100_cent_shift() -> None:
    reference = harmonic_tone(150.0, 1.5, SR)
    shifted = harmonic_tone(150.0 * 2 ** (100 / 1200), 1.5, SR)
    result = f0_metrics(reference, shifted, SR)
    assert result["voiced_both"] == result["frames"] > 100
    assert result["f0_rmse_cents"] == pytest.approx(100.0, abs=10.0)  # pyin's grid is 10 cents
    assert result["vuv_error"] == 0.0


def test_unvoiced_estimate_misses_every_voiced_frame() -> None:
    reference = harmonic_tone(150.0, 2.0, SR)
    reference[: reference.size // 2] = 0.0  # unvoiced first second, voiced second
    reference = (reference + 0.001 * np.random.default_rng(0).standard_normal(reference.size)).astype(np.float32)
    # Digital silence: pyin calls some frames of white noise voiced at random, so noise is no reliable
    # "unvoiced" estimate.
    silent = f0_metrics(reference, np.zeros_like(reference), SR)
    voiced_fraction = silent["voiced_reference"] / silent["frames"]
    assert voiced_fraction == pytest.approx(0.5, abs=0.05)
    assert silent["voiced_estimate"] == 0 and silent["f0_rmse_cents"] is None
    assert silent["vuv_error"] == pytest.approx(voiced_fraction)
    # Devoicing the last half second of the voiced second: a quarter of the frames disagree.
    devoiced = reference.copy()
    devoiced[-SR // 2 :] = 0.0
    partial = f0_metrics(reference, devoiced, SR)
    assert partial["vuv_error"] == pytest.approx(0.25, abs=0.03)
    assert partial["f0_rmse_cents"] < 5.0


# ---- summary ----------------------------------------------------------------------------------------
def test_summarise_matches_scipy_t_interval() -> None:
    values = [3.1, 2.4, 4.0, 3.3, 2.9, 3.8]
    rows = [{"pesq_wb": v, "stoi": None if i == 2 else 0.9 + i / 100} for i, v in enumerate(values)]
    rows.append({"pesq_wb": None})
    summary = summarise(rows)
    low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert summary["pesq_wb"].n == 6
    assert summary["pesq_wb"].mean == pytest.approx(np.mean(values))
    assert (summary["pesq_wb"].low, summary["pesq_wb"].high) == pytest.approx((low, high), rel=1e-12)
    assert summary["stoi"].n == 5  # the None and the missing key are excluded
    single = summarise([{"mcd_db": 4.2}])["mcd_db"]
    assert (single.mean, single.half_width, single.low, single.high, single.n) == (4.2, 0.0, 4.2, 4.2, 1)
    assert summarise([{"stoi": None}])["stoi"].mean is None
    with pytest.raises(ValueError, match="NaN"):
        summarise([{"stoi": float("nan")}])


# ---- Griffin-Lim ------------------------------------------------------------------------------------
def spectrotemporal_lag(reference: np.ndarray, estimate: np.ndarray, hop: int = 16, max_lag: int = 8) -> int:
    """Lag (samples, multiple of `hop`) maximising the cross-correlation of the two log-spectrograms.

    Griffin-Lim recovers the magnitude, not the waveform's phase, so a waveform cross-correlation peaks at
    pitch periods or with flipped sign; the per-band energy envelopes are what must line up."""
    n = min(reference.size, estimate.size)
    a, b = (np.log1p(np.abs(librosa.stft(x[:n], n_fft=256, hop_length=hop))) for x in (reference, estimate))
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    frames = a.shape[1]
    lags = np.arange(-max_lag, max_lag + 1)
    scores = [np.sum(a[:, max(0, -lag) : frames - max(0, lag)] * b[:, max(0, lag) : frames + min(0, lag)])
              for lag in lags]
    return int(lags[int(np.argmax(scores))]) * hop


PRESET_CONFIGS = [
    {"preset": "hifigan", "sample_rate": SR},
    {"preset": "melgan", "sample_rate": SR, "win_length": 800},
    {"preset": "parallel_wavegan", "sample_rate": SR, "mean": [-2.0] * 80, "scale": [1.5] * 80},
    {"preset": "vocos", "sample_rate": SR},
]


@pytest.mark.parametrize("config", PRESET_CONFIGS, ids=lambda c: c["preset"])
def test_griffin_lim_is_time_aligned_and_matches_the_mel(speech: np.ndarray, config: dict) -> None:
    frontend = build_frontend(config)
    mel = frontend(torch.from_numpy(speech))
    wave = griffin_lim_from_mel(mel, frontend, n_iter=32)
    assert wave.dtype == np.float32 and wave.size == frontend.output_length(mel.shape[1])
    assert spectrotemporal_lag(speech, wave) == 0
    late = np.concatenate([np.zeros(48, np.float32), wave[:-48]])
    assert abs(spectrotemporal_lag(speech, late) - 48) <= 16  # the check sees a 3 ms shift
    # The mel of the result is close to the input mel: log base, normalisation and filterbank are undone
    # correctly (a wrong base would be off by a factor of ln 10 everywhere).
    remade = frontend(torch.from_numpy(wave))
    frames = min(remade.shape[1], mel.shape[1])
    error = (remade[:, :frames] - mel[:, :frames]).abs().mean() / mel.std()
    assert error < 0.15


def test_griffin_lim_magnitude_equals_librosa_mel_to_stft(speech: np.ndarray, frontend16k) -> None:
    from gankit.metrics.griffin_lim import mel_magnitude

    mel = mel_magnitude(frontend16k(torch.from_numpy(speech)).numpy(), frontend16k)
    ours = librosa.util.nnls(frontend16k.filterbank().numpy().astype(np.float64), mel)
    theirs = librosa.feature.inverse.mel_to_stft(mel, sr=SR, n_fft=1024, power=1.0, fmin=0, fmax=8000,
                                                 htk=False, norm="slaney")
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())


def test_griffin_lim_on_festvox_ru_scores_as_measured() -> None:
    wave = librosa.resample(festvox("ru_0002"), orig_sr=SR, target_sr=22050, res_type="soxr_hq")
    frontend = build_frontend({"preset": "hifigan"})  # HiFi-GAN's LJSpeech mel at 22.05 kHz
    baseline = griffin_lim_from_mel(frontend(torch.from_numpy(wave)), frontend, n_iter=32)
    assert spectrotemporal_lag(wave, baseline) == 0
    row = evaluate_pair(wave, baseline, 22050, frontend, ("pesq", "stoi", "mcd"))
    assert 2.2 <= row["pesq_wb"] <= 2.8
    assert row["stoi"] > 0.95
    assert 1.0 < row["mcd_db"] < 6.0


def test_importing_metrics_stays_cheap() -> None:
    code = ("import sys, gankit.metrics; heavy = {'librosa', 'pesq', 'pystoi', 'torch', 'scipy'} & set(sys.modules);"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
