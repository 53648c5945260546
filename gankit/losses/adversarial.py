"""Adversarial objectives: each gives the discriminator's and the generator's loss over all sub-discriminators.

Both return `(total, per_sub_discriminator)`; `no_information_d_loss` is the per-sub-discriminator D loss when
its scores carry no information (the health monitor compares against it to spot a collapsed or winning D).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from gankit.errors import ConfigError


def _total(terms: list[Tensor]) -> Tensor:
    if not terms:
        raise ValueError("adversarial loss needs at least one sub-discriminator score")
    return torch.stack(terms).sum()


class AdversarialLoss(ABC):
    """Base of the objectives (satisfies `gankit.tasks.base.AdversarialObjective`)."""

    name: str
    no_information_d_loss: float

    @abstractmethod
    def discriminator_loss(self, real: Sequence[Tensor], fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """(Σ over sub-discriminators, per-sub-discriminator losses) for D's step."""

    @abstractmethod
    def generator_loss(self, fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """(Σ over sub-discriminators, per-sub-discriminator losses) for G's adversarial term."""


class LsganLoss(AdversarialLoss):
    """Least squares (HiFi-GAN): D → 1 on real, 0 on generated; G pushes D(ĝ) → 1."""

    name = "lsgan"
    no_information_d_loss = 0.5  # D outputs 0.5 everywhere: 0.5² + 0.5²

    def discriminator_loss(self, real: Sequence[Tensor], fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        per_sub = [torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake, strict=True)]
        return _total(per_sub), per_sub

    def generator_loss(self, fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        per_sub = [torch.mean((1 - f) ** 2) for f in fake]
        return _total(per_sub), per_sub


class HingeLoss(AdversarialLoss):
    """Hinge (MelGAN): D: relu(1 − D(x)) + relu(1 + D(ĝ)); G: −D(ĝ)."""

    name = "hinge"
    no_information_d_loss = 2.0  # D outputs 0 everywhere: relu(1) + relu(1)

    def discriminator_loss(self, real: Sequence[Tensor], fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        per_sub = [
            torch.mean(torch.relu(1 - r)) + torch.mean(torch.relu(1 + f)) for r, f in zip(real, fake, strict=True)
        ]
        return _total(per_sub), per_sub

    def generator_loss(self, fake: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        per_sub = [-torch.mean(f) for f in fake]
        return _total(per_sub), per_sub


ADVERSARIAL: dict[str, type[AdversarialLoss]] = {"lsgan": LsganLoss, "hinge": HingeLoss}


def build_adversarial(name: str) -> AdversarialLoss:
    """The objective called `name` (config key loss.adversarial)."""
    if name not in ADVERSARIAL:
        raise ConfigError(f"loss.adversarial: unknown objective {name!r}; known: {', '.join(sorted(ADVERSARIAL))}")
    return ADVERSARIAL[name]()
