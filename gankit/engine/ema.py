"""An exponential moving average of a network's weights (a deep copy updated after each optimizer step)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        ema = list(self.module.state_dict().values())
        live = list(module.state_dict().values())
        floats = [(e, v) for e, v in zip(ema, live, strict=True) if e.dtype.is_floating_point]
        torch._foreach_lerp_([e for e, _ in floats], [v.detach() for _, v in floats], 1.0 - self.decay)
        for e, v in zip(ema, live, strict=True):
            if not e.dtype.is_floating_point:
                e.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
