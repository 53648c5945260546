"""Validation on whole utterances: metrics averaged, generated audio and mel images saved per step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.audio.io import write_wav
from gankit.tasks.base import GanTask, ValidationSample


def save_mel_image(path: Path, mel: torch.Tensor) -> None:
    """A spectrogram picture for people (low frequencies at the bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import image

    path.parent.mkdir(parents=True, exist_ok=True)
    image.imsave(path, np.flipud(mel.numpy()), cmap="magma", origin="upper")


@torch.no_grad()
def run_validation(
    task: GanTask,
    nets: Mapping[str, nn.Module],
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    step: int,
    samples_dir: Path | None,
    sample_rate: int,
) -> tuple[dict[str, float], list[ValidationSample]]:
    for net in nets.values():
        net.eval()
    samples: list[ValidationSample] = []
    try:
        for batch in batches:
            moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            samples.append(task.validate(nets, moved))
    finally:
        for net in nets.values():
            net.train()
    metrics: dict[str, float] = {}
    for key in samples[0].metrics if samples else ():
        metrics[key] = float(np.mean([s.metrics[key] for s in samples]))
    if samples_dir is not None:
        step_dir = samples_dir / f"step_{step:08d}"
        ref_dir = samples_dir / "reference"
        for sample in samples:
            name = sample.utterance_id.replace("/", "__")
            write_wav(step_dir / f"{name}.wav", sample.fake_audio.numpy(), sample_rate)
            save_mel_image(step_dir / f"{name}.png", sample.fake_mel)
            if not (ref_dir / f"{name}.wav").exists():
                write_wav(ref_dir / f"{name}.wav", sample.real_audio.numpy(), sample_rate)
                save_mel_image(ref_dir / f"{name}.png", sample.real_mel)
    return metrics, samples
