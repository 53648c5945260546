"""HiFi-GAN: the vocoder recipe with the HiFi-GAN generator, MSD and MPD (LSGAN + λ_fm·FM + λ_mel·mel L1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def build_hifigan_task(config: Mapping[str, Any]) -> VocoderGanTask:
    gen_cfg = generator_config(config)
    mpd = dict(config["model"].get("mpd") or {})
    msd = dict(config["model"].get("msd") or {})
    # The original optim_d steps MSD's parameters, then MPD's: keep that order so its state maps by position.
    return VocoderGanTask(
        "hifigan",
        config,
        generator_factory=lambda: HifiGanGenerator(gen_cfg),
        discriminator_factories={
            "msd": lambda: MultiScaleDiscriminator(**msd),
            "mpd": lambda: MultiPeriodDiscriminator(**mpd),
        },
    )
