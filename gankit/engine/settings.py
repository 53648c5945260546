"""Typed views of the engine's config sections (`train`, `data`, `optim`), validated with clear messages."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gankit.errors import ConfigError

T = TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, section: str) -> T:
    """Build dataclass `cls` from `data`, naming unknown keys and wrongly typed values."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        _check_type(f"{section}.{key}", value, hints[key])
    return cls(**data)


def _check_type(key: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if any(_matches(value, o) for o in options):
            return
    elif _matches(value, hint):
        return
    raise ConfigError(f"{key}: {value!r} is not a valid {_describe(hint)}.")


def _matches(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "value; choose one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return str(hint).replace("typing.", "")


# What train.val_measures / train.best_measures may name (gankit.metrics.summary's measures but mel L1).
VALIDATION_MEASURES: tuple[str, ...] = ("mrstft", "pesq", "stoi", "mcd", "f0")


@dataclass
class TrainSettings:
    max_steps: int | None = None
    max_epochs: int | None = None
    max_seconds: float | None = None  # wall-clock limit for one invocation (e.g. a bounded CPU demo)
    grad_accum: int = 1
    grad_clip_g: float | None = None
    grad_clip_d: float | None = None
    precision: typing.Literal["fp32", "bf16", "fp16"] = "fp32"
    ema_decay: float | None = None
    warmup_steps: int = 0
    n_critic: int = 1
    d_loss_threshold: float | None = None
    log_every: int = 100
    val_every: int = 1000
    ckpt_every: int | None = 5000
    ckpt_every_epochs: int | None = None
    keep_last: int = 3
    num_threads: int | None = None
    # Objective measures of validation audio (gankit.metrics): PESQ and STOI cost about a second an utterance
    # on CPU, so by default they run only when a validation makes a new best, on the first few utterances.
    val_measures: list[str] = field(default_factory=list)  # at every validation
    best_measures: list[str] = field(default_factory=lambda: ["pesq", "stoi"])  # when a validation is a new best
    measure_items: int = 2  # validation utterances the measures score

    def __post_init__(self) -> None:
        for key in ("val_measures", "best_measures"):
            unknown = [m for m in getattr(self, key) if m not in VALIDATION_MEASURES]
            if unknown:
                raise ConfigError(f"train.{key}: unknown measure(s) {', '.join(map(str, unknown))}; choose from "
                                  f"{', '.join(VALIDATION_MEASURES)} (validation always reports mel L1).")
        for name in ("grad_accum", "n_critic", "log_every", "val_every", "keep_last", "measure_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be ≥ 1, got {getattr(self, name)}.")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be ≥ 0, got {self.warmup_steps}.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in (0, 1), got {self.ema_decay}.")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"train.max_seconds must be > 0 or null, got {self.max_seconds}.")
        for name in ("max_steps", "max_epochs", "ckpt_every", "ckpt_every_epochs", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"train.{name} must be ≥ 1 or null, got {value}.")


@dataclass
class DataSettings:
    dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    wav_dir: str | None = None
    mels_dir: str | None = None
    segment_size: int = 8192
    batch_size: int = 16
    num_workers: int = 2
    val_items: int = 8

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be ≥ 1, got {self.batch_size}.")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be ≥ 0, got {self.num_workers}.")


@dataclass
class AdamSettings:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.01
    name: typing.Literal["adamw", "adam"] = "adamw"

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ConfigError(f"optim betas must have two values, got {self.betas}.")


@dataclass
class OptimSettings:
    generator: AdamSettings = field(default_factory=AdamSettings)
    discriminator: AdamSettings = field(default_factory=AdamSettings)
    lr_decay: float = 0.999
    lr_decay_every: typing.Literal["epoch", "step"] = "epoch"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> OptimSettings:
        data = dict(data or {})
        g = from_mapping(AdamSettings, data.pop("generator", None), "optim.generator")
        d = from_mapping(AdamSettings, data.pop("discriminator", None), "optim.discriminator")
        rest = from_mapping(_OptimRest, data, "optim")
        return cls(generator=g, discriminator=d, lr_decay=rest.lr_decay, lr_decay_every=rest.lr_decay_every)


@dataclass
class _OptimRest:
    lr_decay: float = 0.999
    lr_decay_every: typing.Literal["epoch", "step"] = "epoch"
