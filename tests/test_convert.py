"""`gankit convert` and `gankit.infer.conversion`: a StarGAN-VC generator file turns audio files into the target
speaker's voice (Griffin-Lim or a vocoder on the same mel), long inputs in cross-faded chunks within a measured
distance of the whole-utterance conversion, and every wrong file, speaker, vocoder or output is refused in one line."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from gankit.cli import main
from gankit.config import load_config
from gankit.errors import CheckpointError, ConfigError, MelInputError
from gankit.infer.conversion import CHUNK_FRAMES, OVERLAP_FRAMES, chunk_starts, load_converter, load_voicer
from gankit.tasks import build_task
from tests.support.speakers import RATE, utterance, write_corpus
from tests.support.vocoder_files import ln_mel, save_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

SMALL = ("model.g_channels=16", "model.d_channels=16", "data.batch_size=4", "data.groups=null")
HOP = 256


def export_untrained(data: Path, path: Path, *overrides: str, seed: int = 0) -> Path:
    """A stargan_vc generator file as a run exports it, with seeded untrained weights."""
    _, config = load_config("stargan_vc_tiny", [f"data.dir={data}", "device=cpu", *SMALL, *overrides])
    task = build_task(config)
    torch.manual_seed(seed)
    torch.save(task.export(task.build_networks(), 0), path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("speakers") / "data", sentences=4, val_sentences=1)


@pytest.fixture(scope="module")
def vc_file(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_untrained(corpus, tmp_path_factory.mktemp("vc") / "generator_00000000.pt")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two inputs: 1.1 s at the model's 22.05 kHz, 0.9 s at 16 kHz (resampled)."""
    folder = tmp_path_factory.mktemp("inputs")
    sf.write(folder / "first.wav", utterance(95.0, 1.0, 1, seconds=1.1), RATE, subtype="PCM_16")
    sixteen = utterance(230.0, 1.6, 2, seconds=0.9)[: int(0.9 * 16000)]  # 0.9 s when read at 16 kHz
    sf.write(folder / "second.wav", sixteen, 16000, subtype="PCM_16")
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- the command, end to end ------------------------------------------------------------------------------


def test_convert_writes_the_targets_voice_next_to_no_other_file(vc_file: Path, inputs: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", "griffin-lim", "--target",
                            "a_high", inputs, "--out-dir", out, "--no-progress")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["first_to_a_high.wav", "second_to_a_high.wav"]
    for name, seconds in (("first", 1.1), ("second", 0.9)):
        info = sf.info(out / f"{name}_to_a_high.wav")
        assert info.samplerate == RATE and info.subtype == "PCM_16"
        # frames × hop of the input at the model's rate: its length to within a hop
        assert 0 <= seconds * RATE - info.frames < HOP, (name, info.frames)
        wave, _ = sf.read(out / f"{name}_to_a_high.wav", dtype="float32")
        assert np.abs(wave).max() > 0.01  # sound, not silence
    assert "second.wav is 16000 Hz; resampling it to the model's 22050 Hz" in err
    assert stdout.strip().splitlines()[-1].startswith("converted 2 files: ")

    # Again: refused before any work, nothing replaced; with --overwrite replaced and said so.
    before = (out / "first_to_a_high.wav").read_bytes()
    code, _, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", "griffin-lim", "--target", "a_high",
                       inputs, "--out-dir", out)
    line = one_line_error(code, err)
    assert "first_to_a_high.wav: already exists (2 of the 2 outputs already exist" in line and "--overwrite" in line
    assert (out / "first_to_a_high.wav").read_bytes() == before
    code, stdout, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", "griffin-lim", "--target",
                            "a_high", inputs / "first.wav", "--out-dir", out, "--overwrite", "--no-progress")
    assert code == 0, err
    assert "replaced 1 existing file" in stdout


def test_convert_with_a_gankit_vocoder_on_the_models_mel(vc_file: Path, inputs: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    vocoder = tmp_path / "vocoder.pt"
    save_generator(vocoder, {"preset": "hifigan"})
    code, _, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", vocoder, "--target", "b_low",
                       "--source", "b_high", inputs / "first.wav", "--out-dir", tmp_path / "out")
    assert code == 0, err
    assert sf.info(tmp_path / "out" / "first_to_b_low.wav").frames == (int(1.1 * RATE) // HOP) * HOP


@pytest.mark.parametrize(("frontend", "differs"), [
    ({"preset": "hifigan", "sample_rate": 16000}, "sample_rate 16000≠22050"),
    ({"preset": "hifigan", "fmax": None}, "fmax 11025≠8000"),
])
def test_a_vocoder_on_another_mel_is_refused_naming_both(vc_file: Path, inputs: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str], frontend: dict[str, Any],
                                                          differs: str) -> None:
    vocoder = tmp_path / "vocoder.pt"
    save_generator(vocoder, frontend)
    code, _, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", vocoder, "--target", "a_high",
                       inputs, "--out-dir", tmp_path / "out")
    line = one_line_error(code, err)
    assert line.startswith(f"error: {vocoder}") and differs in line, line
    assert "(hifigan, 22050 Hz, n_fft 1024, hop 256, win 1024, 80 mels 0–8000 Hz" in line, line  # the model's
    assert not (tmp_path / "out").exists()


