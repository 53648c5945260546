"""StarGAN-VC networks: the official implementation's (kamepong/StarGAN-VC, `net.py` Generator1 / Discriminator1 with
`module.py`'s gated layers and `train.py`'s defaults) and the "spec256" network of a 1,479-label attempt.

`stargan_vc` (the original, 1-D over mel bands):

- Generator: five gated (GLU) convolutions encode a mel spectrogram [B, n_mels, T] to a 16-channel bottleneck at
  T/4 (kernels 9, 8, 8, 5, 5; strides 1, 2, 2, 1, 1; widths 64, 64, 64, 64, 16); four gated transposed
  convolutions (kernels 5, 5, 8, 8; strides 1, 1, 2, 2; width 64) and a plain convolution (kernel 9) decode it
  back to [B, n_mels, T]. A 16-d target-speaker embedding is repeated over time and concatenated to the input of
  every decoder layer; with `source_conditioning` a second 16-d (source-speaker) embedding is concatenated to the
  input of every encoder layer. Each gated layer is conv (weight norm, dim 0) → InstanceNorm1d (no affine, the
  original's default 'IN') → first half × sigmoid(second half). Padding is (kernel − stride) // 2, so T must be a
  multiple of 4 (the original's `StarGAN.forward` pads to one and crops back; this module leaves that to callers).
- Discriminator: four gated convolutions (kernels 9, 8, 8, 5; strides 1, 2, 2, 1; width 32), each followed by
  dropout 0.1, then two bias-free kernel-5 heads: 1 adversarial channel and n_speakers class logits, both per frame
  at T/4. The original is unconditional (the speaker label only enters the classification loss) and averages its
  losses over every frame; `frames()` returns those per-frame maps, `forward()` their mean over frames.

Parameter names follow the original's (`le1.conv1`, `eb1`, `le_adv`, …); weight norm is the parametrization
(`le1.conv1.parametrizations.weight.original0/1` ↔ the original's `weight_g/weight_v`). Initialisation: PyTorch's
defaults for the gated and final generator layers (the original's latest `module.py` comments out its xavier
draw), xavier-normal with gain 0.1 for the discriminator's heads (as the original).

`stargan_vc_spec256` (2-D, images of 1×256×256 spectrogram crops with one of many labels): see
`Spec256Generator` and `Spec256Discriminator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.layers import (
    apply_norm,
    check_dropout,
    check_positive_int,
    config_from_dict,
    is_int,
    model_error,
)

DOWNSAMPLING = 4  # two stride-2 layers: the generator's T must be a multiple of this
MIN_FRAMES = 8  # the third layer's output (T/4) must keep 2 frames for instance norm


@dataclass
class StarGanVcConfig:
    """Both networks of the original; the defaults are its `train.py`'s (num_mels 80, zdim 16, hdim 64, mdim 32,
    sdim 16, normtype IN, src_conditioning 0, dropout 0.1) and its 4-speaker recipe."""

    n_mels: int = 80
    n_speakers: int = 4
    g_channels: int = 64  # hdim: the generator's hidden width
    bottleneck_channels: int = 16  # zdim
    d_channels: int = 32  # mdim: the discriminator's hidden width
    embedding_size: int = 16  # sdim: each speaker embedding
    kernel_outer: int = 9  # generator's first and last layer, discriminator's first
    kernel_down: int = 8  # the stride-2 layers (and the generator's stride-2 transposed ones)
    kernel_inner: int = 5  # the stride-1 inner layers and the discriminator's heads
    source_conditioning: bool = False
    d_dropout: float = 0.1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StarGanVcConfig:
        """Build and validate; unknown keys and impossible values raise `ConfigError` naming them."""
        return config_from_dict(cls, d, section="model")

    def validate(self) -> None:
        for name in ("n_mels", "g_channels", "bottleneck_channels", "d_channels", "embedding_size"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("n_speakers", self.n_speakers)
        if self.n_speakers < 2:
            model_error(f"n_speakers must be at least 2, got {self.n_speakers!r}")
        for name in ("kernel_outer", "kernel_inner"):
            value = getattr(self, name)
            if not is_int(value) or value < 1 or value % 2 == 0:
                model_error(f"{name} must be a positive odd integer (stride-1 layers keep the length), got {value!r}")
        k = self.kernel_down
        if not is_int(k) or k < 2 or k % 2 == 1:
            model_error(f"kernel_down must be an even integer ≥ 2 (stride-2 layers halve the length exactly), "
                        f"got {k!r}")
        if not isinstance(self.source_conditioning, bool):
            model_error(f"source_conditioning must be true or false, got {self.source_conditioning!r}")
        self.d_dropout = check_dropout("d_dropout", self.d_dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)






class GatedConv(nn.Module):
    """The original's ConvGLU1D / DeconvGLU1D (and their 2-D analogue): conv with weight norm (dim 0, so the gain
    of a transposed conv has one entry per *input* channel, as the original's) → instance norm without affine →
    GLU. `conv1` makes 2·out_channels; padding (kernel − stride) // 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *, transposed: bool = False,
                 dims: int = 1) -> None:
        super().__init__()
        padding = (kernel - stride) // 2
        conv_cls: type[nn.Module]
        if dims == 1:
            conv_cls = nn.ConvTranspose1d if transposed else nn.Conv1d
            norm: nn.Module = nn.InstanceNorm1d(2 * out_channels)
        else:
            conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
            norm = nn.InstanceNorm2d(2 * out_channels)
        self.conv1 = apply_norm(conv_cls(in_channels, 2 * out_channels, kernel, stride=stride, padding=padding),
                                "weight")
        self.norm1 = norm

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.norm1(self.conv1(x)), dim=1)  # first half × sigmoid(second half), as the original


