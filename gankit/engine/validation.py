"""Validation through the task: networks in eval mode without gradients, batches on the device, the task's
set-level metrics and typed media back, the media written by the media sink."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.engine.media import write_media
from gankit.tasks.base import GanTask, ValidationResult


@torch.no_grad()
def run_validation(
    task: GanTask,
    nets: Mapping[str, nn.Module],
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    step: int,
    samples_dir: Path | None,
    is_new_best: Callable[[Mapping[str, float]], bool],
) -> ValidationResult:
    moved = [{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()} for b in batches]
    for net in nets.values():
        net.eval()
    try:
        result = task.validate(nets, moved, is_new_best)
    finally:
        for net in nets.values():
            net.train()
    if samples_dir is not None:
        write_media(samples_dir, step, result.media)
    return result
