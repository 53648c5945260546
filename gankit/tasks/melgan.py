"""MelGAN: the vocoder recipe with MelGAN's generator and multi-scale discriminator (hinge + λ_fm·FM, as published;
mel L1 and MR-STFT terms available through `loss.lambda_mel` / `loss.lambda_stft`, off by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gankit.models.melgan import MelGanGenerator, MelGanGeneratorConfig, MelGanMultiScaleDiscriminator
from gankit.tasks.vocoder import VocoderGanTask, check_shapes, generator_config_of

DEFAULT_N_LAYERS = 4  # the published discriminator's n_layers_D


def build_melgan_task(config: Mapping[str, Any]) -> VocoderGanTask:
    gen_cfg = generator_config_of(config, MelGanGeneratorConfig)
    msd = dict(config["model"].get("msd") or {})
    task = VocoderGanTask(
        "melgan",
        config,
        generator_config=gen_cfg.to_dict(),
        generator_factory=lambda: MelGanGenerator(gen_cfg),
        discriminator_factories={"msd": lambda: MelGanMultiScaleDiscriminator(**msd)},
        # MelGAN weighs feature matching by 4/(n_layers_D + 1) · 1/num_D.
        feature_matching_layers=_int_or_none(msd.get("n_layers", DEFAULT_N_LAYERS)),
    )
    segment_size = int(config.get("data", {}).get("segment_size", 8192))
    check_shapes("ratios", gen_cfg.ratios, gen_cfg.n_mels, task.frontend, segment_size)
    return task


def _int_or_none(value: Any) -> int | None:
    # A bad value is reported by the discriminator when it is built; here it only must not crash first.
    return value if isinstance(value, int) and not isinstance(value, bool) else None