def test_refusals_name_the_file_or_speaker(vc_file: Path, inputs: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", "griffin-lim", "--target", "nobody",
                       inputs, "--out-dir", out)
    line = one_line_error(code, err)
    assert line == (f"error: target speaker 'nobody': not a speaker of {vc_file}; its speakers are a_high (a), "
                    "a_low (a), b_high (b), b_low (b)"), line
    code, _, err = run(capsys, "convert", "--checkpoint", vc_file, "--vocoder", "griffin-lim", "--target", "a_low",
                       "--source", "zed", inputs, "--out-dir", out)
    assert "source speaker 'zed': not a speaker of" in one_line_error(code, err)

    vocoder = tmp_path / "vocoder.pt"
    save_generator(vocoder, {"preset": "hifigan"})
    code, _, err = run(capsys, "convert", "--checkpoint", vocoder, "--vocoder", "griffin-lim", "--target", "a_low",
                       inputs, "--out-dir", out)
    line = one_line_error(code, err)
    assert f"{vocoder}: holds a 'hifigan' model, not a converter (stargan_vc)" in line, line
    assert "A 'hifigan' file is for: vocode, resynth, evaluate, export" in line, line
    assert not out.exists()

    # `gankit vocode` given a conversion file names the commands that take it.
    np.save(tmp_path / "mel.npy", ln_mel(12, 0))
    code, _, err = run(capsys, "vocode", "--checkpoint", vc_file, tmp_path / "mel.npy", "--out-dir", out)
    line = one_line_error(code, err)
    assert "holds a 'stargan_vc' model, not a vocoder" in line and "is for: convert, evaluate" in line, line


