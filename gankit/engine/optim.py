"""Optimizer groups from `optim.<group>`: any torch.optim class by name with its arguments, gradient clipping
by norm or value, and any torch.optim.lr_scheduler class stepped per step, per epoch or every N steps."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.tasks.base import OptimizerGroup

_RESERVED = ("type", "clip", "scheduler")


@dataclass(frozen=True)
class ClipSettings:
    kind: str  # "norm" or "value"
    max: float

    def apply(self, params: Sequence[nn.Parameter]) -> float:
        """Clip the gradients of `params` in place; returns their total norm before clipping."""
        if self.kind == "norm":
            return float(torch.nn.utils.clip_grad_norm_(params, self.max))
        norm = float(torch.nn.utils.clip_grad_norm_(params, math.inf))
        torch.nn.utils.clip_grad_value_(params, self.max)
        return norm


@dataclass(frozen=True)
class SchedulerSettings:
    cls: type
    kwargs: dict[str, Any]
    interval: str | int  # "step", "epoch" or every N steps
    where: str = "scheduler"  # its config key, for messages


@dataclass(frozen=True)
class GroupSettings:
    name: str
    cls: type[torch.optim.Optimizer]
    kwargs: dict[str, Any]
    clip: ClipSettings | None
    scheduler: SchedulerSettings | None


def _plain(value: Any) -> Any:
    """YAML lists become tuples (betas), so optimizer state round-trips as torch writes it."""
    return tuple(value) if isinstance(value, list) else value


def _class_from(module: Any, name: Any, base: type, where: str) -> type:
    cls = getattr(module, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, base)) or cls is base:
        known = sorted(n for n in dir(module) if isinstance(getattr(module, n), type)
                       and issubclass(getattr(module, n), base) and getattr(module, n) is not base
                       and not n.startswith("_"))
        raise ConfigError(f"{where}: {name!r} is not a {module.__name__} class; choose one of {', '.join(known)}.")
    return cls


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _above_zero(value: Any) -> str | None:
    return None if _number(value) and value > 0 else "must be > 0"


def _learning_rate(value: Any) -> str | None:
    # 0 is allowed: it freezes a group's networks while they still compute gradients (tests and health checks do).
    return None if _number(value) and value >= 0 else "must be > 0 (or 0 to freeze the group)"


def _not_negative(value: Any) -> str | None:
    return None if _number(value) and value >= 0 else "must be ≥ 0"


def _count(value: Any) -> str | None:
    whole = isinstance(value, int) and not isinstance(value, bool)
    return None if whole and value >= 1 else "must be a whole number ≥ 1"


def _betas(value: Any) -> str | None:
    pair = isinstance(value, (list, tuple)) and len(value) == 2
    return None if pair and all(_number(b) and 0 <= b < 1 for b in value) else "must be two numbers in [0, 1)"


def _milestones(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and value and all(_count(m) is None for m in value)
    return None if ok else "must be a list of whole numbers ≥ 1"


# Values checked by name before an optimizer or scheduler is built: torch's own checks (where it has them) name
# neither the key nor the config section, and some values it takes silently (a zero learning rate, a negative decay).
_OPTIMIZER_VALUES: dict[str, Callable[[Any], str | None]] = {
    "lr": _learning_rate, "betas": _betas, "eps": _not_negative, "weight_decay": _not_negative,
    "momentum": _not_negative, "dampening": _not_negative,
}
_SCHEDULER_VALUES: dict[str, Callable[[Any], str | None]] = {
    "gamma": _above_zero, "max_lr": _above_zero, "eta_min": _not_negative, "step_size": _count, "T_max": _count,
    "T_0": _count, "T_mult": _count, "total_iters": _count, "total_steps": _count, "epochs": _count,
    "steps_per_epoch": _count, "milestones": _milestones,
}


def _shown(value: Any) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _check_arguments(cls: type, kwargs: Mapping[str, Any], first: str, where: str,
                     rules: Mapping[str, Callable[[Any], str | None]]) -> None:
    """Every key of `kwargs` is an argument `cls` takes, every argument it needs is given (`first`, the optimizer
    or its parameters, is passed by gankit), and the values `rules` knows are in range: ConfigError naming the key."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = [p for name, p in signature.parameters.items() if name not in ("self", first)]
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            unknown = sorted(set(kwargs) - {p.name for p in named})
            if unknown:
                raise ConfigError(f"{where}.{unknown[0]}: {cls.__name__} takes no argument {unknown[0]!r}; its "
                                  f"arguments are {', '.join(p.name for p in named)}.")
        missing = [p.name for p in named if p.default is p.empty and p.name not in kwargs]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: {cls.__name__} needs it; give a value.")
    for key, value in kwargs.items():
        rule = rules.get(key)
        problem = rule(value) if rule is not None else None
        if problem is not None:
            raise ConfigError(f"{where}.{key}: {problem}, got {_shown(value)}")


def _clip(raw: Any, where: str) -> ClipSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"type", "max"} or raw.get("type", "norm") not in ("norm", "value"):
        raise ConfigError(f"{where}: give {{type: norm|value, max: X}} or null, got {raw!r}.")
    limit = raw.get("max")
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise ConfigError(f"{where}.max must be a number > 0, got {limit!r}.")
    return ClipSettings(str(raw.get("type", "norm")), float(limit))


