"""Systems' recipes; `build_task` picks one by the config's `task` key and imports only that one."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from gankit.errors import ConfigError

# task name → (module, factory function); adding a system adds a line here, never a branch in the engine.
TASKS: dict[str, tuple[str, str]] = {
    "hifigan": ("gankit.tasks.hifigan", "build_hifigan_task"),
    "melgan": ("gankit.tasks.melgan", "build_melgan_task"),
    "dcgan": ("gankit.tasks.dcgan", "build_dcgan_task"),
    "stargan_vc": ("gankit.tasks.stargan_vc", "build_stargan_vc_task"),
    "music_translation": ("gankit.tasks.music_translation", "build_music_translation_task"),
}


def build_task(config: Mapping[str, Any]) -> Any:
    name = config.get("task")
    if name not in TASKS:
        raise ConfigError(f"task '{name}' is unknown; known tasks: {', '.join(sorted(TASKS))}.")
    module_name, factory = TASKS[name]
    return getattr(importlib.import_module(module_name), factory)(config)
