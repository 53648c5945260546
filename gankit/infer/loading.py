"""Find and read a generator checkpoint of any kind, and build the generator it describes.

Accepted sources (CONTRACTS.md, "infer"):
- a gankit generator file (`generator_%08d.pt`) — the generator config, front-end and weights it carries;
- a gankit training state (`state_%08d.pt`) — the task rebuilt from its resolved config; the EMA weights when the
  run kept an EMA (the same weights the run's generator files hold), else the live generator's;
- a run directory (or its `checkpoints/` folder) — `manifest.json`'s `latest_generator`, or `best_generator`;
- an original HiFi-GAN `g_XXXXXXXX` with `config.json` beside it (or given), or a folder of them (the newest);
- an original MelGAN generator (`netG.pt`, a bare `model.N.…` state dict): the architecture from its weights, the mel
  from `config` (the original's args.yml or a gankit config) or the melgan preset's defaults.

Only plain values and tensors are read (`torch.load(weights_only=True)` through `safe_load`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
from gankit.errors import CheckpointError, ConfigError
from gankit.infer.registry import require_kind, task_of, tasks_of_kind

MANIFEST = "manifest.json"
_ORIGINAL_G = re.compile(r"^g_(\d+)$")


@dataclass
class LoadedCheckpoint:
    """What inference needs from a checkpoint, whatever its kind."""

    path: Path  # the file that was read
    kind: str  # one of gankit.checkpoint_io's kinds
    family: str  # generator family = task name ("hifigan")
    generator_config: dict[str, Any]  # for gankit.models.build_generator
    frontend_config: dict[str, Any]  # for gankit.audio.mel.build_frontend
    state_dict: dict[str, torch.Tensor]  # gankit (parametrized) names
    step: int | None
    fmax_for_loss: float | None = None  # known for training states and original configs (export keeps it)

    def describe(self) -> str:
        kind = {
            GANKIT_GENERATOR: "gankit generator",
            GANKIT_STATE: "gankit training state",
            ORIGINAL_GENERATOR: "original HiFi-GAN generator",
            ORIGINAL_MELGAN_GENERATOR: "original MelGAN generator",
        }.get(self.kind, self.kind)
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.path} ({kind}, {self.family}{step})"


# --- finding the file ---------------------------------------------------------------------------------------


def resolve_checkpoint(source: str | Path, best: bool = False) -> Path:
    """The checkpoint file `source` stands for: itself, or the one a run directory's manifest names."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no such checkpoint file or run directory; check the path (a run directory holds "
            "checkpoints/manifest.json)"
        )
    if not path.is_dir():
        if best:
            raise CheckpointError(
                f"{path}: --best picks the best checkpoint of a run directory, but this is a file; "
                "pass the run directory, or drop --best"
            )
        return path
    for folder in (path / "checkpoints", path):
        if (folder / MANIFEST).is_file():
            return _from_manifest(folder, best)
    originals = sorted(
        (int(m.group(1)), p) for p in path.iterdir() if (m := _ORIGINAL_G.match(p.name)) and p.is_file()
    )
    if originals:
        if best:
            raise CheckpointError(
                f"{path}: a folder of original HiFi-GAN g_ files records no best checkpoint; drop --best "
                f"(the newest is {originals[-1][1].name}) or pass the g_ file you want"
            )
        return originals[-1][1]
    raise CheckpointError(
        f"{path}: not a gankit run directory (no checkpoints/{MANIFEST}) and no original g_XXXXXXXX files in it; "
        "pass a checkpoint file or a run directory that has saved a checkpoint"
    )


def load_generator_file(source: str | Path, best: bool, kind: str, noun: str, task: str, wanted_by: str,
                        hint: str = "") -> tuple[Path, dict[str, Any]]:
    """(path, payload) of a gankit generator file of `kind` (infer/registry.py) — a file or a run directory's latest
    (best) generator — read with `weights_only=True`. Refused with one line: an original HiFi-GAN/MelGAN file (a
    vocoder: "not `noun`; pass a `task` generator_N.pt …`hint`"), another kind's file (`require_kind`, `wanted_by`),
    a training state."""
    path = resolve_checkpoint(source, best)
    obj = safe_load(path)
    file_kind = checkpoint_kind(obj, path)
    holder = task_of(obj)
    if holder is None:  # the original HiFi-GAN and MelGAN files: vocoders
        raise CheckpointError(f"{path}: an original HiFi-GAN/MelGAN vocoder file, not {noun}; pass a {task} "
                              f"generator_N.pt as the checkpoint{hint}")
    require_kind(holder, kind, path, wanted_by)
    if file_kind == GANKIT_STATE:
        raise CheckpointError(f"{path}: a training state; pass the run's generator_N.pt file or the run directory")
    assert file_kind == GANKIT_GENERATOR
    return path, obj


def _from_manifest(folder: Path, best: bool) -> Path:
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{manifest_path}: unreadable manifest ({exc}); pass a generator_XXXXXXXX.pt file from {folder} instead"
        ) from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{manifest_path}: the manifest is not a JSON object; pass a generator file instead")
    key = "best_generator" if best else "latest_generator"
    name = manifest.get(key)
    if not isinstance(name, str) or not name:
        if best:
            metric = manifest.get("best_metric", "the validation metric")
            raise CheckpointError(
                f"{manifest_path}: no best checkpoint recorded yet (it is chosen by {metric} at validation); "
                "drop --best to use the latest one"
            )
        raise CheckpointError(f"{manifest_path}: names no generator file yet; has the run saved a checkpoint?")
    path = folder / name
    if not path.is_file():
        raise CheckpointError(
            f"{manifest_path}: its {key} {name} is not in {folder} (deleted?); pass an existing generator file"
        )
    return path


