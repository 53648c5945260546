"""Adversarial, feature-matching and multi-resolution STFT losses on hand-made inputs, and the HiFi-GAN task's
losses against the original train.py's composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit.compat.hifigan_original import gankit_to_original
from gankit.config import load_config
from gankit.errors import ConfigError
from gankit.losses.adversarial import HingeLoss, LsganLoss, build_adversarial
from gankit.losses.feature_matching import feature_matching_loss
from gankit.losses.spectral import MultiResolutionSTFTLoss
from gankit.tasks import build_task
from tests.support.original_hifigan import LegacyGenerator, LegacyMPD, LegacyMSD, h_of, original_mel_spectrogram

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


# ---- HiFi-GAN's loss composition: the original train.py ---------------------------------------------------------
# jik876/hifi-gan models.py, verbatim but for names lint rejects.


def original_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g, strict=True):
        for rl, gl in zip(dr, dg, strict=True):
            loss += torch.mean(torch.abs(rl - gl))
    return loss * 2


def original_discriminator_loss(disc_real_outputs, disc_generated_outputs):
    loss = 0
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs, strict=True):
        r_loss = torch.mean((1 - dr) ** 2)
        g_loss = torch.mean(dg**2)
        loss += r_loss + g_loss
    return loss


def original_generator_loss(disc_outputs):
    loss = 0
    for dg in disc_outputs:
        loss += torch.mean((1 - dg) ** 2)
    return loss


def original_train_step_losses(generator, mpd, msd, y, h):
    """train.py's losses for one batch `y` [B, T] (the dataset's mels: x with fmax, y_mel with fmax_for_loss)."""
    def mel(wave, fmax):
        return original_mel_spectrogram(wave, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size,
                                        h.fmin, fmax)

    x, y_mel = mel(y, h.fmax), mel(y, h.fmax_for_loss)
    y = y.unsqueeze(1)
    y_g_hat = generator(x)
    y_g_hat_mel = mel(y_g_hat.squeeze(1), h.fmax_for_loss)
    # discriminators
    y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
    loss_disc_f = original_discriminator_loss(y_df_hat_r, y_df_hat_g)
    y_ds_hat_r, y_ds_hat_g, _, _ = msd(y, y_g_hat.detach())
    loss_disc_s = original_discriminator_loss(y_ds_hat_r, y_ds_hat_g)
    loss_disc_all = loss_disc_s + loss_disc_f
    # generator
    loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
    y_df_hat_r, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
    y_ds_hat_r, y_ds_hat_g, fmap_s_r, fmap_s_g = msd(y, y_g_hat)
    loss_fm_f = original_feature_loss(fmap_f_r, fmap_f_g)
    loss_fm_s = original_feature_loss(fmap_s_r, fmap_s_g)
    loss_gen_f = original_generator_loss(y_df_hat_g)
    loss_gen_s = original_generator_loss(y_ds_hat_g)
    loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
    parts = {"mel": loss_mel, "adv": loss_gen_s + loss_gen_f, "fm": loss_fm_s + loss_fm_f}
    return y_g_hat, loss_disc_all, loss_gen_all, parts


@pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")
def test_hifigan_task_losses_are_the_original_train_py():
    """hifigan_v1's losses (at hifigan_tiny's widths) equal train.py's: D = Σ mean((1−D(y))²) + mean(D(ŷ)²) over
    MPD and MSD; G = Σ mean((1−D(ŷ))²) + 2·Σ mean|f(y) − f(ŷ)| (every layer) + 45 · L1 of the fmax-free loss mels."""
    _, config = load_config("hifigan_tiny", ["device=cpu"])
    task = build_task(config)
    torch.manual_seed(0)
    nets = {key: net.eval() for key, net in task.build_networks().items()}  # eval: no power iterations
    div = config["model"]["msd"]["channel_divisor"]
    h = h_of(config["model"]["generator"])
    originals = {"generator": LegacyGenerator(h), "mpd": LegacyMPD(div), "msd": LegacyMSD(div)}
    for key, original in originals.items():
        original.load_state_dict(gankit_to_original(nets[key].state_dict()), strict=True)
        original.eval()
    t = torch.arange(8192) / 22050
    y = torch.stack([0.3 * torch.sin(2 * torch.pi * 220 * t), 0.3 * torch.sin(2 * torch.pi * 330 * t)])
    y = y + 0.02 * torch.randn_like(y)

    with torch.no_grad():
        y_g_hat, loss_disc_all, loss_gen_all, parts = original_train_step_losses(
            originals["generator"], originals["mpd"], originals["msd"], y, h
        )
        batch = {"audio": y}
        gen = task.generate(nets, batch)
        d_terms, _ = task.discriminator_loss(nets, batch, gen)
        g_terms = task.generator_loss(nets, batch, gen, adversarial=True)

    torch.testing.assert_close(gen.fake, y_g_hat, rtol=0, atol=1e-6)
    # every term weighs in the total (a wrong weight shows)
    assert all(float(v) > 1e-3 * float(loss_gen_all) for v in parts.values()), parts
    assert float(g_terms.total) == pytest.approx(float(loss_gen_all), rel=1e-5)
    assert float(d_terms.total) == pytest.approx(float(loss_disc_all), rel=1e-5)
    # the parts, unweighted in gankit's logs
    assert g_terms.logs["g/mel"] * 45 == pytest.approx(float(parts["mel"]), rel=1e-5)
    assert g_terms.logs["g/adv"] == pytest.approx(float(parts["adv"]), rel=1e-5)
    assert g_terms.logs["g/fm"] * 2 == pytest.approx(float(parts["fm"]), rel=1e-5)
