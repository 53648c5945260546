"""Small layers shared by the model families: normed convolutions, padding, init, discriminator outputs.

Weight and spectral norm are `torch.nn.utils.parametrizations` (not the legacy hooks): parametrized modules
survive `copy.deepcopy`, which EMA and health probes rely on. Checkpoint files of the original projects use the
legacy names; `gankit.compat` maps them at the file boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, NoReturn, Protocol, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from gankit.errors import ConfigError

Norm = Literal["weight", "spectral", "none"]
M = TypeVar("M", bound=nn.Module)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a stride-1 convolution with an odd kernel."""
    return (kernel_size * dilation - dilation) // 2


def apply_norm(module: M, norm: Norm) -> M:
    """Wrap `module.weight` in weight norm (dim 0, as the legacy default) or spectral norm, in place."""
    if norm == "weight":
        return parametrizations.weight_norm(module)
    if norm == "spectral":
        return parametrizations.spectral_norm(module)
    if norm == "none":
        return module
    raise ValueError(f"unknown norm {norm!r}; use 'weight', 'spectral' or 'none'")


def conv1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    *,
    dilation: int = 1,
    groups: int = 1,
    padding: int | None = None,
    norm: Norm = "weight",
) -> nn.Conv1d:
    """A Conv1d with 'same' padding unless given, wrapped in the requested norm."""
    pad = get_padding(kernel_size, dilation) if padding is None else padding
    conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding=pad, dilation=dilation, groups=groups)
    return apply_norm(conv, norm)


def is_parametrized_weight(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight")


@torch.no_grad()
def init_normal_(module: nn.Module, mean: float = 0.0, std: float = 0.01) -> None:
    """Draw the *effective* weight of every conv in `module` from N(mean, std), normed or not.

    For a parametrized conv the draw goes through the parametrization's right inverse (weight norm: g = ‖v‖),
    so the weight the layer computes really is the draw. (Writing into a legacy weight-normed conv's `.weight`
    is silently overwritten by the next forward.)
    """
    for sub in module.modules():
        if not isinstance(sub, nn.modules.conv._ConvNd):
            continue
        weight = torch.empty_like(sub.weight).normal_(mean, std)
        if is_parametrized_weight(sub):
            sub.weight = weight  # assignment runs right_inverse → original0/original1
        else:
            sub.weight.copy_(weight)


def remove_parametrizations(module: M) -> M:
    """Fold every weight/spectral norm in `module` into a plain weight (for inference), in place."""
    for sub in module.modules():
        if parametrize.is_parametrized(sub):
            # torch deletes the parametrized property from the module's class, which `copy.deepcopy` shares between
            # copies (an EMA copy, a probe's): without a class of its own, folding one copy breaks every other.
            cls = type(sub)
            sub.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    return module


@dataclass
class DiscriminatorOutput:
    """What a multi-discriminator returns: one score tensor and one feature list per sub-discriminator.

    `features[i]` holds every layer's activation of sub-discriminator i, the final score map (conv_post's
    output, before flattening) included last, as the original HiFi-GAN's fmap.
    """

    scores: list[Tensor]
    features: list[list[Tensor]]

    def __len__(self) -> int:
        return len(self.scores)


class _ValidatedConfig(Protocol):
    def validate(self) -> None: ...


ConfigT = TypeVar("ConfigT", bound=_ValidatedConfig)


def config_from_dict(cls: type[ConfigT], d: Mapping[str, Any], section: str = "model.generator") -> ConfigT:
    """Build a model config dataclass and validate it; unknown keys raise `ConfigError` naming them."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    cfg = cls(**dict(d))
    cfg.validate()
    return cfg


def check_channel_divisor(divisor: Any) -> int:
    """A discriminator's width divisor (1 = the original widths; tiny CPU configs use 16 or 32)."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ConfigError(f"channel_divisor must be a positive integer (1 = the original widths), got {divisor!r}")
    return divisor



def model_error(message: str) -> NoReturn:
    """A `model:` config value that cannot build a network."""
    raise ConfigError(f"model: {message}")


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML's `true` must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        model_error(f"{name} must be a positive integer, got {value!r}")


def check_dropout(name: str, p: Any) -> float:
    """A dropout probability in [0, 1) as a float."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        model_error(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)
