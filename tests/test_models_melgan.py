"""MelGAN models: exact parameter counts, the original's state-dict names and outputs (strict load of a legacy
weight-normed state dict), shapes, configurable residual stacks, the discriminator and its channel divisor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from gankit.compat.hifigan_original import gankit_to_original, original_to_gankit
from gankit.compat.melgan_original import infer_generator_config, read_original_melgan_generator
from gankit.errors import CheckpointError, ConfigError
from gankit.infer import load_vocoder
from gankit.models import build_generator, melgan
from gankit.models.layers import DiscriminatorOutput, remove_parametrizations
from gankit.models.melgan import MelGanGenerator, MelGanGeneratorConfig, MelGanMultiScaleDiscriminator
from tests.support import original_melgan

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_generator_parameter_counts_are_the_published_ones() -> None:
    generator = MelGanGenerator(MelGanGeneratorConfig())
    assert count(generator) == 4_266_050
    assert count(remove_parametrizations(generator)) == 4_260_257


def test_discriminator_parameter_counts_are_the_published_ones() -> None:
    disc = MelGanMultiScaleDiscriminator()
    assert count(disc) == 16_924_086
    assert count(remove_parametrizations(disc)) == 16_913_859


def test_generator_state_dict_names_follow_the_original_layout() -> None:
    legacy = set(gankit_to_original(MelGanGenerator(MelGanGeneratorConfig(ngf=2)).state_dict()))
    tops = {int(k.split(".")[1]) for k in legacy}
    convs = {i for i in tops if f"model.{i}.weight_g" in legacy}
    assert convs == {1, 3, 8, 13, 18, 24}
    blocks = tops - convs
    assert blocks == {4, 5, 6, 9, 10, 11, 14, 15, 16, 19, 20, 21}
    for i in blocks:
        for part in ("block.2", "block.4", "shortcut"):
            assert {f"model.{i}.{part}.{leaf}" for leaf in ("bias", "weight_g", "weight_v")} <= legacy


# Parity on loud weights. The original's effective init gives outputs of std ~3e-4, where a wrong activation slope
# hides below any honest tolerance. With loud weights a 1% slope change moves the output by ~1e-2 of its std,
# float32 rounding by ~5e-6 (measured against a float64 run of the same weights).
PARITY_TOL = 2e-5  # max |gankit − original| / std(original)


def make_loud(original: original_melgan.Generator, mel: torch.Tensor) -> None:
    """Weight-norm gains ~U(0.5, 1.5) (about unit gain per conv), random directions, small biases; then the last
    conv scaled so that, on `mel`, the signal tanh sees has std 0.35: a loud output that tanh does not saturate."""
    with torch.no_grad():
        for name, p in original.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand_like(p) + 0.5)
            else:
                p.copy_(torch.randn_like(p) * (0.1 if name.endswith("bias") else 1.0))
        last = original.model[-2]
        seen: list[torch.Tensor] = []
        hook = last.register_forward_hook(lambda _m, _i, out: seen.append(out))
        original(mel)
        hook.remove()
        scale = 0.35 / seen[0].std()
        last.weight_g.mul_(scale)
        last.bias.mul_(scale)


def parity_gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours − theirs| relative to the original's output std, after checking that output is loud (std > 0.1)
    and not saturated by tanh (under 1% of samples beyond ±0.95)."""
    assert ours.shape == theirs.shape
    assert theirs.std() > 0.1 and (theirs.abs() > 0.95).float().mean() < 0.01, "weights not loud enough to compare"
    return float((ours - theirs).abs().max() / theirs.std())


@pytest.fixture(scope="module")
def loud_original() -> tuple[original_melgan.Generator, torch.Tensor]:
    """The published MelGAN generator (`Generator(80, 32, 3)`) with loud weights, and an input. Read-only."""
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 12)
    original = original_melgan.Generator(80, 32, 3).eval()
    make_loud(original, mel)
    return original, mel


def test_original_generator_state_dict_loads_strictly_and_computes_the_same(tmp_path: Path, loud_original) -> None:
    original, mel = loud_original
    state = original.state_dict()
    assert "model.1.weight_g" in state and "model.4.block.2.weight_v" in state  # the published files' names
    ours = MelGanGenerator(MelGanGeneratorConfig())
    ours.load_state_dict(original_to_gankit(state), strict=True)
    with torch.no_grad():
        expected = original(mel)
        assert parity_gap(ours.eval()(mel), expected) < PARITY_TOL
    assert expected.shape == (1, 1, 12 * 256)

    torch.save(state, tmp_path / "netG.pt")  # what melgan-neurips' train.py writes
    vocoder = load_vocoder(tmp_path / "netG.pt")
    assert vocoder.family == "melgan" and vocoder.frontend.preset == "melgan" and vocoder.sample_rate == 22050
    assert parity_gap(vocoder(mel[0]), expected[0, 0]) < PARITY_TOL