def _scheduler(raw: Any, where: str) -> SchedulerSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise ConfigError(f"{where}: give {{type: <torch.optim.lr_scheduler class>, interval: step|epoch|N, "
                          f"...its arguments}} or null, got {raw!r}.")
    cls = _class_from(torch.optim.lr_scheduler, raw["type"], torch.optim.lr_scheduler.LRScheduler, f"{where}.type")
    interval = raw.get("interval", "epoch")
    if not (interval in ("step", "epoch") or (isinstance(interval, int) and not isinstance(interval, bool)
                                               and interval >= 1)):
        raise ConfigError(f"{where}.interval must be step, epoch or a number of steps ≥ 1, got {interval!r}.")
    kwargs = {k: _plain(v) for k, v in raw.items() if k not in ("type", "interval")}
    _check_arguments(cls, kwargs, "optimizer", where, _SCHEDULER_VALUES)
    return SchedulerSettings(cls, kwargs, interval, where)


def parse_groups(section: Mapping[str, Any] | None, groups: Sequence[OptimizerGroup]) -> dict[str, GroupSettings]:
    """`optim.<group>` for every group the task declares; unknown groups and bad values are ConfigErrors.

    Each optimizer and scheduler is built once on a dummy parameter here, so a wrong argument (an unknown
    keyword, a negative learning rate) is refused before any network is built."""
    section = dict(section or {})
    names = [g.name for g in groups]
    unknown = sorted(set(section) - set(names))
    if unknown:
        raise ConfigError(f"optim: no optimizer group(s) {', '.join(unknown)} in this task; its groups are "
                          f"{', '.join(names)}.")
    parsed: dict[str, GroupSettings] = {}
    for name in names:
        where = f"optim.{name}"
        raw = section.get(name)
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise ConfigError(f"{where}: missing; give at least {{type: Adam, lr: 1.0e-4}} (any torch.optim class "
                              "and its arguments).")
        cls = _class_from(torch.optim, raw["type"], torch.optim.Optimizer, f"{where}.type")
        # An argument set to null takes the class's default, so a config can drop one its base gives (betas when a
        # config based on an Adam one switches to RMSprop).
        kwargs = {k: _plain(v) for k, v in raw.items() if k not in _RESERVED and v is not None}
        _check_arguments(cls, kwargs, "params", where, _OPTIMIZER_VALUES)
        settings = GroupSettings(name, cls, kwargs, _clip(raw.get("clip"), f"{where}.clip"),
                                 _scheduler(raw.get("scheduler"), f"{where}.scheduler"))
        build_optimizer(settings, [nn.Parameter(torch.zeros(1))])  # validates the arguments now
        parsed[name] = settings
    return parsed


def build_optimizer(settings: GroupSettings, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    try:
        optimizer = settings.cls(params, **settings.kwargs)
        if settings.scheduler is not None:
            build_scheduler(settings.scheduler, optimizer)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optim.{settings.name}: {settings.cls.__name__}({settings.kwargs}) — {exc}") from None
    return optimizer


def build_scheduler(settings: SchedulerSettings, optimizer: torch.optim.Optimizer) -> Any:
    try:
        return settings.cls(optimizer, **settings.kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{settings.where}: {settings.cls.__name__}({settings.kwargs}) — {exc}") from None


class OptimizerSet:
    """Every group's optimizer, scheduler and clipping, with one state dict for checkpoints."""

    def __init__(
        self, groups: Sequence[OptimizerGroup], settings: Mapping[str, GroupSettings], nets: Mapping[str, nn.Module]
    ) -> None:
        self.groups = {g.name: g for g in groups}
        missing = sorted({k for g in groups for k in g.networks} - set(nets))
        if missing:
            raise ConfigError(f"optimizer groups name network(s) {', '.join(missing)} the task did not build.")
        self.settings = dict(settings)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        for g in groups:
            params = [p for k in g.networks for p in nets[k].parameters()]
            self.optimizers[g.name] = build_optimizer(self.settings[g.name], params)
            sched = self.settings[g.name].scheduler
            if sched is not None:
                self.schedulers[g.name] = build_scheduler(sched, self.optimizers[g.name])

    def clip(self, name: str) -> ClipSettings | None:
        return self.settings[name].clip

    def lr(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def step_schedulers(self, event: str, step: int) -> None:
        """`event` "step" (after optimizer step `step`, counted from 1) or "epoch" (after an epoch)."""
        import warnings

        for name, sched in self.schedulers.items():
            interval = self.settings[name].scheduler.interval  # type: ignore[union-attr]
            due = interval == event or (event == "step" and isinstance(interval, int) and step % interval == 0)
            if due:
                # A group that has not stepped yet (a warm-up without it) still follows its schedule: PyTorch's
                # "scheduler before optimizer" warning is noise here.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                    sched.step()

    def scale_lr(self, factor: float) -> None:
        """Multiply every group's learning rate, and its schedule's base rates, by `factor` (health rollbacks)."""
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] *= factor
            sched = self.schedulers.get(name)
            if sched is not None and hasattr(sched, "base_lrs"):
                sched.base_lrs = [lr * factor for lr in sched.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, optimizers: Mapping[str, Any], schedulers: Mapping[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            if name in optimizers:
                opt.load_state_dict(optimizers[name])
        for name, sched in self.schedulers.items():
            if name in schedulers:
                sched.load_state_dict(schedulers[name])
