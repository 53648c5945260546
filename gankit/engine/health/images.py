"""Generated images against the real batch: per-channel means and spreads, and batch diversity — the
`mode_collapse` check names a generator whose samples grow alike, measured against the run's own peak."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gankit.engine.health.base import Check, Finding, Window
from gankit.engine.health.record import StepRecord
from gankit.engine.health.settings import ModeCollapseSettings


def image_stats(fake: Tensor, real: Tensor, features: tuple[Tensor, Tensor] | None = None) -> dict[str, float]:
    """"diversity": the mean distance of each generated image to the batch's mean image, over the same of the
    real batch (1 ≈ as varied as the data; an untrained generator is already below it), between the task's
    feature vectors where it gives them, else between pixels; channel means/stds."""
    pair = features if features is not None else (fake, real)
    x = torch.stack([pair[0].detach().float().flatten(1), pair[1].detach().float().flatten(1)])  # [2, B, D]
    spread = (x - x.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=1)  # [2]
    stats = {"diversity": float(spread[0] / spread[1].clamp_min(1e-8))}
    channels = fake.shape[1] if fake.dim() == 4 else 1
    for name, images in (("fake", fake), ("real", real)):
        per_channel = images.detach().float().transpose(0, 1).reshape(channels, -1)
        for c in range(channels):
            stats[f"{name}_mean_{c}"] = float(per_channel[c].mean())
            stats[f"{name}_std_{c}"] = float(per_channel[c].std()) if per_channel[c].numel() > 1 else 0.0
    return stats


class ModeCollapseCheck(Check):
    """After a grace of generator steps, the window median of the diversity ratio is compared with the highest
    window median the run reached: below `fraction` of it, the generator's samples have collapsed together."""

    kinds = ("mode_collapse",)

    def __init__(self, settings: ModeCollapseSettings) -> None:
        self.s = settings
        self.window = Window(settings.window)
        self.g_steps = 0
        self.peak = 0.0

    def observe(self, record: StepRecord) -> list[Finding]:
        diversity = record.image_stats.get("diversity") if record.image_stats else None
        if "g" not in record.trained or diversity is None or not math.isfinite(diversity):
            return []
        self.g_steps += 1
        if self.g_steps <= self.s.grace:
            return []
        self.window.push(diversity)
        if not self.window.full:
            return []
        median = self.window.median()
        self.peak = max(self.peak, median)
        if median >= self.s.fraction * self.peak:
            return []
        values = {"diversity": round(median, 4), "peak": round(self.peak, 4), "fraction": self.s.fraction}
        return [Finding(
            "mode_collapse", "warning",
            f"generated samples have grown alike: their diversity is {median:.3f} of the real batch's (window median "
            f"over {self.s.window} steps), down from a peak of {self.peak:.3f} in this run — the generator is "
            "collapsing onto a few modes. Try: lower the discriminator's learning rate or its steps (n_critic), "
            "add instance noise or label smoothing, or a larger latent; if it persists, roll back (action: rollback).",
            values)]

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window.values(), "g_steps": self.g_steps, "peak": self.peak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window = Window(self.s.window, state.get("window", []))
        self.g_steps = int(state.get("g_steps", 0))
        self.peak = float(state.get("peak", 0.0))
