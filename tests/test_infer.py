"""Inference: every checkpoint kind loads to the same audio, batching changes nothing, the original scripts' output
is matched, and every bad input gets its own one-line error naming the file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from torch.nn.utils import parametrize

from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.config import load_config
from gankit.errors import CheckpointError, ConfigError, GankitError, MelInputError
from gankit.infer import Vocoder, load_vocoder
from gankit.infer.files import collect_inputs, plan_jobs
from gankit.infer.mel_input import range_warning, read_mel
from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig
from gankit.tasks.vocoder import vocoder_inference_file
from tests.support.corpus import voiced_clip
from tests.support.original_hifigan import (
    V1_LAYOUT,
    V3_LAYOUT,
    LegacyGenerator,
    h_of,
    original_inference,
    original_inference_e2e,
    write_config,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

TINY = {**V1_LAYOUT, "upsample_initial_channel": 32}  # V1's layout at 1/16 of its width
TINY_V3 = {**V3_LAYOUT, "upsample_initial_channel": 32}
FRONTEND = build_frontend({"preset": "hifigan"})
HOP = 256


def ln_mel(frames: int, seed: int) -> np.ndarray:
    """Random values in a natural-log mel's range (quiet frames at the ln 1e-5 floor)."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(-5.0, 2.5, size=(80, frames)), np.log(1e-5)).astype(np.float32)


def make_lively(generator: nn.Module, g_suffix: str, seed: int) -> nn.Module:
    """Random weights, then conv_post scaled so the output is loud (|x| up to ≈ 0.85) but short of full scale.

    The default init makes outputs of ~1e-4: int16 comparisons would be trivially true and padding leaks invisible.
    """
    torch.manual_seed(seed)
    generator.eval()
    with torch.no_grad():
        for name, p in generator.named_parameters():
            p.copy_(torch.rand_like(p) * 0.2 + 0.02 if name.endswith(g_suffix) else torch.randn_like(p) * 0.05)
        generator.conv_post.bias.zero_()
        captured: list[torch.Tensor] = []
        handle = generator.conv_post.register_forward_hook(lambda _m, _i, out: captured.append(out))
        generator(torch.from_numpy(ln_mel(32, seed))[None])
        handle.remove()
        gain = next(p for n, p in generator.conv_post.named_parameters() if n.endswith(g_suffix))
        centred = captured[0] - captured[0].mean()
        scale = 1.2 / centred.abs().max()  # the edges (zero padding) peak far above the bulk: keep them < tanh⁻¹(0.9)
        gain.mul_(scale)  # weight norm: the output is linear in g
        generator.conv_post.bias.fill_(-scale * captured[0].mean())  # no DC offset pushing tanh to ±1
    return generator


def gankit_generator(model: dict, seed: int) -> HifiGanGenerator:
    return make_lively(HifiGanGenerator(HifiGanGeneratorConfig.from_dict(model)), "original0", seed)


def payload(generator: HifiGanGenerator, step: int) -> dict:
    return vocoder_inference_file("hifigan", generator.cfg.to_dict(), FRONTEND.to_config(), generator.state_dict(),
                                  step)


