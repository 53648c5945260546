"""What checkpoints carry besides the loop's own state: the generator file, and weights a new run starts from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.checkpoint_io import (
    GANKIT_GENERATOR,
    GANKIT_STATE,
    ORIGINAL_DISCRIMINATORS,
    ORIGINAL_GENERATOR,
    ORIGINAL_MELGAN_GENERATOR,
    checkpoint_kind,
    load_state_strict,
    safe_load,
)
from gankit.errors import CheckpointError

_ORIGINAL_NAME = re.compile(r"^(g|do)_(\d+)$")


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
    ) -> None:
        unknown = sorted(set(self.networks) - set(nets))
        if unknown:
            raise CheckpointError(
                f"{self.source}: holds network(s) {', '.join(unknown)} this task does not have "
                f"(it has {', '.join(nets)}); was it made for another model family?"
            )
        for name, state in self.networks.items():
            load_state_strict(nets[name], state, name, self.source)
        for key, optimizer in optimizers.items():
            if key in self.optimizers:
                _load_moments(optimizer, self.optimizers[key], self.source)
        saved_ema = dict(self.ema or {})
        if saved_ema and not all(k in nets for k in saved_ema):
            saved_ema = {"generator": saved_ema}  # written before train.ema named its networks: the generator's
        for key, ema in emas.items():
            if key in self.networks:  # an EMA starts from the loaded weights unless the source kept one
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


def _sibling(path: Path, prefix: str) -> Path | None:
    match = _ORIGINAL_NAME.match(path.name)
    if match is None:
        return None
    candidate = path.with_name(f"{prefix}_{match.group(2)}")
    return candidate if candidate.is_file() else None


def _latest_state_in_run(folder: Path) -> Path:
    from gankit.engine.checkpoint import CheckpointManager

    found = CheckpointManager(folder / "checkpoints").state_files()
    if not found:
        raise CheckpointError(f"{folder}: no checkpoints/state_*.pt to start from; pass a checkpoint file.")
    return found[0][1]


def read_initial_weights(source: str | Path, keep_optimizer: bool = True) -> InitialWeights:
    """Weights from a gankit run directory, state or generator file, or an original g_/do_ file."""
    path = Path(source)
    if path.is_dir():
        path = _latest_state_in_run(path)
    obj = safe_load(path)
    kind = checkpoint_kind(obj, path)
    if kind == GANKIT_STATE:
        return InitialWeights(
            source=str(path),
            networks=dict(obj["networks"]),
            optimizers=dict(obj["optimizers"]) if keep_optimizer else {},
            ema=obj.get("ema"),
            frontend=obj.get("config", {}).get("frontend"),
        )
    if kind == GANKIT_GENERATOR:
        return InitialWeights(str(path), {"generator": obj["state_dict"]}, frontend=obj.get("frontend"))
    if kind == ORIGINAL_MELGAN_GENERATOR:  # melgan-neurips netG.pt: generator weights only
        from gankit.compat.melgan_original import read_original_melgan_generator

        original = read_original_melgan_generator(path)
        return InitialWeights(str(path), {"generator": original.state_dict}, frontend=original.frontend)
    return _read_original(path, kind, keep_optimizer)


def _read_original(path: Path, kind: str, keep_optimizer: bool) -> InitialWeights:
    from gankit.compat.hifigan_original import read_original_generator, read_original_training_state

    g_path = path if kind == ORIGINAL_GENERATOR else _sibling(path, "g")
    do_path = path if kind == ORIGINAL_DISCRIMINATORS else _sibling(path, "do")
    if g_path is None:
        raise CheckpointError(f"{path}: an original do_ file needs its g_ file (same number) beside it.")
    original = read_original_generator(g_path)
    networks: dict[str, Mapping[str, torch.Tensor]] = {"generator": original.state_dict}
    optimizers: dict[str, Mapping[str, Any]] = {}
    if do_path is not None:
        training = read_original_training_state(do_path)
        networks.update(mpd=training.mpd, msd=training.msd)
        if keep_optimizer:
            optimizers = {"g": training.optim_g, "d": training.optim_d}
    names = " + ".join(p.name for p in (g_path, do_path) if p is not None)
    return InitialWeights(f"{path.parent / names}", networks, optimizers, frontend=original.frontend)
