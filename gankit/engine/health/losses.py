"""Checks on loss values: spikes and divergence against a robust recent range, and the non-finite gate."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from gankit.engine.health.base import MAD_TO_STD, Check, Finding, Window, windows_from_state, windows_state
from gankit.engine.health.record import StepRecord
from gankit.engine.health.settings import DivergenceSettings, LossSpikeSettings, NonfiniteSettings

MIN_HISTORY = 3  # values a loss needs before a median and a MAD mean anything


class LossSpikeCheck(Check):
    """A loss far above its robust recent range is a `loss_spike`; staying there is `divergence`.

    Per loss: a window of recent in-range values (spikes never enter it, so a diverging loss cannot
    drag its own reference up); a value is out of range when it exceeds the median by more than
    `threshold` robust standard deviations *and* by `min_ratio` × |median| — the second condition keeps
    tiny-MAD stretches from turning ordinary noise into alarms. Only upward moves count: a sudden fall
    is either good news or the discriminators' balance, which the adversarial checks watch. When the
    set of logged losses changes (warm-up → adversarial) the windows restart: g/total changes meaning.
    A loss listed in `floors` (a generator's adversarial loss, whose natural scale its critic states) may also
    rise that far above the median: it has no natural zero, so its |median| says nothing of its range.
    """

    kinds = ("loss_spike", "divergence")

    def __init__(
        self,
        spike: LossSpikeSettings,
        divergence: DivergenceSettings,
        critic_prefixes: Collection[str] = (),
        floors: Mapping[str, float] | None = None,
        ignored: Collection[str] = (),
    ) -> None:
        """`critic_prefixes`: the critics' loss names start with one of them ("d/"), left out unless
        `critic_losses`; `floors`: loss name → the least rise that counts (the session fills both when a
        critic's first readout arrives); `ignored`: logged names that are not losses (accuracies)."""
        self.s = spike
        self.d = divergence
        self.critic_prefixes = critic_prefixes
        self.floors: Mapping[str, float] = floors if floors is not None else {}
        self.ignored = ignored
        self.phase: list[str] = []
        self._w: dict[str, Window] = {}
        self._out: dict[str, deque[bool]] = {}

    @property
    def min_history(self) -> int:
        return min(max(self.s.grace, MIN_HISTORY), self.s.window)

    def _watched(self, losses: Mapping[str, float]) -> list[str]:
        names = sorted(n for n in losses if n not in self.ignored)
        if self.s.losses is not None:
            return [n for n in names if n in self.s.losses]
        if self.s.critic_losses:
            return names
        return [n for n in names if not any(n.startswith(p) for p in self.critic_prefixes)]

    def observe(self, record: StepRecord) -> list[Finding]:
        phase = sorted(record.losses)
        if phase != self.phase:
            self.phase = phase
            self._w, self._out = {}, {}
        spikes: list[dict[str, float | str]] = []
        diverged: list[dict[str, float | str]] = []
        for name in self._watched(record.losses):
            value = float(record.losses[name])
            if not math.isfinite(value):
                continue  # the nonfinite gate reports it
            window = self._w.setdefault(name, Window(self.s.window))
            flags = self._out.setdefault(name, deque(maxlen=self.d.steps))
            if len(window) < self.min_history:
                window.push(value)
                flags.append(False)
                continue
            median, mad = window.median(), window.mad()
            limit = median + max(self.s.threshold * MAD_TO_STD * mad, self.s.min_ratio * abs(median), self.s.abs_margin,
                                 self.floors.get(name, 0.0))
            out = value > limit
            flags.append(out)
            if not out:
                window.push(value)
                continue
            row: dict[str, float | str] = {"loss": name, "value": value, "median": median, "limit": limit,
                                          "robust_std": MAD_TO_STD * mad}
            spikes.append(row)
            if self.d.enabled and len(flags) == self.d.steps and sum(flags) >= self.d.fraction * self.d.steps:
                diverged.append({**row, "out_of_range_steps": sum(flags)})
        findings = []
        if spikes and self.s.enabled:
            findings.append(self._spike_finding(spikes))
        if diverged:
            findings.append(self._divergence_finding(diverged))
        return findings

    def _spike_finding(self, rows: list[dict[str, Any]]) -> Finding:
        parts = [
            f"{r['loss']} = {r['value']:.4g} against a recent median of {r['median']:.4g} "
            f"(range up to {r['limit']:.4g})"
            for r in rows
        ]
        message = (
            f"loss spike: {'; '.join(parts)}. One spike can be an odd batch; if it repeats or the run diverges, "
            "lower the learning rates, set optim.g.clip / optim.d.clip, check the data for clipped or "
            "corrupt audio, and in fp16 try bf16 or fp32."
        )
        return Finding("loss_spike", "warning", message, {"losses": rows, "window": self.s.window})

    def _divergence_finding(self, rows: list[dict[str, Any]]) -> Finding:
        parts = [
            f"{r['loss']} = {r['value']:.4g} (its range before: up to {r['limit']:.4g}, median {r['median']:.4g}), "
            f"out of range on {r['out_of_range_steps']} of the last {self.d.steps} steps"
            for r in rows
        ]
        message = (
            f"the run is diverging: {'; '.join(parts)}. Try: resume from an earlier checkpoint with lower "
            "learning rates (health.divergence.action: rollback does this automatically), set gradient clipping "
            "(optim.<group>.clip), and in fp16 try bf16 or fp32."
        )
        return Finding("divergence", "error", message, {"losses": rows, "steps": self.d.steps})

    def state_dict(self) -> dict[str, Any]:
        return {
            "phase": list(self.phase),
            "windows": windows_state(self._w),
            "out": {k: [bool(x) for x in v] for k, v in self._out.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.phase = [str(x) for x in state.get("phase", [])]
        self._w = windows_from_state(state.get("windows", {}), self.s.window)
        self._out = {str(k): deque((bool(x) for x in v), maxlen=self.d.steps) for k, v in state.get("out", {}).items()}


# Codes agreed over ranks (the largest wins): a decision taken on any rank is taken on all.
FINE, OVERFLOW, NONFINITE = 0, 1, 2


class NonfiniteGate:
    """Decides, inside a step and before an optimizer update, whether that update must be skipped.

    A non-finite loss, or a non-finite gradient in fp32/bf16, is a `nonfinite` error: skipped under the
    default action so the weights stay finite. In fp16 a non-finite gradient with finite losses is the
    gradient scaler's ordinary overflow: the update is skipped through the same path (so it is counted
    once, in `skipped`), the scaler lowers its scale in `update()`, and at most a rate-limited info event
    is written. Many skipped steps in a row mean training is stuck: that becomes a stop.
    """

    def __init__(self, settings: NonfiniteSettings, precision: str, agree: Callable[[int], int]) -> None:
        self.s = settings
        self.precision = precision
        self.agree = agree
        self.streak = 0  # steps in a row with a non-finite skip
        self._step_code = FINE
        self.pending: list[Finding] = []

    def decide(self, losses: Mapping[str, float], grad_norms: Mapping[str, float]) -> bool:
        if not self.s.enabled:
            return False
        bad_losses = sorted(k for k, v in losses.items() if not math.isfinite(v))
        bad_grads = sorted(k for k, v in grad_norms.items() if not math.isfinite(v))
        code = NONFINITE if bad_losses or (bad_grads and self.precision != "fp16") else OVERFLOW if bad_grads else FINE
        code = self.agree(code)  # every rank must skip (or not) together
        if code == FINE:
            return False
        self._step_code = max(self._step_code, code)
        groups = sorted(grad_norms)
        where = "" if bad_losses or bad_grads else " on another rank"
        if code == OVERFLOW:
            self.pending.append(Finding(
                "nonfinite", "info",
                f"fp16 gradient overflow in {', '.join(groups)}{where}: the loss scaler lowers its scale and this "
                "update is skipped. Now and then this is normal; if it repeats every step, lower the learning rate "
                "or use bf16.",
                {"losses": dict(losses), "grad_norms": dict(grad_norms), "overflow": True},
                rate_key="nonfinite:overflow",
            ))
            return True
        skip = self.s.action != "warn"
        what = ", ".join([f"loss {k}" for k in bad_losses] + [f"gradient of {k}" for k in bad_grads]) or "values"
        effect = (
            "the update was skipped, so the weights stay finite"
            if skip
            else "the update was APPLIED (health.nonfinite.action is warn): the weights may now be NaN"
        )
        self.pending.append(Finding(
            "nonfinite", "error",
            f"non-finite {what}{where} in the {', '.join(groups)} update: {effect}. Once is survivable; if it "
            "repeats, lower the learning rates, set gradient clipping (optim.<group>.clip), look for "
            "silent or corrupt audio in the data, and in fp16 try bf16 or fp32.",
            {"losses": dict(losses), "grad_norms": dict(grad_norms), "nonfinite_losses": bad_losses,
             "nonfinite_grads": bad_grads, "skipped": skip},
        ))
        return skip

    def end_step(self) -> list[Finding]:
        """Findings of this step (from `decide`), plus the stop escalation when skips keep coming."""
        findings, self.pending = self.pending, []
        self.streak = self.streak + 1 if self._step_code != FINE else 0
        self._step_code = FINE
        if self.s.enabled and self.s.stop_after is not None and self.streak >= self.s.stop_after:
            findings.append(Finding(
                "nonfinite", "error",
                f"{self.streak} steps in a row had non-finite losses or gradients and were skipped: training is "
                "stuck. Stopping. Resume from an earlier checkpoint with lower learning rates and gradient "
                "clipping; in fp16 try bf16 or fp32.",
                {"steps": self.streak}, rate_key="nonfinite:stuck", action="stop",
            ))
        return findings

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak = int(state.get("streak", 0))
