"""MelGAN: the generator and the multi-scale discriminator of melgan-neurips (descriptinc/melgan-neurips modules.py).

Layout, layer order, paddings and parameter counts are the original's, and the state-dict names too (`model.N…`
for the generator, `model.disc_i.model.layer_n…` for the discriminator), so the original's files load strictly after
`gankit.compat.hifigan_original.original_to_gankit` maps the weight-norm names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.layers import (
    DiscriminatorOutput,
    apply_norm,
    check_channel_divisor,
    config_from_dict,
    remove_parametrizations,
)

LRELU_SLOPE = 0.2


@dataclass
class MelGanGeneratorConfig:
    """The generator's architecture; the defaults are the published model (`Generator(80, 32, 3)`).

    The original has one residual stack of `residual_layers` blocks (dilations 1, 3, 9, …) per upsampling stage;
    `residual_stacks` repeats that stack (e.g. 3 for a deeper model, 1 as published).
    """

    n_mels: int = 80
    ngf: int = 32
    ratios: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    residual_layers: int = 3
    residual_stacks: int = 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MelGanGeneratorConfig:
        """Build and validate; unknown keys and impossible shapes raise `ConfigError` naming them."""
        return config_from_dict(cls, d)

    def validate(self) -> None:
        for name in ("n_mels", "ngf", "residual_layers", "residual_stacks"):
            setattr(self, name, _positive_int(name, getattr(self, name)))
        if not isinstance(self.ratios, Sequence) or isinstance(self.ratios, str) or not self.ratios:
            _fail(f"ratios must be a non-empty list of positive integers, got {self.ratios!r}")
        self.ratios = [_positive_int(f"ratios[{i}]", r) for i, r in enumerate(self.ratios)]

    @property
    def hop_length(self) -> int:
        """Output samples per input frame (the product of the upsampling ratios)."""
        return math.prod(self.ratios)

    @property
    def initial_channels(self) -> int:
        """Channels before the first upsampling: ngf · 2^stages (512 as published); halved at each stage."""
        return self.ngf * 2 ** len(self.ratios)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(message: str) -> None:
    raise ConfigError(f"model.generator: {message}")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --- generator ---------------------------------------------------------------------------------------


def _wn_conv1d(cin: int, cout: int, kernel_size: int, **kwargs: Any) -> nn.Conv1d:
    return apply_norm(nn.Conv1d(cin, cout, kernel_size, **kwargs), "weight")


class ResnetBlock(nn.Module):
    """shortcut(x) + [LeakyReLU → reflect pad d → conv k3 dilation d → LeakyReLU → conv 1×1](x)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        # Sequential indices 2 and 4 are the convs, as the original's `block.2` / `block.4`.
        self.block = nn.Sequential(
            nn.LeakyReLU(LRELU_SLOPE),
            nn.ReflectionPad1d(dilation),
            _wn_conv1d(channels, channels, 3, dilation=dilation),
            nn.LeakyReLU(LRELU_SLOPE),
            _wn_conv1d(channels, channels, 1),
        )
        self.shortcut = _wn_conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class MelGanGenerator(nn.Module):
    """Mel [B, n_mels, T] → waveform [B, 1, T·hop] in [-1, 1]."""

    # Reflection padding (unlike zero padding) is not reproduced by masking a padded batch, so batched inference
    # of unequal lengths must run item by item (see gankit.infer.vocoder).
    exact_under_length_mask = False

    def __init__(self, cfg: MelGanGeneratorConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch = cfg.initial_channels
        # One flat Sequential, as the original: its indices are the state-dict names (model.1, model.3, …).
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), _wn_conv1d(cfg.n_mels, ch, 7)]
        for r in cfg.ratios:
            up = nn.ConvTranspose1d(ch, ch // 2, 2 * r, r, padding=r // 2 + r % 2, output_padding=r % 2)
            layers += [nn.LeakyReLU(LRELU_SLOPE), apply_norm(up, "weight")]
            ch //= 2
            for _ in range(cfg.residual_stacks):
                layers += [ResnetBlock(ch, 3**j) for j in range(cfg.residual_layers)]
        layers += [nn.LeakyReLU(LRELU_SLOPE), nn.ReflectionPad1d(3), _wn_conv1d(ch, 1, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # PyTorch's default init, as the original really trains: its weights_init writes N(0, 0.02) into `.weight`,
        # which legacy weight norm recomputes on the next forward. Made effective, that draw shrinks the signal
        # ~1e-4× per stack and starves most layers of gradient (the health monitor's dead_layers names them).

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    @property
    def min_frames(self) -> int:
        """The first ReflectionPad1d(3) needs more than 3 frames."""
        return 4

    def forward(self, mel: Tensor) -> Tensor:
        return self.model(mel)

    def remove_weight_norm(self) -> MelGanGenerator:
        """Fold weight norm into plain weights (faster inference; same output)."""
        return remove_parametrizations(self)


# --- discriminator ----------------------------------------------------------------------------------


class NLayerDiscriminator(nn.Module):
    """The original's NLayerDiscriminator: reflect pad 7 + conv k15, `n_layers` grouped strided convs, conv k5, conv k3.

    Each layer's output (after its LeakyReLU) is a feature; the last (the score map) has no activation.
    """

    def __init__(self, ndf: int, n_layers: int, downsampling_factor: int, channel_divisor: int = 1) -> None:
        super().__init__()
        stride = downsampling_factor
        cap = max(1, 1024 // channel_divisor)
        nf = max(1, ndf // channel_divisor)
        model = nn.ModuleDict()
        model["layer_0"] = nn.Sequential(
            nn.ReflectionPad1d(7), _wn_conv1d(1, nf, 15), nn.LeakyReLU(LRELU_SLOPE, inplace=True)
        )
        for n in range(1, n_layers + 1):
            nf_prev, nf = nf, min(nf * stride, cap)
            # groups = in/4 as published; shrunken widths keep a group count that divides both sides.
            groups = math.gcd(nf_prev // 4, nf_prev, nf) if nf_prev >= 4 else 1
            conv = _wn_conv1d(nf_prev, nf, stride * 10 + 1, stride=stride, padding=stride * 5, groups=groups)
            model[f"layer_{n}"] = nn.Sequential(conv, nn.LeakyReLU(LRELU_SLOPE, inplace=True))
        # The original passes nf_prev as this conv's input width, equal to nf once the widths reach the cap (as in
        # every published setting); gankit passes the true width nf.
        nf_out = min(nf * 2, cap)
        model[f"layer_{n_layers + 1}"] = nn.Sequential(
            _wn_conv1d(nf, nf_out, 5, padding=2), nn.LeakyReLU(LRELU_SLOPE, inplace=True)
        )
        model[f"layer_{n_layers + 2}"] = _wn_conv1d(nf_out, 1, 3, padding=1)
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for layer in self.model.values():
            x = layer(x)
            features.append(x)
        return torch.flatten(x, 1, -1), features


class MelGanMultiScaleDiscriminator(nn.Module):
    """`num_d` NLayerDiscriminators on the waveform and its successively 2× average-pooled versions."""

    def __init__(
        self,
        num_d: int = 3,
        ndf: int = 16,
        n_layers: int = 4,
        downsampling_factor: int = 4,
        channel_divisor: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (("num_d", num_d), ("ndf", ndf), ("n_layers", n_layers),
                            ("downsampling_factor", downsampling_factor)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.msd.{name} must be a positive integer, got {value!r}")
        self.n_layers = n_layers
        self.channel_divisor = check_channel_divisor(channel_divisor)
        self.model = nn.ModuleDict(
            {
                f"disc_{i}": NLayerDiscriminator(ndf, n_layers, downsampling_factor, channel_divisor)
                for i in range(num_d)
            }
        )
        self.downsample = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)
        # PyTorch's default init, as the original really trains (see MelGanGenerator).

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        out = DiscriminatorOutput(scores=[], features=[])
        for i, disc in enumerate(self.model.values()):
            if i:
                x = self.downsample(x)
            score, feats = disc(x)
            out.scores.append(score)
            out.features.append(feats)
        return out

