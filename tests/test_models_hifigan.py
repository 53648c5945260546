"""HiFi-GAN models: exact parameter counts, shapes, weight-norm removal, deepcopy, config validation, discriminators."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gankit.errors import ConfigError
from gankit.models import build_generator
from gankit.models.hifigan import (
    HifiGanGenerator,
    HifiGanGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
)
from gankit.models.layers import DiscriminatorOutput, get_padding, init_normal_, remove_parametrizations
from tests.support.original_hifigan import V3_LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


V1: dict = {}
V2 = {"upsample_initial_channel": 128}
V3 = V3_LAYOUT  # the published config_v3.json


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta(factory):
    with torch.device("meta"):  # counts and names without allocating or initialising 70 M weights
        return factory()


@pytest.mark.parametrize(
    ("cfg", "with_wn", "without_wn"),
    [(V1, 13_936_130, 13_926_017), (V2, 928_514, 925_985), (V3, 1_464_322, 1_462_273)],
    ids=["v1", "v2", "v3"],
)
def test_generator_parameter_counts(cfg, with_wn, without_wn):
    gen = meta(lambda: HifiGanGenerator(HifiGanGeneratorConfig.from_dict(cfg)))
    assert count(gen) == with_wn
    gen.remove_weight_norm()
    assert count(gen) == without_wn
    assert not any(parametrize.is_parametrized(m) for m in gen.modules())


def test_discriminator_parameter_counts():
    assert count(meta(MultiPeriodDiscriminator)) == 41_105_770
    assert count(meta(MultiScaleDiscriminator)) == 29_618_821


def test_original_layer_names():
    keys = set(meta(lambda: HifiGanGenerator(HifiGanGeneratorConfig())).state_dict())
    assert "conv_pre.parametrizations.weight.original0" in keys
    assert "ups.3.parametrizations.weight.original1" in keys
    assert "resblocks.11.convs1.2.bias" in keys and "resblocks.11.convs2.2.bias" in keys
    assert "conv_post.bias" in keys
    v3 = set(meta(lambda: HifiGanGenerator(HifiGanGeneratorConfig.from_dict(V3))).state_dict())
    assert "resblocks.8.convs.1.bias" in v3 and not any("convs1" in k for k in v3)
    mpd = set(meta(MultiPeriodDiscriminator).state_dict())
    assert "discriminators.4.convs.4.parametrizations.weight.original1" in mpd
    assert "discriminators.4.conv_post.bias" in mpd
    msd = meta(MultiScaleDiscriminator)
    keys = set(msd.state_dict())
    assert "discriminators.0.convs.6.parametrizations.weight.0._u" in keys  # spectral norm on the first
    assert "discriminators.1.convs.6.parametrizations.weight.original0" in keys  # weight norm on the others
    assert len(msd.meanpools) == 2


@pytest.mark.parametrize("cfg", [V1, V2, V3], ids=["v1", "v2", "v3"])
def test_generator_output_shape(cfg):
    torch.manual_seed(0)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(cfg)).eval()
    frames = 3
    with torch.no_grad():
        out = gen(torch.randn(2, 80, frames))
    assert out.shape == (2, 1, frames * 256)
    assert gen.hop_length == 256
    assert out.abs().max() <= 1.0  # tanh


def test_remove_weight_norm_keeps_output():
    torch.manual_seed(0)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(V3)).eval()
    mel = torch.randn(1, 80, 4)
    with torch.no_grad():
        before = gen(mel)
        gen.remove_weight_norm()
        after = gen(mel)
    assert "conv_pre.weight" in gen.state_dict()
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_deepcopy_is_independent():
    torch.manual_seed(0)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict({**V3, "upsample_initial_channel": 32}))
    twin = copy.deepcopy(gen)
    mel = torch.randn(1, 80, 3)
    torch.testing.assert_close(twin(mel), gen(mel))
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert not torch.equal(next(twin.parameters()), next(gen.parameters()))
    msd = copy.deepcopy(MultiScaleDiscriminator(channel_divisor=16))
    assert isinstance(msd(torch.randn(1, 1, 256)), DiscriminatorOutput)


def test_folding_weight_norm_of_a_copy_leaves_the_original_working():
    # torch's remove_parametrizations edits the module's class, which deepcopy shares: an EMA or probe copy prepared
    # for inference must not take the parametrized weights away from the network still training.
    torch.manual_seed(0)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict({**V3, "upsample_initial_channel": 32})).eval()
    mel = torch.randn(1, 80, 3)
    with torch.no_grad():
        before = gen(mel)
        copy.deepcopy(gen).remove_weight_norm()
        twin = remove_parametrizations(copy.deepcopy(gen))
        torch.testing.assert_close(gen(mel), before, atol=0, rtol=0)
        torch.testing.assert_close(twin(mel), before, atol=1e-5, rtol=0)
    assert parametrize.is_parametrized(gen.conv_pre) and not parametrize.is_parametrized(twin.conv_pre)


def test_init_is_normal_001_where_the_original_meant_it():
    torch.manual_seed(0)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(V2))
    for module in (gen.ups[0], gen.resblocks[0].convs1[0], gen.conv_post):
        assert abs(float(module.weight.detach().std()) - 0.01) < 0.001
    assert abs(float(gen.conv_pre.weight.detach().std()) - 0.01) > 0.005  # PyTorch's default, as the original


def test_config_round_trip_and_hop():
    cfg = HifiGanGeneratorConfig.from_dict({**V3, "resblock": 2, "upsample_rates": (8, 8, 4)})
    assert cfg.resblock == "2" and cfg.upsample_rates == [8, 8, 4]
    assert cfg.hop_length == 256
    d = cfg.to_dict()
    assert d == HifiGanGeneratorConfig.from_dict(d).to_dict()
    assert all(isinstance(v, (str, int, list)) for v in d.values())
    assert HifiGanGeneratorConfig.from_dict({}).to_dict()["upsample_rates"] == [8, 8, 2, 2]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"upsampel_rates": [8, 8, 2, 2]}, ["upsampel_rates", "unknown"]),
        ({"upsample_rates": [8, 8, 2]}, ["upsample_rates", "upsample_kernel_sizes"]),
        ({"resblock_dilation_sizes": [[1, 3, 5]]}, ["resblock_dilation_sizes"]),
        ({"upsample_kernel_sizes": [4, 16, 4, 4]}, ["stage 0", "kernel"]),
        ({"upsample_kernel_sizes": [15, 16, 4, 4]}, ["stage 0", "even"]),
        ({"resblock": "3"}, ["resblock"]),
        ({"n_mels": 0}, ["n_mels"]),
        ({"upsample_initial_channel": True}, ["upsample_initial_channel"]),
        ({"resblock_kernel_sizes": [3, 7, -1]}, ["resblock_kernel_sizes[2]"]),
        ({"resblock_kernel_sizes": [3, 8, 11]}, ["odd"]),
        ({"upsample_initial_channel": 8}, ["upsample_initial_channel"]),
    ],
)
def test_config_validation(change, words):
    with pytest.raises(ConfigError) as err:
        HifiGanGeneratorConfig.from_dict({**V1, **change})
    for word in words:
        assert word in str(err.value)


def test_registry():
    gen = build_generator("hifigan", {**V3, "upsample_initial_channel": 16})
    assert isinstance(gen, HifiGanGenerator) and gen.cfg.resblock == "2"
    with pytest.raises(ConfigError, match="hifigan"):
        build_generator("wavenet", {})


def test_mpd_structure_and_divisor():
    mpd = MultiPeriodDiscriminator(channel_divisor=16)
    assert count(mpd) * 200 < 41_105_770
    x = torch.randn(2, 1, 600, requires_grad=True)
    out = mpd(x)
    assert len(out.scores) == 5 and len(out.features) == 5
    assert all(len(f) == 6 for f in out.features)  # 5 convs + conv_post, as the original fmap
    assert all(s.ndim == 2 and s.shape[0] == 2 for s in out.scores)
    for feats, score in zip(out.features, out.scores, strict=True):
        assert feats[-1].flatten(1).shape == score.shape
    sum(s.mean() for s in out.scores).backward()
    assert x.grad is not None and all(p.grad is not None for p in mpd.parameters())


def test_msd_structure_and_divisor():
    msd = MultiScaleDiscriminator(channel_divisor=32)
    assert count(msd) * 300 < 29_618_821
    for conv in msd.discriminators[1].convs:
        assert conv.in_channels % conv.groups == 0 and conv.out_channels % conv.groups == 0
    out = msd(torch.randn(2, 1, 512))
    assert len(out) == 3 and len(out.features) == 3
    assert all(len(f) == 8 for f in out.features)  # 7 convs + conv_post
    assert [s.shape[-1] for s in out.scores] == [8, 5, 3]  # the pooled scales are shorter
    assert type(msd.discriminators[0].convs[0].parametrizations.weight[0]).__name__ == "_SpectralNorm"
    assert type(msd.discriminators[2].conv_post.parametrizations.weight[0]).__name__ == "_WeightNorm"
    with pytest.raises(ConfigError):
        MultiScaleDiscriminator(channel_divisor=0)
    with pytest.raises(ConfigError):
        MultiPeriodDiscriminator(periods=[2, 0])


@pytest.mark.parametrize("length", [97, 100, 101])
def test_mpd_reflect_pads_to_a_multiple_of_the_period(length):
    torch.manual_seed(0)
    d = PeriodDiscriminator(7, channel_divisor=32)
    x = torch.randn(1, 1, length)
    score, feats = d(x)
    pad = (7 - length % 7) % 7
    ref_score, _ = d(F.pad(x, (0, pad), "reflect") if pad else x)
    torch.testing.assert_close(score, ref_score)
    assert feats[0].shape[-1] == 7


def test_layers_helpers():
    assert get_padding(7) == 3 and get_padding(3, 5) == 5
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(64, 64, 5))
    init_normal_(conv, 0.0, 0.02)
    assert abs(float(conv.weight.detach().std()) - 0.02) < 0.002
    remove_parametrizations(conv)
    assert not parametrize.is_parametrized(conv) and isinstance(conv.weight, nn.Parameter)
