"""What the checks read about one optimizer step: plain floats only (no tensors, no graphs)."""

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
    step: int  # completed optimizer steps, after this one (the step metrics.jsonl logs)
    losses: dict[str, float]  # rank-averaged: "d/total", "d/msd", "g/adv", "g/fm", "g/mel", "g/total", …
    trained: frozenset[str]  # optimizer groups trained this step, applied or skipped: {"g"} in warm-up
    stepped: frozenset[str] = frozenset()  # groups whose update was applied (their .grad is this step's)
    grad_norms: dict[str, float] = field(default_factory=dict)  # total gradient norm per group, before clipping
    critic_groups: frozenset[str] = frozenset()  # groups that returned a critic readout this step
    # One critic's readout, rank-averaged: the session fills these per critic for that critic's checks.
    d_real_scores: list[float] | None = None  # mean D score on real data, per sub-discriminator
    d_fake_scores: list[float] | None = None  # mean D score on generated data, per sub-discriminator
    d_losses: list[float] | None = None  # D loss per sub-discriminator
    fake_audio: AudioStats | None = None
    real_audio: AudioStats | None = None
    image_stats: dict[str, float] = field(default_factory=dict)  # generated vs real images (health/images.py)
    # Classifier network → (accuracy, chance, role, its optimizer group), accuracy rank-averaged.
    classifiers: dict[str, tuple[float, float, str, str]] = field(default_factory=dict)
    layer_grad_norms: dict[str, float] = field(default_factory=dict)  # "generator.ups.0" → norm; stepped nets only
    lr: dict[str, float] = field(default_factory=dict)

    @property
    def adversarial(self) -> bool:
        """The discriminators take part this step (after the mel-only warm-up)."""
        return bool(self.critic_groups) or self.d_losses is not None or any(k.startswith("d/") for k in self.losses)
