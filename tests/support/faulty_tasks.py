"""Test-only wrappers around the HiFi-GAN (or MelGAN) task that induce training failures inside the real engine.

A test sets the faults and swaps the task in for "hifigan" (the config stays the default tiny one):

    monkeypatch.setattr(faulty_tasks, "FAULTS", Faults(nan_loss_at={5}))
    monkeypatch.setitem(gankit.tasks.TASKS, "hifigan", faulty_tasks.TASK_ENTRY)

Steps are counted as the engine's loss calls of group "g" on the live networks: the k-th call is training step k
(one micro-batch a step, no repeated steps); the unused-parameter probe works on copies and is not counted.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.optimizer import register_optimizer_step_pre_hook

from gankit.tasks.base import LossTerms, StepContext
from gankit.tasks.hifigan import build_hifigan_task
from gankit.tasks.melgan import build_melgan_task

TASK_ENTRY = ("tests.support.faulty_tasks", "build_faulty_hifigan")
TASK_ENTRIES = {"hifigan": TASK_ENTRY, "melgan": ("tests.support.faulty_tasks", "build_faulty_melgan")}


@dataclass
class Faults:
    g_offset: float | None = None  # added to every generator output: a constant DC offset it cannot train away
    # … with the generator's own DC removed first, so its output's DC is exactly the offset (a ramped offset
    # alone is trained away as it grows: measured, the output DC stayed at 0.001 while the offset rose to 0.05)
    g_offset_pinned: bool = False
    # From training step `onset` on (0: from the start) the output faults act: g_offset (grown linearly over
    # `g_offset_ramp` steps: the DC cheat beginning), zero_output_of, and d_lr_factor (D's learning rate ×
    # this: 0 freezes the discriminators' weights, 100 makes them overpower the generator).
    onset: int = 0
    g_offset_ramp: int = 0
    d_lr_factor: float | None = None
    zero_output_of: str | None = None  # generator submodule whose output is multiplied by 0 (its gradient is 0)
    unused_module: str | None = None  # name of a trainable submodule added to the generator and never called
    freeze_discriminators: bool = False  # requires_grad False on every discriminator parameter
    nan_loss_at: set[int] = field(default_factory=set)  # steps whose generator loss is NaN
    loss_scale_at: dict[int, float] = field(default_factory=dict)  # steps whose generator loss is multiplied
    # (step, lr): from this training step on, the generator's optimizer updates with this learning rate
    # (set by an optimizer step pre-hook, so the trainer's own lr/g log shows it; remove_hooks() undoes it).
    g_lr_from: tuple[int, float] | None = None
    # Rank-local faults for DDP tests (tests/support/ddp_worker.py sets them on one rank only):
    nan_logged_at: set[int] = field(default_factory=set)  # steps whose *logged* g/total is NaN (gradients finite)
    sigterm_at: set[int] = field(default_factory=set)  # steps during which this process sends itself SIGTERM
    # Steps above count this process's generator-loss calls; with `from_run_step` they count the run's steps
    # instead, so a run resumed from a checkpoint (benchmarks/health_onsets.py) meets its faults at the same step.
    from_run_step: bool = False


FAULTS = Faults()
_HOOKS: list[Any] = []  # global optimizer hooks installed by g_lr_from


def remove_hooks() -> None:
    """Remove every optimizer hook a FaultyTask installed (call when the test ends)."""
    while _HOOKS:
        _HOOKS.pop().remove()


def build_faulty_hifigan(config: Mapping[str, Any]) -> FaultyTask:
    return FaultyTask(build_hifigan_task(config), FAULTS)


def build_faulty_melgan(config: Mapping[str, Any]) -> FaultyTask:
    return FaultyTask(build_melgan_task(config), FAULTS)


def _add(task: FaultyTask, offset: float) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        f = task.faults
        done = task.g_calls + 1 - f.onset  # steps since the onset, this one included (g_calls counts losses)
        if done <= 0:
            return output
        if f.g_offset_pinned:
            output = output - output.mean(dim=-1, keepdim=True)
        return output + offset * (min(1.0, done / f.g_offset_ramp) if f.g_offset_ramp else 1.0)

    return hook


def _zero(task: FaultyTask) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        return output * 0.0 if task.g_calls + 1 >= task.faults.onset else output

    return hook


class FaultyTask:
    """The wrapped task in every respect but the configured faults."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults
        self.generator: nn.Module | None = None
        self.g_calls = 0  # generator-loss calls on the live generator: the training step being computed
        self._d_scaled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def build_networks(self) -> dict[str, nn.Module]:
        nets = self.inner.build_networks()
        f = self.faults
        g = nets["generator"]
        if f.g_offset is not None:
            g.register_forward_hook(_add(self, f.g_offset))
        if f.zero_output_of is not None:
            g.get_submodule(f.zero_output_of).register_forward_hook(_zero(self))
        if f.unused_module is not None:
            g.add_module(f.unused_module, nn.Conv1d(1, 1, 3, padding=1))
        if f.freeze_discriminators:
            for key in self.inner.discriminator_keys:
                nets[key].requires_grad_(False)
        self.generator = g
        if f.g_lr_from is not None:
            _HOOKS.append(register_optimizer_step_pre_hook(self._set_g_lr))
        if f.d_lr_factor is not None:
            self.discriminator = nets[self.inner.discriminator_keys[0]]
            _HOOKS.append(register_optimizer_step_pre_hook(self._scale_d_lr))
        return nets

    def _scale_d_lr(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        """From the onset, D's optimizer steps with its scheduled rate × d_lr_factor (restored after the step
        would need a post-hook; the scheduler's next value is recomputed from its own state, so scaling the
        stored rate once at the onset is enough)."""
        f = self.faults
        first = next(self.discriminator.parameters())
        if self.g_calls + 1 < f.onset or self._d_scaled:
            return
        if any(p is first for group in optimizer.param_groups for p in group["params"]):
            for group in optimizer.param_groups:
                group["lr"] *= float(f.d_lr_factor or 0.0)
            self._d_scaled = True

    def _set_g_lr(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        assert self.faults.g_lr_from is not None and self.generator is not None
        start, lr = self.faults.g_lr_from
        first = next(self.generator.parameters())
        if self.g_calls >= start and any(p is first for group in optimizer.param_groups for p in group["params"]):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        if self.faults.from_run_step and not ctx.probe:
            self.g_calls = ctx.step  # the output hooks read it during this step's generator pass
        self.inner.prepare(nets, batch, ctx)

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        terms = self.inner.loss(group, nets, batch, ctx)
        if group != "g" or ctx.probe:
            return terms
        if getattr(nets["generator"], "module", nets["generator"]) is not self.generator:  # not the live generator
            return terms  # (under DDP the live generator is the wrapper around self.generator)
        if self.faults.from_run_step:
            self.g_calls = ctx.step
        self.g_calls += 1
        step = self.g_calls
        if step in self.faults.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if step in self.faults.nan_logged_at:
            terms = dataclasses.replace(terms, logs={**terms.logs, "g/total": float("nan")})
        scale = self.faults.loss_scale_at.get(step)
        if step in self.faults.nan_loss_at:
            scale = float("nan")
        if scale is None:
            return terms
        logs = dict(terms.logs)
        logs["g/total"] = logs["g/total"] * scale
        return dataclasses.replace(terms, total=terms.total * scale, logs=logs)
