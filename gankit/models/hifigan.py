"""HiFi-GAN: the generator, the multi-period and the multi-scale discriminators.

Layout, layer names, slopes, paddings and parameter counts are the original's (jik876/hifi-gan models.py), so
its checkpoints load strictly after `gankit.compat.hifigan_original` maps the weight-norm names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.layers import (
    DiscriminatorOutput,
    Norm,
    apply_norm,
    check_channel_divisor,
    config_from_dict,
    conv1d,
    get_padding,
    init_normal_,
    remove_parametrizations,
)

LRELU_SLOPE = 0.1


def _v1_dilations() -> list[list[int]]:
    return [[1, 3, 5], [1, 3, 5], [1, 3, 5]]


@dataclass
class HifiGanGeneratorConfig:
    """The generator's architecture (the original config.json's model keys; V1 by default)."""

    resblock: str = "1"
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=_v1_dilations)
    n_mels: int = 80

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HifiGanGeneratorConfig:
        """Build and validate; unknown keys and impossible shapes raise `ConfigError` naming them."""
        return config_from_dict(cls, d)

    def validate(self) -> None:
        """Normalise value types (lists, str resblock) and check the shapes are buildable."""
        self.resblock = _resblock_kind(self.resblock)
        self.n_mels = _positive_int("n_mels", self.n_mels)
        self.upsample_initial_channel = _positive_int("upsample_initial_channel", self.upsample_initial_channel)
        self.upsample_rates = _int_list("upsample_rates", self.upsample_rates)
        self.upsample_kernel_sizes = _int_list("upsample_kernel_sizes", self.upsample_kernel_sizes)
        self.resblock_kernel_sizes = _int_list("resblock_kernel_sizes", self.resblock_kernel_sizes)
        if not isinstance(self.resblock_dilation_sizes, Sequence) or isinstance(self.resblock_dilation_sizes, str):
            _fail("resblock_dilation_sizes must be a list of lists of ints, one list per resblock kernel size")
        self.resblock_dilation_sizes = [
            _int_list(f"resblock_dilation_sizes[{i}]", d) for i, d in enumerate(self.resblock_dilation_sizes)
        ]
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            _fail(
                f"upsample_rates has {len(self.upsample_rates)} entries but upsample_kernel_sizes has "
                f"{len(self.upsample_kernel_sizes)}; give one kernel size per upsampling stage"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            _fail(
                f"resblock_kernel_sizes has {len(self.resblock_kernel_sizes)} entries but resblock_dilation_sizes "
                f"has {len(self.resblock_dilation_sizes)}; give one dilation list per kernel size"
            )
        for i, (u, k) in enumerate(zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True)):
            if k < u or (k - u) % 2:
                _fail(
                    f"upsampling stage {i}: kernel {k} with stride {u} needs kernel ≥ stride and an even "
                    "(kernel − stride), so that padding (kernel − stride)/2 makes exactly stride× samples; "
                    "e.g. kernel = 2 × stride"
                )
        for i, k in enumerate(self.resblock_kernel_sizes):
            if k % 2 == 0:
                _fail(f"resblock_kernel_sizes[{i}] = {k}: resblock kernels must be odd to keep the length")
        last = self.upsample_initial_channel // 2 ** len(self.upsample_rates)
        if last < 1:
            _fail(
                f"upsample_initial_channel {self.upsample_initial_channel} halves to 0 channels after "
                f"{len(self.upsample_rates)} upsampling stages; make it at least {2 ** len(self.upsample_rates)}"
            )

    @property
    def hop_length(self) -> int:
        """Output samples per input frame (the product of the upsampling rates)."""
        return math.prod(self.upsample_rates)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str, int, lists), so it stores in checkpoints read with weights_only=True."""
        return asdict(self)


def _fail(message: str) -> None:
    raise ConfigError(f"model.generator: {message}")


def _resblock_kind(value: Any) -> str:
    kind = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if kind not in ("1", "2"):
        _fail(f'resblock must be "1" (ResBlock1, V1/V2) or "2" (ResBlock2, V3), got {value!r}')
    return kind  # type: ignore[return-value]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _int_list(name: str, value: Any) -> list[int]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        _fail(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)]


# --- generator ---------------------------------------------------------------------------------------


