"""The interface between the engine and a system's recipe: how a batch becomes losses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor, nn


@dataclass
class LossTerms:
    """A loss to back-propagate and the detached scalars to log (names like "g/mel", "d/mpd_0")."""

    total: Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class GeneratorPass:
    """What one generator forward produced; the task decides what else to keep (e.g. mels)."""

    fake: Tensor
    real: Tensor
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class DiscriminatorReadout:
    """Per sub-discriminator summaries the health monitor reads (means of D scores and D losses)."""

    real_scores: list[float]
    fake_scores: list[float]
    losses: list[float]


@dataclass
class ValidationSample:
    """One validation utterance: scalar metrics, generated and reference audio, and mels for plots."""

    utterance_id: str
    metrics: dict[str, float]
    fake_audio: Tensor  # [T]
    real_audio: Tensor  # [T]
    fake_mel: Tensor  # [n_mels, frames]
    real_mel: Tensor  # [n_mels, frames]


class AdversarialObjective(Protocol):
    """The adversarial loss pair; it also states its own no-information values for the health monitor."""

    name: str
    no_information_d_loss: float  # per sub-discriminator: D scores carry no information (LSGAN 0.5, hinge 2.0)

    def discriminator_loss(self, real: list[Tensor], fake: list[Tensor]) -> tuple[Tensor, list[Tensor]]: ...

    def generator_loss(self, fake: list[Tensor]) -> tuple[Tensor, list[Tensor]]: ...


class GanTask(Protocol):
    """A GAN system's recipe. Adding a system adds one of these, a model file and a config."""

    name: str
    generator_keys: tuple[str, ...]  # networks stepped by the "g" optimizer
    discriminator_keys: tuple[str, ...]  # networks stepped by the "d" optimizer
    adversarial: AdversarialObjective

    def build_networks(self) -> dict[str, nn.Module]: ...

    def generate(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> GeneratorPass: ...

    def discriminator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass
    ) -> tuple[LossTerms, DiscriminatorReadout]: ...

    def generator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass, adversarial: bool
    ) -> LossTerms: ...

    def validate(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> ValidationSample: ...
