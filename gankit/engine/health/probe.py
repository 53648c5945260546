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
    items: int = 2,
    optimised: Sequence[str] | None = None,
) -> UnusedParameters:
    """Run generator forward, D loss + backward, G loss (adversarial) + backward on deep copies of `nets`.

    D's parameters are judged on D's loss, G's on G's loss with D frozen — as the engine trains them —
    so a G parameter reached only through a missing detach does not pass as used. The originals'
    weights, buffers (spectral-norm vectors, batch-norm statistics), gradients and every RNG stream are
    untouched: the copies are private and the RNG is forked. `optimised` limits the verdict to these
    networks (default: the task's generator and discriminator keys, i.e. those with an optimizer).
    """
    g_keys = tuple(task.generator_keys)
    d_keys = tuple(task.discriminator_keys)
    judged = set(optimised) if optimised is not None else set(g_keys) | set(d_keys)
    with preserved_rng(_cuda_devices(nets)), torch.enable_grad():
        copies = {key: copy.deepcopy(net) for key, net in nets.items()}
        for net in copies.values():
            for p in net.parameters():
                p.grad = None
        small = _head(batch, items)
        gen = task.generate(copies, small)
        used: set[int] = set()
        if d_keys:
            d_terms, _ = task.discriminator_loss(copies, small, gen)
            if d_terms.total.requires_grad:  # a constant when every D parameter is frozen: nothing to probe
                d_terms.total.backward(retain_graph=True)  # G's graph is needed again below
            used |= {id(p) for k in d_keys for p in copies[k].parameters() if p.grad is not None}
        for k in g_keys:  # a G gradient that came through D's loss is not how G is trained: forget it
            for p in copies[k].parameters():
                p.grad = None
        d_flags = [(p, p.requires_grad) for k in d_keys for p in copies[k].parameters()]
        for p, _ in d_flags:
            p.requires_grad_(False)
        g_terms = task.generator_loss(copies, small, gen, True)
        if g_terms.total.requires_grad:
            g_terms.total.backward()
        used |= {id(p) for k in g_keys for p in copies[k].parameters() if p.grad is not None}
        for p, flag in d_flags:
            p.requires_grad_(flag)
        report = UnusedParameters()
        for key in [k for k in (*g_keys, *d_keys) if k in judged]:
            for pname, p in copies[key].named_parameters():
                full = f"{key}.{pname}"
                if not p.requires_grad:
                    report.frozen.append(full)
                elif id(p) not in used:
                    report.layers.setdefault(layer_name(key, pname), []).append(full)
        del copies, gen, d_flags
    return report
