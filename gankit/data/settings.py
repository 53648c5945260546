"""The `data:` section of the audio tasks (a prepared corpus or explicit lists), validated."""

from __future__ import annotations

from dataclasses import dataclass

from gankit.errors import ConfigError


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
