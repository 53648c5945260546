"""Read the weights a new run starts from (`gankit train --init-from`): a gankit run directory, state or generator
file, an original HiFi-GAN `g_`/`do_` pair, or an original MelGAN `netG.pt`. Above the engine, which only applies
the `InitialWeights` it is handed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gankit.checkpoint_io import (
    GANKIT_GENERATOR,
    GANKIT_STATE,
    ORIGINAL_DISCRIMINATORS,
    ORIGINAL_GENERATOR,
    ORIGINAL_MELGAN_GENERATOR,
    checkpoint_kind,
    safe_load,
)
from gankit.engine.state import InitialWeights
from gankit.errors import CheckpointError

_ORIGINAL_NAME = re.compile(r"^(g|do)_(\d+)$")


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
