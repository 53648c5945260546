"""StarGAN-VC networks: parameter counts derived by hand from the original's layer shapes (kamepong/StarGAN-VC
net.py Generator1/Discriminator1, module.py ConvGLU1D/DeconvGLU1D, train.py defaults), shapes and the length
constraint, the conditioning paths, the config's validation; the spec256 network's merge convolution against the
literal concatenation, its counts, shapes and range, and its 2-D discriminator's shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError
from gankit.models.stargan_vc import (
    LabelMergeConv2d,
    Spec256Discriminator,
    Spec256Generator,
    StarGanVcConfig,
    StarGanVcDiscriminator,
    StarGanVcGenerator,
    StarGanVcSpec256Config,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- stargan_vc: counts by hand -------------------------------------------------------------------------------
# A gated conv (in → out, kernel k) is a conv to 2·out channels under weight norm (dim 0) plus a parameter-free
# instance norm: v = 2·out·in·k, g = one entry per row of dim 0, bias = 2·out.
#   Conv1d weight [2·out, in, k]          → g has 2·out entries:  2·out·in·k + 2·out + 2·out
#   ConvTranspose1d weight [in, 2·out, k] → g has in entries:     2·out·in·k + in    + 2·out


def gated_conv(c_in: int, c_out: int, k: int) -> int:
    return 2 * c_out * c_in * k + 2 * c_out + 2 * c_out


def gated_deconv(c_in: int, c_out: int, k: int) -> int:
    return 2 * c_out * c_in * k + c_in + 2 * c_out


def generator_count(n_spk: int, source: bool = False) -> int:
    """Generator1(in_ch 80, n_spk, z_ch 16, mid_ch 64, s_ch 16): le1–le5 gated convs (kernels 9, 8, 8, 5, 5),
    le6–le9 gated transposed convs (5, 5, 8, 8) on 64 + 16 inputs (le6: 16 + 16), le10 a plain Conv1d(80, 80, 9)
    with bias, eb1 (and eb0 with source conditioning) Embedding(n_spk, 16)."""
    add = 16 if source else 0
    encoder = (gated_conv(80 + add, 64, 9)  # 128·(80+add)·9 + 256          = 92,416 without add
               + gated_conv(64 + add, 64, 8)  # 128·64·8 + 256               = 65,792
               + gated_conv(64 + add, 64, 8)  # 65,792
               + gated_conv(64 + add, 64, 5)  # 128·64·5 + 256               = 41,216
               + gated_conv(64 + add, 16, 5))  # 32·64·5 + 64                 = 10,304
    decoder = (gated_deconv(16 + 16, 64, 5)  # 128·32·5 + 32 + 128          = 20,640
               + gated_deconv(64 + 16, 64, 5)  # 128·80·5 + 80 + 128         = 51,408
               + gated_deconv(64 + 16, 64, 8)  # 128·80·8 + 80 + 128         = 82,128
               + gated_deconv(64 + 16, 64, 8))  # 82,128
    last = 80 * 80 * 9 + 80  # 57,680
    embeddings = n_spk * 16 * (2 if source else 1)
    return encoder + decoder + last + embeddings


def discriminator_count(n_spk: int) -> int:
    """Discriminator1(in_ch 80, clsnum n_spk, mid_ch 32): le1–le4 gated convs (9, 8, 8, 5), bias-free kernel-5
    heads to 1 and n_spk channels."""
    return (gated_conv(80, 32, 9)  # 64·80·9 + 128 = 46,208
            + gated_conv(32, 32, 8)  # 64·32·8 + 128 = 16,512
            + gated_conv(32, 32, 8)  # 16,512
            + gated_conv(32, 32, 5)  # 64·32·5 + 128 = 10,368
            + 32 * 5  # adversarial head: 160
            + n_spk * 32 * 5)  # classification head: 160 per speaker


@pytest.mark.parametrize(("n_spk", "g_total", "d_total"), [(4, 569_568, 90_400), (10, 569_664, 91_360)])
def test_parameter_counts_follow_the_original_layer_shapes(n_spk: int, g_total: int, d_total: int) -> None:
    # 569,504 + 16·n_spk and 89,760 + 160·n_spk
    assert generator_count(n_spk) == g_total and discriminator_count(n_spk) == d_total
    cfg = StarGanVcConfig(n_speakers=n_spk)
    assert count(StarGanVcGenerator(cfg)) == g_total
    assert count(StarGanVcDiscriminator(cfg)) == d_total


def test_source_conditioning_widens_the_encoder_and_adds_an_embedding() -> None:
    g = StarGanVcGenerator(StarGanVcConfig(n_speakers=4, source_conditioning=True))
    assert count(g) == generator_count(4, source=True) == 633_632  # + 16·128·(9+8+8+5) + 16·32·5 + 4·16


def test_state_dict_names_are_the_originals_under_weight_norm_parametrization() -> None:
    """The original's `le1.conv1.weight_g/weight_v` ↔ `le1.conv1.parametrizations.weight.original0/original1`;
    a transposed conv's gain has one entry per input channel (legacy weight norm, dim 0)."""
    shapes = {k: list(v.shape) for k, v in StarGanVcGenerator(StarGanVcConfig()).state_dict().items()}
    assert shapes["le1.conv1.parametrizations.weight.original0"] == [128, 1, 1]
    assert shapes["le1.conv1.parametrizations.weight.original1"] == [128, 80, 9]
    assert shapes["le8.conv1.parametrizations.weight.original0"] == [80, 1, 1]
    assert shapes["le8.conv1.parametrizations.weight.original1"] == [80, 128, 8]
    assert shapes["le10.weight"] == [80, 80, 9] and shapes["eb1.weight"] == [4, 16]
    assert "eb0.weight" not in shapes
    d = {k: list(v.shape) for k, v in StarGanVcDiscriminator(StarGanVcConfig()).state_dict().items()}
    assert d["le_adv.weight"] == [1, 32, 5] and d["le_cls.weight"] == [4, 32, 5]