class ResBlock1(nn.Module):
    """Pairs (dilated conv, plain conv) with a residual around each pair."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(conv1d(channels, channels, kernel_size, dilation=d) for d in dilations)
        self.convs2 = nn.ModuleList(conv1d(channels, channels, kernel_size) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """One dilated conv per residual (the V3 block)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv1d(channels, channels, kernel_size, dilation=d) for d in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class HifiGanGenerator(nn.Module):
    """Mel [B, n_mels, T] → waveform [B, 1, T·hop] in [-1, 1]."""

    def __init__(self, cfg: HifiGanGeneratorConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        c0 = cfg.upsample_initial_channel
        # Registration order (conv_pre, ups, resblocks, conv_post) fixes parameters() order, which the
        # original optimizer state is matched against by position.
        self.conv_pre = conv1d(cfg.n_mels, c0, 7, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            up = nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            self.ups.append(apply_norm(up, "weight"))
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList()
        ch = c0
        for i in range(self.num_upsamples):
            ch = c0 // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = conv1d(ch, 1, 7, padding=3)
        # The original *meant* N(0, 0.01) here (conv_pre keeps PyTorch's default).
        for module in (self.ups, self.resblocks, self.conv_post):
            init_normal_(module, 0.0, 0.01)

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = F.leaky_relu(x)  # PyTorch's default slope 0.01 here, as the original
        return torch.tanh(self.conv_post(x))

    def remove_weight_norm(self) -> HifiGanGenerator:
        """Fold weight norm into plain weights (faster inference; same output)."""
        return remove_parametrizations(self)


# --- discriminators ----------------------------------------------------------------------------------


def _width(channels: int, divisor: int) -> int:
    return max(1, channels // divisor)


class PeriodDiscriminator(nn.Module):
    """The original DiscriminatorP: the waveform folded to [T/p, p] and 2-D convs along time."""

    def __init__(self, period: int, channel_divisor: int = 1, norm: Norm = "weight") -> None:
        super().__init__()
        self.period = period
        widths = [1] + [_width(c, channel_divisor) for c in (32, 128, 512, 1024, 1024)]
        strides = (3, 3, 3, 3, 1)
        self.convs = nn.ModuleList(
            apply_norm(nn.Conv2d(cin, cout, (5, 1), (s, 1), padding=(get_padding(5, 1), 0)), norm)
            for cin, cout, s in zip(widths[:-1], widths[1:], strides, strict=True)
        )
        self.conv_post = apply_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)), norm)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return torch.flatten(x, 1, -1), features


class MultiPeriodDiscriminator(nn.Module):
    """One PeriodDiscriminator per period (the original: 2, 3, 5, 7, 11)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channel_divisor: int = 1) -> None:
        super().__init__()
        if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence) or not periods:
            raise ConfigError(f"mpd.periods must be a non-empty list of positive integers, got {periods!r}")
        for p in periods:
            if isinstance(p, bool) or not isinstance(p, int) or p < 1:
                raise ConfigError(f"mpd.periods must hold positive integers, got {p!r} in {list(periods)}")
        self.periods = tuple(int(p) for p in periods)
        self.channel_divisor = check_channel_divisor(channel_divisor)
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, self.channel_divisor) for p in self.periods)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        out = DiscriminatorOutput(scores=[], features=[])
        for d in self.discriminators:
            score, feats = d(x)
            out.scores.append(score)
            out.features.append(feats)
        return out


class ScaleDiscriminator(nn.Module):
    """The original DiscriminatorS: strided grouped 1-D convs over the waveform."""

    # (in, out, kernel, stride, groups, padding) of the original, before channel_divisor.
    LAYERS = (
        (1, 128, 15, 1, 1, 7),
        (128, 128, 41, 2, 4, 20),
        (128, 256, 41, 2, 16, 20),
        (256, 512, 41, 4, 16, 20),
        (512, 1024, 41, 4, 16, 20),
        (1024, 1024, 41, 1, 16, 20),
        (1024, 1024, 5, 1, 1, 2),
    )

    def __init__(self, norm: Norm = "weight", channel_divisor: int = 1) -> None:
        super().__init__()
        convs = []
        for cin, cout, k, s, g, p in self.LAYERS:
            cin = 1 if cin == 1 else _width(cin, channel_divisor)
            cout = _width(cout, channel_divisor)
            groups = math.gcd(g, cin, cout)  # shrunken widths must stay divisible by the group count
            convs.append(conv1d(cin, cout, k, s, groups=groups, padding=p, norm=norm))
        self.convs = nn.ModuleList(convs)
        self.conv_post = conv1d(_width(1024, channel_divisor), 1, 3, padding=1, norm=norm)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return torch.flatten(x, 1, -1), features


class MultiScaleDiscriminator(nn.Module):
    """Three ScaleDiscriminators on the waveform and its 2× and 4× average-pooled versions.

    The first is spectral-normed (its buffers u, v advance once per training-mode forward), the others weight-normed.
    """

    def __init__(self, channel_divisor: int = 1) -> None:
        super().__init__()
        self.channel_divisor = check_channel_divisor(channel_divisor)
        self.discriminators = nn.ModuleList(
            [
                ScaleDiscriminator("spectral", self.channel_divisor),
                ScaleDiscriminator("weight", self.channel_divisor),
                ScaleDiscriminator("weight", self.channel_divisor),
            ]
        )
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        out = DiscriminatorOutput(scores=[], features=[])
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.meanpools[i - 1](x)
            score, feats = d(x)
            out.scores.append(score)
            out.features.append(feats)
        return out
