"""Vocoder training data: reproducible crops for any worker count, padding, ×0.95 normalisation, fine-tuning
mels cut in step with their audio, build-time checks, files vanishing mid-run, validation batches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gankit.audio.io import read_audio
from gankit.audio.mel import build_frontend
from gankit.data.filelist import FileListEntry, write_filelist
from gankit.data.sampler import SampleKey
from gankit.data.settings import DataSettings
from gankit.data.vocoder_data import build_vocoder_datasets, peak_normalise
from gankit.engine.data import build_train_data
from gankit.engine.distributed import DistContext
from gankit.errors import DataError

SR, HOP, SEGMENT = 16000, 64, 1024
FRONTEND = build_frontend(
    {"preset": "hifigan", "sample_rate": SR, "n_fft": 256, "hop_length": HOP, "win_length": 256, "n_mels": 20}
)
LOG_FLOOR = math.log(1e-5)


def write(path: Path, audio: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), sr, subtype="PCM_16")


def corpus(root: Path, lengths: list[int], val: int = 0, amp: float = 0.3) -> Path:
    """A prepared folder: noise clips u00, u01… of the given lengths; the last `val` go to val.txt."""
    ids = [f"u{i:02d}" for i in range(len(lengths))]
    for i, (name, n) in enumerate(zip(ids, lengths, strict=True)):
        write(root / "wavs" / f"{name}.wav", amp * np.random.default_rng(i).uniform(-1, 1, n))
    write_filelist(root / "train.txt", [FileListEntry(i) for i in ids[: len(ids) - val]])
    write_filelist(root / "val.txt", [FileListEntry(i) for i in ids[len(ids) - val :]])
    return root


def settings(root: Path, **kw: object) -> DataSettings:
    return DataSettings(dir=str(root), segment_size=SEGMENT, **kw)  # type: ignore[arg-type]


def build(data: DataSettings, seed: int = 1234) -> tuple[object, list[dict], list[str]]:
    said: list[str] = []
    train, val = build_vocoder_datasets(data, FRONTEND, seed, log=said.append)
    return train, val, said


def run_epoch(data: DataSettings, e: int, skip: int = 0, log: list[str] | None = None) -> list[dict]:
    train, _, _ = build(data)
    loader = build_train_data(train, data, DistContext(), seed=1234, min_batches=1,
                              log=(log.append if log is not None else print))
    loader.sampler.set_epoch(e, skip_samples=skip)
    return list(loader.loader)


# ---- crops -----------------------------------------------------------------------------------------
def test_crops_are_the_same_with_0_and_2_workers_and_after_resuming(tmp_path: Path) -> None:
    root = corpus(tmp_path, [3000 + 137 * i for i in range(10)])
    zero = run_epoch(settings(root, batch_size=3, num_workers=0), e=1)
    two = run_epoch(settings(root, batch_size=3, num_workers=2), e=1)
    assert len(zero) == 3 and [b["id"] for b in zero] == [b["id"] for b in two]
    for a, b in zip(zero, two, strict=True):
        assert a["audio"].shape == (3, SEGMENT) and a["audio"].dtype == torch.float32
        assert torch.equal(a["audio"], b["audio"])
    resumed = run_epoch(settings(root, batch_size=3, num_workers=0), e=1, skip=3)
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(zero[1:], resumed, strict=True))
    other_epoch = run_epoch(settings(root, batch_size=3, num_workers=0), e=2)
    assert not torch.equal(zero[0]["audio"], other_epoch[0]["audio"])


def test_crop_is_a_window_of_the_peak_normalised_whole_file(tmp_path: Path) -> None:
    n = 4000
    write(tmp_path / "wavs" / "ramp.wav", 0.2 * np.arange(n) / n)  # distinct values: the crop shows its start
    write_filelist(tmp_path / "train.txt", [FileListEntry("ramp")])
    write_filelist(tmp_path / "val.txt", [])
    train, _, _ = build(settings(tmp_path))
    full = peak_normalise(read_audio(tmp_path / "wavs" / "ramp.wav")[0])
    assert abs(float(full.max()) - 0.95) < 1e-6
    starts = set()
    for position in range(6):
        crop = train[SampleKey(0, position, 0)]["audio"].numpy()  # type: ignore[index]
        start = int(np.argmin(np.abs(full - crop[0])))
        np.testing.assert_allclose(crop, full[start : start + SEGMENT], atol=1e-6)
        starts.add(start)
    assert len(starts) > 1  # random windows, not always the first


def test_short_clip_is_zero_padded_after_normalising(tmp_path: Path) -> None:
    root = corpus(tmp_path, [500], amp=0.1)
    train, _, _ = build(settings(root))
    audio = train[0]["audio"]  # type: ignore[index]
    assert audio.shape == (SEGMENT,)
    assert torch.all(audio[500:] == 0)
    assert abs(float(audio[:500].abs().max()) - 0.95) < 1e-6


# ---- fine-tuning mels ------------------------------------------------------------------------------------
def _finetune_corpus(root: Path, frames: dict[str, int], three_d: str | None = None) -> Path:
    """Audio whose frame i holds the constant ((i % 50) + 1) / 100, and mels whose frame i holds i."""
    for name, n in frames.items():
        i = np.arange(n * HOP) // HOP
        write(root / "wavs" / f"{name}.wav", ((i % 50) + 1) / 100)
        mel = np.tile(np.arange(n, dtype=np.float32), (FRONTEND.n_mels, 1))
        np.save(root / "mels" / f"{name}.npy", mel[None] if name == three_d else mel)
    write_filelist(root / "train.txt", [FileListEntry(n) for n in frames])
    write_filelist(root / "val.txt", [FileListEntry(n) for n in frames])
    return root


def test_finetuning_mels_are_cropped_in_step_with_the_audio(tmp_path: Path) -> None:
    (tmp_path / "mels").mkdir()
    root = _finetune_corpus(tmp_path, {"long": 90, "long3d": 70}, three_d="long3d")
    train, val, _ = build(settings(root, mels_dir=str(root / "mels")))
    starts = set()
    for position in range(8):
        item = train[SampleKey(position % 2, position, position % 2)]  # type: ignore[index]
        mel, audio = item["mel"].numpy(), item["audio"].numpy()
        assert mel.shape == (FRONTEND.n_mels, SEGMENT // HOP) and audio.shape == (SEGMENT,)
        for j in range(mel.shape[1]):  # frame j ↔ samples [j·hop, (j+1)·hop)
            expected = (int(mel[0, j]) % 50 + 1) / 100
            np.testing.assert_allclose(audio[j * HOP : (j + 1) * HOP], expected, atol=1e-4)
        starts.add(int(mel[0, 0]))
    assert len(starts) > 1
    assert val[0]["mel"].shape == (1, FRONTEND.n_mels, 90) and val[0]["audio"].shape == (1, 90 * HOP)
    assert float(val[0]["audio"].abs().max()) == pytest.approx(0.5, abs=1e-4)  # not normalised with mels


def test_short_finetuning_clip_pads_mel_with_the_log_floor_and_audio_with_zeros(tmp_path: Path) -> None:
    (tmp_path / "mels").mkdir()
    root = _finetune_corpus(tmp_path, {"short": 3})
    train, _, _ = build(settings(root, mels_dir=str(root / "mels")))
    item = train[0]  # type: ignore[index]
    np.testing.assert_array_equal(item["mel"][:, :3].numpy(), np.tile([0.0, 1.0, 2.0], (FRONTEND.n_mels, 1)))
    assert torch.allclose(item["mel"][:, 3:], torch.tensor(LOG_FLOOR))
    assert torch.all(item["audio"][3 * HOP :] == 0) and torch.all(item["audio"][: 3 * HOP] > 0)


def test_wrong_shape_or_nan_mel_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "mels").mkdir()
    root = _finetune_corpus(tmp_path, {"a": 40, "b": 40})
    np.save(root / "mels" / "b.npy", np.zeros((FRONTEND.n_mels + 1, 40), np.float32))
    with pytest.raises(DataError) as info:
        build(settings(root, mels_dir=str(root / "mels")))
    assert "b.npy" in str(info.value) and "[20, frames]" in str(info.value) and "\n" not in str(info.value)

    bad = np.zeros((FRONTEND.n_mels, 40), np.float32)
    bad[3, 7] = np.nan
    np.save(root / "mels" / "b.npy", bad)
    with pytest.raises(DataError, match=r"b\.npy holds NaN"):  # b is also a validation file
        build(settings(root, mels_dir=str(root / "mels")))
    write_filelist(root / "val.txt", [])
    data = settings(root, mels_dir=str(root / "mels"), batch_size=2, num_workers=2)
    train, _, _ = build(data)
    with pytest.raises(DataError) as info:
        train[1]  # type: ignore[index]
    assert "b.npy" in str(info.value) and "NaN" in str(info.value)
    loader = build_train_data(train, data, DistContext(), seed=0, min_batches=1, log=lambda _: None)
    with pytest.raises(DataError) as info:  # raised in a worker process: still one line
        list(loader.loader)
    assert "b.npy" in str(info.value) and "\n" not in str(info.value) and "Caught" not in str(info.value)


# ---- build-time checks and files that vanish ---------------------------------------------------------
def test_bad_files_are_reported_in_one_line_and_left_out(tmp_path: Path) -> None:
    root = corpus(tmp_path, [2000] * 4)
    write(root / "wavs" / "u01.wav", np.zeros(2000) + 0.1, sr=22050)
    (root / "wavs" / "u02.wav").unlink()
    data = (root / "wavs" / "u03.wav").read_bytes()
    (root / "wavs" / "u03.wav").write_bytes(data[: len(data) // 2])
    train, _, said = build(settings(root))
    assert [e.id for e in train.entries] == ["u00"]  # type: ignore[attr-defined]
    assert len(said) == 2 and "validation is skipped" in said[1]  # val.txt is empty here
    line = said[0]
    assert "left out 3 of 4" in line and "1 missing (u02)" in line and "1 truncated (u03)" in line
    assert "1 at 22050 Hz instead of the model's 16000 Hz (u01)" in line and "--sample-rate 16000" in line
    (root / "wavs" / "u00.wav").unlink()
    with pytest.raises(DataError, match="none of the 4 files"):
        build(settings(root))


def test_a_file_deleted_mid_run_is_replaced_and_warned_about_once(tmp_path: Path) -> None:
    root = corpus(tmp_path, [2000] * 6)
    data = settings(root, batch_size=2, num_workers=0)
    train, _, _ = build(data)
    said: list[str] = []
    loaded = build_train_data(train, data, DistContext(), seed=1, min_batches=1, log=said.append)
    (root / "wavs" / "u02.wav").unlink()
    epochs = []
    for e in (0, 1):
        loaded.sampler.set_epoch(e)
        epochs.append(list(loaded.loader))
    assert all(len(b["id"]) == 2 and b["audio"].shape == (2, SEGMENT) for batches in epochs for b in batches)
    assert all("u02" not in b["id"] for batches in epochs for b in batches)
    assert len(said) == 1 and "u02.wav" in said[0] and "\n" not in said[0]
    loaded.sampler.set_epoch(0)
    again = list(loaded.loader)  # the replacement is chosen from the key alone: the same every time
    assert [b["id"] for b in again] == [b["id"] for b in epochs[0]]
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(again, epochs[0], strict=True))


def test_missing_configuration_and_folders_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="gankit prepare"):
        build(DataSettings(dir=str(tmp_path / "absent")))
    with pytest.raises(DataError, match=r"data\.train_list and data\.wav_dir"):
        build(DataSettings())
    root = corpus(tmp_path / "c", [2000] * 2)
    with pytest.raises(DataError, match="not found"):
        build(DataSettings(train_list=str(root / "train.txt"), wav_dir=str(tmp_path / "nowav")))


# ---- validation, tiny corpora, the engine's view --------------------------------------------------------
def test_validation_batches_are_whole_utterances_deterministic_and_capped(tmp_path: Path) -> None:
    lengths = [2000] * 3 + [1500, 2500, 3000, 3500]
    root = corpus(tmp_path, lengths, val=4)
    _, val, _ = build(settings(root, val_items=3))
    _, again, _ = build(settings(root, val_items=3))
    assert [b["id"] for b in val] == [["u03"], ["u04"], ["u05"]]
    assert [b["audio"].shape for b in val] == [(1, 1500), (1, 2500), (1, 3000)]
    assert all(abs(float(b["audio"].abs().max()) - 0.95) < 1e-6 for b in val)
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(val, again, strict=True))
    assert all("mel" not in b for b in val)


def test_tiny_corpus_fills_every_batch_and_says_so_once(tmp_path: Path) -> None:
    root = corpus(tmp_path, [2000] * 3)
    data = settings(root, batch_size=4, num_workers=0)
    train, _, _ = build(data)
    said: list[str] = []
    loaded = build_train_data(train, data, DistContext(), seed=0, min_batches=2, log=said.append)
    assert loaded.batches_per_epoch == 2 and len(said) == 1 and "topped up with 5" in said[0]
    batches = list(loaded.loader)
    assert [b["audio"].shape for b in batches] == [(4, SEGMENT), (4, SEGMENT)]
    first = loaded.example_batch()
    assert first["id"] == batches[0]["id"] and torch.equal(first["audio"], batches[0]["audio"])
    facts = loaded.describe()
    assert facts["items"] == 3 and facts["batches_per_epoch"] == 2 and facts["batch_size"] == 4
    assert facts["hours"] == pytest.approx(3 * 2000 / SR / 3600, abs=1e-3)
