"""Weights (and optimizer moments) a new run starts from, as the engine applies them. Reading them from gankit or
original files is `gankit/initial_weights.py`'s, above the engine: the engine never reads other projects' formats."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gankit.checkpoint_io import load_state_strict
from gankit.errors import CheckpointError


@dataclass
class InitialWeights:
    """Weights (and optionally optimizer moments) a new run starts from: `gankit train --init-from CKPT`."""

    source: str
    networks: dict[str, Mapping[str, torch.Tensor]]
    optimizers: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # optimizer group → its state
    ema: Mapping[str, Any] | None = None  # network → EMA state dict
    frontend: Mapping[str, Any] | None = None

    def apply(
        self,
        nets: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        emas: Mapping[str, Any],
        skip: Collection[str] = (),
    ) -> None:
        """Load every saved network but those in `skip` (train.init_skip), and the optimizer moments. A network the
        task has and the file lacks stays as built (a new domain's decoder)."""
        unknown = sorted(set(self.networks) - set(nets) - set(skip))
        if unknown:
            raise CheckpointError(
                f"{self.source}: holds network(s) {', '.join(unknown)} this task does not have "
                f"(it has {', '.join(nets)}); was it made for another model family?"
            )
        for name, state in self.networks.items():
            if name not in skip:
                load_state_strict(nets[name], state, name, self.source)
        for key, optimizer in optimizers.items():
            if key in self.optimizers:
                _load_moments(optimizer, self.optimizers[key], self.source)
        saved_ema = dict(self.ema or {})
        if saved_ema and not all(k in nets for k in saved_ema):
            saved_ema = {"generator": saved_ema}  # written before train.ema named its networks: the generator's
        for key, ema in emas.items():
            if key in self.networks and key not in skip:  # from the loaded weights unless the source kept an EMA
                ema.load_state_dict(saved_ema.get(key, nets[key].state_dict()))


def _load_moments(optimizer: torch.optim.Optimizer, state: Mapping[str, Any], source: str) -> None:
    """Keep the checkpoint's Adam moments but this run's hyperparameters (lr, betas, weight decay)."""
    configured = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{source}: optimizer state does not fit this model ({exc}); "
                              "pass --reset-optimizer to start with fresh optimizer state.") from None
    for group, settings in zip(optimizer.param_groups, configured, strict=True):
        group.update(settings)
        group["initial_lr"] = settings.get("initial_lr", settings["lr"])