def test_generator_shapes_and_the_length_constraint() -> None:
    torch.manual_seed(0)
    g = StarGanVcGenerator(StarGanVcConfig(n_speakers=4))
    mel = torch.randn(3, 80, 36)
    out = g(mel, torch.tensor([0, 1, 3]))
    assert out.shape == (3, 80, 36) and torch.isfinite(out).all()
    # The target speaker changes the output (its embedding feeds every decoder layer).
    assert not torch.allclose(out, g(mel, torch.tensor([1, 1, 3])))
    for frames in (34, 4):  # not a multiple of 4; too short for instance norm at T/4
        with pytest.raises(ValueError, match="multiple of 4"):
            g(torch.randn(1, 80, frames), torch.tensor([0]))
    with pytest.raises(ValueError, match="mel must be"):
        g(torch.randn(1, 40, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="target"):
        g(mel, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="source_conditioning is off"):
        g(mel, torch.tensor([0, 1, 3]), torch.tensor([0, 0, 0]))


def test_source_conditioning_requires_and_uses_the_source() -> None:
    torch.manual_seed(0)
    g = StarGanVcGenerator(StarGanVcConfig(n_speakers=4, source_conditioning=True))
    mel, target = torch.randn(2, 80, 16), torch.tensor([2, 3])
    with pytest.raises(ValueError, match="source speakers are required"):
        g(mel, target)
    a, b = g(mel, target, torch.tensor([0, 1])), g(mel, target, torch.tensor([1, 1]))
    assert a.shape == (2, 80, 16)
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_discriminator_outputs_are_frame_means_of_the_per_frame_heads() -> None:
    torch.manual_seed(0)
    d = StarGanVcDiscriminator(StarGanVcConfig(n_speakers=10)).eval()
    mel = torch.randn(2, 80, 32)
    scores, logits = d.frames(mel)
    assert scores.shape == (2, 8) and logits.shape == (2, 10, 8)  # per frame at T/4, as the original
    adv, cls = d(mel, torch.tensor([0, 9]))
    assert adv.shape == (2,) and cls.shape == (2, 10)
    torch.testing.assert_close(adv, scores.mean(-1))
    torch.testing.assert_close(cls, logits.mean(-1))
    torch.testing.assert_close(d(mel)[0], adv)  # unconditional: the label does not change the output
    with pytest.raises(ValueError, match="label"):
        d(mel, torch.tensor([0]))


def test_config_round_trip_and_validation() -> None:
    cfg = StarGanVcConfig.from_dict({"n_speakers": 10, "source_conditioning": True})
    assert StarGanVcConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["n_mels"] == 80 and cfg.to_dict()["embedding_size"] == 16
    bad = [{"n_speakers": 1}, {"kernel_down": 7}, {"kernel_outer": 8}, {"g_channels": 0}, {"d_dropout": 1.0},
           {"source_conditioning": 1}, {"n_mels": True}, {"bogus": 1}]
    for d in bad:
        with pytest.raises(ConfigError, match="model"):
            StarGanVcConfig.from_dict(d)
    assert StarGanVcSpec256Config.from_dict({"n_labels": 7}).to_dict()["n_res_blocks"] == 6
    for d in ({"n_labels": 1}, {"n_res_blocks": -1}, {"d_channels": 0}, {"extra": 0}):
        with pytest.raises(ConfigError, match="model"):
            StarGanVcSpec256Config.from_dict(d)


# --- spec256 ------------------------------------------------------------------------------------------------------


def literal_merge(merge: LabelMergeConv2d, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The definition: one-hot labels repeated over the map, concatenated to h, one convolution with the full
    weight."""
    planes = F.one_hot(labels, merge.n_labels).to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])
    return F.conv2d(torch.cat((h, planes), dim=1), merge.full_weight(), padding=(1, 2))


def test_merge_equals_the_literal_concatenation_in_float64() -> None:
    torch.manual_seed(0)
    merge = LabelMergeConv2d(256, 7, 256).double()
    h, labels = torch.randn(3, 256, 32, 32, dtype=torch.float64), torch.tensor([0, 6, 3])
    expected = literal_merge(merge, h, labels)
    assert (merge(h, labels) - expected).abs().max().item() <= 1e-12
    # A per-label bias (the interior value everywhere) is wrong on the zero-padded border.
    bias = merge.label_weight[:, labels].sum(dim=(2, 3)).T[:, :, None, None]
    wrong = F.conv2d(h, merge.weight, padding=(1, 2)) + bias
    assert (wrong - expected)[..., 1:-1, 2:-2].abs().max().item() <= 1e-12
    assert (wrong - expected).abs().max().item() > 1e-3


def test_merge_equals_the_literal_concatenation_at_1479_labels_in_float32() -> None:
    torch.manual_seed(0)
    merge = LabelMergeConv2d(256, 1479, 256)
    assert merge.label_weight.numel() == 5_679_360 == 256 * 1479 * 3 * 5
    h, labels = torch.randn(1, 256, 32, 32), torch.tensor([1234])
    with torch.no_grad():
        expected = literal_merge(merge, h, labels)  # the concatenation: 256 + 1,479 = 1,735 channels
        assert merge.full_weight().shape == (256, 1735, 3, 5)
        assert (merge(h, labels) - expected).abs().max().item() <= 1e-5


def spec256_generator_count(n_labels: int, n_res_blocks: int = 6) -> int:
    """Bias-free convolutions before every BatchNorm (weight + bias = 2 per channel), a bias on the last conv."""
    def bn(c: int) -> int:
        return 2 * c
    down = (1 * 32 * 7 * 7 + bn(32)  # 1,568 + 64
            + 32 * 64 * 4 * 4 + bn(64)  # 32,768 + 128
            + 64 * 128 * 4 * 4 + bn(128)  # 131,072 + 256
            + 128 * 256 * 4 * 4 + bn(256))  # 524,288 + 512
    merge = 256 * 256 * 3 * 5 + 256 * n_labels * 3 * 5 + bn(256)  # 983,040 + 5,679,360 (1,479 labels) + 512
    res = n_res_blocks * 2 * (256 * 256 * 3 * 5 + bn(256))  # 6 × 2 × (983,040 + 512) = 11,802,624
    up = (256 * 128 * 4 * 4 + bn(128)  # 524,288 + 256
          + 128 * 64 * 4 * 4 + bn(64)  # 131,072 + 128
          + 64 * 32 * 4 * 4 + bn(32)  # 32,768 + 64
          + 32 * 1 * 7 * 7 + 1)  # 1,568 + 1 (bias)
    return down + merge + res + up


def test_spec256_generator_parameter_count() -> None:
    g = Spec256Generator(StarGanVcSpec256Config(n_labels=1479))
    assert g.merge.label_weight.numel() == 5_679_360
    assert count(g) == spec256_generator_count(1479) == 19_846_337
    assert count(Spec256Generator(StarGanVcSpec256Config(n_labels=7))) == 19_846_337 - 256 * 1472 * 15


def test_spec256_generator_uses_the_merge_as_the_literal_concatenation_would() -> None:
    """The whole generator (one residual block, 7 labels, float32) against the same modules with the literal
    concatenation in place of the merge; output [B, 1, 256, 256] in [0, 1]."""
    torch.manual_seed(0)
    g = Spec256Generator(StarGanVcSpec256Config(n_labels=7, n_res_blocks=1)).eval()
    image, labels = torch.rand(2, 1, 256, 256), torch.tensor([5, 0])
    with torch.no_grad():
        out = g(image, labels)
        h = g.down(image)
        assert h.shape == (2, 256, 32, 32)
        expected = g.up(g.res(g.merge_post(literal_merge(g.merge, h, labels))))
    assert out.shape == (2, 1, 256, 256)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert (out - expected).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="256"):
        g(torch.rand(1, 1, 128, 128), torch.tensor([0]))


def test_spec256_discriminator_shapes_and_count() -> None:
    torch.manual_seed(0)
    d = Spec256Discriminator(StarGanVcSpec256Config(n_labels=7)).eval()
    image = torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        scores, logits = d.patches(image)
        adv, cls = d(image, torch.tensor([3]))
    assert scores.shape == (1, 64, 64) and logits.shape == (1, 7, 64, 64)
    assert adv.shape == (1,) and cls.shape == (1, 7)
    torch.testing.assert_close(cls, logits.mean(dim=(-2, -1)))

    def gated2d(c_in: int, c_out: int, k: int) -> int:
        return 2 * c_out * c_in * k * k + 4 * c_out

    # 5,312 + 131,200 + 131,200 + 51,328 + 800 + 800·n_labels
    hand = gated2d(1, 32, 9) + 2 * gated2d(32, 32, 8) + gated2d(32, 32, 5) + 32 * 25 + 7 * 32 * 25
    assert count(d) == hand == 319_840 + 7 * 800
