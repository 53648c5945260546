"""Generator and discriminator networks, one file per family; `build_generator` picks one by family name."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from gankit.errors import ConfigError

# family → (module, generator class, config class). Imported lazily so that naming a family costs nothing
# until it is built; adding a family is one line here.
GENERATORS: dict[str, tuple[str, str, str]] = {
    "hifigan": ("gankit.models.hifigan", "HifiGanGenerator", "HifiGanGeneratorConfig"),
    "melgan": ("gankit.models.melgan", "MelGanGenerator", "MelGanGeneratorConfig"),
}


def build_generator(family: str, config: Mapping[str, Any]) -> nn.Module:
    """The generator of `family` (the task name) from its plain config dict (as stored in generator files)."""
    if family not in GENERATORS:
        raise ConfigError(f"unknown generator family {family!r}; known: {', '.join(sorted(GENERATORS))}")
    module_name, class_name, config_name = GENERATORS[family]
    module = importlib.import_module(module_name)
    cfg = getattr(module, config_name).from_dict(config)
    return getattr(module, class_name)(cfg)
