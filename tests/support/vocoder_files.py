"""Tiny generator files and natural-log mels for tests of `gankit vocode` / `resynth`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.audio.mel import build_frontend
from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig
from gankit.tasks.vocoder import vocoder_inference_file

TINY = {"upsample_initial_channel": 32}  # V1's layout at 1/16 of its width


def ln_mel(frames: int, seed: int) -> np.ndarray:
    """A [80, frames] natural-log mel (the hifigan preset's scale) of random values."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(-5.0, 2.5, size=(80, frames)), np.log(1e-5)).astype(np.float32)


def save_generator(path: Path, frontend: dict, seed: int = 0, step: int = 5) -> HifiGanGenerator:
    """Write a tiny HiFi-GAN generator file for mel front-end `frontend` to `path`."""
    torch.manual_seed(seed)
    generator = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(TINY))
    with torch.no_grad():  # louder than the default init, so int16 output is more than a few steps of noise
        generator.conv_post.parametrizations.weight.original0.mul_(50)
    torch.save(vocoder_inference_file("hifigan", generator.cfg.to_dict(), build_frontend(frontend).to_config(),
                                      generator.state_dict(), step), path)
    return generator
