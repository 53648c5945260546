"""Each mel preset against an independent NumPy (+ librosa filterbank) implementation of its original formula."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from gankit.audio.mel import build_frontend
from gankit.errors import ConfigError


def _speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato, noise bursts and a silent gap: exercises the log floor and every band."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 30)) * 0.2
    wave += 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.5 * t) > 0.6)
    wave[int(0.4 * sr) : int(0.5 * sr)] = 0.0
    return np.clip(wave, -1, 1).astype(np.float64)


def _frames(padded: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    count = 1 + (padded.size - n_fft) // hop
    return np.stack([padded[i * hop : i * hop + n_fft] for i in range(count)])


def _power_spectrum_frames(wave: np.ndarray, n_fft: int, hop: int, win: int, pad: int) -> np.ndarray:
    padded = np.pad(wave, (pad, pad), mode="reflect")
    window = scipy.signal.get_window("hann", win, fftbins=True)  # periodic Hann, as torch.hann_window
    window = np.pad(window, ((n_fft - win) // 2, n_fft - win - (n_fft - win) // 2))
    spec = np.fft.rfft(_frames(padded, n_fft, hop) * window, axis=-1)  # [frames, bins]
    return spec.T  # [bins, frames]


def reference_hifigan(wave: np.ndarray, sr: int, n_fft: int, hop: int, win: int, n_mels: int,
                      fmin: float, fmax: float) -> np.ndarray:
    spec = _power_spectrum_frames(wave, n_fft, hop, win, (n_fft - hop) // 2)
    magnitude = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return np.log(np.clip(basis @ magnitude, 1e-5, None))


@pytest.mark.parametrize(
    ("sr", "n_fft", "hop", "win", "fmax"),
    [(22050, 1024, 256, 1024, 8000), (22050, 1024, 256, 1024, None), (16000, 1024, 256, 1024, 8000),
     (44100, 2048, 512, 2048, None), (24000, 1024, 256, 800, 12000)],
)
def test_hifigan_mel_matches_independent_formula(sr: int, n_fft: int, hop: int, win: int, fmax: float | None) -> None:
    wave = _speechlike(1.3, sr)
    frontend = build_frontend({"preset": "hifigan", "sample_rate": sr, "n_fft": n_fft, "hop_length": hop,
                               "win_length": win, "fmax": fmax})
    # float64 in → float64 out: the formula itself, compared everywhere (also near the log floor).
    ours = frontend(torch.from_numpy(wave)).numpy()
    expected = reference_hifigan(wave, sr, n_fft, hop, win, 80, 0, fmax or sr / 2)
    assert ours.shape == expected.shape == (80, frontend.num_frames(wave.size))
    assert np.abs(ours - expected).max() < 1e-4
    # float32, as training runs it: the same numbers up to float32 STFT rounding, which only shows
    # within a few ×1e-4 of ln(1e-5) where a magnitude of ~1e-5 carries ~1e-8 of rounding.
    ours32 = frontend(torch.from_numpy(wave).float()).numpy()
    assert np.abs(ours32 - expected).max() < 2e-3
    assert np.abs(ours32 - expected).mean() < 1e-5


def test_hifigan_frames_and_output_length_line_up_with_the_hop() -> None:
    frontend = build_frontend({"preset": "hifigan"})
    for n in (8192, 8191, 22050, 5000):
        mel = frontend(torch.zeros(n))
        assert mel.shape[-1] == frontend.num_frames(n) == n // 256
    assert frontend.output_length(32) == 8192
    assert frontend.frames_for_segment(8192) == 32


def test_loss_mel_uses_fmax_for_loss_and_null_means_nyquist() -> None:
    frontend = build_frontend({"preset": "hifigan"})
    assert frontend.fmax == 8000
    assert frontend.with_fmax(None).fmax == 11025
    assert frontend.with_fmax(None) != frontend


def test_filterbank_and_window_are_cached_per_parameters_and_device() -> None:
    a = build_frontend({"preset": "hifigan"})
    b = build_frontend({"preset": "hifigan"})
    assert a.filterbank() is b.filterbank()
    assert a.window() is b.window()
    assert a.with_fmax(None).filterbank() is not a.filterbank()
    assert a.filterbank(dtype=torch.float64) is not a.filterbank()


def test_batched_and_float64_inputs() -> None:
    frontend = build_frontend({"preset": "hifigan"})
    wave = torch.from_numpy(_speechlike(0.5, 22050))
    single = frontend(wave)
    batch = frontend(torch.stack([wave, wave * 0.5]))
    assert single.dtype == torch.float64
    assert torch.allclose(batch[0], single)
    assert batch.shape == (2, *single.shape)


def test_gradients_are_finite_through_silence() -> None:
    frontend = build_frontend({"preset": "hifigan"})
    wave = torch.zeros(4096, requires_grad=True)
    frontend(wave).sum().backward()
    assert torch.isfinite(wave.grad).all()


def test_config_round_trip_and_clear_errors() -> None:
    frontend = build_frontend({"preset": "hifigan", "sample_rate": 16000})
    assert build_frontend(frontend.to_config()) == frontend
    with pytest.raises(ConfigError, match="unknown mel preset"):
        build_frontend({"preset": "nope"})
    with pytest.raises(ConfigError, match="unknown key"):
        build_frontend({"preset": "hifigan", "hop": 256})
    with pytest.raises(ConfigError, match="fmax"):
        build_frontend({"preset": "hifigan", "sample_rate": 16000, "fmax": 9000})


@pytest.mark.parametrize(("sr", "n_fft", "hop"), [(22050, 1024, 256), (16000, 512, 128)])
def test_melgan_preset_matches_audio2mel_formula(sr: int, n_fft: int, hop: int) -> None:
    wave = _speechlike(1.0, sr, seed=1)
    spec = _power_spectrum_frames(wave, n_fft, hop, n_fft, (n_fft - hop) // 2)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=80, fmin=0, fmax=sr / 2)
    expected = np.log10(np.clip(basis @ np.abs(spec), 1e-5, None))
    frontend = build_frontend({"preset": "melgan", "sample_rate": sr, "n_fft": n_fft, "hop_length": hop,
                               "win_length": n_fft})
    ours = frontend(torch.from_numpy(wave)).numpy()
    assert ours.shape == expected.shape == (80, wave.size // hop)  # not centred: exactly one frame per hop
    assert np.abs(ours - expected).max() < 1e-4


@pytest.mark.parametrize(("preset", "floor"), [("hifigan", np.log(1e-5)), ("melgan", -5.0), ("vocos", np.log(1e-7)),
                                               ("parallel_wavegan", -10.0)])
def test_silence_sits_at_each_presets_log_floor(preset: str, floor: float) -> None:
    # gankit vocode's value-range warning tells the log scales apart by these floors. (HiFi-GAN's √1e-9 in the
    # magnitude, summed by a Slaney filter, stays far below its 1e-5 clamp.)
    mel = build_frontend({"preset": preset})(torch.zeros(8192)).numpy()
    assert np.allclose(mel, floor, atol=1e-5)


def test_parallel_wavegan_preset_matches_logmelfilterbank_and_normalises() -> None:
    sr = 22050
    wave = _speechlike(1.0, sr, seed=2)
    # ParallelWaveGAN: librosa.stft(center=True, pad_mode="reflect"), |·|, mel 80–7600 Hz, log10(max(1e-10, ·)).
    spec = _power_spectrum_frames(wave, 1024, 256, 1024, 1024 // 2)
    basis = librosa.filters.mel(sr=sr, n_fft=1024, n_mels=80, fmin=80, fmax=7600)
    expected = np.log10(np.maximum(1e-10, basis @ np.abs(spec)))
    frontend = build_frontend({"preset": "parallel_wavegan"})
    ours = frontend(torch.from_numpy(wave)).numpy()
    assert ours.shape == expected.shape
    assert ours.shape[-1] == frontend.num_frames(wave.size) == wave.size // 256 + 1  # centred: one more frame
    assert np.abs(ours - expected).max() < 1e-4
    mean, scale = expected.mean(axis=1), expected.std(axis=1)
    normalised = frontend.with_statistics(mean.tolist(), scale.tolist())(torch.from_numpy(wave)).numpy()
    assert np.abs(normalised - (expected - mean[:, None]) / scale[:, None]).max() < 1e-4


def _htk_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """torchaudio's melscale_fbanks(mel_scale="htk", norm=None), written out: triangles on the HTK mel scale."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    points = 700.0 * (10 ** (np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    diff = np.diff(points)
    slopes = points[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T  # [n_mels, bins]


def test_vocos_preset_matches_torchaudio_melspectrogram_formula() -> None:
    sr = 24000
    wave = _speechlike(1.0, sr, seed=3)
    spec = _power_spectrum_frames(wave, 1024, 256, 1024, 1024 // 2)
    expected = np.log(np.clip(_htk_filterbank(sr, 1024, 100, 0, sr / 2) @ np.abs(spec), 1e-7, None))
    ours = build_frontend({"preset": "vocos"})(torch.from_numpy(wave)).numpy()
    assert ours.shape == expected.shape == (100, wave.size // 256 + 1)
    assert np.abs(ours - expected).max() < 1e-4
