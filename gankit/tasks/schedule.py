"""The adversarial step schedule every GAN task can use (`schedule:` config section): a generator-only warm-up,
n_critic discriminator updates per generator update, and loss thresholds that hold the discriminator back or
give the generator extra steps while the discriminator wins — decided on the previous step's rank-averaged
losses, so every rank and a resumed run decide alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gankit.errors import ConfigError
from gankit.tasks.base import Update


@dataclass
class AdversarialSchedule:
    warmup_steps: int = 0  # generator-only steps first (the discriminators join after them)
    n_critic: int = 1  # discriminator updates per generator update, each on its own batches
    d_loss_threshold: float | None = None  # hold D (loss computed and logged, no update) while its last loss < this
    g_boost_threshold: float | None = None  # while D's last loss < this, the generator steps g_boost_repeats times
    g_boost_repeats: int = 2

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps must be ≥ 0, got {self.warmup_steps}.")
        for name in ("n_critic", "g_boost_repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"schedule.{name} must be ≥ 1, got {getattr(self, name)}.")

    def adversarial(self, step: int) -> bool:
        """Whether step `step` (completed steps before it) is past the warm-up."""
        return step >= self.warmup_steps

    def updates(
        self, step: int, last_losses: Mapping[str, float], d_loss: str = "d/total", g: str = "g", d: str = "d"
    ) -> list[Update]:
        if not self.adversarial(step):
            return [Update(g)]
        last_d = last_losses.get(d_loss)
        hold = self.d_loss_threshold is not None and last_d is not None and last_d < self.d_loss_threshold
        boost = self.g_boost_threshold is not None and last_d is not None and last_d < self.g_boost_threshold
        g_repeats = self.g_boost_repeats if boost else 1
        return [Update(d, repeats=self.n_critic, apply=not hold), Update(g, repeats=g_repeats)]