def reference(generator: nn.Module, mel: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.from_numpy(mel)[None])[0, 0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Checkpoints of every kind: a run directory (latest ≠ best), state files with and without EMA, an original
    g_ with config.json, all from lively tiny generators whose outputs differ."""
    root = tmp_path_factory.mktemp("ckpts")
    latest, best, live = gankit_generator(TINY, 1), gankit_generator(TINY, 2), gankit_generator(TINY, 3)
    folder = root / "run" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(payload(latest, 20), folder / "generator_00000020.pt")
    torch.save(payload(best, 10), folder / "generator_00000010.pt")
    manifest = {"latest": "state_00000020.pt", "latest_generator": "generator_00000020.pt", "best": "state_00000010.pt",
                "best_generator": "generator_00000010.pt", "best_metric": "val/mel_l1", "best_value": 0.4,
                "checkpoints": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))

    _, config = load_config("hifigan_tiny", ["model.generator.upsample_initial_channel=32"])
    state = {"format": "gankit", "kind": "train_state", "version": 1, "task": "hifigan", "config": config,
             "networks": {"generator": live.state_dict()}, "ema": latest.state_dict(), "step": 20, "epoch": 1}
    torch.save(state, root / "state_ema.pt")
    torch.save({**state, "ema": None}, root / "state_plain.pt")

    original = root / "original"
    original.mkdir()
    legacy = make_lively(LegacyGenerator(h_of(TINY)), "weight_g", 4)
    write_config(original, TINY)
    torch.save({"generator": legacy.state_dict()}, original / "g_00000100")
    return SimpleNamespace(root=root, run=root / "run", latest=latest, best=best, live=live, legacy=legacy,
                           original=original)


# --- loading ---------------------------------------------------------------------------------------------------

SOURCES = {  # name → (source relative to the fixture root, load_vocoder kwargs, expected generator, step)
    "generator file": ("run/checkpoints/generator_00000010.pt", {}, "best", 10),
    "run directory": ("run", {}, "latest", 20),
    "run directory --best": ("run", {"best": True}, "best", 10),
    "checkpoints folder": ("run/checkpoints", {}, "latest", 20),
    "state with EMA": ("state_ema.pt", {}, "latest", 20),
    "state without EMA": ("state_plain.pt", {}, "live", 20),
    "original g_": ("original/g_00000100", {}, "legacy", 100),
    "original folder": ("original", {}, "legacy", 100),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_checkpoint_kind_vocodes_like_its_generator(ckpts, name):
    source, kwargs, expected, step = SOURCES[name]
    vocoder = load_vocoder(ckpts.root / source, **kwargs)
    mel = ln_mel(17, seed=5)
    want = reference(getattr(ckpts, expected), mel)
    assert want.std() > 0.01  # audible (the default init gives ~1e-4): near-silence proves nothing
    got = vocoder(mel)
    assert got.shape == (17 * HOP,) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (vocoder.sample_rate, vocoder.frontend.preset, vocoder.n_mels, vocoder.step) == (22050, "hifigan", 80, step)


def test_original_g_with_config_elsewhere(ckpts, tmp_path):
    lone = tmp_path / "g_00000100"
    lone.write_bytes((ckpts.original / "g_00000100").read_bytes())
    with pytest.raises(CheckpointError, match="--config") as err:
        load_vocoder(lone)
    assert str(lone) in str(err.value)
    vocoder = load_vocoder(lone, config=ckpts.original / "config.json")
    mel = ln_mel(9, seed=6)
    torch.testing.assert_close(vocoder(mel), reference(ckpts.legacy, mel), atol=1e-5, rtol=0)


def test_call_shapes_weight_norm_removed_and_resynthesis(ckpts):
    vocoder = load_vocoder(ckpts.run)
    generator = vocoder.generator
    assert not any(parametrize.is_parametrized(m) for m in generator.modules())
    assert not any("parametrizations" in k for k in generator.state_dict())
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())

    batch = torch.from_numpy(np.stack([ln_mel(11, 7), ln_mel(11, 8)]))
    out = vocoder(batch)
    assert out.shape == (2, 11 * HOP)
    torch.testing.assert_close(out[1], vocoder(batch[1]), atol=1e-5, rtol=0)
    with pytest.raises(MelInputError, match=r"\[80, frames\]"):
        vocoder(torch.zeros(100, 11))

    wave = torch.from_numpy(voiced_clip(0.5, 22050, 120.0, seed=1))
    again = vocoder.resynthesize(wave)
    frames = FRONTEND.num_frames(wave.shape[0])
    assert again.shape == (frames * HOP,)
    torch.testing.assert_close(again, vocoder(FRONTEND(wave)), atol=1e-6, rtol=0)


def test_vocoder_from_an_in_memory_generator():
    generator = gankit_generator(TINY, 9)
    mel = ln_mel(5, 9)
    want = reference(generator, mel)
    vocoder = Vocoder(generator, FRONTEND.to_config(), "hifigan")
    torch.testing.assert_close(vocoder(mel), want, atol=1e-5, rtol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(ckpts):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_vocoder(ckpts.run, device="cuda")
    assert load_vocoder(ckpts.run, device="auto").device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_vocoder_matches_cpu(ckpts):
    mels = [ln_mel(n, seed=n) for n in (12, 5)]
    cpu, cuda = load_vocoder(ckpts.run, device="cpu"), load_vocoder(ckpts.run, device="cuda")
    assert cuda.device.type == "cuda"
    for got, want in zip(cuda.vocode_batch([torch.from_numpy(m).cuda() for m in mels]), map(cpu, mels), strict=True):
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), want, atol=1e-3, rtol=0)


# --- batching --------------------------------------------------------------------------------------------------


def test_batched_output_equals_one_at_a_time(ckpts):
    vocoder = load_vocoder(ckpts.run)
    mels = [ln_mel(n, seed=n) for n in (23, 9, 16, 23)]
    alone = [vocoder(m) for m in mels]
    together = vocoder.vocode_batch(mels)
    for single, batched, mel in zip(alone, together, mels, strict=True):
        assert batched.shape == (mel.shape[1] * HOP,)
        torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    # The test can fail: plain zero-padding without the length mask leaks into the shorter items' last frames.
    padded = torch.zeros(len(mels), 80, 23)
    for i, m in enumerate(mels):
        padded[i, :, : m.shape[1]] = torch.from_numpy(m)
    with torch.no_grad():
        naive = vocoder.generator(padded)[:, 0]
    assert (naive[1, : 9 * HOP] - alone[1]).abs().max() > 1e-3


def test_batched_files_equal_single_files(ckpts, tmp_path, capsys):
    mels = tmp_path / "mels"
    mels.mkdir()
    for i, n in enumerate((30, 7, 19)):
        np.save(mels / f"utt{i}.npy", ln_mel(n, seed=20 + i)[None])  # [1, 80, T] as inference_e2e reads
    for out, batch in (("single", "1"), ("batched", "3")):
        code = main(["vocode", "--checkpoint", str(ckpts.run), str(mels), "--out-dir", str(tmp_path / out),
                     "--batch-size", batch, "--device", "cpu", "--verbose"])
        assert code == 0
    printed = capsys.readouterr().out
    assert "utt1.npy" in printed and "× real time" in printed
    for i, n in enumerate((30, 7, 19)):
        single, sr = sf.read(tmp_path / "single" / f"utt{i}.wav", dtype="int16")
        batched, _ = sf.read(tmp_path / "batched" / f"utt{i}.wav", dtype="int16")
        assert sr == 22050 and single.shape == (n * HOP,)
        assert np.abs(single.astype(int) - batched).max() <= 1


# --- the original scripts --------------------------------------------------------------------------------------


def test_matches_original_inference_e2e_within_two_steps(ckpts, tmp_path):
    """inference_e2e.py writes int16(audio × 32768), truncating; we write round(audio × 32767) through write_wav.
    For |audio| < 1 the two differ by at most 1.5 steps before float noise, so 2 steps is the honest bound."""
    g_file = ckpts.original / "g_00000100"
    mel_file = tmp_path / "utt.npy"
    np.save(mel_file, ln_mel(40, seed=30)[None])
    theirs = original_inference_e2e(g_file, mel_file)
    assert main(["vocode", "--checkpoint", str(g_file), str(mel_file), "--out-dir", str(tmp_path / "out")]) == 0
    ours, sr = sf.read(tmp_path / "out" / "utt.wav", dtype="int16")
    assert sr == 22050 and ours.shape == theirs.shape == (40 * HOP,)
    # the premise: loud enough to mean something, and short of full scale, where the original's int16 wraps
    assert 3000 < np.abs(theirs.astype(int)).max() < 32000
    assert np.abs(ours.astype(int) - theirs).max() <= 2


def test_resynth_matches_original_inference_within_two_steps(ckpts, tmp_path):
    wav = tmp_path / "utt.wav"
    sf.write(wav, voiced_clip(0.6, 22050, 110.0, seed=3), 22050, subtype="PCM_16")
    theirs = original_inference(ckpts.original / "g_00000100", wav)
    code = main(["resynth", "--checkpoint", str(ckpts.original / "g_00000100"), str(wav),
                 "--out-dir", str(tmp_path / "out")])
    assert code == 0
    ours, _ = sf.read(tmp_path / "out" / "utt.wav", dtype="int16")
    assert ours.shape == theirs.shape and np.abs(theirs.astype(int)).max() > 3000
    assert np.abs(ours.astype(int) - theirs).max() <= 2


# --- bad mels --------------------------------------------------------------------------------------------------


def _save_pickled(path: Path) -> None:
    np.save(path, np.array([{"mel": 1}], dtype=object), allow_pickle=True)


def _nan(path: Path) -> None:
    mel = ln_mel(10, 0)
    mel[3, 4] = np.nan
    np.save(path, mel)


BAD_MELS = {  # name → (writer, words the message must contain)
    "1-D": (lambda p: np.save(p, np.zeros(80, np.float32)), "[80, frames]"),
    "batch of 2": (lambda p: np.save(p, np.zeros((2, 80, 5), np.float32)), "batch of 2"),
    "transposed": (lambda p: np.save(p, np.zeros((40, 80), np.float32)), "transposed"),
    "100 bands": (lambda p: np.save(p, np.zeros((100, 40), np.float32)), "expects 80 bands (preset hifigan"),
    "int16": (lambda p: np.save(p, np.zeros((80, 5), np.int16)), "int16"),
    "complex": (lambda p: np.save(p, np.zeros((80, 5), np.complex64)), "complex"),
    "NaN": (_nan, "NaN"),
    "Inf from float64": (lambda p: np.save(p, np.full((80, 5), 1e300)), "infinite"),
    "no frames": (lambda p: np.save(p, np.zeros((80, 0), np.float32)), "0 frames"),
    "garbage bytes": (lambda p: p.write_bytes(b"not a numpy file at all"), "not a readable .npy"),
    "truncated": (lambda p: p.write_bytes(_npy_bytes()[:-100]), "not a readable .npy"),
    "pickled objects": (_save_pickled, "pickled"),
    "npz archive": (lambda p: np.savez(p.with_suffix(""), mel=np.zeros((80, 5))) or p.with_suffix(".npz").rename(p),
                    ".npz archive"),
}


def _npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, ln_mel(20, 1))
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(BAD_MELS))
def test_bad_mel_gets_a_one_line_error_naming_the_file(tmp_path, name):
    write, words = BAD_MELS[name]
    path = tmp_path / "bad_mel.npy"
    write(path)
    with pytest.raises(MelInputError) as err:
        read_mel(path, FRONTEND)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_band_count_error_names_the_preset_that_makes_it(tmp_path):
    path = tmp_path / "vocos_like.npy"
    np.save(path, np.zeros((100, 40), np.float32))
    with pytest.raises(MelInputError, match="preset vocos makes"):
        read_mel(path, FRONTEND)


def test_accepted_forms_float64_and_batch_of_one(tmp_path):
    mel = ln_mel(12, 3)
    np.save(tmp_path / "a.npy", mel.astype(np.float64)[None])
    got, warning = read_mel(tmp_path / "a.npy", FRONTEND)
    assert got.dtype == np.float32 and got.shape == (80, 12) and warning is None
    np.testing.assert_array_equal(got, mel)


def test_range_heuristic_warns_without_refusing():
    ln = ln_mel(50, 4)
    log10 = ln / np.log(10)  # never below −5
    assert range_warning(ln, "hifigan") is None
    assert "log10" in range_warning(log10, "hifigan")
    assert "log10" in range_warning(np.abs(ln) / 5, "vocos")  # linear magnitudes look the same: above −5
    assert range_warning(log10, "melgan") is None
    assert "natural-log" in range_warning(ln, "melgan")
    tts = ln - 3.0  # a TTS model's mels may go below the clamp floor: fine for an ln model
    assert range_warning(tts, "hifigan") is None
    assert range_warning(log10, "parallel_wavegan") is None  # normalised: no scale to judge


# --- bad checkpoints and inputs --------------------------------------------------------------------------------


def test_missing_and_corrupt_checkpoints(tmp_path, ckpts):
    with pytest.raises(CheckpointError, match="no such checkpoint") as err:
        load_vocoder(tmp_path / "nope.pt")
    assert "nope.pt" in str(err.value)
    corrupt = tmp_path / "generator_00000001.pt"
    corrupt.write_bytes((ckpts.run / "checkpoints" / "generator_00000010.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_vocoder(corrupt)
    assert str(corrupt) in str(err.value)
    with pytest.raises(CheckpointError, match="not a gankit run directory"):
        load_vocoder(tmp_path)
    with pytest.raises(CheckpointError, match="--best"):
        load_vocoder(ckpts.run / "checkpoints" / "generator_00000010.pt", best=True)
    with pytest.raises(CheckpointError, match="--config is for original"):
        load_vocoder(ckpts.run, config=ckpts.original / "config.json")


def test_manifest_problems(tmp_path, ckpts):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"latest_generator": "generator_00000099.pt"}))
    with pytest.raises(CheckpointError, match=r"generator_00000099\.pt is not in"):
        load_vocoder(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no best checkpoint recorded"):
        load_vocoder(tmp_path / "run", best=True)


def test_other_architecture_names_the_differing_keys(tmp_path):
    v3 = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(TINY_V3))
    mixed = {**payload(gankit_generator(TINY, 1), 5), "state_dict": v3.state_dict()}
    torch.save(mixed, tmp_path / "generator_00000005.pt")
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "generator_00000005.pt")
    message = str(err.value)
    assert "generator_00000005.pt" in message and "missing: " in message and "resblocks.0.convs1.0" in message
    assert "unexpected: " in message and "resblocks.0.convs.0" in message


def test_original_without_config_and_do_file(tmp_path, ckpts):
    (tmp_path / "g_00000001").write_bytes((ckpts.original / "g_00000100").read_bytes())
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_vocoder(tmp_path / "g_00000001")
    torch.save({"mpd": {}, "msd": {}, "optim_g": {}, "optim_d": {}, "steps": 1, "epoch": 0}, tmp_path / "do_00000001")
    with pytest.raises(CheckpointError, match="pass the g_ file"):
        load_vocoder(tmp_path / "do_00000001")


def test_input_collection_errors(tmp_path):
    with pytest.raises(MelInputError, match="no such file or folder") as err:
        collect_inputs([tmp_path / "missing.npy"], (".npy",), MelInputError)
    assert "missing.npy" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MelInputError, match=r"no \.npy files in this folder"):
        collect_inputs([tmp_path / "empty"], (".npy",), MelInputError)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        np.save(tmp_path / folder / "x.npy", ln_mel(3, 0))
    found = collect_inputs([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "x.npy"], (".npy",), MelInputError)
    assert len(found) == 2  # the file given twice is vocoded once
    with pytest.raises(GankitError, match="would both be written"):
        plan_jobs(found, tmp_path / "out", lambda _: 0)


def test_one_bad_file_among_several_is_skipped_and_the_rest_written(ckpts, tmp_path, capsys):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "a.npy", ln_mel(8, 1))
    np.save(mels / "b_bad.npy", np.zeros((80, 8), np.int32))
    np.save(mels / "c.npy", ln_mel(6, 2) / np.log(10))  # log10-like: vocoded, with a warning
    code = main(["vocode", "--checkpoint", str(ckpts.run), str(mels), "--out-dir", str(tmp_path / "out"),
                 "--batch-size", "2"])
    captured = capsys.readouterr()
    assert code == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.wav"]
    assert "skipped: " in captured.err and "b_bad.npy" in captured.err and "int32" in captured.err
    assert "warning: " in captured.err and "c.npy" in captured.err and "log10" in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 3 mels could not be used (b_bad.npy") and "the other 2 are in" in last
    assert "vocoded 2 files" in captured.out


def test_single_bad_file_reports_its_own_error(ckpts, tmp_path, capsys):
    np.save(tmp_path / "only.npy", np.zeros((80, 8), np.complex64))
    code = main(["vocode", "--checkpoint", str(ckpts.run), str(tmp_path / "only.npy"), "--out-dir",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'only.npy'}: holds complex values")


def test_pickle_module_is_never_used_for_mels(tmp_path, monkeypatch):
    """np.load(allow_pickle=False): a pickled .npy must not run code."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        pickle.dump(np.array([Evil()], dtype=object), handle)
    with pytest.raises(MelInputError, match="pickled"):
        read_mel(path, FRONTEND)
    assert not marker.exists()
