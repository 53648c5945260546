"""Config keys renamed when optimizer groups and the step schedule became the task's (docs/CONTRACTS.md), read
under their old names: shipped configs, saved run configs and `key=value` overrides written before still work.

| old | new |
|---|---|
| `optim.generator`, `optim.discriminator` (`name: adam/adamw`) | `optim.g`, `optim.d` (`type: Adam/AdamW`) |
| `optim.lr_decay`, `optim.lr_decay_every` | `optim.<g,d>.scheduler: {type: ExponentialLR, gamma, interval}` |
| `train.grad_clip_g`, `train.grad_clip_d` | `optim.<g,d>.clip: {type: norm, max}` |
| `train.ema_decay` | `train.ema: {decay}` |
| `train.warmup_steps`, `train.n_critic`, `train.d_loss_threshold` | `schedule.*` |
| `train.val_measures`, `train.best_measures`, `train.measure_items` | `validation.*` (`val_measures` → `measures`) |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gankit.errors import ConfigError

_GROUPS = (("generator", "g", "grad_clip_g"), ("discriminator", "d", "grad_clip_d"))
_OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW"}
_SCHEDULE_KEYS = ("warmup_steps", "n_critic", "d_loss_threshold")
# What a complete old config implied for keys it could not have: the schedule's later knobs at their defaults.
_SCHEDULE_DEFAULTS = {"g_boost_threshold": None, "g_boost_repeats": 2}
_VALIDATION_KEYS = {"val_measures": "measures", "best_measures": "best_measures", "measure_items": "measure_items"}


def upgrade_legacy_keys(config: Mapping[str, Any], complete: bool) -> dict[str, Any]:
    """`config` with old keys moved to their new places (a copy; new keys win where both are given).

    `complete`: the mapping is a whole config (a shipped or saved one), so what the old layout left implicit
    is written out (an optimizer without `name` was AdamW; a schedule gets its other knobs' defaults). An
    override or a config extending a base is partial: only what it names is moved."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}
    optim = dict(out["optim"]) if isinstance(out.get("optim"), Mapping) else {}
    train = dict(out["train"]) if isinstance(out.get("train"), Mapping) else {}
    clips = {}
    for _, new, clip_key in _GROUPS:
        if clip_key in train:
            value = train.pop(clip_key)
            clips[new] = None if value is None else {"type": "norm", "max": value}
    decay: dict[str, Any] = {}
    if "lr_decay" in optim:
        decay = {"type": "ExponentialLR", "gamma": optim.pop("lr_decay")}
    if "lr_decay_every" in optim:
        decay["interval"] = optim.pop("lr_decay_every")
    if decay and complete:
        decay.setdefault("type", "ExponentialLR")
        decay.setdefault("interval", "epoch")
    for old, new, _ in _GROUPS:
        if old not in optim and not decay and new not in clips:
            continue
        legacy = old in optim
        group = _group(optim.pop(old, None), f"optim.{old}", complete and legacy)
        if decay:
            group["scheduler"] = decay
        elif complete and legacy:  # the old default: ×0.999 every epoch
            group["scheduler"] = {"type": "ExponentialLR", "gamma": 0.999, "interval": "epoch"}
        if new in clips:
            group["clip"] = clips[new]
        elif complete and legacy:
            group["clip"] = None
        optim[new] = {**group, **dict(optim.get(new) or {})}
    if "ema_decay" in train:
        value = train.pop("ema_decay")
        train.setdefault("ema", None if value is None else {"decay": value})
    moved = {k: train.pop(k) for k in _SCHEDULE_KEYS if k in train}
    if moved:
        schedule = dict(_SCHEDULE_DEFAULTS) if complete else {}
        schedule.update(moved)
        schedule.update(dict(out.get("schedule") or {}))
        out["schedule"] = schedule
    validation = {new: train.pop(old) for old, new in _VALIDATION_KEYS.items() if old in train}
    if validation:
        out["validation"] = {**validation, **dict(out.get("validation") or {})}
    if "optim" in out or optim:
        out["optim"] = optim
    if "train" in out or train:
        out["train"] = train
    return out


def _group(raw: Any, where: str, complete: bool) -> dict[str, Any]:
    if raw is None:
        return {"type": "AdamW"} if complete else {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of optimizer settings, got {raw!r}.")
    group = dict(raw)
    if "name" in group:
        name = group.pop("name")
        if name not in _OPTIMIZER_NAMES:
            raise ConfigError(f"{where}.name: {name!r} is not adam or adamw (the new key is optim.<group>.type: any "
                              "torch.optim class).")
        group["type"] = _OPTIMIZER_NAMES[name]
    elif complete:
        group.setdefault("type", "AdamW")
    return group
