"""`gankit translate` and `gankit.infer.translation`: a music-translation generator file turns audio files into the
target domain's rendition, as long as the input, at the model's rate; the result is the plain encode → cached
generation → µ-law decode, fixed by the seed and each input's place, whatever the batching; every wrong file, domain
or output is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from gankit.audio.mulaw import mu_law_decode, mu_law_encode
from gankit.cli import main
from gankit.config import load_config
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import CheckpointError, ConfigError
from gankit.infer.translation import Translator, input_seed, load_translator
from gankit.models.music_translation import SoftmaxSampler
from gankit.tasks import build_task
from tests.support.domains import RATE, phrase, write_domain_corpus
from tests.support.speakers import write_corpus
from tests.support.vocoder_files import save_generator
from tests.test_convert import export_untrained
from tests.test_music_translation import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

POOL = 400  # TINY's model.encoder_pool: samples per latent frame


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, nn.Module]]:
    """A music_translation generator file as a run exports it (seeded untrained weights), and its networks."""
    data = write_domain_corpus(tmp_path_factory.mktemp("domains") / "data", phrases=2)
    _, config = load_config("music_translation_tiny", [f"data.dir={data}", "device=cpu", *TINY])
    task = build_task(config)
    torch.manual_seed(0)
    nets = task.build_networks()
    path = tmp_path_factory.mktemp("model") / "generator_00000000.pt"
    torch.save(task.export(nets, 0), path)
    return path, nets


@pytest.fixture(scope="module")
def translator(model: tuple[Path, dict[str, nn.Module]]) -> Translator:
    return load_translator(model[0])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two inputs: 0.25 s at the model's 16 kHz, 0.13 s at 22.05 kHz (resampled)."""
    folder = tmp_path_factory.mktemp("inputs")
    sf.write(folder / "first.wav", phrase("saw", 0)[: int(0.25 * RATE)], RATE, subtype="PCM_16")
    sf.write(folder / "second.wav", phrase("square", 1, seconds=0.13 * 22050 / RATE)[: int(0.13 * 22050)], 22050,
             subtype="PCM_16")
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


# --- the command ----------------------------------------------------------------------------------------------


def test_translate_writes_each_input_at_its_length_and_never_overwrites(
        model: tuple[Path, dict[str, nn.Module]], inputs: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "translate", "--checkpoint", model[0], "--to", "sine", inputs, "--out-dir", out,
                            "--device", "cpu", "--seed", "5")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["first__to_sine.wav", "second__to_sine.wav"]
    for name, seconds in (("first", 0.25), ("second", 0.13)):
        info = sf.info(out / f"{name}__to_sine.wav")
        assert info.samplerate == RATE and info.subtype == "PCM_16"
        assert abs(info.frames - seconds * RATE) < POOL, (name, info.frames)  # within a latent frame
        wave, _ = sf.read(out / f"{name}__to_sine.wav", dtype="float32")
        assert np.abs(wave).max() > 0.01  # sound, not silence
    assert "second.wav is 22050 Hz; resampling it to the model's 16000 Hz" in err
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("translated 2 files to sine: ") and " samples/s, real-time factor " in last, last

    # Again: refused before any work, nothing replaced; with --overwrite replaced and said so.
    before = (out / "first__to_sine.wav").read_bytes()
    code, _, err = run(capsys, "translate", "--checkpoint", model[0], "--to", "sine", inputs, "--out-dir", out)
    line = one_line_error(code, err)
    assert "first__to_sine.wav: already exists (2 of the 2 outputs already exist" in line and "--overwrite" in line
    assert (out / "first__to_sine.wav").read_bytes() == before
    code, stdout, err = run(capsys, "translate", "--checkpoint", model[0], "--to", "sine", inputs / "first.wav",
                            "--out-dir", out, "--overwrite", "--max-seconds", "0.1", "--device", "cpu")
    assert code == 0, err
    assert "replaced 1 existing file" in stdout and sf.info(out / "first__to_sine.wav").frames == int(0.1 * RATE)


