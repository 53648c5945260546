"""What the engine tells the health monitor after each optimizer step (all plain floats, no graphs)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AudioStats:
    """Summary of a batch of waveforms: DC offset, standard deviation, spectral flatness (0..1)."""

    mean: float
    std: float
    flatness: float


@dataclass
class StepRecord:
    step: int  # completed optimizer steps, after this one
    losses: dict[str, float]  # every logged loss, e.g. "d/total", "g/adv", "g/fm", "g/mel", "g/total"
    optimized: frozenset[str]  # optimizer groups stepped this step: {"g"} in warm-up, {"g", "d"} after
    grad_norms: dict[str, float]  # total gradient norm per optimizer group, before clipping
    d_real_scores: list[float] | None = None  # mean D score on real audio, per sub-discriminator
    d_fake_scores: list[float] | None = None  # mean D score on generated audio, per sub-discriminator
    d_losses: list[float] | None = None  # D loss per sub-discriminator
    fake_audio: AudioStats | None = None
    real_audio: AudioStats | None = None
    layer_grad_norms: dict[str, float] = field(default_factory=dict)  # "g:ups.0" → norm; may be empty
    lr: dict[str, float] = field(default_factory=dict)