def test_parity_check_catches_a_one_percent_slope_change(monkeypatch, loud_original) -> None:
    """The check above is not vacuous: gankit's generator built with LeakyReLU 0.202 instead of 0.2 fails it."""
    original, mel = loud_original
    monkeypatch.setattr(melgan, "LRELU_SLOPE", 0.202)
    ours = MelGanGenerator(MelGanGeneratorConfig())
    ours.load_state_dict(original_to_gankit(original.state_dict()), strict=True)
    assert {m.negative_slope for m in ours.modules() if isinstance(m, nn.LeakyReLU)} == {0.202}
    with torch.no_grad():
        assert parity_gap(ours.eval()(mel), original(mel)) > 5 * PARITY_TOL


def test_original_file_architecture_is_read_from_the_weights_and_args_yml(tmp_path: Path) -> None:
    original = original_melgan.Generator(64, 8, 2)  # a small non-default model: 64 mels, ngf 8, 2 blocks a stage
    state = original.state_dict()
    assert infer_generator_config(state, "x") == {
        "n_mels": 64, "ngf": 8, "ratios": [8, 8, 2, 2], "residual_layers": 2, "residual_stacks": 1,
    }
    torch.save(state, tmp_path / "best_netG.pt")
    # The original's args.yml is yaml.dump(argparse.Namespace): a python/object tag that safe YAML must still read.
    args = "!!python/object:argparse.Namespace\nn_mel_channels: 64\nngf: 8\nn_residual_layers: 2\nseq_len: 8192\n"
    (tmp_path / "args.yml").write_text(args)
    read = read_original_melgan_generator(tmp_path / "best_netG.pt", tmp_path / "args.yml")
    assert read.frontend["preset"] == "melgan" and read.frontend["n_mels"] == 64
    assert set(read.state_dict) == set(MelGanGenerator(MelGanGeneratorConfig(n_mels=64, ngf=8, residual_layers=2))
                                       .state_dict())
    (tmp_path / "args.yml").write_text(args.replace("ngf: 8", "ngf: 16"))
    with pytest.raises(CheckpointError, match="ngf 16 but the weights have 8"):
        read_original_melgan_generator(tmp_path / "best_netG.pt", tmp_path / "args.yml")
    # A gankit config chooses the front-end (here HiFi-GAN's mel, 80 bands: does not fit a 64-mel generator).
    with pytest.raises(CheckpointError, match="64 mels"):
        load_vocoder(tmp_path / "best_netG.pt", config="hifigan_v1")


def test_original_discriminator_state_dict_loads_and_gives_the_same_features() -> None:
    torch.manual_seed(0)
    original = original_melgan.Discriminator(3, 16, 4, 4)
    ours = MelGanMultiScaleDiscriminator()
    ours.load_state_dict(original_to_gankit(original.state_dict()), strict=True)
    x = torch.randn(1, 1, 2048)
    with torch.no_grad():
        expected = original(x)
        out = ours(x)
    assert isinstance(out, DiscriminatorOutput) and len(out) == 3
    for i in range(3):
        assert len(out.features[i]) == 7  # layer_0 … layer_6, the score map last
        for ref, got in zip(expected[i], out.features[i], strict=True):
            assert torch.allclose(ref, got, atol=1e-6)
        assert torch.equal(out.scores[i], torch.flatten(expected[i][-1], 1))
    assert [s.shape[-1] for s in out.scores] == [8, 4, 2]  # ÷256 then the 2× pooling between scales


@pytest.mark.parametrize("ratios", [[8, 8, 2, 2], [5, 3, 4], [8, 8, 4]])
def test_generator_makes_hop_samples_per_frame(ratios: list[int]) -> None:
    generator = MelGanGenerator(MelGanGeneratorConfig(n_mels=20, ngf=2, ratios=ratios))
    assert generator.hop_length == torch.tensor(ratios).prod().item()
    out = generator(torch.randn(2, 20, generator.min_frames + 3))
    assert out.shape == (2, 1, (generator.min_frames + 3) * generator.hop_length)
    assert out.abs().max() <= 1.0