# --- reading ------------------------------------------------------------------------------------------------


def read_checkpoint(source: str | Path, *, config: str | Path | None = None, best: bool = False) -> LoadedCheckpoint:
    """Read any supported checkpoint (see the module docstring) onto the CPU."""
    path = resolve_checkpoint(source, best)
    obj = safe_load(path, map_location="cpu")
    kind = checkpoint_kind(obj, path)
    if config is not None and kind not in (ORIGINAL_GENERATOR, ORIGINAL_MELGAN_GENERATOR):
        raise CheckpointError(
            f"{path}: --config is for original HiFi-GAN g_ and MelGAN netG files only; a gankit checkpoint carries "
            "its own config"
        )
    if kind == GANKIT_GENERATOR:
        return _gankit_generator(obj, path)
    if kind == GANKIT_STATE:
        return _gankit_state(obj, path)
    if kind == ORIGINAL_DISCRIMINATORS:
        raise CheckpointError(
            f"{path}: an original do_ file holds discriminators and optimizers; pass the g_ file with the same number"
        )
    if kind == ORIGINAL_MELGAN_GENERATOR:
        return _original_melgan_generator(path, config)
    return _original_generator(path, config)


def _field(obj: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: malformed gankit checkpoint ({key!r} missing or not a {kind.__name__})")
    return value


# Inference files by the task that exported them (the "task" field, infer/registry.py). Another system's file
# is refused by name, without importing any of its code.
VOCODER_TASKS = tasks_of_kind("vocoder")


def _vocoder_task(obj: dict[str, Any], path: Path) -> str:
    task = _field(obj, "task", str, path)
    require_kind(task, "vocoder", path, "vocode and resynth take vocoder checkpoints")
    return task


def _gankit_generator(obj: dict[str, Any], path: Path) -> LoadedCheckpoint:
    return LoadedCheckpoint(
        path=path,
        kind=GANKIT_GENERATOR,
        family=_vocoder_task(obj, path),
        generator_config=dict(_field(obj, "generator", dict, path)),
        frontend_config=dict(_field(obj, "frontend", dict, path)),
        state_dict=dict(_field(obj, "state_dict", dict, path)),
        step=obj.get("step"),
    )


def _gankit_state(obj: dict[str, Any], path: Path) -> LoadedCheckpoint:
    from gankit.tasks import build_task  # the same recipe that wrote the run's generator files

    config = _field(obj, "config", dict, path)
    _vocoder_task(config, path)
    try:
        task = build_task(config)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its saved config no longer builds a model: {exc}") from None
    networks = _field(obj, "networks", dict, path)
    ema = obj.get("ema")
    if isinstance(ema, dict) and isinstance(ema.get("generator"), dict):
        ema = ema["generator"]  # {network: EMA state}; a state written before that holds the generator's directly
    # The run's generator files hold the EMA weights when it kept an EMA; a state file vocodes the same way.
    weights = ema if isinstance(ema, dict) else networks.get("generator")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: malformed training state (no generator weights under 'networks')")
    fmax_for_loss = config.get("fmax_for_loss")
    return LoadedCheckpoint(
        path=path,
        kind=GANKIT_STATE,
        family=task.name,
        generator_config=task.generator_config(),
        frontend_config=task.frontend.to_config(),
        state_dict=dict(weights),
        step=obj.get("step"),
        fmax_for_loss=None if fmax_for_loss is None else float(fmax_for_loss),
    )


def _original_generator(path: Path, config: str | Path | None) -> LoadedCheckpoint:
    from gankit.compat.hifigan_original import read_original_generator

    original = read_original_generator(path, config)
    return LoadedCheckpoint(
        path=path,
        kind=ORIGINAL_GENERATOR,
        family="hifigan",
        generator_config=original.generator_config,
        frontend_config=original.frontend,
        state_dict=original.state_dict,
        step=original.step,
        fmax_for_loss=original.fmax_for_loss,
    )


def _original_melgan_generator(path: Path, config: str | Path | None) -> LoadedCheckpoint:
    from gankit.compat.melgan_original import read_original_melgan_generator

    original = read_original_melgan_generator(path, config)
    return LoadedCheckpoint(
        path=path,
        kind=ORIGINAL_MELGAN_GENERATOR,
        family="melgan",
        generator_config=original.generator_config,
        frontend_config=original.frontend,
        state_dict=original.state_dict,
        step=None,
    )


# --- building -----------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; an unavailable CUDA is an error that says so."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: not a device; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"
        )
    return resolved


def build_generator_from(loaded: LoadedCheckpoint, device: str | torch.device = "cpu") -> nn.Module:
    """The generator with the checkpoint's weights, loaded strictly (a CheckpointError names differing keys)."""
    from gankit.audio.mel import build_frontend
    from gankit.models import build_generator

    try:
        frontend = build_frontend(loaded.frontend_config)
        # Built directly on the target device. (Building on the meta device to skip the random init is slower:
        # weight norm's norms on meta run through Python decompositions, ~2 s on first use in a process.)
        with torch.device(device):
            generator = build_generator(loaded.family, loaded.generator_config)
    except ConfigError as exc:
        raise CheckpointError(f"{loaded.path}: its config does not build a generator: {exc}") from None
    load_state_strict(generator, loaded.state_dict, "generator", loaded.path)
    hop = getattr(generator, "hop_length", frontend.hop_length)
    n_mels = loaded.generator_config.get("n_mels", frontend.n_mels)
    if hop != frontend.hop_length or n_mels != frontend.n_mels:
        raise CheckpointError(
            f"{loaded.path}: the generator (hop {hop}, {n_mels} mels) does not match the mel front-end it names "
            f"(hop {frontend.hop_length}, {frontend.n_mels} mels); the checkpoint is inconsistent"
        )
    return generator