def test_refusals_name_the_domains_or_what_the_file_holds(model: tuple[Path, dict[str, nn.Module]], inputs: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(capsys, "translate", "--checkpoint", model[0], "--to", "flute", inputs, "--out-dir", out)
    line = one_line_error(code, err)
    assert line == (f"error: target domain 'flute': not a domain of {model[0]}; its domains are saw, sine, "
                    "square"), line

    vocoder = tmp_path / "vocoder.pt"
    save_generator(vocoder, {"preset": "hifigan"})
    converter = export_untrained(write_corpus(tmp_path / "speakers", sentences=2), tmp_path / "converter.pt")
    for path, task, commands in ((vocoder, "hifigan", "vocode, resynth, evaluate, export"),
                                 (converter, "stargan_vc", "convert, evaluate")):
        code, _, err = run(capsys, "translate", "--checkpoint", path, "--to", "sine", inputs, "--out-dir", out)
        line = one_line_error(code, err)
        assert f"{path}: holds a '{task}' model, not a translator (music_translation)" in line, line
        assert f"A '{task}' file is for: {commands}." in line, line
    assert not out.exists()

    # `gankit vocode` given a translation file names the command that takes it.
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), dtype=np.float32))
    code, _, err = run(capsys, "vocode", "--checkpoint", model[0], tmp_path / "mel.npy", "--out-dir", out)
    line = one_line_error(code, err)
    assert "holds a 'music_translation' model, not a vocoder" in line and "is for: translate" in line, line

    state = tmp_path / "state_00000002.pt"
    torch.save({"format": "gankit", "kind": "train_state", "config": {"task": "music_translation"}}, state)
    with pytest.raises(CheckpointError, match=r"a training state; pass the run's generator_N\.pt file or the run"):
        load_translator(state)


# --- the API ------------------------------------------------------------------------------------------------


def test_the_seed_fixes_the_result_and_a_run_directory_loads(model: tuple[Path, dict[str, nn.Module]],
                                                             translator: Translator, tmp_path: Path) -> None:
    assert translator.domains == ("saw", "sine", "square") and translator.sample_rate == RATE
    wave = phrase("saw", 0)[:1000]
    reported: list[int] = []
    first = translator.translate([wave], "square", seed=3, progress=reported.append)[0]
    assert first.shape == (1000,) and first.dtype == np.float32 and sum(reported) == 1000
    assert np.array_equal(translator.translate([wave], "square", seed=3)[0], first)
    assert not np.array_equal(translator.translate([wave], "square", seed=4)[0], first)
    with pytest.raises(ConfigError, match="its domains are saw, sine, square"):
        translator.translate([wave], "Sine")

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(model[0], tmp_path / "run" / "checkpoints" / model[0].name)
    (tmp_path / "run" / "checkpoints" / "manifest.json").write_text(json.dumps({"latest_generator": model[0].name}))
    from_run = load_translator(tmp_path / "run")
    assert from_run.source == str(tmp_path / "run" / "checkpoints" / model[0].name)
    assert np.array_equal(from_run.translate([wave], "square", seed=3)[0], first)


def test_batching_inputs_of_different_lengths_changes_nothing(translator: Translator) -> None:
    """Input k draws from its own generator, seeded by (seed, k): batched or alone, the same result."""
    waves = [phrase("sine", 0)[:1500], phrase("saw", 1)[:700], phrase("square", 0)[:1210]]  # 4, 2 and 4 frames
    batched = translator.translate(waves, "saw", seed=11, batch_size=3)
    one_by_one = translator.translate(waves, "saw", seed=11, batch_size=1)
    assert [len(w) for w in batched] == [1500, 700, 1210]
    for a, b in zip(batched, one_by_one, strict=True):
        assert np.array_equal(a, b)
    alone = translator.translate([waves[1]], "saw", seed=11, indices=[1])[0]
    assert np.array_equal(alone, batched[1])


def test_the_result_is_encode_then_cached_generation_then_mu_law_decode(
        model: tuple[Path, dict[str, nn.Module]], translator: Translator) -> None:
    nets = model[1]
    wave = phrase("square", 1, seconds=0.4)[:1111] * 0.3  # quieter than 0.95: peak-normalised first
    out = translator.translate([wave], "sine", seed=7, temperature=0.8)[0]

    padded = np.zeros(3 * POOL, dtype=np.float32)
    padded[:1111] = peak_normalise(wave)
    with torch.no_grad():
        latent = nets["encoder"].eval()(torch.from_numpy(mu_law_encode(padded))[None])
        sampler = SoftmaxSampler(torch.Generator().manual_seed(input_seed(7, 0)), temperature=0.8)
        classes = nets["decoder_sine"].eval().generate(latent, n_samples=1111, sampler=sampler)
    assert np.array_equal(out, mu_law_decode(classes[0]).numpy())