def _with_embedding(x: Tensor, embedding: Tensor | None) -> Tensor:
    """Concatenate a per-item vector [B, E], repeated over time, to x [B, C, T] → [B, C + E, T]."""
    if embedding is None:
        return x
    return torch.cat((x, embedding[:, :, None].expand(-1, -1, x.shape[-1])), dim=1)


def _check_labels(who: str, what: str, labels: Tensor, batch: int) -> None:
    if labels.dim() != 1 or labels.shape[0] != batch or labels.dtype != torch.long:
        raise ValueError(f"{who}: {what} must be a long tensor [B] with B = {batch}, got "
                         f"{labels.dtype} {list(labels.shape)}")


class StarGanVcGenerator(nn.Module):
    """mel [B, n_mels, T], target [B] long, source [B] long (only with `source_conditioning`) → mel [B, n_mels, T].

    T must be a multiple of 4 (the two stride-2 layers) and at least 8; pad and crop outside (the original pads
    by replicating the last frame). Speaker ids index the embeddings; out-of-range ids fail as in `nn.Embedding`."""

    def __init__(self, cfg: StarGanVcConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mid, z, s = cfg.g_channels, cfg.bottleneck_channels, cfg.embedding_size
        ko, kd, ki = cfg.kernel_outer, cfg.kernel_down, cfg.kernel_inner
        add = s if cfg.source_conditioning else 0
        self.le1 = GatedConv(cfg.n_mels + add, mid, ko, 1)
        self.le2 = GatedConv(mid + add, mid, kd, 2)
        self.le3 = GatedConv(mid + add, mid, kd, 2)
        self.le4 = GatedConv(mid + add, mid, ki, 1)
        self.le5 = GatedConv(mid + add, z, ki, 1)
        self.le6 = GatedConv(z + s, mid, ki, 1, transposed=True)
        self.le7 = GatedConv(mid + s, mid, ki, 1, transposed=True)
        self.le8 = GatedConv(mid + s, mid, kd, 2, transposed=True)
        self.le9 = GatedConv(mid + s, mid, kd, 2, transposed=True)
        self.le10 = nn.Conv1d(mid + s, cfg.n_mels, ko, stride=1, padding=(ko - 1) // 2)
        self.eb0 = nn.Embedding(cfg.n_speakers, s) if cfg.source_conditioning else None
        self.eb1 = nn.Embedding(cfg.n_speakers, s)

    def forward(self, mel: Tensor, target: Tensor, source: Tensor | None = None) -> Tensor:
        n_mels = self.cfg.n_mels
        if mel.dim() != 3 or mel.shape[1] != n_mels:
            raise ValueError(f"StarGanVcGenerator: mel must be [B, {n_mels}, T], got {list(mel.shape)}")
        frames = mel.shape[-1]
        if frames % DOWNSAMPLING or frames < MIN_FRAMES:
            raise ValueError(f"StarGanVcGenerator: T must be a multiple of {DOWNSAMPLING} and at least {MIN_FRAMES} "
                             f"(two stride-2 layers), got T = {frames}; pad and crop outside")
        batch = mel.shape[0]
        _check_labels("StarGanVcGenerator", "target", target, batch)
        src: Tensor | None = None
        if self.eb0 is not None:
            if source is None:
                raise ValueError("StarGanVcGenerator: source_conditioning is on, so source speakers are required")
            _check_labels("StarGanVcGenerator", "source", source, batch)
            src = self.eb0(source)
        elif source is not None:
            raise ValueError("StarGanVcGenerator: source speakers given but source_conditioning is off")
        trg = self.eb1(target)
        h = mel
        for layer in (self.le1, self.le2, self.le3, self.le4, self.le5):
            h = layer(_with_embedding(h, src))
        for layer in (self.le6, self.le7, self.le8, self.le9, self.le10):
            h = layer(_with_embedding(h, trg))
        return h


class StarGanVcDiscriminator(nn.Module):
    """mel [B, n_mels, T ≥ 8] (label [B], optional and unused) → (adversarial score [B], logits [B, n_speakers]).

    The original's discriminator is unconditional: it scores and classifies every frame of its T/4 output and
    averages its losses over frames (`frames()`); `forward()` returns the means over frames. The `label` argument
    is accepted (and checked) so that callers can treat conditional and unconditional discriminators alike; it does
    not change the output. No sigmoid: the heads give raw scores."""

    def __init__(self, cfg: StarGanVcConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mid, ko, kd, ki = cfg.d_channels, cfg.kernel_outer, cfg.kernel_down, cfg.kernel_inner
        self.le1 = GatedConv(cfg.n_mels, mid, ko, 1)
        self.le2 = GatedConv(mid, mid, kd, 2)
        self.le3 = GatedConv(mid, mid, kd, 2)
        self.le4 = GatedConv(mid, mid, ki, 1)
        self.le_adv = nn.Conv1d(mid, 1, ki, stride=1, padding=(ki - 1) // 2, bias=False)
        self.le_cls = nn.Conv1d(mid, cfg.n_speakers, ki, stride=1, padding=(ki - 1) // 2, bias=False)
        nn.init.xavier_normal_(self.le_adv.weight, gain=0.1)
        nn.init.xavier_normal_(self.le_cls.weight, gain=0.1)
        self.dropout = nn.Dropout(cfg.d_dropout)

    def frames(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """Per-frame outputs, as the original's: (scores [B, T'], logits [B, n_speakers, T']), T' ≈ T/4."""
        n_mels = self.cfg.n_mels
        if mel.dim() != 3 or mel.shape[1] != n_mels or mel.shape[-1] < MIN_FRAMES:
            raise ValueError(f"StarGanVcDiscriminator: mel must be [B, {n_mels}, T ≥ {MIN_FRAMES}], "
                             f"got {list(mel.shape)}")
        h = mel
        for layer in (self.le1, self.le2, self.le3, self.le4):
            h = self.dropout(layer(h))
        return self.le_adv(h)[:, 0], self.le_cls(h)

    def forward(self, mel: Tensor, label: Tensor | None = None, per_frame: bool = False) -> tuple[Tensor, Tensor]:
        """Means over frames, or with `per_frame` the maps of `frames()` (through `forward`, so that a DDP wrapper
        sees the call)."""
        if label is not None:
            _check_labels("StarGanVcDiscriminator", "label", label, mel.shape[0])
        scores, logits = self.frames(mel)
        if per_frame:
            return scores, logits
        return scores.mean(dim=-1), logits.mean(dim=-1)


# --- spec256 ----------------------------------------------------------------------------------------------------

SPEC256_SIZE = 256
SPEC256_WIDTHS = (32, 64, 128, 256)  # down-sampling convolutions; the up-sampling ones go back 128, 64, 32
SPEC256_KERNEL = (3, 5)  # merge and residual convolutions, padding (1, 2)
SPEC256_PADDING = (1, 2)


@dataclass
class StarGanVcSpec256Config:
    """The 1,479-label attempt's networks: 1×256×256 crops, one label per crop."""

    n_labels: int = 1479
    n_res_blocks: int = 6
    d_channels: int = 32
    d_dropout: float = 0.1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StarGanVcSpec256Config:
        """Build and validate; unknown keys and impossible values raise `ConfigError` naming them."""
        return config_from_dict(cls, d, section="model")

    def validate(self) -> None:
        check_positive_int("n_labels", self.n_labels)
        if self.n_labels < 2:
            model_error(f"n_labels must be at least 2, got {self.n_labels!r}")
        if not is_int(self.n_res_blocks) or self.n_res_blocks < 0:
            model_error(f"n_res_blocks must be a non-negative integer, got {self.n_res_blocks!r}")
        check_positive_int("d_channels", self.d_channels)
        self.d_dropout = check_dropout("d_dropout", self.d_dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LabelMergeConv2d(nn.Module):
    """conv2d(concat[h, one-hot label repeated over the map], W), without building the concatenation.

    W = [weight | label_weight] along input channels: `weight` [out, in, 3, 5] acts on h, `label_weight`
    [out, n_labels, 3, 5] on the label planes. A one-hot plane is all ones on the label's channel and zero
    elsewhere, so the label term is conv2d(ones [H, W], label_weight[:, label]) with the same zero padding: one
    kernel slice per item (a grouped convolution over the batch), exact at the borders, where fewer kernel taps
    fall on the map than inside (a per-label bias would be wrong there). Activations and compute do not depend on
    n_labels; only the parameter (and its gradient) does. No bias (BatchNorm follows). Initialised as an
    `nn.Conv2d` of in + n_labels input channels (uniform ±1/√fan_in)."""

    def __init__(self, in_channels: int, n_labels: int, out_channels: int,
                 kernel: tuple[int, int] = SPEC256_KERNEL, padding: tuple[int, int] = SPEC256_PADDING) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel))
        self.label_weight = nn.Parameter(torch.empty(out_channels, n_labels, *kernel))
        bound = 1.0 / ((in_channels + n_labels) * kernel[0] * kernel[1]) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.label_weight, -bound, bound)

    @property
    def n_labels(self) -> int:
        return self.label_weight.shape[1]

    def full_weight(self) -> Tensor:
        """The weight of the equivalent convolution over concat[h, one-hot planes]: [out, in + n_labels, kh, kw]."""
        return torch.cat((self.weight, self.label_weight), dim=1)

    def forward(self, h: Tensor, labels: Tensor) -> Tensor:
        batch, out_channels = h.shape[0], self.weight.shape[0]
        features = F.conv2d(h, self.weight, padding=self.padding)
        kernels = self.label_weight[:, labels]  # [out, B, kh, kw]: each item's label slice
        kernels = kernels.transpose(0, 1).reshape(batch * out_channels, 1, *kernels.shape[2:])
        ones = h.new_ones(1, batch, *h.shape[2:])
        label_term = F.conv2d(ones, kernels, padding=self.padding, groups=batch)  # [1, B·out, H, W]
        return features + label_term.view(batch, out_channels, *h.shape[2:])


def _conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class Spec256ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), both convolutions 3×5 (padding 1×2), bias-free, width kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, SPEC256_KERNEL, padding=SPEC256_PADDING, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, SPEC256_KERNEL, padding=SPEC256_PADDING, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class Spec256Generator(nn.Module):
    """image [B, 1, 256, 256], label [B] long → image [B, 1, 256, 256] in [0, 1] (sigmoid).

    Down: Conv2d 1→32 (k7 s1 p3), then 32→64→128→256 (k4 s2 p1), each BatchNorm + ReLU: 256×32×32. Merge: the
    one-hot label repeated over the 32×32 map and concatenated (256 + n_labels channels; 1,735 at 1,479 labels),
    a 3×5 convolution (padding 1×2) to 256 + BatchNorm + ReLU — computed by `LabelMergeConv2d` without the
    concatenation. `n_res_blocks` residual blocks (`Spec256ResidualBlock`). Up: ConvTranspose2d 256→128→64→32 (k4
    s2 p1), each BatchNorm + ReLU, and Conv2d 32→1 (k7 s1 p3) + sigmoid.

    Bias choices: every convolution followed by BatchNorm is bias-free (BatchNorm's shift subsumes a bias); the
    last convolution, which has no BatchNorm after it, has a bias."""

    def __init__(self, cfg: StarGanVcSpec256Config) -> None:
        super().__init__()
        self.cfg = cfg
        w1, w2, w3, w4 = SPEC256_WIDTHS
        self.down = nn.Sequential(
            _conv_bn_relu(nn.Conv2d(1, w1, 7, 1, 3, bias=False), w1),
            _conv_bn_relu(nn.Conv2d(w1, w2, 4, 2, 1, bias=False), w2),
            _conv_bn_relu(nn.Conv2d(w2, w3, 4, 2, 1, bias=False), w3),
            _conv_bn_relu(nn.Conv2d(w3, w4, 4, 2, 1, bias=False), w4),
        )
        self.merge = LabelMergeConv2d(w4, cfg.n_labels, w4)
        self.merge_post = nn.Sequential(nn.BatchNorm2d(w4), nn.ReLU(inplace=True))
        self.res = nn.Sequential(*(Spec256ResidualBlock(w4) for _ in range(cfg.n_res_blocks)))
        self.up = nn.Sequential(
            _conv_bn_relu(nn.ConvTranspose2d(w4, w3, 4, 2, 1, bias=False), w3),
            _conv_bn_relu(nn.ConvTranspose2d(w3, w2, 4, 2, 1, bias=False), w2),
            _conv_bn_relu(nn.ConvTranspose2d(w2, w1, 4, 2, 1, bias=False), w1),
            nn.Conv2d(w1, 1, 7, 1, 3),
            nn.Sigmoid(),
        )

    def forward(self, image: Tensor, label: Tensor, source: Tensor | None = None) -> Tensor:
        """`image` [B, 1, 256, 256], or a mel [B, 256 bands, 256 frames] as the 1-D network takes (the output has
        the input's layout); `source` must be None (the network is conditioned on the target label only)."""
        as_mel = image.dim() == 3
        image = _as_image("Spec256Generator", image)
        _check_labels("Spec256Generator", "label", label, image.shape[0])
        if source is not None:
            raise ValueError("Spec256Generator: the network takes no source label (no source conditioning)")
        h = self.merge_post(self.merge(self.down(image), label))
        out = self.up(self.res(h))
        return out[:, 0] if as_mel else out


class Spec256Discriminator(nn.Module):
    """image [B, 1, 256, 256] (label [B], optional and unused) → (score [B], logits [B, n_labels]).

    Deviation from the original (whose discriminator is 1-D, mel bands as input channels): the same layers made
    2-D for one-channel 256×256 inputs — gated convolutions with instance norm and dropout, square kernels 9, 8,
    8, 5 with strides 1, 2, 2, 1 (width `d_channels`), then bias-free 5×5 heads (1 score, n_labels logits) on the
    64×64 map. `patches()` gives the per-position maps (the original's per-frame outputs); `forward()` their
    means. As the original, it is unconditional: `label` is checked but does not change the output."""

    def __init__(self, cfg: StarGanVcSpec256Config) -> None:
        super().__init__()
        self.cfg = cfg
        mid = cfg.d_channels
        self.le1 = GatedConv(1, mid, 9, 1, dims=2)
        self.le2 = GatedConv(mid, mid, 8, 2, dims=2)
        self.le3 = GatedConv(mid, mid, 8, 2, dims=2)
        self.le4 = GatedConv(mid, mid, 5, 1, dims=2)
        self.le_adv = nn.Conv2d(mid, 1, 5, stride=1, padding=2, bias=False)
        self.le_cls = nn.Conv2d(mid, cfg.n_labels, 5, stride=1, padding=2, bias=False)
        nn.init.xavier_normal_(self.le_adv.weight, gain=0.1)
        nn.init.xavier_normal_(self.le_cls.weight, gain=0.1)
        self.dropout = nn.Dropout(cfg.d_dropout)

    def patches(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(scores [B, 64, 64], logits [B, n_labels, 64, 64]); `image` as in `forward`."""
        h = _as_image("Spec256Discriminator", image)
        for layer in (self.le1, self.le2, self.le3, self.le4):
            h = self.dropout(layer(h))
        return self.le_adv(h)[:, 0], self.le_cls(h)

    def forward(self, image: Tensor, label: Tensor | None = None, per_frame: bool = False) -> tuple[Tensor, Tensor]:
        """`image` [B, 1, 256, 256] or a mel [B, 256, 256] → means over positions (score [B], logits [B, n_labels]),
        or with `per_frame` every position as the 1-D network's frames: (scores [B, 4096], logits [B, n_labels,
        4096]), through `forward` so that a DDP wrapper sees the call."""
        if label is not None:
            _check_labels("Spec256Discriminator", "label", label, image.shape[0])
        scores, logits = self.patches(image)
        if per_frame:
            return scores.flatten(1), logits.flatten(2)
        return scores.mean(dim=(-2, -1)), logits.mean(dim=(-2, -1))


def _as_image(who: str, x: Tensor) -> Tensor:
    """[B, 256, 256] (a mel: bands × frames) or [B, 1, 256, 256] → [B, 1, 256, 256]; ValueError otherwise."""
    size = SPEC256_SIZE
    if x.dim() == 3 and tuple(x.shape[1:]) == (size, size):
        return x[:, None]
    if x.dim() == 4 and tuple(x.shape[1:]) == (1, size, size):
        return x
    raise ValueError(f"{who}: input must be [B, 1, {size}, {size}] or a mel [B, {size}, {size}], got {list(x.shape)}")


# --- the two families, as a task and inference see them ---------------------------------------------------------


@dataclass(frozen=True)
class VcArchitecture:
    """What a voice-conversion task and converter need to know of a network family, beyond its modules: the
    config section's class and its speaker-count key, fixed band and frame counts (None: any), the generator's
    output range (None: unbounded), and how a mel is padded to a length the generator takes."""

    name: str
    config_class: type
    generator_class: type[nn.Module]
    discriminator_class: type[nn.Module]
    speakers_key: str
    bands: int | None  # the mel bands it is built for (None: the config's n_mels)
    frames: int | None  # the crop length it takes (None: any multiple of DOWNSAMPLING ≥ MIN_FRAMES)
    output_range: tuple[float, float] | None

    def make_config(self, model: Mapping[str, Any], n_speakers: int, n_mels: int) -> Any:
        """The family's config from a `model:` section (without `type`), with the speaker count and bands the data
        and front-end give; ConfigError when the section disagrees with them."""
        section = dict(model)
        given = section.get(self.speakers_key)
        if given is not None and given != n_speakers:
            raise ConfigError(f"model.{self.speakers_key} is {given} but the data holds {n_speakers} speakers; leave "
                              f"model.{self.speakers_key} out, it follows the data")
        section[self.speakers_key] = n_speakers
        if self.bands is None:
            section.setdefault("n_mels", n_mels)
        elif n_mels != self.bands:
            raise ConfigError(f"model.type {self.name} takes {self.bands} mel bands but the front-end makes {n_mels}; "
                              f"set frontend.n_mels={self.bands}")
        cfg = self.config_class.from_dict(section)
        if self.n_mels(cfg) != n_mels:
            raise ConfigError(f"model.n_mels {self.n_mels(cfg)} ≠ the front-end's {n_mels} bands")
        return cfg

    def n_mels(self, cfg: Any) -> int:
        return self.bands if self.bands is not None else int(cfg.n_mels)

    def n_speakers(self, cfg: Any) -> int:
        return int(getattr(cfg, self.speakers_key))

    def source_conditioning(self, cfg: Any) -> bool:
        return bool(getattr(cfg, "source_conditioning", False))

    def check_frames(self, frames: int, what: str) -> None:
        """ConfigError unless the generator takes segments of `frames` frames."""
        if self.frames is not None and frames != self.frames:
            raise ConfigError(f"{what} must be {self.frames} for model.type {self.name} (its crops), got {frames}")
        if self.frames is None and (frames < MIN_FRAMES or frames % DOWNSAMPLING):
            raise ConfigError(f"{what} must be a multiple of {DOWNSAMPLING} and at least {MIN_FRAMES} (the generator "
                              f"halves the time axis twice), got {frames}")

    def pad(self, mel: Tensor) -> Tensor:
        """Repeat the last frame up to a length the generator takes: the crop length, or a multiple of 4 and at
        least 8. A fixed-crop family refuses longer inputs (convert them in chunks)."""
        frames = mel.shape[-1]
        if self.frames is not None:
            if frames > self.frames:
                raise ValueError(f"{self.name} takes at most {self.frames} frames at a time, got {frames}")
            wanted = self.frames
        else:
            wanted = max(MIN_FRAMES, frames + (-frames) % DOWNSAMPLING)
        if wanted == frames:
            return mel
        return torch.cat([mel, mel[..., -1:].expand(*mel.shape[:-1], wanted - frames)], dim=-1)


ARCHITECTURES: dict[str, VcArchitecture] = {
    "stargan_vc": VcArchitecture("stargan_vc", StarGanVcConfig, StarGanVcGenerator, StarGanVcDiscriminator,
                                 "n_speakers", None, None, None),
    "spec256": VcArchitecture("spec256", StarGanVcSpec256Config, Spec256Generator, Spec256Discriminator,
                              "n_labels", SPEC256_SIZE, SPEC256_SIZE, (0.0, 1.0)),
}


def vc_architecture(name: str) -> VcArchitecture:
    if name not in ARCHITECTURES:
        raise ConfigError(f"model.type {name!r} is unknown; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]
