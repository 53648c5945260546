"""Checks on the adversarial balance of one critic (an optimizer group whose updates return a `CriticReadout`):
the discriminator collapsing (no longer discriminating) or overpowering. The health session builds one pair per
critic and hands each the records of its own critic (`StepRecord.d_*`)."""

from __future__ import annotations

import math
from typing import Any

from gankit.engine.health.base import Check, Finding, Window, all_finite
from gankit.engine.health.record import StepRecord
from gankit.engine.health.settings import CollapseSettings, OverpoweringSettings


def label_subs(names: list[str] | None, indices: list[int], count: int) -> list[str]:
    """Names like "mpd.2" when the networks' layout matches the readout's length, else "#2"."""
    if names is None or len(names) != count:
        return [f"#{i}" for i in indices]
    return [names[i] for i in indices]


def _d_record_usable(record: StepRecord, critic: str) -> bool:
    """Only steps that optimised the critic, with a complete and finite readout, say anything about it."""
    if critic not in record.trained or record.d_losses is None:
        return False
    if record.d_real_scores is None or record.d_fake_scores is None:
        return False
    if not (len(record.d_losses) == len(record.d_real_scores) == len(record.d_fake_scores)):
        return False
    return all_finite(record.d_losses + record.d_real_scores + record.d_fake_scores)


def _rate_key(kind: str, critic: str) -> str:
    """Events of one kind are rate-limited per critic ("d" keeps the plain kind, as runs before critics had names)."""
    return kind if critic == "d" else f"{kind}@{critic}"