def test_source_conditioning_needs_the_source(corpus: Path, tmp_path: Path) -> None:
    path = export_untrained(corpus, tmp_path / "conditioned.pt", "model.source_conditioning=true")
    converter = load_converter(path)
    wave = utterance(95.0, 1.0, 3, seconds=0.5)
    with pytest.raises(ConfigError, match="trained with source conditioning, so it needs the source speaker"):
        converter.convert(wave, RATE, "a_high")
    assert converter.convert(wave, RATE, "a_high", "a_low").shape == (80, int(0.5 * RATE) // HOP)


def test_across_groups_is_converted_with_one_warning(vc_file: Path) -> None:
    converter = load_converter(vc_file)
    warnings: list[str] = []
    converter.warn = warnings.append
    wave = utterance(120.0, 0.7, 3, seconds=0.5)
    for _ in range(2):
        converter.convert(wave, RATE, "a_high", "b_low")
    converter.convert(wave, RATE, "a_high", "a_low")
    assert len(warnings) == 1 and "across speaker groups (b_low in 'b' → a_high in 'a')" in warnings[0]


def test_any_length_is_converted_and_too_short_is_refused(vc_file: Path) -> None:
    converter = load_converter(vc_file)
    assert converter.speakers == ("a_high", "a_low", "b_high", "b_low") and converter.sample_rate == RATE
    for samples in (600, 2 * HOP + 7, 9 * HOP):  # 2, 2 and 9 frames: padded to 8 or 12, cut back
        mel = converter.convert(utterance(95.0, 1.0, 1, seconds=1.0)[:samples], RATE, "a_low")
        assert mel.shape == (80, converter.frontend.num_frames(samples)) and torch.isfinite(mel).all()
    with pytest.raises(MelInputError, match="too short for the hifigan mel"):
        converter.convert(np.zeros(100, dtype=np.float32), RATE, "a_low")


def test_the_api_voices_with_griffin_lim_or_a_checked_vocoder(vc_file: Path, tmp_path: Path) -> None:
    converter = load_converter(vc_file)
    mel = converter.convert(utterance(95.0, 1.0, 1, seconds=0.6), RATE, "a_low")
    assert converter.voice(mel, "griffin-lim").shape == (mel.shape[-1] * HOP,)
    save_generator(tmp_path / "ok.pt", {"preset": "hifigan"})
    vocoder = load_voicer(tmp_path / "ok.pt", converter)
    assert converter.voice(mel, vocoder).shape == (mel.shape[-1] * HOP,)
    save_generator(tmp_path / "other.pt", {"preset": "hifigan", "sample_rate": 24000})
    with pytest.raises(CheckpointError, match="sample_rate 24000≠22050"):
        load_voicer(tmp_path / "other.pt", converter)
    with pytest.raises(CheckpointError, match="not a converter"):
        load_converter(tmp_path / "ok.pt")
    state = tmp_path / "state_00000002.pt"
    torch.save({"format": "gankit", "kind": "train_state", "config": {"task": "stargan_vc"}}, state)
    with pytest.raises(CheckpointError, match=r"a training state; pass the run's generator_N\.pt file or the run"):
        load_converter(state)
    # A run directory stands for its latest generator file.
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(vc_file, tmp_path / "run" / "checkpoints" / vc_file.name)
    (tmp_path / "run" / "checkpoints" / "manifest.json").write_text(json.dumps({"latest_generator": vc_file.name}))
    assert load_converter(tmp_path / "run").source == str(tmp_path / "run" / "checkpoints" / vc_file.name)


# --- long inputs ----------------------------------------------------------------------------------------------


def test_chunk_starts_cover_the_input_with_the_overlap() -> None:
    for frames in (CHUNK_FRAMES + 1, 1000, 1550, 5000):
        starts = chunk_starts(frames, CHUNK_FRAMES, OVERLAP_FRAMES)
        assert starts[0] == 0 and starts[-1] + CHUNK_FRAMES == frames
        assert all(OVERLAP_FRAMES <= a + CHUNK_FRAMES - b for a, b in itertools.pairwise(starts))
    assert chunk_starts(CHUNK_FRAMES, CHUNK_FRAMES, OVERLAP_FRAMES) == [0]


def test_long_input_in_chunks_stays_near_the_whole_conversion(vc_file: Path) -> None:
    """The generator's instance norm takes statistics over the whole input, so chunks cannot reproduce the whole
    conversion exactly. Measured here (seeded untrained model): six different sentences (1,550 frames, 4 chunks)
    mean |difference| 0.12 and max 1.5 normalised-mel units against an output spread (std) of about 0.5; one
    sentence repeated (stationary statistics) mean 0.012. The bounds assert those measurements with a margin."""
    converter = load_converter(vc_file)
    varied = np.concatenate([utterance(95.0, 1.0, s, seconds=3.0, seed=s) for s in range(6)])
    repeated = np.tile(utterance(95.0, 1.0, 1, seconds=1.2), 12)
    for wave, mean_bound, max_bound in ((varied, 0.16, 2.0), (repeated, 0.02, 0.4)):
        norm, _ = converter.analyse(wave, RATE)
        assert norm.shape[-1] > 2 * CHUNK_FRAMES
        whole = converter.convert_mel(norm, "a_high", chunk_frames=4096)
        chunked = converter.convert_mel(norm, "a_high")
        difference = (whole - chunked).abs()
        assert float(difference.mean()) < mean_bound and float(difference.max()) < max_bound, (
            float(difference.mean()), float(difference.max()))
    # Where one chunk alone covers the input (its weight 1 there), the output is that chunk's own conversion.
    norm, _ = converter.analyse(varied, RATE)
    chunked = converter.convert_mel(norm, "a_high")
    first = converter.convert_mel(norm[:, :CHUNK_FRAMES], "a_high")
    starts = chunk_starts(norm.shape[-1], CHUNK_FRAMES, OVERLAP_FRAMES)
    torch.testing.assert_close(chunked[:, : starts[1]], first[:, : starts[1]], atol=1e-5, rtol=1e-5)
    # A batch of targets converts each item as it converts alone.
    batch = converter.convert_mel(norm[None, :, :300].expand(2, -1, -1), ["a_high", "a_low"])
    torch.testing.assert_close(batch[1], converter.convert_mel(norm[:, :300], "a_low"), atol=1e-5, rtol=1e-5)


def test_a_file_from_before_the_scaling_entry_still_loads(vc_file: Path, tmp_path: Path) -> None:
    """Generator files written before `architecture` and `scaling` existed carry band_mean/band_scale only."""
    payload = torch.load(vc_file, weights_only=True)
    old = {k: v for k, v in payload.items() if k not in ("architecture", "scaling")}
    torch.save(old, tmp_path / "old.pt")
    new, legacy = load_converter(vc_file), load_converter(tmp_path / "old.pt")
    assert legacy.scaling == new.scaling and legacy.architecture.name == "stargan_vc"
    torch.save({**old, "band_scale": [0.0] * 80}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="band_scale"):
        load_converter(tmp_path / "bad.pt")
    torch.save({**payload, "scaling": {"kind": "min_max", "low": 1.0, "high": 0.0}}, tmp_path / "bad_range.pt")
    with pytest.raises(CheckpointError, match="scaling"):
        load_converter(tmp_path / "bad_range.pt")
