"""One optimizer step of any task: the task's schedule turned into windows of micro-batches, each update's loss
back-propagated with the other groups' networks frozen, then clipped, checked and applied."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gankit.engine.distributed import DistContext
from gankit.engine.optim import OptimizerSet
from gankit.engine.precision import Precision
from gankit.tasks.base import ClassifierReadout, CriticReadout, GanTask, OutputPair, StepContext, Update

# (step, losses, grad norms) → True when the update must be skipped (the health monitor decides).
SkipCheck = Callable[[int, dict[str, float], dict[str, float]], bool]


@dataclass
class StepOutcome:
    losses: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    stepped: set[str] = field(default_factory=set)  # optimizer groups whose update was applied
    trained: set[str] = field(default_factory=set)  # optimizer groups trained this step (applied or skipped)
    skipped: set[str] = field(default_factory=set)  # groups whose update was skipped, or "<group>_held" (apply=False)
    critics: dict[str, CriticReadout] = field(default_factory=dict)  # critic group → its last readout
    outputs: OutputPair | None = None
    classifiers: dict[str, ClassifierReadout] = field(default_factory=dict)  # network → its last readout
    scalar_names: set[str] = field(default_factory=set)  # logged names that are not losses (LossTerms.scalars)


@dataclass(frozen=True)
class Window:
    """Micro-batches trained by one or more updates in turn (the last repeat of each update shares one)."""

    updates: tuple[Update, ...]


def windows_of(schedule: Sequence[Update]) -> list[Window]:
    """An update repeated k times takes k − 1 windows of its own, then joins the window the step's updates
    share: [d ×3, g] → [d], [d], [d, g] (n_critic), [c, d, g] → [c, d, g]."""
    out: list[Window] = []
    shared: list[Update] = []
    for update in schedule:
        if update.repeats < 1:
            raise ValueError(f"update of group '{update.group}' has repeats {update.repeats} < 1")
        out.extend(Window((update,)) for _ in range(update.repeats - 1))
        shared.append(update)
    if shared:
        out.append(Window(tuple(shared)))
    return out


@contextlib.contextmanager
def frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """No gradients into these modules, restoring each parameter's flag after."""
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
    """Back-propagate, unless nothing trainable reached the loss (every parameter it reads is frozen): then
    there is no gradient to compute and each one stays zero."""
    if loss.requires_grad:
        loss.backward()


def _accumulate(into: dict[str, float], logs: Mapping[str, float], weight: float) -> None:
    for key, value in logs.items():
        into[key] = into.get(key, 0.0) + weight * value


class StepRunner:
    """Runs a step's schedule.

    Per window: for each micro-batch, the task's `prepare` (every network of the window's groups trainable and
    live), then each update's loss in schedule order, back-propagated with the networks outside its group frozen
    and read through their plain (not DDP-wrapped) modules. With one micro-batch a group steps right after its
    backward, so later updates see it updated (the original HiFi-GAN's D-then-G order); with several, every
    group steps after the window, so each update's gradients come from the same weights.
    """

    def __init__(
        self,
        task: GanTask,
        live: Mapping[str, nn.Module],
        plain: Mapping[str, nn.Module],
        optim: OptimizerSet,
        precision: Precision,
        should_skip: SkipCheck,
        dist: DistContext | None = None,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self.task, self.live, self.plain = task, live, plain
        self.optim = optim
        self.precision = precision
        self.should_skip = should_skip
        self.dist = dist or DistContext()
        self.fault = fault

    def run(self, step: int, schedule: Sequence[Update], windows: Sequence[Sequence[Mapping[str, Any]]]) -> StepOutcome:
        """`windows`: the micro-batches of each window of `windows_of(schedule)`, in order."""
        out = StepOutcome()
        for window, batches in zip(windows_of(schedule), windows, strict=True):
            self._run_window(step, window, batches, out)
        self.precision.update()
        return out

    def _view(self, live_groups: Sequence[str]) -> dict[str, nn.Module]:
        live_nets = {k for g in live_groups for k in self.optim.groups[g].networks}
        return {k: (self.live[k] if k in live_nets else net) for k, net in self.plain.items()}

    def _run_window(self, step: int, window: Window, batches: Sequence[Mapping[str, Any]], out: StepOutcome) -> None:
        groups = tuple(u.group for u in window.updates)
        for update in window.updates:
            self.optim.optimizers[update.group].zero_grad(set_to_none=True)
        logs: dict[str, dict[str, float]] = {g: {} for g in groups}
        live_all = [self.live[k] for g in groups for k in self.optim.groups[g].networks]
        prepare_view = self._view(groups)
        single = len(batches) == 1
        for m, batch in enumerate(batches):
            final = m == len(batches) - 1
            ctx = StepContext(step=step, groups=groups)
            with _no_sync(live_all, active=not final):
                with self.precision.autocast():
                    self.task.prepare(prepare_view, batch, ctx)
                for update in window.updates:
                    own = self.optim.groups[update.group].networks
                    others = [net for k, net in self.plain.items() if k not in own]
                    with frozen(others), self.precision.autocast():
                        terms = self.task.loss(update.group, self._view((update.group,)), batch, ctx)
                    _backward(self.precision.scale(terms.total / len(batches)))
                    _accumulate(logs[update.group], {**terms.logs, **terms.scalars}, 1.0 / len(batches))
                    out.scalar_names.update(terms.scalars)
                    if terms.readout is not None:
                        out.critics[update.group] = terms.readout
                    for readout in terms.classifiers:
                        out.classifiers[readout.network] = readout
                    if terms.outputs is not None:
                        o = terms.outputs
                        feats = None if o.features is None else (o.features[0].detach(), o.features[1].detach())
                        out.outputs = OutputPair(o.fake.detach(), o.real.detach(), o.kind, feats)
                    if single:
                        self._finish(step, update, logs[update.group], out)
                    if update is window.updates[0]:
                        self.fault("mid_step")  # test-only fault injection: once per micro-batch, mid-window
            del ctx
        if not single:
            for update in window.updates:
                self._finish(step, update, logs[update.group], out)

    def _finish(self, step: int, update: Update, logs: dict[str, float], out: StepOutcome) -> None:
        out.losses.update(logs)
        if not update.apply:
            # Loss computed and logged, no update (e.g. a discriminator ahead of the configured threshold).
            self.optim.optimizers[update.group].zero_grad(set_to_none=True)
            out.skipped.add(f"{update.group}_held")
            return
        self._apply(step, update.group, logs, out)

    def _apply(self, step: int, name: str, losses: dict[str, float], out: StepOutcome) -> None:
        """unscale → clip → non-finite check → optimizer step (EMA follows in the trainer)."""
        optimizer = self.optim.optimizers[name]
        params = [p for k in self.optim.groups[name].networks for p in self.plain[k].parameters() if p.requires_grad]
        # No gradient at all (its networks frozen): the norm is 0 and there is no update to apply; fp16's
        # scaler would also refuse to step an optimizer it recorded no gradients for.
        has_grads = any(p.grad is not None for p in params)
        if has_grads:
            self.precision.unscale(optimizer)
        clip = self.optim.clip(name)
        if not has_grads:
            norm = 0.0
        elif clip is not None:
            norm = clip.apply(params)
        else:
            norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
        out.grad_norms[name] = norm
        out.trained.add(name)
        if self.should_skip(step, losses, {name: norm}):  # every rank asks, whatever its gradients
            optimizer.zero_grad(set_to_none=True)
            out.skipped.add(name)
            return
        if not has_grads:
            return
        self.precision.step(optimizer)
        out.stepped.add(name)
