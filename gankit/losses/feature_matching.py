"""Feature matching: L1 between the discriminators' activations on real and on generated audio."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gankit.errors import ConfigError

MODES = ("uniform", "melgan")


def feature_matching_loss(
    real_feats: Sequence[Sequence[Tensor]],
    fake_feats: Sequence[Sequence[Tensor]],
    mode: str = "uniform",
    n_layers: int | None = None,
) -> Tensor:
    """Σ over sub-discriminators and layers of mean|f_real − f_fake| (real features detached by the caller).

    - "uniform": every layer, the final score map included, weight 1 — the original HiFi-GAN's sum before its ×2
      (that 2 is λ_fm in gankit's config).
    - "melgan": MelGAN's weighting 4/(n_layers + 1) · 1/num_D over every layer but the final score. MelGAN's
      n_layers is its discriminator's downsampling-layer count (`n_layers_D`, 4); when `n_layers` is not given it
      is taken as the number of feature layers per sub-discriminator excluding the final score.
    """
    if mode not in MODES:
        raise ConfigError(f"loss.feature_weights: unknown mode {mode!r}; known: {', '.join(MODES)}")
    if len(real_feats) != len(fake_feats):
        raise ValueError(f"feature matching: {len(real_feats)} real vs {len(fake_feats)} generated sub-discriminators")
    terms: list[Tensor] = []
    num_d = len(fake_feats)
    for i, (real, fake) in enumerate(zip(real_feats, fake_feats, strict=True)):
        if len(real) != len(fake):
            raise ValueError(f"feature matching: sub-discriminator {i} has {len(real)} real vs {len(fake)} layers")
        if mode == "uniform":
            terms.extend(torch.mean(torch.abs(r - f)) for r, f in zip(real, fake, strict=True))
            continue
        layers = len(fake) - 1  # MelGAN leaves the final score out of feature matching
        weight = 4.0 / ((layers if n_layers is None else n_layers) + 1) / num_d
        terms.extend(weight * torch.mean(torch.abs(r - f)) for r, f in zip(real[:layers], fake[:layers], strict=True))
    if not terms:
        raise ValueError("feature matching needs at least one feature layer")
    return torch.stack(terms).sum()
