"""Adversarial, feature-matching and multi-resolution STFT losses on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.losses.adversarial import HingeLoss, LsganLoss, build_adversarial
from gankit.losses.feature_matching import feature_matching_loss
from gankit.losses.spectral import MultiResolutionSTFTLoss

pytestmark = pytest.mark.usefixtures("one_thread")


def full(value: float, *shape: int) -> torch.Tensor:
    return torch.full(shape or (2, 5), value)


def test_lsgan_values():
    loss = build_adversarial("lsgan")
    assert isinstance(loss, LsganLoss) and loss.name == "lsgan"
    total, per_sub = loss.discriminator_loss([full(1.0), full(0.5)], [full(0.0), full(0.5)])
    assert [float(v) for v in per_sub] == pytest.approx([0.0, 0.5])
    assert float(total) == pytest.approx(0.5)
    # D outputs 0.5 everywhere: the no-information value per sub-discriminator
    _, none = loss.discriminator_loss([full(0.5)], [full(0.5)])
    assert float(none[0]) == pytest.approx(loss.no_information_d_loss) == pytest.approx(0.5)
    real = torch.tensor([[0.0, 2.0]])
    fake = torch.tensor([[1.0, 3.0]])
    total, _ = loss.discriminator_loss([real], [fake])
    assert float(total) == pytest.approx((1 + 1) / 2 + (1 + 9) / 2)
    g_total, g_per = loss.generator_loss([full(1.0), torch.tensor([[0.0, 3.0]])])
    assert [float(v) for v in g_per] == pytest.approx([0.0, (1 + 4) / 2])
    assert float(g_total) == pytest.approx(2.5)


def test_hinge_values():
    loss = build_adversarial("hinge")
    assert isinstance(loss, HingeLoss) and loss.name == "hinge"
    _, none = loss.discriminator_loss([full(0.0)], [full(0.0)])
    assert float(none[0]) == pytest.approx(loss.no_information_d_loss) == pytest.approx(2.0)
    real = torch.tensor([[2.0, 0.5, -1.0]])  # relu(1 − r): 0, 0.5, 2
    fake = torch.tensor([[-2.0, 0.0, 1.0]])  # relu(1 + f): 0, 1, 2
    total, per_sub = loss.discriminator_loss([real, full(5.0)], [fake, full(-5.0)])
    assert [float(v) for v in per_sub] == pytest.approx([2.5 / 3 + 1.0, 0.0])
    assert float(total) == pytest.approx(2.5 / 3 + 1.0)
    g_total, g_per = loss.generator_loss([torch.tensor([[1.0, 3.0]]), full(-1.0)])
    assert [float(v) for v in g_per] == pytest.approx([-2.0, 1.0])
    assert float(g_total) == pytest.approx(-1.0)


@pytest.mark.parametrize("name", ["lsgan", "hinge"])
def test_adversarial_gradients_flow(name):
    loss = build_adversarial(name)
    real = torch.randn(2, 5, requires_grad=True)
    fake = torch.randn(2, 5, requires_grad=True)
    loss.discriminator_loss([real], [fake])[0].backward()
    assert real.grad.abs().sum() > 0 and fake.grad.abs().sum() > 0
    fake.grad = None
    loss.generator_loss([fake])[0].backward()
    assert fake.grad.abs().sum() > 0


def test_unknown_adversarial_lists_known():
    with pytest.raises(ConfigError) as err:
        build_adversarial("wgan")
    assert "hinge" in str(err.value) and "lsgan" in str(err.value)


def _features(offset: float) -> list[list[torch.Tensor]]:
    # two sub-discriminators, three layers each (the last is the score map)
    return [[full(offset, 2, 3), full(2 * offset, 2, 4), full(3 * offset, 2, 1)] for _ in range(2)]


def test_feature_matching_uniform():
    real, fake = _features(0.0), _features(1.0)
    # every layer, score included: 2 × (1 + 2 + 3)
    assert float(feature_matching_loss(real, fake)) == pytest.approx(12.0)
    assert float(feature_matching_loss(real, real)) == 0.0


def test_feature_matching_melgan():
    real, fake = _features(0.0), _features(1.0)
    # layers but the score: (1 + 2) per sub-D, weighted 4/(2 + 1) · 1/2
    assert float(feature_matching_loss(real, fake, mode="melgan")) == pytest.approx(2 * 3 * (4 / 3) / 2)
    # MelGAN's own n_layers_D = 4 → 4/5 · 1/num_D
    assert float(feature_matching_loss(real, fake, mode="melgan", n_layers=4)) == pytest.approx(2 * 3 * 0.8 / 2)
    with pytest.raises(ConfigError, match="uniform"):
        feature_matching_loss(real, fake, mode="l2")


def test_feature_matching_gradient_reaches_fake_only():
    real = [[torch.randn(2, 3)]]
    fake = [[torch.randn(2, 3, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0


def test_mr_stft_zero_for_identical_positive_otherwise():
    torch.manual_seed(0)
    loss = MultiResolutionSTFTLoss()
    real = torch.randn(2, 4096) * 0.1
    sc, mag = loss(real, real.clone())
    assert float(sc) == 0.0 and float(mag) == 0.0
    fake = (real + 0.05 * torch.randn_like(real)).requires_grad_(True)
    sc, mag = loss(fake, real)
    assert float(sc.detach()) > 0 and float(mag.detach()) > 0
    (sc + mag).backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    assert len(loss._windows) == 3  # one cached window per resolution on this device/dtype
    assert not list(loss.state_dict())  # windows are not state


def test_mr_stft_silence_is_finite():
    loss = MultiResolutionSTFTLoss(resolutions=((256, 64, 128),))
    silence = torch.zeros(1, 1024, requires_grad=True)
    sc, mag = loss(silence, torch.zeros(1, 1024))
    assert torch.isfinite(sc) and torch.isfinite(mag)
    (sc + mag).backward()
    assert torch.isfinite(silence.grad).all()


def test_mr_stft_bad_resolution():
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss(resolutions=((256, 64, 512),))