def test_residual_stacks_and_layers_are_one_override_away() -> None:
    def blocks(**kw: int) -> int:
        g = build_generator("melgan", {"ngf": 2, **kw})
        return sum(1 for m in g.modules() if type(m).__name__ == "ResnetBlock")

    assert blocks() == 4 * 3
    assert blocks(residual_stacks=3) == 4 * 9
    assert blocks(residual_layers=4, residual_stacks=2) == 4 * 8
    g = MelGanGenerator(MelGanGeneratorConfig(ngf=2, residual_layers=4))
    dilations = [m.block[2].dilation[0] for m in g.model[4:8]]
    assert dilations == [1, 3, 9, 27]


@pytest.mark.parametrize(
    ("change", "words"),
    [({"ngf": 0}, "ngf must be a positive integer"), ({"ratios": []}, "ratios must be a non-empty list"),
     ({"residual_stacks": 1.5}, "residual_stacks"), ({"kernel": 3}, "unknown key(s) kernel")],
)
def test_config_validation(change: dict, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        MelGanGeneratorConfig.from_dict(change)
    assert words in str(info.value)


def test_discriminator_channel_divisor_keeps_the_structure() -> None:
    full = MelGanMultiScaleDiscriminator()
    small = MelGanMultiScaleDiscriminator(channel_divisor=16)
    assert set(small.state_dict()) == set(full.state_dict())  # same layers, narrower
    assert count(small) < count(full) / 100
    out = small(torch.randn(2, 1, 4096))
    assert [len(f) for f in out.features] == [7, 7, 7] and out.scores[0].shape == (2, 16)
    with pytest.raises(ConfigError, match="channel_divisor"):
        MelGanMultiScaleDiscriminator(channel_divisor=0)
    with pytest.raises(ConfigError, match="n_layers"):
        MelGanMultiScaleDiscriminator(n_layers=0)


def test_melgan_yaml_builds_the_published_networks() -> None:
    from gankit.config import load_config
    from gankit.tasks import build_task

    _, config = load_config("melgan")
    task = build_task(config)
    assert task.name == "melgan" and task.adversarial.name == "hinge" and task.adversarial.no_information_d_loss == 2.0
    assert task.frontend.preset == "melgan" and task.frontend.fmax == 11025 and task.random_gain == (0.3, 1.0)
    assert task.weights.lambda_fm == 10.0 and task.weights.lambda_mel == 0.0 and task.feature_matching_layers == 4
    for group in ("g", "d"):
        assert config["optim"][group] == {"type": "Adam", "lr": 1e-4, "betas": [0.5, 0.9], "weight_decay": 0.0,
                                          "clip": None, "scheduler": {"type": "ExponentialLR", "gamma": 1.0,
                                                                      "interval": "epoch"}}
    nets = task.build_networks()
    assert count(nets["generator"]) == 4_266_050 and count(nets["msd"]) == 16_924_086
    # melgan.yaml does not inherit HiFi-GAN's model keys, so it spells out the engine's sections: they must not drift.
    _, hifigan = load_config("hifigan_v1")
    for section in ("train", "data", "optim", "schedule", "validation"):
        assert set(config[section]) == set(hifigan[section]), section
    broken = yaml.safe_load(yaml.safe_dump(config))
    broken["model"]["generator"]["ratios"] = [8, 8, 2]
    with pytest.raises(ConfigError, match=r"ratios \[8, 8, 2\] multiply to 128, but frontend.hop_length is 256"):
        build_task(broken)


def test_batched_vocoding_of_unequal_lengths_matches_one_at_a_time() -> None:
    # Reflection padding would see a shorter item's padding frames; the Vocoder must not batch those together.
    from gankit.infer import Vocoder

    torch.manual_seed(0)
    vocoder = Vocoder(MelGanGenerator(MelGanGeneratorConfig(ngf=2)), {"preset": "melgan"}, "melgan")
    mels = [torch.randn(80, 9), torch.randn(80, 5), torch.randn(80, 9)]
    batched = vocoder.vocode_batch(mels)
    assert [w.shape[-1] for w in batched] == [9 * 256, 5 * 256, 9 * 256]
    for wave, mel in zip(batched, mels, strict=True):
        assert torch.allclose(wave, vocoder(mel), atol=1e-6)
