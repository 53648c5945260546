"""Which kind of model an inference file holds, by the task that exported it (its "task" field), and the module
that runs it — imported only when asked for, so `gankit vocode` never imports image, conversion or music code.

A new system adds one line here (and its inference module); the commands refuse another kind's file by name."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from gankit.errors import CheckpointError


class InferenceKind(NamedTuple):
    kind: str  # what the file's model does: "vocoder", "image", …
    module: str  # the inference module that loads and runs it
    commands: str  # the commands that take it, for the refusal message


TASKS: dict[str, InferenceKind] = {
    "hifigan": InferenceKind("vocoder", "gankit.infer.vocoder", "vocode, resynth, evaluate, export"),
    "melgan": InferenceKind("vocoder", "gankit.infer.vocoder", "vocode, resynth, evaluate, export"),
    "dcgan": InferenceKind("image", "gankit.infer.images", "sample"),
    "stargan_vc": InferenceKind("converter", "gankit.infer.conversion", "convert, evaluate"),
    "music_translation": InferenceKind("translator", "gankit.infer.translation", "translate"),
}


def task_of(obj: Any) -> str | None:
    """The task that wrote a loaded gankit file (a generator file's "task", a training state's config's), or None
    for any other file (the original HiFi-GAN and MelGAN files: vocoders)."""
    if not isinstance(obj, dict) or obj.get("format") != "gankit":
        return None
    holder = obj.get("config") if obj.get("kind") == "train_state" else obj
    task = holder.get("task") if isinstance(holder, dict) else None
    return task if isinstance(task, str) else None


def tasks_of_kind(kind: str) -> tuple[str, ...]:
    return tuple(name for name, entry in TASKS.items() if entry.kind == kind)


def require_kind(task: str, kind: str, path: Path, wanted_by: str) -> InferenceKind:
    """The file's entry, or a one-line refusal naming what the file holds and which commands take it."""
    entry = TASKS.get(task)
    if entry is None:
        raise CheckpointError(f"{path}: holds a '{task}' model, which this version of gankit does not know "
                              f"(known: {', '.join(sorted(TASKS))})")
    if entry.kind != kind:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise CheckpointError(f"{path}: holds a '{task}' model, not {article} {kind} "
                              f"({', '.join(tasks_of_kind(kind))}); "
                              f"{wanted_by}. A '{task}' file is for: {entry.commands}.")
    return entry


def inference_module(task: str) -> ModuleType:
    """The module that runs `task`'s inference files, imported now."""
    entry = TASKS.get(task)
    if entry is None:
        raise CheckpointError(f"no inference for '{task}' models (known: {', '.join(sorted(TASKS))})")
    return importlib.import_module(entry.module)
