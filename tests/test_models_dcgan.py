"""DCGAN models: the published parameter counts and the reference's state-dict layout, the N(0, 0.02) / N(1, 0.02)
initialisation, shapes at 32/64 pixels and 1/3 channels, the tanh range, logits of shape [B], optional dropout,
and the config's validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models.dcgan import DcganConfig, DcganDiscriminator, DcganGenerator, init_dcgan_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# (image size, channels) → (generator, discriminator) parameters. 64×64 RGB and both 32×32 rows are the published
# figures; 64×64 grey differs from 64×64 RGB only in the image-side convolutions: 2 fewer channels × 64 × 4 × 4.
COUNTS = {
    (64, 3): (3_576_704, 2_765_568),
    (64, 1): (3_576_704 - 2 * 64 * 16, 2_765_568 - 2 * 64 * 16),
    (32, 3): (1_068_928, 663_296),
    (32, 1): (1_066_880, 661_248),
}


@pytest.mark.parametrize(("size", "channels"), list(COUNTS))
def test_parameter_counts_are_the_published_ones(size: int, channels: int) -> None:
    cfg = DcganConfig(image_size=size, channels=channels)
    assert (count(DcganGenerator(cfg)), count(DcganDiscriminator(cfg))) == COUNTS[size, channels]


def test_state_dict_layout_is_the_reference_one() -> None:
    """pytorch/examples dcgan/main.py: `main` = Sequential, so its netG/netD files load by these names."""
    g = {k: list(v.shape) for k, v in DcganGenerator(DcganConfig()).named_parameters()}
    d = {k: list(v.shape) for k, v in DcganDiscriminator(DcganConfig()).named_parameters()}
    expected_g: dict[str, list[int]] = {"main.0.weight": [100, 512, 4, 4], "main.12.weight": [64, 3, 4, 4]}
    for conv, c_in, c_out in ((3, 512, 256), (6, 256, 128), (9, 128, 64)):
        expected_g[f"main.{conv}.weight"] = [c_in, c_out, 4, 4]
    for bn, width in ((1, 512), (4, 256), (7, 128), (10, 64)):
        expected_g |= {f"main.{bn}.weight": [width], f"main.{bn}.bias": [width]}
    expected_d: dict[str, list[int]] = {"main.0.weight": [64, 3, 4, 4], "main.11.weight": [1, 512, 4, 4]}
    for conv, bn, c_in, c_out in ((2, 3, 64, 128), (5, 6, 128, 256), (8, 9, 256, 512)):
        expected_d |= {f"main.{conv}.weight": [c_out, c_in, 4, 4], f"main.{bn}.weight": [c_out],
                       f"main.{bn}.bias": [c_out]}
    assert g == expected_g
    assert d == expected_d


def _conv_and_bn(*modules: nn.Module) -> tuple[list[nn.Module], list[nn.BatchNorm2d]]:
    convs = [m for net in modules for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    bns = [m for net in modules for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    return convs, bns


def test_initialisation_is_the_reference_one() -> None:
    torch.manual_seed(0)
    cfg = DcganConfig()
    convs, bns = _conv_and_bn(DcganGenerator(cfg), DcganDiscriminator(cfg))
    assert len(convs) == 10 and len(bns) == 7
    # Per layer, within 5 standard errors of the sample mean and standard deviation of n normal draws.
    for conv in convs:
        w = conv.weight.detach().double()
        n = w.numel()
        assert abs(w.mean().item()) < 5 * 0.02 / n**0.5
        assert abs(w.std().item() - 0.02) < 5 * 0.02 / (2 * n) ** 0.5
        assert conv.bias is None
    for bn in bns:
        w = bn.weight.detach().double()
        n = w.numel()
        assert abs(w.mean().item() - 1.0) < 5 * 0.02 / n**0.5
        assert abs(w.std().item() - 0.02) < 5 * 0.02 / (2 * n) ** 0.5
        assert torch.all(bn.bias == 0)


def test_init_function_covers_a_whole_tree_and_zeroes_conv_biases() -> None:
    net = nn.Sequential(nn.Conv2d(3, 64, 4), nn.Sequential(nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 64, 4)))
    nn.init.constant_(net[1][0].bias, 3.0)
    init_dcgan_weights(net)
    assert torch.all(net[0].bias == 0) and torch.all(net[1][1].bias == 0) and torch.all(net[1][0].bias == 0)
    assert abs(net[1][1].weight.std().item() - 0.02) < 0.001
    assert 0 < net[1][0].weight.std().item() < 0.05


@pytest.mark.parametrize(("size", "channels"), [(64, 3), (64, 1), (32, 3), (32, 1)])
def test_shapes_range_and_logits(size: int, channels: int) -> None:
    torch.manual_seed(1)
    cfg = DcganConfig(image_size=size, channels=channels, g_width=8, d_width=8, latent_size=16)
    g, d = DcganGenerator(cfg), DcganDiscriminator(cfg)
    z = torch.randn(3, 16)
    images = g(z)
    assert images.shape == (3, channels, size, size)
    assert torch.equal(images, g(z[:, :, None, None]))  # the reference's [B, nz, 1, 1] input too
    assert images.min() >= -1 and images.max() <= 1
    logits = d(images)
    assert logits.shape == (3,)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    with torch.no_grad():  # BatchNorm undoes any scaling of z; a scaled last layer drives the tanh to its limits
        g.main[-2].weight.mul_(1000)
    saturated = g(z)
    assert saturated.abs().max().item() > 0.999 and saturated.min() >= -1 and saturated.max() <= 1


def test_wrong_input_shapes_are_refused() -> None:
    cfg = DcganConfig(image_size=32, g_width=8, d_width=8)
    with pytest.raises(ValueError, match="z must be"):
        DcganGenerator(cfg)(torch.randn(2, 99))
    with pytest.raises(ValueError, match="images must be"):
        DcganDiscriminator(cfg)(torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize(("size", "hidden"), [(64, 4), (32, 3)])
def test_dropout_only_when_configured(size: int, hidden: int) -> None:
    def dropouts(net: nn.Module) -> list[nn.Dropout2d]:
        return [m for m in net.modules() if isinstance(m, nn.Dropout2d)]

    plain = DcganDiscriminator(DcganConfig(image_size=size, d_width=8))
    assert dropouts(plain) == []
    with_dropout = DcganDiscriminator(DcganConfig(image_size=size, d_width=8, d_dropout=0.3))
    found = dropouts(with_dropout)
    assert len(found) == hidden and all(m.p == 0.3 for m in found)
    layers = list(with_dropout.main)
    # Each right after a hidden layer's LeakyReLU; none after the final convolution.
    assert all(isinstance(layers[layers.index(m) - 1], nn.LeakyReLU) for m in found)
    assert isinstance(layers[-1], nn.Conv2d)
    assert count(with_dropout) == count(plain)
    assert dropouts(DcganGenerator(DcganConfig(image_size=size, g_width=8, d_dropout=0.3))) == []


def test_config_round_trip_and_validation() -> None:
    cfg = DcganConfig.from_dict({"image_size": 32, "channels": 1, "d_dropout": 0.25})
    assert DcganConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict() == {"image_size": 32, "channels": 1, "latent_size": 100, "g_width": 64, "d_width": 64,
                             "d_dropout": 0.25}
    for bad, match in (({"ngf": 64}, "unknown key"), ({"image_size": 48}, "image_size"), ({"channels": 2}, "channels"),
                       ({"channels": True}, "channels"), ({"image_size": 64.0}, "image_size"),
                       ({"latent_size": 0}, "latent_size"), ({"g_width": True}, "g_width"),
                       ({"d_dropout": 1.0}, "d_dropout"), ({"d_dropout": -0.1}, "d_dropout")):
        with pytest.raises(ConfigError, match=match):
            DcganConfig.from_dict(bad)
