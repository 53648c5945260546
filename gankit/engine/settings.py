"""Typed views of the engine's config sections (`train`, the loader keys of `data`), validated with clear
messages. Optimizer groups are `engine/optim.py`'s; every other section belongs to the task."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gankit.errors import ConfigError
from gankit.settings import from_mapping

__all__ = ["EmaSettings", "LoaderSettings", "TrainSettings", "from_mapping"]


@dataclass
class TrainSettings:
    max_steps: int | None = None
    max_epochs: int | None = None
    max_seconds: float | None = None  # wall-clock limit for one invocation (e.g. a bounded CPU demo)
    grad_accum: int = 1
    precision: typing.Literal["fp32", "bf16", "fp16"] = "fp32"
    ema: dict[str, Any] | None = None  # {networks: [...], decay: 0.999}; networks default to the task's
    log_every: int = 100
    val_every: int = 1000
    ckpt_every: int | None = 5000
    ckpt_every_epochs: int | None = None
    keep_last: int = 3
    num_threads: int | None = None
    # BatchNorm statistics over all ranks' shares (CUDA/NCCL only: SyncBatchNorm does not run on CPU); without
    # it each rank normalises its own share, and rank 0's running statistics are broadcast before saves.
    sync_batchnorm: bool = False
    # Networks frozen for the whole run (requires_grad False: no optimizer moves them, no check calls them dead),
    # e.g. the encoder while a new domain's decoder trains from `--init-from`.
    freeze: list[str] = field(default_factory=list)
    # Networks `--init-from` leaves as freshly built (e.g. a classifier whose output size changed with the domains).
    init_skip: list[str] = field(default_factory=list)

    @property
    def ema_settings(self) -> EmaSettings | None:
        return from_mapping(EmaSettings, self.ema, "train.ema") if self.ema is not None else None

    def __post_init__(self) -> None:
        for name in ("grad_accum", "log_every", "val_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be ≥ 1, got {getattr(self, name)}.")
        self.ema_settings  # noqa: B018 — validated now, not at the first step
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"train.max_seconds must be > 0 or null, got {self.max_seconds}.")
        for name in ("max_steps", "max_epochs", "ckpt_every", "ckpt_every_epochs", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"train.{name} must be ≥ 1 or null, got {value}.")


@dataclass
class EmaSettings:
    """An exponential moving average of the named networks' weights, updated after each step of their group."""

    decay: float = 0.999
    networks: list[str] | None = None  # None: the task's ema_networks

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise ConfigError(f"train.ema.decay must be in (0, 1), got {self.decay}.")


@dataclass
class LoaderSettings:
    """What the engine reads of `data.*`: how to batch and load. The rest of the section is the task's."""

    batch_size: int = 16
    num_workers: int = 2

    @classmethod
    def from_data_section(cls, data: Mapping[str, Any] | None) -> LoaderSettings:
        data = dict(data or {})
        picked = {k: data[k] for k in ("batch_size", "num_workers") if k in data}
        return from_mapping(cls, picked, "data")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be ≥ 1, got {self.batch_size}.")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be ≥ 0, got {self.num_workers}.")
