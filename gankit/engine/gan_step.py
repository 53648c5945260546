"""One GAN optimizer step: micro-batches, D then G, D frozen for G's backward, clip, check, step."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gankit.engine.distributed import DistContext
from gankit.engine.precision import Precision
from gankit.tasks.base import DiscriminatorReadout, GanTask, GeneratorPass

# (step, losses, grad norms) → True when the update must be skipped (the health monitor decides).
SkipCheck = Callable[[int, dict[str, float], dict[str, float]], bool]


@dataclass
class OptimizerSlot:
    """An optimizer with the networks it steps: their live (maybe DDP-wrapped) and plain modules."""

    name: str  # "g" or "d"
    optimizer: torch.optim.Optimizer
    keys: tuple[str, ...]
    clip: float | None

    def parameters(self, nets: Mapping[str, nn.Module]) -> list[torch.nn.Parameter]:
        return [p for k in self.keys for p in nets[k].parameters() if p.requires_grad]


@dataclass
class StepOutcome:
    losses: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    stepped: set[str] = field(default_factory=set)  # optimizer groups whose update was applied
    trained: set[str] = field(default_factory=set)  # optimizer groups trained this step (applied or skipped)
    skipped: set[str] = field(default_factory=set)
    readout: DiscriminatorReadout | None = None
    last_pass: GeneratorPass | None = None


@contextlib.contextmanager
def frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """No gradients into these modules (D during G's backward), restoring each parameter's flag after."""
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _no_sync(modules: Sequence[nn.Module], active: bool) -> contextlib.AbstractContextManager[Any]:
    """DDP: skip the all-reduce on accumulating micro-batches; the last one reduces the sum."""
    stack = contextlib.ExitStack()
    if active:
        for m in modules:
            if hasattr(m, "no_sync"):
                stack.enter_context(m.no_sync())
    return stack


def _backward(loss: torch.Tensor) -> None:
    """Back-propagate, unless nothing trainable reached the loss (every parameter it reads is frozen, e.g. a
    discriminator with requires_grad False): then there is no gradient to compute and each one stays zero."""
    if loss.requires_grad:
        loss.backward()


def _accumulate(into: dict[str, float], logs: Mapping[str, float], weight: float) -> None:
    for key, value in logs.items():
        into[key] = into.get(key, 0.0) + weight * value


class GanStepper:
    """Carries out a step the way the original HiFi-GAN orders it, generalised to accumulation and n_critic.

    With one micro-batch: G forward → D loss on the detached output → D step → G loss (seeing the
    updated D) → G step, exactly the original's order. With k micro-batches, per micro-batch D's loss
    then G's loss are back-propagated (D frozen during G's backward so D's accumulated gradients stay
    clean) and both optimizers step at the end of the window.
    """

    def __init__(
        self,
        task: GanTask,
        live: Mapping[str, nn.Module],
        plain: Mapping[str, nn.Module],
        g: OptimizerSlot,
        d: OptimizerSlot,
        precision: Precision,
        should_skip: SkipCheck,
        dist: DistContext | None = None,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self.task, self.live, self.plain = task, live, plain
        self.g, self.d = g, d
        self.precision = precision
        self.should_skip = should_skip
        self.dist = dist or DistContext()
        self.fault = fault

    def run(
        self, step: int, windows: Sequence[Sequence[Mapping[str, Any]]], adversarial: bool, d_threshold: float | None
    ) -> StepOutcome:
        """`windows`: n_critic windows of micro-batches; all but the last train D only."""
        out = StepOutcome()
        accum = len(windows[-1])
        d_nets_live = [self.live[k] for k in self.d.keys]
        g_nets_live = [self.live[k] for k in self.g.keys]
        # G's loss reads D through the plain modules: DDP must not expect D's gradients there.
        g_view = {**self.plain, **{k: self.live[k] for k in self.g.keys}}
        for w, window in enumerate(windows):
            trains_g = w == len(windows) - 1
            d_losses: dict[str, float] = {}
            if adversarial:
                self.d.optimizer.zero_grad(set_to_none=True)
            if trains_g:
                self.g.optimizer.zero_grad(set_to_none=True)
            g_logs: dict[str, float] = {}
            d_applied = False
            for m, batch in enumerate(window):
                final = m == len(window) - 1
                with _no_sync(g_nets_live + d_nets_live, active=not final):
                    with self.precision.autocast():
                        if trains_g:
                            gen = self.task.generate(self.live, batch)
                        else:
                            with torch.no_grad():
                                gen = self.task.generate(self.plain, batch)
                    if adversarial:
                        with self.precision.autocast():
                            d_terms, readout = self.task.discriminator_loss(self.live, batch, gen)
                        _backward(self.precision.scale(d_terms.total / len(window)))
                        _accumulate(d_losses, d_terms.logs, 1.0 / len(window))
                        out.readout = readout
                        if accum == 1 and final:
                            self._step_d(step, out, d_losses, d_threshold)
                            d_applied = True
                    self.fault("mid_step")
                    if trains_g:
                        with frozen([self.plain[k] for k in self.d.keys]), self.precision.autocast():
                            g_terms = self.task.generator_loss(g_view, batch, gen, adversarial)
                        _backward(self.precision.scale(g_terms.total / len(window)))
                        _accumulate(g_logs, g_terms.logs, 1.0 / len(window))
                        out.last_pass = GeneratorPass(fake=gen.fake.detach(), real=gen.real.detach())
            if adversarial and not d_applied:
                self._step_d(step, out, d_losses, d_threshold)
            out.losses.update(d_losses)
            if trains_g:
                out.losses.update(g_logs)
                self._apply(step, self.g, g_logs, out)
        self.precision.update()
        return out

    def _step_d(self, step: int, out: StepOutcome, d_losses: dict[str, float], threshold: float | None) -> None:
        # Decided on the rank-averaged loss: every rank must skip or step D together (or DDP hangs).
        if threshold is not None and self.dist.mean({"d": d_losses.get("d/total", math.inf)})["d"] < threshold:
            # D is ahead: leave it as it is this step (the configured D-update threshold).
            self.d.optimizer.zero_grad(set_to_none=True)
            out.skipped.add("d_threshold")
            return
        self._apply(step, self.d, d_losses, out)

    def _apply(self, step: int, slot: OptimizerSlot, losses: dict[str, float], out: StepOutcome) -> None:
        """unscale → clip → non-finite check → optimizer step (EMA follows in the trainer)."""
        params = slot.parameters(self.plain)
        # No gradient at all (its networks frozen): the norm is 0 and there is no update to apply; fp16's
        # scaler would also refuse to step an optimizer it recorded no gradients for.
        has_grads = any(p.grad is not None for p in params)
        if has_grads:
            self.precision.unscale(slot.optimizer)
        max_norm = slot.clip if slot.clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if has_grads else 0.0
        out.grad_norms[slot.name] = norm
        out.trained.add(slot.name)
        if self.should_skip(step, losses, {slot.name: norm}):  # every rank asks, whatever its gradients
            slot.optimizer.zero_grad(set_to_none=True)
            out.skipped.add(slot.name)
            return
        if not has_grads:
            return
        self.precision.step(slot.optimizer)
        out.stepped.add(slot.name)