class DiscriminatorCollapseCheck(Check):
    """D stopped discriminating: at least two of (loss at the no-information value, real and fake scores
    converged, gradients vanished) over a window, after a grace period of D-optimised steps — or D stepped with
    learning rate 0 for a whole window (it stopped learning; a trained D frozen so goes on separating for a while).

    A D with learning rate 0 (or frozen) scores real and fake alike and its loss stays at or above the
    no-information value; a D that fell asleep outputs the no-information constant, so its gradients
    vanish as well. Any single signal alone is normal somewhere in healthy training (near equilibrium
    some sub-discriminators sit close to the no-information loss), hence two are required. An objective
    without a no-information loss (WGAN: `no_information_loss` None) has the other two only, so both must hold.
    """

    kinds = ("discriminator_collapse",)

    def __init__(
        self,
        settings: CollapseSettings,
        no_information_loss: float | None,
        score_scale: float,
        sub_names: list[str] | None = None,
        objective: str = "adversarial",
        critic: str = "d",
    ) -> None:
        self.s = settings
        self.l0 = None if no_information_loss is None else float(no_information_loss)
        self.scale = float(score_scale)
        self.names = sub_names
        self.objective = objective
        self.critic = critic
        self.d_steps = 0
        self.grad_reference: float | None = None
        self._losses: list[Window] = []
        self._gaps: list[Window] = []
        self._grad = Window(settings.window)
        self._lr = Window(settings.window)

    def observe(self, record: StepRecord) -> list[Finding]:
        if not _d_record_usable(record, self.critic):
            return []
        assert record.d_losses is not None and record.d_real_scores is not None and record.d_fake_scores is not None
        grad = record.grad_norms.get(self.critic, math.nan)
        self.d_steps += 1
        if self.d_steps <= self.s.grace:
            return []
        n = len(record.d_losses)
        if len(self._losses) != n:
            self._losses = [Window(self.s.window) for _ in range(n)]
            self._gaps = [Window(self.s.window) for _ in range(n)]
        for i in range(n):
            self._losses[i].push(record.d_losses[i])
            self._gaps[i].push(record.d_real_scores[i] - record.d_fake_scores[i])
        self._grad.push(grad)
        self._lr.push(record.lr.get(self.critic, math.nan))
        if not self._losses[0].full:
            return []
        if self._lr.full and max(self._lr.values()) == 0.0:
            return [self._not_learning(len(record.d_losses))]
        loss_med = [w.median() for w in self._losses]
        gap_med = [w.median() for w in self._gaps]
        grad_med = self._grad.median() if len(self._grad) else math.nan
        if self.grad_reference is None and self._grad.full:
            self.grad_reference = grad_med  # D's gradient scale when it started being judged
        need = max(1, math.ceil(self.s.min_fraction * n))
        l0 = self.l0
        at_l0 = [] if l0 is None else [i for i in range(n) if loss_med[i] >= (1.0 - self.s.loss_tolerance) * l0]
        no_gap = [i for i in range(n) if gap_med[i] <= self.s.gap_tolerance * self.scale]
        evidence = []
        if len(at_l0) >= need:
            evidence.append("loss_at_no_information")
        if len(no_gap) >= need:
            evidence.append("scores_converged")
        if self.grad_reference is not None and grad_med <= self.s.grad_ratio * self.grad_reference:
            evidence.append("gradients_vanished")
        if len(evidence) < 2:
            return []
        both = sorted(set(at_l0) & set(no_gap))
        which = both or (at_l0 if "loss_at_no_information" in evidence else no_gap) or list(range(n))
        names = label_subs(self.names, which, n)
        mean_loss = sum(loss_med[i] for i in which) / len(which)
        mean_gap = sum(gap_med[i] for i in which) / len(which)
        grad_text = (
            f"; its gradient norm is {grad_med:.3g} against {self.grad_reference:.3g} when it started"
            if self.grad_reference is not None
            else ""
        )
        loss_text = (f"its loss sits at {mean_loss:.3g} per sub-discriminator, the no-information value being "
                     f"{l0:.3g}" if l0 is not None else f"its loss sits at {mean_loss:.3g} per sub-discriminator")
        lr = f"optim.{self.critic}.lr"
        message = (
            f"{self._who()} has stopped discriminating on {len(which)} of {n} sub-discriminators "
            f"({', '.join(names)}) over the last {self.s.window} steps: its mean scores on real and generated data "
            f"differ by {mean_gap:.3g} (the {self.objective} loss separates them by about {self.scale:.3g}) and "
            f"{loss_text}{grad_text}. The generator gets no useful adversarial signal and may drift to output that "
            "fits its other losses but sounds (or looks) wrong. Try: check that the discriminator really receives "
            f"the generated output and that {lr} is not 0 (and its parameters are not frozen); rebalance "
            f"{lr} against the generator's learning rate; raise the feature-matching or reconstruction weights; "
            "if it followed a loss spike, resume from an earlier checkpoint."
        )
        values: dict[str, Any] = {
            "sub_discriminators": names,
            "evidence": evidence,
            "median_d_loss": loss_med,
            "no_information_d_loss": self.l0,
            "median_score_gap": gap_med,
            "score_scale": self.scale,
            "d_grad_norm": grad_med,
            "d_grad_norm_reference": self.grad_reference,
            "window": self.s.window,
            "critic": self.critic,
        }
        return [Finding("discriminator_collapse", "warning", message, values, rate_key=_rate_key(
            "discriminator_collapse", self.critic))]

    def _who(self) -> str:
        return "the discriminator" if self.critic == "d" else f"the discriminator of group '{self.critic}'"

    def _not_learning(self, n: int) -> Finding:
        """A critic stepped with learning rate 0 for a whole window: it may still separate real from generated
        for a while (a trained D keeps its weights), but it no longer learns, so the generator is free to fool it
        and the scores alone would name that only once it has happened."""
        lr = f"optim.{self.critic}.lr"
        message = (
            f"{self._who()} has stepped with learning rate 0 for the last {self.s.window} steps: it no longer "
            "learns, so the generator will learn to fool it and then gets no useful adversarial signal. Try: check "
            f"{lr} and its scheduler (a decay or warm-up that reaches 0), and any code that changes the optimizer's "
            "learning rate."
        )
        values: dict[str, Any] = {
            "sub_discriminators": label_subs(self.names, list(range(n)), n),
            "evidence": ["learning_rate_zero"],
            "learning_rate": 0.0,
            "window": self.s.window,
            "critic": self.critic,
        }
        return Finding("discriminator_collapse", "warning", message, values,
                       rate_key=_rate_key("discriminator_collapse", self.critic))

    def state_dict(self) -> dict[str, Any]:
        return {
            "d_steps": self.d_steps,
            "grad_reference": self.grad_reference,
            "losses": [w.values() for w in self._losses],
            "gaps": [w.values() for w in self._gaps],
            "grad": self._grad.values(),
            "lr": self._lr.values(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_steps = int(state.get("d_steps", 0))
        ref = state.get("grad_reference")
        self.grad_reference = None if ref is None else float(ref)
        self._losses = [Window(self.s.window, v) for v in state.get("losses", [])]
        self._gaps = [Window(self.s.window, v) for v in state.get("gaps", [])]
        self._grad = Window(self.s.window, state.get("grad", []))
        self._lr = Window(self.s.window, state.get("lr", []))


class DiscriminatorOverpoweringCheck(Check):
    """D wins outright: its loss per sub-discriminator ≈ 0 over a window while G's adversarial loss does not fall."""

    kinds = ("discriminator_overpowering",)

    def __init__(
        self,
        settings: OverpoweringSettings,
        no_information_loss: float,
        sub_names: list[str] | None = None,
        critic: str = "d",
        generator_loss: str = "g/adv",
    ) -> None:
        self.s = settings
        self.l0 = float(no_information_loss)
        self.names = sub_names
        self.critic = critic
        self.generator_loss = generator_loss
        self.d_steps = 0
        self._losses: list[Window] = []
        self._adv = Window(settings.window)  # g/adv over the same D-optimised steps

    def observe(self, record: StepRecord) -> list[Finding]:
        if not _d_record_usable(record, self.critic):
            return []
        assert record.d_losses is not None
        self.d_steps += 1
        if self.d_steps <= self.s.grace:
            return []
        n = len(record.d_losses)
        if len(self._losses) != n:
            self._losses = [Window(self.s.window) for _ in range(n)]
        for i in range(n):
            self._losses[i].push(record.d_losses[i])
        adv = record.losses.get(self.generator_loss)
        if adv is not None:
            self._adv.push(adv)
        if not self._losses[0].full:
            return []
        loss_med = [w.median() for w in self._losses]
        need = max(1, math.ceil(self.s.min_fraction * n))
        near_zero = [i for i in range(n) if loss_med[i] <= self.s.loss_fraction * self.l0]
        if len(near_zero) < need:
            return []
        early = late = math.nan
        if len(self._adv) >= 4:  # without g/adv (a task that does not log it) D's loss alone decides
            early, late = self._adv.halves()
            if late < early - self.s.adv_tolerance * abs(early):
                return []  # the generator is catching up: D is ahead, not overpowering
        names = label_subs(self.names, near_zero, n)
        mean_loss = sum(loss_med[i] for i in near_zero) / len(near_zero)
        adv_text = ""
        if math.isfinite(early):
            adv_text = f" while the generator's adversarial loss went from {early:.3g} to {late:.3g}"
        who = "the discriminator" if self.critic == "d" else f"the discriminator of group '{self.critic}'"
        lr = f"optim.{self.critic}.lr"
        message = (
            f"{who} wins outright: over the last {self.s.window} steps its loss is {mean_loss:.3g} per "
            f"sub-discriminator on {len(near_zero)} of {n} ({', '.join(names)}; no-information value {self.l0:.3g})"
            f"{adv_text}. Its gradients to the generator saturate and the generator stops improving. Try: lower "
            f"{lr} (÷2 to ÷10) relative to the generator's learning rate; set schedule.d_loss_threshold so D "
            "pauses while it is ahead; raise the feature-matching or reconstruction weights; or train the "
            "generator alone first (schedule.warmup_steps)."
        )
        values: dict[str, Any] = {
            "sub_discriminators": names,
            "median_d_loss": loss_med,
            "no_information_d_loss": self.l0,
            "g_adv_earlier": early,
            "g_adv_later": late,
            "window": self.s.window,
            "critic": self.critic,
        }
        return [Finding("discriminator_overpowering", "warning", message, values,
                        rate_key=_rate_key("discriminator_overpowering", self.critic))]

    def state_dict(self) -> dict[str, Any]:
        return {"d_steps": self.d_steps, "losses": [w.values() for w in self._losses], "adv": self._adv.values()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_steps = int(state.get("d_steps", 0))
        self._losses = [Window(self.s.window, v) for v in state.get("losses", [])]
        self._adv = Window(self.s.window, state.get("adv", []))
