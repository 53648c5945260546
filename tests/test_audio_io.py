"""gankit.audio.io: decoding every WAV flavour, one-line errors for bad files, resampling, atomic 16-bit writes."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gankit.audio.io import UnusableAudioError, audio_info, read_audio, resample, write_wav
from gankit.errors import AudioReadError

SR = 16000


def tone(seconds: float = 0.25, freq: float = 440.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def assert_one_line(exc: BaseException, *needles: str) -> None:
    message = str(exc)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# ---- conversions -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 127), ("PCM_16", 1 / 32767), ("PCM_24", 1e-6), ("PCM_32", 1e-8), ("FLOAT", 0.0)],
)
def test_int_and_float_wavs_are_converted_to_float32_mono(tmp_path: Path, subtype: str, tolerance: float) -> None:
    x = tone()
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    audio, sr = read_audio(path)
    assert sr == SR and audio.dtype == np.float32 and audio.shape == x.shape
    assert np.max(np.abs(audio - x)) <= tolerance + 1e-7


def test_stereo_is_averaged_not_rejected(tmp_path: Path) -> None:
    left, right = tone(freq=440), tone(freq=660, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="PCM_24")
    audio, _ = read_audio(tmp_path / "st.wav")
    assert audio.ndim == 1
    np.testing.assert_allclose(audio, (left + right) / 2, atol=1e-6)
    assert audio_info(tmp_path / "st.wav") == (SR, len(left), 2)


def test_float_wav_overshoot_is_clipped_and_nan_is_refused(tmp_path: Path) -> None:
    sf.write(tmp_path / "loud.wav", np.array([0.0, 1.7, -2.5, 0.5], np.float32), SR, subtype="FLOAT")
    audio, _ = read_audio(tmp_path / "loud.wav")
    np.testing.assert_array_equal(audio, [0.0, 1.0, -1.0, 0.5])
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioReadError) as info:
        read_audio(tmp_path / "nan.wav")
    assert_one_line(info.value, "nan.wav", "NaN")


def test_flac_and_ogg_are_read(tmp_path: Path) -> None:
    x = tone()
    sf.write(tmp_path / "a.flac", x, SR)
    sf.write(tmp_path / "a.ogg", x, SR)
    flac, _ = read_audio(tmp_path / "a.flac")
    ogg, _ = read_audio(tmp_path / "a.ogg")
    assert np.max(np.abs(flac - x)) < 1e-4
    assert len(ogg) == len(x) and np.corrcoef(ogg, x)[0, 1] > 0.95


# ---- bad files: one line, says which file and what to do, has a kind ---------------------------------
def _wav_bytes(tmp_path: Path) -> bytes:
    sf.write(tmp_path / "ok.wav", tone(), SR, subtype="PCM_16")
    return (tmp_path / "ok.wav").read_bytes()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioReadError) as info:
        read_audio(tmp_path / "nope.wav")
    assert info.value.kind == "missing"  # type: ignore[attr-defined]
    assert_one_line(info.value, "nope.wav", "not found", "check the path")


def test_garbage_bytes_with_a_wav_name(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioReadError) as info:
        read_audio(tmp_path / "junk.wav")
    assert info.value.kind == "unreadable"  # type: ignore[attr-defined]
    assert_one_line(info.value, "junk.wav", "not a readable audio file")


def test_truncated_wav_data_chunk(tmp_path: Path) -> None:
    data = _wav_bytes(tmp_path)
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    for call in (read_audio, audio_info):
        with pytest.raises(AudioReadError) as info:
            call(tmp_path / "cut.wav")
        assert info.value.kind == "truncated"  # type: ignore[attr-defined]
        assert_one_line(info.value, "cut.wav", "truncated", "re-copy")


def test_truncated_flac(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", tone(1.0), SR)
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioReadError) as info:
        read_audio(tmp_path / "cut.flac")
    assert info.value.kind == "truncated"  # type: ignore[attr-defined]
    assert_one_line(info.value, "cut.flac")


def test_zero_length_and_header_only_files(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(AudioReadError) as info:
        read_audio(tmp_path / "zero.wav")
    assert info.value.kind == "empty"  # type: ignore[attr-defined]
    assert_one_line(info.value, "zero.wav", "empty")
    sf.write(tmp_path / "nosamples.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioReadError) as info:
        audio_info(tmp_path / "nosamples.wav")
    assert info.value.kind == "empty"  # type: ignore[attr-defined]


def test_a_wav_with_a_trailing_chunk_after_data_is_not_called_truncated(tmp_path: Path) -> None:
    data = bytearray(_wav_bytes(tmp_path))
    extra = b"LIST" + struct.pack("<I", 4) + b"INFO"
    data += extra
    data[4:8] = struct.pack("<I", len(data) - 8)
    (tmp_path / "list.wav").write_bytes(bytes(data))
    audio, _ = read_audio(tmp_path / "list.wav")
    assert len(audio) == len(tone())


def test_unusable_audio_error_is_an_audio_read_error() -> None:
    assert issubclass(UnusableAudioError, AudioReadError)


# ---- resampling --------------------------------------------------------------------------------------
def test_resample_changes_rate_and_keeps_duration_and_pitch(tmp_path: Path) -> None:
    x = tone(1.0, freq=1000.0, sr=44100)
    y = resample(x, 44100, 22050)
    assert y.dtype == np.float32 and abs(len(y) - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 22050 / len(y) - 1000.0) < 2.0
    sf.write(tmp_path / "hi.wav", x, 44100, subtype="PCM_16")
    audio, sr = read_audio(tmp_path / "hi.wav", target_sr=16000)
    assert sr == 16000 and abs(len(audio) - 16000) <= 1


# ---- writing -------------------------------------------------------------------------------------------
def test_write_wav_is_16_bit_clipped_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.wav"
    write_wav(path, np.array([0.0, 0.5, 2.0, -3.0, np.nan], np.float32), 22050)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    pcm, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(pcm, [0, 16384, 32767, -32767, 0])
    write_wav(path, tone(), SR)  # overwrite in place
    assert sf.info(path).frames == len(tone())
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]  # no temporary left behind


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    x = tone()
    write_wav(tmp_path / "r.wav", x[None, :], SR)  # [1, T] is accepted as mono
    y, sr = read_audio(tmp_path / "r.wav")
    assert sr == SR and np.max(np.abs(y - x)) < 2 / 32767


def test_audio_package_imports_only_errors_and_atomic_from_gankit() -> None:
    import gankit.audio.io as io

    tree = ast.parse(Path(io.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith("gankit")} <= {"gankit.errors", "gankit.atomic"}
