"""Per-layer gradient norms read from the networks' `.grad` after a step, and the dead_layers check over them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from gankit.engine.health.base import Check, Finding
from gankit.engine.health.record import StepRecord
from gankit.engine.health.settings import DeadLayersSettings

_PARAMETRIZATION = ".parametrizations."


def layer_name(network: str, parameter: str) -> str:
    """'ups.0.parametrizations.weight.original0' of 'generator' → 'generator.ups.0' (the owning module)."""
    owner = parameter.split(_PARAMETRIZATION, 1)[0] if _PARAMETRIZATION in parameter else parameter.rpartition(".")[0]
    return f"{network}.{owner}" if owner else network


def network_of(layer: str) -> str:
    return layer.split(".", 1)[0]


class LayerGradNorms:
    """Groups each network's trainable parameters by layer once; per step, one fused norm and one sync.

    Parameters frozen (requires_grad False) when the session is built are left out: deliberately frozen
    layers are not dead. A trainable parameter without a gradient this step counts as 0.
    """

    def __init__(self, nets: Mapping[str, nn.Module], keys: Iterable[str]) -> None:
        self._params: dict[str, list[nn.Parameter]] = {}
        self._layer_of_param: dict[str, list[int]] = {}
        self._layers: dict[str, list[str]] = {}
        for key in keys:
            names: dict[str, int] = {}
            params, index = [], []
            for pname, p in nets[key].named_parameters():
                if not p.requires_grad:
                    continue
                layer = layer_name(key, pname)
                params.append(p)
                index.append(names.setdefault(layer, len(names)))
            self._params[key] = params
            self._layer_of_param[key] = index
            self._layers[key] = list(names)

    def layers(self, network: str) -> list[str]:
        return list(self._layers.get(network, []))

    @torch.no_grad()
    def compute(self, networks: Iterable[str]) -> dict[str, float]:
        """Gradient L2 norm per layer of these networks, from their current `.grad`."""
        grads, slots, names = [], [], []
        offset = 0
        for key in networks:
            if key not in self._params:
                continue
            for p, i in zip(self._params[key], self._layer_of_param[key], strict=True):
                if p.grad is not None:
                    grads.append(p.grad)
                    slots.append(offset + i)
            names.extend(self._layers[key])
            offset += len(self._layers[key])
        if not names:
            return {}
        if not grads:
            return dict.fromkeys(names, 0.0)
        norms = torch._foreach_norm(grads)  # one fused kernel instead of one per parameter
        device = norms[0].device
        squares = torch.stack([n.float() for n in norms]).square()
        sums = torch.zeros(len(names), device=device).index_add_(0, torch.tensor(slots, device=device), squares)
        return dict(zip(names, sums.sqrt().cpu().tolist(), strict=True))


class DeadLayersCheck(Check):
    """Named layers whose gradient norm stays ~0 for `window` consecutive steps in which their network stepped."""

    kinds = ("dead_layers",)

    def __init__(self, settings: DeadLayersSettings) -> None:
        self.s = settings
        self.net_steps: dict[str, int] = {}  # steps in which each network's update was applied
        self.dead_for: dict[str, int] = {}  # layer → consecutive dead steps

    def observe(self, record: StepRecord) -> list[Finding]:
        by_net: dict[str, dict[str, float]] = {}
        for layer, norm in record.layer_grad_norms.items():
            by_net.setdefault(network_of(layer), {})[layer] = norm
        dead_now: list[str] = []
        totals: dict[str, float] = {}
        for net, norms in by_net.items():
            if not all(math.isfinite(v) for v in norms.values()):
                continue  # a non-finite step says nothing about dead layers (nonfinite reports it)
            self.net_steps[net] = self.net_steps.get(net, 0) + 1
            if self.net_steps[net] <= self.s.grace:
                continue
            total = math.sqrt(sum(v * v for v in norms.values()))
            totals[net] = total
            limit = max(self.s.abs_threshold, self.s.rel_threshold * total)
            for layer, norm in norms.items():
                if norm <= limit:
                    self.dead_for[layer] = self.dead_for.get(layer, 0) + 1
                    if self.dead_for[layer] >= self.s.window:
                        dead_now.append(layer)
                else:
                    self.dead_for.pop(layer, None)
        if not dead_now:
            return []
        grouped: dict[str, list[str]] = {}
        for layer in dead_now:
            grouped.setdefault(network_of(layer), []).append(layer)
        parts = []
        for net, layers in grouped.items():
            whole = totals.get(net, 1.0) <= self.s.abs_threshold
            parts.append(f"the whole {net} (every layer)" if whole else f"{net}: {', '.join(layers)}")
        message = (
            f"{len(dead_now)} layer(s) got no gradient for {self.s.window} or more steps in a row — "
            f"{'; '.join(parts)}. "
            "They are not learning. Try: check each is on the path from input to loss (not detached, not multiplied "
            "by zero, not behind an activation that never fires, not bypassed by a wiring bug) and its "
            "initialisation (a zero weight-norm gain blocks gradients); if a layer is meant to be frozen, set its "
            "parameters' requires_grad to False so the monitor ignores it."
        )
        values = {
            "layers": dead_now,
            "steps": {layer: self.dead_for[layer] for layer in dead_now},
            "network_grad_norm": {net: totals.get(net) for net in grouped},
        }
        return [Finding("dead_layers", "warning", message, values)]

    def state_dict(self) -> dict[str, Any]:
        return {"net_steps": dict(self.net_steps), "dead_for": dict(self.dead_for)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net_steps = {str(k): int(v) for k, v in state.get("net_steps", {}).items()}
        self.dead_for = {str(k): int(v) for k, v in state.get("dead_for", {}).items()}
