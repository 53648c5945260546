"""Checks on classifiers a task trains beside its GAN, fed by their `ClassifierReadout`s: a confusion classifier
that keeps winning (the encoder's latent leaks the labels it should hide) and an auxiliary classifier that stays
at chance (it learns nothing)."""

from __future__ import annotations

from typing import Any

from gankit.engine.health.base import Check, Finding, Window, windows_state
from gankit.engine.health.record import StepRecord
from gankit.engine.health.settings import AuxiliarySettings, ConfusionSettings


class ClassifierCheck(Check):
    """Per classifier network of the check's role: a window of accuracies over steps that trained its group,
    after a grace of such steps; named while the window's median is past the role's bound."""

    kinds = ("confusion_classifier_wins", "auxiliary_classifier_at_chance")

    def __init__(self, confusion: ConfusionSettings, auxiliary: AuxiliarySettings) -> None:
        self.settings = {"confusion": confusion, "auxiliary": auxiliary}
        self.windows: dict[str, Window] = {}
        self.roles: dict[str, str] = {}
        self.trained_steps: dict[str, int] = {}

    def observe(self, record: StepRecord) -> list[Finding]:
        findings = []
        for network, (accuracy, chance, role, group) in sorted(record.classifiers.items()):
            settings = self.settings.get(role)
            if settings is None or not settings.enabled or group not in record.trained:
                continue
            self.trained_steps[network] = self.trained_steps.get(network, 0) + 1
            if self.trained_steps[network] <= settings.grace:
                continue
            self.roles[network] = role
            window = self.windows.setdefault(network, Window(settings.window))
            window.push(accuracy)
            if not window.full:
                continue
            median = window.median()
            values = {"network": network, "median_accuracy": round(median, 4), "chance": round(chance, 4),
                      "window": settings.window}
            if role == "confusion" and median >= settings.accuracy:  # type: ignore[union-attr]
                findings.append(Finding(
                    "confusion_classifier_wins", "warning",
                    f"the confusion classifier '{network}' has told the classes apart with median accuracy "
                    f"{median:.1%} over the last {settings.window} steps (chance {chance:.1%}): the latent it reads "
                    "still carries what it should hide, so a decoder can tell its input's domain/speaker instead of "
                    "learning to translate. Try: raise the confusion weight (d_lambda), add augmentation to the "
                    "encoder's input, or lower the classifier's learning rate.", values,
                    rate_key=f"confusion:{network}"))
            elif role == "auxiliary" and median <= chance + settings.margin:  # type: ignore[union-attr]
                findings.append(Finding(
                    "auxiliary_classifier_at_chance", "warning",
                    f"the classifier '{network}' sits at chance: median accuracy {median:.1%} over the last "
                    f"{settings.window} steps (chance {chance:.1%}), so its loss guides nothing. Try: check its labels "
                    "match the data (speakers.tsv), that its optimizer group steps (learning rate not 0), and that "
                    "its input is the real data.", values, rate_key=f"auxiliary:{network}"))
        return findings

    def state_dict(self) -> dict[str, Any]:
        return {"windows": windows_state(self.windows), "roles": dict(self.roles),
                "trained_steps": dict(self.trained_steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.roles = {str(k): str(v) for k, v in (state.get("roles") or {}).items() if v in self.settings}
        self.windows = {k: Window(self.settings[self.roles[k]].window, v)
                        for k, v in (state.get("windows") or {}).items() if k in self.roles}
        self.trained_steps = {str(k): int(v) for k, v in (state.get("trained_steps") or {}).items()}
