"""DCGAN (Radford et al. 2016) as published in the PyTorch reference, pytorch/examples `dcgan/main.py`.

The 64×64 layout, kernel sizes, strides, paddings, bias-free convolutions and the N(0, 0.02) / N(1, 0.02)
initialisation are the reference's; its state-dict names too (`main.N…`), so its `netG_epoch_*.pth` loads
strictly (and its `netD_epoch_*.pth`, when `d_dropout` is 0). Two departures, both for training with a loss on
logits: the discriminator ends without the reference's sigmoid and returns one logit per image ([B]), and it may
put Dropout2d after each hidden activation (`d_dropout`, 0 = the reference). The 32×32 variant drops the widest
stage of each network (ngf·8 and ndf·8), the usual CIFAR-10 layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from torch import Tensor, nn

from gankit.models.layers import config_from_dict, is_int, model_error

LRELU_SLOPE = 0.2
INIT_STD = 0.02
IMAGE_SIZES = (32, 64)
CHANNELS = (1, 3)


@dataclass
class DcganConfig:
    """Both networks' architecture; the defaults are the reference's 64×64 RGB model (nz 100, ngf 64, ndf 64)."""

    image_size: int = 64
    channels: int = 3
    latent_size: int = 100
    g_width: int = 64  # ngf: the generator's last hidden width; earlier stages double it
    d_width: int = 64  # ndf: the discriminator's first width; later stages double it
    d_dropout: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DcganConfig:
        """Build and validate; unknown keys and impossible values raise `ConfigError` naming them."""
        return config_from_dict(cls, d, section="model")

    def validate(self) -> None:
        if not is_int(self.image_size) or self.image_size not in IMAGE_SIZES:
            model_error(f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {self.image_size!r}")
        if not is_int(self.channels) or self.channels not in CHANNELS:
            model_error(f"channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        for name in ("latent_size", "g_width", "d_width"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                model_error(f"{name} must be a positive integer, got {value!r}")
        p = self.d_dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            model_error(f"d_dropout must be a number in [0, 1), got {p!r}")
        self.d_dropout = float(p)

    @property
    def stages(self) -> int:
        """Stride-2 stages between the 4×4 map and the image: 4 at 64×64, 3 at 32×32."""
        return int(math.log2(self.image_size // 4))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def init_dcgan_weights(module: nn.Module) -> None:
    """The reference's initialisation of every layer inside `module` (itself included): convolution weights
    N(0, 0.02), BatchNorm weights N(1, 0.02) and BatchNorm biases 0 (and conv biases 0, which DCGAN has none of).
    One call covers the whole tree; `module.apply(init_dcgan_weights)` works too but redraws the same weights."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)


class DcganGenerator(nn.Module):
    """z [B, latent] (or the reference's [B, latent, 1, 1]) → images [B, C, S, S] in [-1, 1] (tanh).

    A 4×4 transposed convolution makes a 4×4 map of width g_width·2^(stages−1); each stride-2 stage doubles its
    size and halves its width down to g_width; the last one makes the image."""

    def __init__(self, cfg: DcganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.g_width * 2**i for i in reversed(range(cfg.stages))]  # 64×64: 512, 256, 128, 64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent_size, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: Tensor) -> Tensor:
        latent = self.cfg.latent_size
        if z.dim() == 2 and z.shape[1] == latent:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (latent, 1, 1)):
            raise ValueError(f"DcganGenerator: z must be [B, {latent}] or [B, {latent}, 1, 1], got {list(z.shape)}")
        return self.main(z)


class DcganDiscriminator(nn.Module):
    """Images [B, C, S, S] → one logit per image [B] (no sigmoid: the losses take logits).

    Stride-2 4×4 convolutions halve the size and double the width from d_width down to a 4×4 map, which a 4×4
    convolution turns into the logit. BatchNorm on every hidden layer but the first, LeakyReLU 0.2, and
    Dropout2d(d_dropout) after each hidden activation when d_dropout > 0."""

    def __init__(self, cfg: DcganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.d_width * 2**i for i in range(cfg.stages)]  # 64×64: 64, 128, 256, 512
        layers: list[nn.Module] = []
        w_in = cfg.channels
        for i, w_out in enumerate(widths):
            layers.append(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False))
            if i > 0:  # the reference normalises neither the image nor the first layer's output
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(LRELU_SLOPE, inplace=True))
            if cfg.d_dropout > 0:
                layers.append(nn.Dropout2d(cfg.d_dropout))
            w_in = w_out
        layers.append(nn.Conv2d(w_in, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        size, channels = self.cfg.image_size, self.cfg.channels
        if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
            raise ValueError(
                f"DcganDiscriminator: images must be [B, {channels}, {size}, {size}], got {list(x.shape)}"
            )
        return self.main(x).reshape(-1)
