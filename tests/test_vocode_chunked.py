"""Long mels in pieces: the context each generator needs (computed from its layout, checked against a gradient probe),
chunked and streamed vocoding equal to the whole-utterance call within 1e-4 on lively seeded generators (HiFi-GAN V1
and V3 layouts, MelGAN), and `gankit vocode --chunk-frames` reading mels memory-mapped and writing as it goes."""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from gankit.cli import main
from gankit.commands import vocode as vocode_command
from gankit.errors import MelInputError
from gankit.infer import Vocoder
from gankit.infer import mel_input as mel_input_module
from gankit.infer.chunking import DEFAULT_CHUNK_FRAMES, FrameContext, architecture_context, probe_context
from gankit.infer.mel_input import open_mel
from gankit.models import build_generator
from tests.support.vocoder_files import ln_mel, save_generator

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

V1 = {"upsample_initial_channel": 32}  # V1's layout (the receptive field) at 1/16 of its width
V3 = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
      "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5, 7],
      "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]}  # V3's layout at 1/8 of its width
MELGAN = {"ngf": 8}  # melgan_tiny
GENERATORS = {"v1": ("hifigan", V1), "v3": ("hifigan", V3), "melgan": ("melgan", MELGAN)}
PRESETS = {"hifigan": "hifigan", "melgan": "melgan"}


def lively(generator: nn.Module, seed: int) -> nn.Module:
    """Random weights of unit gain, then the last conv scaled so the output is loud (std ≈ 0.35) but rarely near ±1.

    The default init makes outputs of ~1e-4, under which any chunking error would pass a 1e-4 tolerance, and tanh
    near ±1 would hide the error of a missing context frame."""
    torch.manual_seed(seed)
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    with torch.no_grad():
        for conv in convs:
            weight = conv.weight
            if isinstance(conv, nn.ConvTranspose1d):
                fan_in = weight.shape[0] * weight.shape[2] / conv.stride[0]
            else:
                fan_in = weight.shape[1] * weight.shape[2]
            weight.normal_(0.0, fan_in**-0.5)
            conv.bias.normal_(0.0, 0.1)
        last = convs[-1]
        captured: list[torch.Tensor] = []
        handle = last.register_forward_hook(lambda _m, _i, out: captured.append(out))
        generator(torch.from_numpy(ln_mel(40, seed))[None])
        handle.remove()
        scale = 0.4 / captured[0].std()
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    return generator


def make_vocoder(name: str, seed: int = 0) -> Vocoder:
    family, config = GENERATORS[name]
    vocoder = Vocoder(build_generator(family, {"n_mels": 80, **config}), {"preset": PRESETS[family]}, family)
    lively(vocoder.generator, seed)
    return vocoder


@pytest.fixture(scope="module", params=list(GENERATORS))
def vocoder(request: pytest.FixtureRequest) -> Vocoder:
    return make_vocoder(request.param)


