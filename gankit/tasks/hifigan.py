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
from gankit.tasks.vocoder import VocoderGanTask, check_shapes, generator_config_of


def build_hifigan_task(config: Mapping[str, Any]) -> VocoderGanTask:
    gen_cfg = generator_config_of(config, HifiGanGeneratorConfig)
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
    segment_size = int(config.get("data", {}).get("segment_size", 8192))
    check_shapes("upsample_rates", gen_cfg.upsample_rates, gen_cfg.n_mels, task.frontend, segment_size)
    return task
