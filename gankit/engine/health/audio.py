"""Generated-versus-real audio statistics of a batch, and the dc_offset check that watches them drift apart."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gankit.engine.health.base import Check, Finding, Window
from gankit.engine.health.record import AudioStats, StepRecord
from gankit.engine.health.settings import DcOffsetSettings

SILENT_STD = 1e-4  # a batch of real audio quieter than this says nothing about the generator's level
_FLOOR = 1e-12


@torch.no_grad()
def audio_stats(fake: Tensor, real: Tensor) -> tuple[AudioStats, AudioStats]:
    """Mean, std and spectral flatness of generated and real audio ([B, 1, T] or [B, T]) with one rfft, one sync.

    Flatness (geometric over arithmetic mean of the power spectrum) is taken of the batch-pooled spectrum
    of mean-removed signals: the DC offset stays in `mean`, silent items add nothing, and a near-DC or
    low-frequency signal (tiny flatness) stands out against real speech.
    """
    n = min(fake.shape[-1], real.shape[-1])
    x = torch.stack([fake.detach().flatten(1)[..., :n], real.detach().flatten(1)[..., :n]]).float()  # [2, B, T]
    mean = x.mean(dim=(1, 2))
    std = x.std(dim=(1, 2)) if x[0].numel() > 1 else torch.zeros_like(mean)
    centered = x - x.mean(dim=-1, keepdim=True)
    power = torch.fft.rfft(centered, dim=-1).abs().square().mean(dim=1)[:, 1:]  # [2, F-1], DC bin dropped
    arith = power.mean(dim=-1)
    eps = 1e-12 * arith + 1e-30
    flatness = torch.exp(torch.log(power + eps[:, None]).mean(dim=-1)) / (arith + eps)
    (fm, fs, ff), (rm, rs, rf) = torch.stack([mean, std, flatness], dim=1).cpu().tolist()
    return AudioStats(fm, fs, ff), AudioStats(rm, rs, rf)


class DcOffsetCheck(Check):
    """Generated audio's DC offset, level (std) or spectral flatness drifts away from the same batch's real audio.

    A *trend*, not a level: a fresh generator is much quieter than speech (std ≈ 0.02) and spectrally
    different, and that improves with training. Each statistic's discrepancy is a robust window median;
    the check remembers the best (smallest) discrepancy reached and reports when the current one has
    moved a margin away from it for `persist` steps in a row. Only a DC offset is also judged as a level,
    after the grace period: a fresh generator's output bias is trained away within a few hundred steps,
    so an offset as large as the real audio's std that is still there (or forced on it) is a fault.
    """

    kinds = ("dc_offset",)

    def __init__(self, settings: DcOffsetSettings) -> None:
        self.s = settings
        self.g_steps = 0
        self.adversarial: bool | None = None
        self.streak = 0
        self.best: dict[str, float] = {}
        self._w = {k: Window(settings.window) for k in ("dc", "std", "flatness")}
        self._last: tuple[AudioStats, AudioStats] | None = None

    def _restart(self) -> None:
        """A new phase (warm-up → adversarial) changes what the generator learns: judge it afresh."""
        self.g_steps = 0
        self.streak = 0
        self.best = {}
        for w in self._w.values():
            w.clear()

    def observe(self, record: StepRecord) -> list[Finding]:
        fake, real = record.fake_audio, record.real_audio
        if "g" not in record.trained or fake is None or real is None:
            return []
        numbers = (fake.mean, fake.std, fake.flatness, real.mean, real.std, real.flatness)
        if not all(math.isfinite(v) for v in numbers) or real.std < SILENT_STD:
            return []
        if self.adversarial is not None and record.adversarial != self.adversarial:
            self._restart()
        self.adversarial = record.adversarial
        self.g_steps += 1
        if self.g_steps <= self.s.grace:
            return []
        # Signed discrepancies; their window medians are robust to single odd batches.
        self._w["dc"].push((fake.mean - real.mean) / real.std)
        self._w["std"].push(math.log(max(fake.std, _FLOOR) / real.std))
        self._w["flatness"].push(math.log(max(fake.flatness, _FLOOR) / max(real.flatness, _FLOOR)))
        self._last = (fake, real)
        if not self._w["dc"].full:
            return []
        level = {k: w.median() for k, w in self._w.items()}
        for k, v in level.items():
            self.best[k] = min(self.best.get(k, math.inf), abs(v))
        margins = {"dc": self.s.dc_margin, "std": math.log(self.s.std_factor),
                   "flatness": math.log(self.s.flatness_factor)}
        drifted = [k for k in ("dc", "std", "flatness") if abs(level[k]) >= self.best[k] + margins[k]]
        if self.s.dc_level is not None and abs(level["dc"]) >= self.s.dc_level and "dc" not in drifted:
            drifted.insert(0, "dc")
        self.streak = self.streak + 1 if drifted else 0
        if self.streak < self.s.persist:
            return []
        return [self._finding(drifted, level)]

    def _finding(self, drifted: list[str], level: dict[str, float]) -> Finding:
        parts = []
        if "dc" in drifted:
            parts.append(
                f"its DC offset is {level['dc']:+.2f}× the real audio's standard deviation "
                f"(best reached: {self.best['dc']:.2f}×)"
            )
        if "std" in drifted:
            parts.append(
                f"its level is {math.exp(level['std']):.2f}× the real audio's (best reached: within "
                f"{math.exp(self.best['std']):.2f}×)"
            )
        if "flatness" in drifted:
            parts.append(
                f"its spectral flatness is {math.exp(level['flatness']):.3g}× the real audio's (best reached: "
                f"within {math.exp(self.best['flatness']):.3g}×; far below 1 means a near-DC or tonal signal, "
                "far above means noise)"
            )
        message = (
            f"generated audio has drifted away from the real audio of the same batches: {'; '.join(parts)}, "
            f"for {self.streak} steps in a row (window medians over {self.s.window} steps). The mel loss can "
            "look fine while this is audible. Try: listen to the latest samples; check the discriminators are "
            "training (see discriminator_collapse events) and raise loss.lambda_adv or loss.lambda_fm so they "
            "penalise it; check the generator's output layer (tanh) and lower optim.g.lr."
        )
        values: dict[str, Any] = {
            "drifted": drifted,
            "dc_offset_over_real_std": level["dc"],
            "log_std_ratio": level["std"],
            "log_flatness_ratio": level["flatness"],
            "best": dict(self.best),
            "steps": self.streak,
        }
        if self._last is not None:
            fake, real = self._last
            values["fake"] = {"mean": fake.mean, "std": fake.std, "flatness": fake.flatness}
            values["real"] = {"mean": real.mean, "std": real.std, "flatness": real.flatness}
        return Finding("dc_offset", "warning", message, values)

    def state_dict(self) -> dict[str, Any]:
        return {
            "g_steps": self.g_steps,
            "adversarial": self.adversarial,
            "streak": self.streak,
            "best": dict(self.best),
            "windows": {k: w.values() for k, w in self._w.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g_steps = int(state.get("g_steps", 0))
        adversarial = state.get("adversarial")
        self.adversarial = None if adversarial is None else bool(adversarial)
        self.streak = int(state.get("streak", 0))
        self.best = {str(k): float(v) for k, v in state.get("best", {}).items()}
        saved = state.get("windows", {})
        self._w = {k: Window(self.s.window, saved.get(k, [])) for k in ("dc", "std", "flatness")}
        self._last = None
