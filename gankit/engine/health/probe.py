"""The unused-parameter probe: one training-like step on deep copies names trainable parameters left without grad."""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.engine.health.layers import layer_name


@dataclass
class UnusedParameters:
    """Trainable parameters (requires_grad True, in a network with an optimizer) the probe left with grad None."""

    layers: dict[str, list[str]] = field(default_factory=dict)  # "generator.decoder.0" → ["generator.decoder.0.bias"]
    frozen: list[str] = field(default_factory=list)  # requires_grad False: deliberately frozen, not reported

    @property
    def parameters(self) -> list[str]:
        return [p for names in self.layers.values() for p in names]

    def __bool__(self) -> bool:
        return bool(self.layers)


@contextlib.contextmanager
def preserved_rng(devices: Sequence[int]) -> Iterator[None]:
    """Whatever runs inside draws from forked generators: torch (CPU and these CUDA devices), numpy, random."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=list(devices)):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _head(batch: Mapping[str, Any], items: int) -> dict[str, Any]:
    """The first `items` examples of a batch (tensors and lists cut along their first axis)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if (torch.is_tensor(value) and value.dim() > 0) or isinstance(value, (list, tuple)):
            out[key] = value[:items]
        else:
            out[key] = value
    return out


def _cuda_devices(nets: Mapping[str, nn.Module]) -> list[int]:
    found = {p.device.index for n in nets.values() for p in n.parameters() if p.device.type == "cuda"}
    return sorted(i if i is not None else torch.cuda.current_device() for i in found)


def find_unused_parameters(
    task: Any,
    nets: Mapping[str, nn.Module],
    batch: Mapping[str, Any],
    step: int = 0,
    items: int = 2,
) -> UnusedParameters:
    """Run the task's step on deep copies of `nets`: `prepare`, then every optimizer group's loss in the order
    the task declares them, each back-propagated with the other groups' networks frozen — as the engine trains them
    — and each group's parameters judged on its own loss alone (a generator gradient that came through the
    discriminator's loss is not how the generator is trained). The originals' weights, buffers, gradients and
    every RNG stream are untouched: the copies are private and the RNG is forked. `items`: batch items used
    (None: the whole batch, for probe batches a task built to cover every domain)."""
    from gankit.tasks.base import StepContext

    groups = {g.name: tuple(g.networks) for g in task.optimizer_groups()}
    with preserved_rng(_cuda_devices(nets)), torch.enable_grad():
        copies = {key: copy.deepcopy(net) for key, net in nets.items()}
        for net in copies.values():
            for p in net.parameters():
                p.grad = None
        small = _head(batch, items) if items else dict(batch)
        ctx = StepContext(step=step, groups=tuple(groups), probe=True)
        task.prepare(copies, small, ctx)
        used: set[int] = set()
        for name, own in groups.items():
            for net in copies.values():
                for p in net.parameters():
                    p.grad = None
            flags = [(p, p.requires_grad) for k, net in copies.items() if k not in own for p in net.parameters()]
            for p, _ in flags:
                p.requires_grad_(False)
            try:
                terms = task.loss(name, copies, small, ctx)
                if terms.total.requires_grad:  # a constant when everything it reads is frozen: nothing to probe
                    terms.total.backward(retain_graph=True)  # later groups may read the same prepared graph
            finally:
                for p, flag in flags:
                    p.requires_grad_(flag)
            used |= {id(p) for k in own for p in copies[k].parameters() if p.grad is not None}
        report = UnusedParameters()
        for key in [k for own in groups.values() for k in own]:
            for pname, p in copies[key].named_parameters():
                full = f"{key}.{pname}"
                if not p.requires_grad:
                    report.frozen.append(full)
                elif id(p) not in used:
                    report.layers.setdefault(layer_name(key, pname), []).append(full)
        del copies, ctx
    return report
