"""Image generators for inference: load a DCGAN from its inference file, a training state or a run directory, and
draw samples, grids and latent walks. Imported only by `gankit sample` (infer/registry.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.checkpoint_io import safe_load
from gankit.errors import CheckpointError
from gankit.image_grid import tile_images
from gankit.infer.loading import resolve_checkpoint, resolve_device
from gankit.infer.registry import require_kind
from gankit.models.dcgan import DcganConfig, DcganGenerator


@dataclass
class ImageGenerator:
    generator: DcganGenerator
    model: DcganConfig
    path: Path
    step: int | None

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> Tensor:
        """`n` images [n, C, S, S] in [-1, 1] from the latent vectors N(0, I) of `seed`."""
        z = torch.randn(n, self.model.latent_size, generator=torch.Generator().manual_seed(seed))
        return self.generate(z)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        device = next(self.generator.parameters()).device
        return torch.cat([self.generator(c.to(device)).float().cpu() for c in z.split(256)])

    @torch.no_grad()
    def walk(self, frames: int, points: int = 4, seed: int = 0) -> Tensor:
        """A closed latent walk through `points` random latent vectors, `frames` images per leg (spherical
        interpolation: intermediate vectors keep the norm a Gaussian latent has): [points·frames, C, S, S]."""
        gen = torch.Generator().manual_seed(seed)
        anchors = torch.randn(points, self.model.latent_size, generator=gen)
        legs = []
        for i in range(points):
            a, b = anchors[i], anchors[(i + 1) % points]
            t = torch.arange(frames, dtype=torch.float32) / frames
            legs.append(slerp(a, b, t))
        return self.generate(torch.cat(legs))


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between vectors a and b at fractions t [K] → [K, D]."""
    cos = torch.clamp(torch.dot(a, b) / (a.norm() * b.norm()), -1.0, 1.0)
    omega = torch.acos(cos)
    if float(omega) < 1e-6:
        return a + t[:, None] * (b - a)
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / s)[:, None] * a + (torch.sin(t * omega) / s)[:, None] * b


grid = tile_images  # `gankit sample`'s name for it


def load_image_generator(source: str | Path, best: bool = False, device: str = "auto") -> ImageGenerator:
    """From an image task's inference file (`generator_N.pt`), a training state (its EMA weights where it kept
    an EMA) or a run directory (its latest, or best, inference file)."""
    path = resolve_checkpoint(source, best)
    obj: Any = safe_load(path)
    if not isinstance(obj, dict) or obj.get("format") != "gankit":
        raise CheckpointError(f"{path}: not a gankit checkpoint; `gankit sample` takes an image generator's "
                              "generator_N.pt, state_N.pt or run directory")
    if obj.get("kind") == "train_state":
        config = obj.get("config") or {}
        require_kind(str(config.get("task")), "image", path, "sample takes image generators")
        model = DcganConfig.from_dict(config.get("model") or {})
        ema = (obj.get("ema") or {}).get("generator")
        weights = ema if isinstance(ema, dict) else (obj.get("networks") or {}).get("generator")
    else:
        require_kind(str(obj.get("task")), "image", path, "sample takes image generators")
        model = DcganConfig.from_dict(obj.get("model") or {})
        weights = obj.get("state_dict")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: holds no generator weights")
    generator = DcganGenerator(model)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit the model it names ({first})") from None
    generator.eval().to(resolve_device(device))
    step = obj.get("step")
    return ImageGenerator(generator, model, path, step if isinstance(step, int) else None)
