"""HiFi-GAN: the vocoder recipe with the HiFi-GAN generator, MSD and MPD (LSGAN + λ_fm·FM + λ_mel·mel L1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gankit.errors import ConfigError
from gankit.models.hifigan import (
    HifiGanGenerator,
    HifiGanGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from gankit.tasks.vocoder import VocoderGanTask


def generator_config(config: Mapping[str, Any]) -> HifiGanGeneratorConfig:
    gen = dict(config["model"]["generator"])
    gen.setdefault("n_mels", config["frontend"].get("n_mels", 80))
    return HifiGanGeneratorConfig.from_dict(gen)


def check_shapes(gen: HifiGanGeneratorConfig, frontend: Any, segment_size: int) -> None:
    """The generator, the mel front-end and the training segment must agree; say how to fix it if not."""
    hop = math.prod(gen.upsample_rates)
    if hop != frontend.hop_length:
        raise ConfigError(
            f"model.generator.upsample_rates {gen.upsample_rates} multiply to {hop}, but frontend.hop_length is "
            f"{frontend.hop_length}: the generator must upsample each mel frame to exactly one hop of audio."
        )
    if gen.n_mels != frontend.n_mels:
        raise ConfigError(
            f"model.generator.n_mels {gen.n_mels} differs from frontend.n_mels {frontend.n_mels}; make them equal."
        )
    if segment_size <= 0 or segment_size % hop:
        fixed = max(1, round(segment_size / hop)) * hop
        raise ConfigError(f"data.segment_size {segment_size} is not a multiple of the hop {hop}; use {fixed}.")


def build_hifigan_task(config: Mapping[str, Any]) -> VocoderGanTask:
    gen_cfg = generator_config(config)
    mpd = dict(config["model"].get("mpd") or {})
    msd = dict(config["model"].get("msd") or {})
    # The original optim_d steps MSD's parameters, then MPD's: keep that order so its state maps by position.
    task = VocoderGanTask(
        "hifigan",
        config,
        generator_config=gen_cfg.to_dict(),
        generator_factory=lambda: HifiGanGenerator(gen_cfg),
        discriminator_factories={
            "msd": lambda: MultiScaleDiscriminator(**msd),
            "mpd": lambda: MultiPeriodDiscriminator(**mpd),
        },
    )
    check_shapes(gen_cfg, task.frontend, int(config.get("data", {}).get("segment_size", 8192)))
    return task