def uneven_sizes(total: int, seed: int, largest: int = 12) -> list[int]:
    """Chunk sizes summing to `total`, zeros and ones among them."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(min(int(rng.integers(0, largest)), total - sum(sizes)))
    return [0, 1, *sizes[:-1], 0, sizes[-1]]


def split(mel: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    edges = np.cumsum([0, *sizes])
    return [mel[:, a:b] for a, b in itertools.pairwise(edges)]


# --- the context -----------------------------------------------------------------------------------------------

LAYOUTS = {
    "v1": ("hifigan", V1),
    "v2": ("hifigan", {"upsample_initial_channel": 32, "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]}),
    "v3": ("hifigan", V3),
    "v1_44k": ("hifigan", {**V1, "upsample_rates": [8, 8, 4, 2], "upsample_kernel_sizes": [16, 16, 8, 4]}),
    "melgan": ("melgan", MELGAN),
    "melgan_odd_ratios": ("melgan", {"ngf": 4, "ratios": [5, 5, 3, 3], "residual_stacks": 2}),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_context_from_the_layout_is_what_a_gradient_probe_measures(layout: str):
    family, config = LAYOUTS[layout]
    generator = build_generator(family, {"n_mels": 80, **config})
    computed = architecture_context(generator)
    assert computed == probe_context(generator, 80, generator.hop_length)
    shipped = {"v1": FrameContext(13, 13), "v3": FrameContext(11, 11), "melgan": FrameContext(6, 6)}
    if layout in shipped:
        assert computed == shipped[layout]


def test_a_generator_of_unknown_layout_is_probed():
    class Unknown(nn.Module):  # a 5-tap conv over frames, then ×4 nearest upsampling: ±2 frames
        hop_length = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(80, 1, 5, padding=2)

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.conv(mel)).repeat_interleave(4, dim=-1)

    vocoder = Vocoder(Unknown(), {"preset": "hifigan", "hop_length": 4, "win_length": 16, "n_fft": 16}, "unknown")
    assert vocoder.context == FrameContext(2, 2)
    mel = torch.from_numpy(ln_mel(23, 1))
    torch.testing.assert_close(torch.cat(list(vocoder.vocode_chunked(mel, 5))), vocoder(mel), atol=1e-6, rtol=0)


# --- chunked vocoding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frames,chunk", [(157, 37), (157, 50), (157, 156), (157, 157), (157, 400), (61, 1), (9, 2)])
def test_chunks_equal_the_whole_utterance(vocoder: Vocoder, frames: int, chunk: int):
    """Boundaries at odd places, a short last chunk (157 = 4·37 + 9), chunks shorter than the context, a mel shorter
    than the context on both sides (9 frames in chunks of 2), one chunk of the whole."""
    mel = ln_mel(frames, seed=frames)
    whole = vocoder(mel)
    pieces = list(vocoder.vocode_chunked(mel, chunk))
    assert [len(p) for p in pieces] == [min(chunk, frames - a) * vocoder.hop_length for a in range(0, frames, chunk)]
    torch.testing.assert_close(torch.cat(pieces), whole, atol=1e-4, rtol=0)


def test_without_the_context_chunks_differ(vocoder: Vocoder):
    """The premise of the test above: the generators are lively enough that a chunk's edges show."""
    mel = ln_mel(157, seed=157)
    whole = vocoder(mel)
    derived, vocoder._context = vocoder.context, FrameContext(0, 0)
    try:
        naive = torch.cat(list(vocoder.vocode_chunked(mel, 37)))
    finally:
        vocoder._context = derived
    assert (naive - whole).abs().max() > 0.05


def test_melgan_needs_every_frame_of_its_context():
    """Reflection at a chunk's edge is far from what the next frames hold: one frame less on either side shows."""
    vocoder = make_vocoder("melgan")
    mel = ln_mel(157, seed=3)
    whole = vocoder(mel)
    derived = vocoder.context
    for short in (FrameContext(derived.left - 1, derived.right), FrameContext(derived.left, derived.right - 1)):
        vocoder._context = short
        assert (torch.cat(list(vocoder.vocode_chunked(mel, 37))) - whole).abs().max() > 1e-3
    vocoder._context = derived


