"""Validation on whole utterances: metrics averaged, generated audio and mel images saved per step."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
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
            write_wav(step_dir / f"{name}.wav", sample.fake_audio.numpy(), sample.sample_rate)
            save_mel_image(step_dir / f"{name}.png", sample.fake_mel)
            if not (ref_dir / f"{name}.wav").exists():
                write_wav(ref_dir / f"{name}.wav", sample.real_audio.numpy(), sample.sample_rate)
                save_mel_image(ref_dir / f"{name}.png", sample.real_mel)
    return metrics, samples


def objective_measures(samples: Sequence[ValidationSample], measures: Sequence[str]) -> dict[str, float]:
    """The named gankit.metrics measures (PESQ, STOI, …) of generated against reference validation audio,
    averaged over `samples` as "val/<key>"; a measure that cannot score an utterance leaves it out."""
    if not measures or not samples:
        return {}
    from gankit.metrics.summary import evaluate_pair  # scipy/pesq/pystoi: imported only when measures are asked for

    try:
        rows = [evaluate_pair(s.real_audio.numpy(), s.fake_audio.numpy(), s.sample_rate, None, measures)
                for s in samples]
    except Exception as exc:  # a measure's own failure must never end a training run
        warnings.warn(f"validation measures {', '.join(measures)} skipped at this validation: {exc}", stacklevel=2)
        return {}
    averaged: dict[str, float] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            averaged[f"val/{key}"] = float(np.mean(values))
    return averaged
