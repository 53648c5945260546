"""The media sink: a validation's typed media written as files with an `index.json` that says what each is
(audio, image, spectrogram; group, label, role), and sent to TensorBoard by type.

RUN/samples/step_%08d/ holds the generated and source media of one validation, RUN/samples/reference/ the
reference media (written once: they do not change). File names are `<group>__<label>.<wav|png>` with path
separators replaced, so every item of a step has its own file."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit import atomic
from gankit.audio.io import write_wav
from gankit.tasks.base import AudioItem, ImageItem, MediaItem, SpectrogramItem

INDEX = "index.json"
INDEX_VERSION = 1
_UNSAFE = re.compile(r"[^\w.\-→]+")


def _stem(item: MediaItem) -> str:
    return f"{_UNSAFE.sub('_', item.group)}__{_UNSAFE.sub('_', item.label)}"


def _png(path: Path, pixels: np.ndarray, cmap: str | None = None) -> None:
    """An image file written atomically; `pixels` [H, W] (with `cmap`) or [H, W, 3] in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import image

    buffer = io.BytesIO()
    image.imsave(buffer, pixels, cmap=cmap, format="png", origin="upper")
    atomic.write_bytes(path, buffer.getvalue())


def _write(folder: Path, item: MediaItem) -> dict[str, Any]:
    """Write one item; returns its index entry."""
    entry: dict[str, Any] = {"group": item.group, "label": item.label, "role": item.role}
    stem = _stem(item)
    if isinstance(item, AudioItem):
        entry.update(type="audio", file=f"{stem}.wav", sample_rate=int(item.sample_rate))
        write_wav(folder / entry["file"], item.wave.detach().float().cpu().numpy(), item.sample_rate)
    elif isinstance(item, ImageItem):
        pixels = item.pixels.detach().float().cpu().clamp(0, 1).numpy()
        if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
            raise ValueError(f"image {item.group}/{item.label}: pixels must be [1 or 3, H, W], got {pixels.shape}")
        entry.update(type="image", file=f"{stem}.png", height=int(pixels.shape[1]), width=int(pixels.shape[2]))
        if item.animate:
            entry["animate"] = True
        if pixels.shape[0] == 1:
            _png(folder / entry["file"], pixels[0], cmap="gray")
        else:
            _png(folder / entry["file"], np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    elif isinstance(item, SpectrogramItem):
        values = item.values.detach().float().cpu().numpy()
        entry.update(type="spectrogram", kind=item.kind, file=f"{stem}.png")
        _png(folder / entry["file"], np.flipud(values), cmap="magma")  # low frequencies at the bottom
    else:
        raise TypeError(f"not a media item: {type(item).__name__}")
    return entry


def _write_index(folder: Path, entries: list[dict[str, Any]], step: int | None) -> None:
    index = {"version": INDEX_VERSION, "step": step, "items": entries}
    atomic.write_text(folder / INDEX, json.dumps(index, indent=1, ensure_ascii=False) + "\n")


def read_index(folder: Path) -> list[dict[str, Any]]:
    """A folder's index entries ([] when it has no readable index)."""
    try:
        data = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("items") if isinstance(data, dict) else None
    return [e for e in items if isinstance(e, dict) and "file" in e and "type" in e] if isinstance(items, list) else []


def write_media(samples_dir: Path, step: int, media: Sequence[MediaItem]) -> None:
    """Generated and source items under samples/step_N/; reference items not yet written under samples/reference/."""
    step_dir = samples_dir / f"step_{step:08d}"
    produced = [item for item in media if item.role != "reference"]
    if produced:
        step_dir.mkdir(parents=True, exist_ok=True)
        _write_index(step_dir, [_write(step_dir, item) for item in produced], step)
    if any(isinstance(item, ImageItem) and item.animate for item in produced):
        progress_animations(samples_dir)
    references = [item for item in media if item.role == "reference"]
    if references:
        ref_dir = samples_dir / "reference"
        ref_dir.mkdir(parents=True, exist_ok=True)
        entries = read_index(ref_dir)
        known = {e["file"] for e in entries}
        for item in references:
            if f"{_stem(item)}.{'wav' if isinstance(item, AudioItem) else 'png'}" not in known:
                entries.append(_write(ref_dir, item))
        _write_index(ref_dir, entries, None)


PROGRESS = "progress.gif"
FRAME_MS = 200  # per validation
LAST_FRAME_MS = 1500  # the latest grid stays up a moment before the loop starts again


def progress_animations(samples_dir: Path) -> list[Path]:
    """(Re)write the animated GIF of every `animate` image over all validations so far, in step order; returns
    the files. Rebuilt from the step folders each time, so a resumed run's animation is whole."""
    from PIL import Image

    series: dict[str, list[Path]] = {}
    for step_dir in sorted(samples_dir.glob("step_*")):
        for entry in read_index(step_dir):
            if entry.get("animate") and entry.get("type") == "image" and (step_dir / entry["file"]).is_file():
                series.setdefault(Path(entry["file"]).stem, []).append(step_dir / entry["file"])
    written = []
    for stem, frames in sorted(series.items()):
        target = samples_dir / (PROGRESS if len(series) == 1 else f"progress__{stem}.gif")
        images = [Image.open(f).convert("RGB") for f in frames]
        size = images[-1].size
        images = [im if im.size == size else im.resize(size) for im in images]
        durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
        atomic.write_bytes(target, buffer.getvalue())
        written.append(target)
    return written


def log_media(writer: Any, step: int, media: Sequence[MediaItem], limit: int = 4) -> None:
    """The first `limit` generated items of each type to TensorBoard: audio as audio, images as images."""
    counts: dict[str, int] = {}
    for item in media:
        if item.role != "generated":
            continue
        kind = type(item).__name__
        if counts.get(kind, 0) >= limit:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        tag = f"val/{item.group}/{item.label}"
        if isinstance(item, AudioItem):
            writer.add_audio(tag, item.wave.detach().float().cpu().unsqueeze(0), step, sample_rate=item.sample_rate)
        elif isinstance(item, ImageItem):
            writer.add_image(tag, item.pixels.detach().float().cpu().clamp(0, 1), step)
        elif isinstance(item, SpectrogramItem):
            values = item.values.detach().float().cpu()
            scaled = (values - values.min()) / (values.max() - values.min()).clamp_min(1e-8)
            writer.add_image(tag, torch.flip(scaled, dims=[0]).unsqueeze(0), step)