def test_chunks_of_a_tensor_stay_on_its_device_and_a_memory_map_reads_as_numpy(tmp_path: Path):
    vocoder = make_vocoder("v3")
    mel = ln_mel(100, seed=4)
    np.save(tmp_path / "mel.npy", mel)
    mapped = np.load(tmp_path / "mel.npy", mmap_mode="r")
    whole = vocoder(mel)
    for source, chunk in itertools.product((torch.from_numpy(mel), mapped), (30, 400)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch warns of read-only numpy memory (the map, read whole at 400)
            pieces = list(vocoder.vocode_chunked(source, chunk))
        assert all(isinstance(p, torch.Tensor) and p.device.type == "cpu" for p in pieces)
        torch.testing.assert_close(torch.cat(pieces), whole, atol=1e-4, rtol=0)
    with pytest.raises(MelInputError, match="at least 4"):
        next(make_vocoder("melgan").vocode_chunked(ln_mel(3, 1), 2))
    with pytest.raises(MelInputError, match=r"takes \[80, frames\]"):
        next(vocoder.vocode_chunked(ln_mel(10, 1)[None], 4))


# --- streaming -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", ["uneven", "single_frames", "one_piece"])
def test_stream_equals_the_whole_utterance(vocoder: Vocoder, chunking: str):
    frames = 61 if chunking == "single_frames" else 157
    mel = ln_mel(frames, seed=11)
    sizes = {"uneven": uneven_sizes(frames, seed=5), "single_frames": [1] * frames, "one_piece": [frames]}[chunking]
    out = list(vocoder.stream(split(mel, sizes)))
    assert all(isinstance(piece, np.ndarray) and piece.dtype == np.float32 for piece in out)
    np.testing.assert_allclose(np.concatenate(out), vocoder(mel).numpy(), atol=1e-4, rtol=0)


def test_stream_of_tensors_yields_tensors(vocoder: Vocoder):
    mel = torch.from_numpy(ln_mel(80, seed=12))
    out = list(vocoder.stream(torch.split(mel, [3, 40, 1, 36], dim=1)))
    assert all(isinstance(piece, torch.Tensor) for piece in out)
    torch.testing.assert_close(torch.cat(out), vocoder(mel), atol=1e-4, rtol=0)


def test_stream_holds_back_only_the_right_context(vocoder: Vocoder):
    """Whenever the stream asks for the next chunk, the audio of every frame with its right context in is out."""
    mel = ln_mel(120, seed=13)
    hop, right = vocoder.hop_length, vocoder.context.right
    produced = received = 0
    checked = 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal received, checked
        for piece in split(mel, uneven_sizes(120, seed=6)):
            if received >= vocoder.min_frames:
                assert produced == max(0, received - right) * hop, (received, produced // hop)
                checked += 1
            received += piece.shape[1]
            yield piece

    for out in vocoder.stream(chunks()):
        produced += len(out)
    assert produced == 120 * hop and checked > 10


def test_stream_refuses_what_the_whole_call_refuses():
    melgan = make_vocoder("melgan")
    with pytest.raises(MelInputError, match="brought 3 mel frames"):
        list(melgan.stream([ln_mel(2, 1), ln_mel(1, 2)]))
    with pytest.raises(MelInputError, match="shape"):
        list(melgan.stream([ln_mel(8, 1), np.zeros((40, 3), np.float32)]))
    bad = ln_mel(8, 1)
    bad[3, 2] = np.nan
    with pytest.raises(MelInputError, match="NaN"):
        list(melgan.stream([ln_mel(8, 1), bad]))


# --- gankit vocode --chunk-frames ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "generator_00000005.pt"
    save_generator(path, {"preset": "hifigan"})
    return path


def vocode(generator_file: Path, *args: str | Path) -> int:
    return main(["vocode", "--checkpoint", str(generator_file), "--device", "cpu", "--no-progress",
                 *map(str, args)])


def test_the_command_and_the_library_default_to_the_same_chunk():
    assert vocode_command.DEFAULT_CHUNK_FRAMES == DEFAULT_CHUNK_FRAMES


def test_chunked_files_equal_whole_files(generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "long.npy", ln_mel(300, seed=21)[None].astype(np.float64))  # [1, 80, T] float64, as allowed
    np.save(mels / "short.npy", ln_mel(30, seed=22))
    assert vocode(generator_file, mels, "--out-dir", tmp_path / "whole", "--chunk-frames", "0") == 0
    assert vocode(generator_file, mels, "--out-dir", tmp_path / "chunked", "--chunk-frames", "37", "--verbose") == 0
    printed = capsys.readouterr().out
    assert "long.npy → " in printed and "in chunks of 37 frames" in printed  # only the long one was chunked
    assert "short.npy → " in printed and printed.count("in chunks of") == 1
    assert "vocoded 2 files" in printed
    for name, frames in (("long", 300), ("short", 30)):
        whole, sr = sf.read(tmp_path / "whole" / f"{name}.wav", dtype="int16")
        chunked, _ = sf.read(tmp_path / "chunked" / f"{name}.wav", dtype="int16")
        assert sr == 22050 and whole.shape == chunked.shape == (frames * 256,)
        assert np.abs(whole).max() > 1000
        assert np.abs(whole.astype(int) - chunked).max() <= 1
    assert sf.info(tmp_path / "chunked" / "long.wav").subtype == "PCM_16"
    assert sorted(p.name for p in (tmp_path / "chunked").iterdir()) == ["long.wav", "short.wav"]  # no temporary left


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_a_long_file_is_refused_and_warned_about_as_a_whole_one(generator_file: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]):
    broken = ln_mel(300, seed=23)
    broken[7, 250] = np.inf
    broken[2, 280] = np.nan
    np.save(tmp_path / "broken.npy", broken)
    messages = []
    for chunk in ("0", "37"):
        assert vocode(generator_file, tmp_path / "broken.npy", "--out-dir", tmp_path / chunk, "--chunk-frames",
                      chunk) == 2
        messages.append(error_line(capsys))
        assert not (tmp_path / chunk / "broken.wav").exists()
    assert messages[0] == messages[1] and "2 NaN/infinite values (first at band 2, frame 280)" in messages[0]

    np.save(tmp_path / "log10.npy", ln_mel(300, seed=24) / np.log(10) * 0.4)  # never below −5: looks like log10
    warnings = []
    for chunk in ("0", "37"):
        assert vocode(generator_file, tmp_path / "log10.npy", "--out-dir", tmp_path / f"w{chunk}", "--chunk-frames",
                      chunk) == 0
        warnings.append([line for line in capsys.readouterr().err.splitlines() if "warning" in line])
    assert len(warnings[0]) == 1 and warnings[0] == warnings[1] and "log10" in warnings[0][0]


def test_force_interpolates_a_long_file_as_a_whole_one(generator_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    rng = np.random.default_rng(28)
    np.save(tmp_path / "bands100.npy", np.maximum(rng.normal(-5.0, 2.5, (100, 200)), np.log(1e-5)).astype(np.float32))
    warnings = []
    for chunk in ("0", "37"):
        assert vocode(generator_file, tmp_path / "bands100.npy", "--out-dir", tmp_path / chunk, "--chunk-frames",
                      chunk, "--force") == 0
        warnings.append([line for line in capsys.readouterr().err.splitlines() if "warning" in line])
    assert len(warnings[0]) == 1 and warnings[0] == warnings[1] and "100 bands interpolated" in warnings[0][0]
    whole, _ = sf.read(tmp_path / "0" / "bands100.wav", dtype="int16")
    chunked, _ = sf.read(tmp_path / "37" / "bands100.wav", dtype="int16")
    assert whole.shape == chunked.shape == (200 * 256,) and np.abs(whole.astype(int) - chunked).max() <= 1


def test_a_bad_long_file_among_several_is_skipped_with_its_reason(generator_file: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "good.npy", ln_mel(100, seed=25))
    bad = ln_mel(100, seed=26)
    bad[0, 0] = np.nan
    np.save(mels / "bad.npy", bad)
    np.save(mels / "short.npy", ln_mel(10, seed=27))
    assert vocode(generator_file, mels, "--out-dir", tmp_path / "out", "--chunk-frames", "20") == 2
    err = capsys.readouterr().err
    assert re.search(r"skipped: .*bad\.npy: holds 1 NaN/infinite values", err)
    assert "1 of 3 mels could not be used (bad.npy" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav", "short.wav"]


def test_negative_chunk_frames_is_a_usage_error(generator_file: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]):
    np.save(tmp_path / "m.npy", ln_mel(10, seed=1))
    with pytest.raises(SystemExit) as exit_info:
        vocode(generator_file, tmp_path / "m.npy", "--out-dir", tmp_path / "out", "--chunk-frames", "-3")
    assert exit_info.value.code == 2 and "expected 0 or a positive integer" in capsys.readouterr().err


def _mapped_rss_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
@pytest.mark.parametrize("release", [True, False])
def test_a_mapped_mel_stays_on_disk_while_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: bool):
    """open_mel checks a 6.4 MB file and reads it window by window, handing the mapping's pages back after each read.
    Without that (release=False) they would all stay resident: the check can fail."""
    if not release:
        monkeypatch.setattr(mel_input_module.MappedMel, "release", lambda self: None)
    path = tmp_path / "long.npy"
    expected = ln_mel(20_000, seed=31)
    np.save(path, expected)
    vocoder = make_vocoder("v1")
    mel, warning = open_mel(path, vocoder.frontend)
    assert warning is None and mel.frames == 20_000
    peak = 0
    for start in range(0, 20_000, 1000):
        np.testing.assert_array_equal(mel.read(start, start + 1000)[:, :3], expected[:, start : start + 3])
        peak = max(peak, _mapped_rss_kib(path))
    resident_at_end = _mapped_rss_kib(path)
    mel.close()
    if release:
        assert peak < 1024 and resident_at_end < 1024
    else:
        assert resident_at_end > 5 * 1024
