"""What an image GAN's validation measures and shows (config section `validation:`): a fixed-noise grid (animated over
the run), and distances between generated images and the held-out real ones in three feature spaces — a fixed
random network (always; labelled `_random`), the digits classifier `--builtin digits` saved beside its data (with the
digit classes present), and the FID Inception network from a weights file the user gives (else skipped, said once).

Every number here is set-level: one Fréchet distance, one KID, one precision/recall over `samples` images each side.
FD/KID values compare only at the same sample count and reference set; `_random` and `_digits` values are gankit's
own offline measures, not FID."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.image_grid import tile_images
from gankit.metrics.image_distances import RandomConvFeatures, frechet_distance, kernel_distance, precision_recall
from gankit.models.dcgan import DcganConfig
from gankit.tasks.base import ImageItem, ValidationResult

GRID_STREAM = 31  # the fixed noise of the grid and of the validation samples: a stream of the run's seed
CHUNK = 64  # validation images per batch


@dataclass
class ImageValidationSettings:
    samples: int = 256  # generated images the distances compare with as many held-out ones (or all there are)
    grid: int = 64  # fixed-noise images in the sample grid (a square number)
    kid_subsets: int = 50
    kid_subset_size: int = 100
    inception_weights: str | None = None  # pytorch-fid's pt_inception-2015-12-05-6726825d.pth, for val/fid
    digits: bool = True  # with data.dir holding digits_classifier.pt: val/fd_digits and val/digit_classes
    digit_confidence: float = 0.9  # a sample counts as its class at this confidence …
    digit_min_count: int = 3  # … and a class is present with this many samples (of 256, scaled to `samples`)

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ConfigError(f"validation.samples must be ≥ 2, got {self.samples}.")
        if self.grid < 1 or math.isqrt(self.grid) ** 2 != self.grid:
            raise ConfigError(f"validation.grid must be a square number (16, 64, …), got {self.grid}.")


def grid_image(images: Tensor) -> Tensor:
    """[N, C, S, S] in [-1, 1], N square → one [C, √N·S, √N·S] image in [0, 1], tiles touching."""
    return tile_images(images[: math.isqrt(images.shape[0]) ** 2], pad=0)


def _stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


class ImageValidation:
    def __init__(self, settings: ImageValidationSettings, model: DcganConfig) -> None:
        self.s = settings
        self.model = model
        self.random_net = RandomConvFeatures(seed=0)
        self.classifier: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
        self.inception: nn.Module | None = None
        self._real: dict[str, np.ndarray] = {}  # features of the held-out set, computed once per space

    def features_pair(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
        """Random-network features of a training batch's generated and real images (the health monitor's
        diversity is measured between them)."""
        net = self.random_net.to(fake.device)
        return net(fake.float()), net(real.float())

    def batches(self, held_out: Any, seed: int, data_dir: str | None, log: Callable[[str], None] = print
                ) -> list[dict[str, Any]]:
        """The held-out images in chunks, each with the fixed noise of as many generated ones; the first also
        carries the grid's noise. The same for every validation of the run (and after a resume)."""
        n_real = min(self.s.samples, len(held_out))
        if n_real < 2:
            raise ConfigError(f"{data_dir}: the validation split holds {len(held_out)} image(s); the distances need "
                              "at least 2 (prepare with a larger --val-size)")
        gen = torch.Generator().manual_seed(seed * 1_000_003 + GRID_STREAM)
        z_all = torch.randn(self.s.samples, self.model.latent_size, generator=gen)
        z_grid = torch.randn(self.s.grid, self.model.latent_size, generator=gen)
        batches = []
        for start in range(0, max(n_real, self.s.samples), CHUNK):
            batch: dict[str, Any] = {}
            real = range(start, min(n_real, start + CHUNK))
            if len(real):
                batch["image"] = torch.stack([held_out[i]["image"] for i in real])
            if start < self.s.samples:
                batch["z"] = z_all[start : start + CHUNK]
            if start == 0:
                batch["z_grid"] = z_grid
            batches.append(batch)
        n = n_real
        self._load_extra_networks(data_dir, log)
        log(f"validation: {self.s.samples} generated against {n} held-out images (fd/kid/precision/recall on a "
            f"fixed random network{', the digits classifier' if self.classifier else ''}"
            f"{', Inception (FID)' if self.inception else ''})")
        return batches

    def _load_extra_networks(self, data_dir: str | None, log: Callable[[str], None]) -> None:
        if self.s.digits and data_dir is not None:
            from gankit.data.digits import CLASSIFIER_FILE, load_classifier

            if (Path(data_dir) / CLASSIFIER_FILE).is_file():
                self.classifier = load_classifier(Path(data_dir) / CLASSIFIER_FILE).classify
        if self.s.inception_weights:
            from gankit.models.inception_fid import load_fid_inception

            self.inception = load_fid_inception(self.s.inception_weights)
        else:
            log("validation: FID (Inception) skipped — no weights file; set validation.inception_weights to "
                "pytorch-fid's pt_inception-2015-12-05-6726825d.pth to add val/fid (nothing is downloaded)")

    @torch.no_grad()
    def run(self, generator: nn.Module, batches: Sequence[dict[str, Any]]) -> ValidationResult:
        real = torch.cat([b["image"] for b in batches if "image" in b]).float()
        fake = torch.cat([generator(b["z"]).float() for b in batches if "z" in b])
        metrics: dict[str, float] = {}
        spaces: list[tuple[str, Callable[[Tensor], Tensor]]] = [("random", self._random)]
        if self.classifier is not None:
            spaces.append(("digits", self._digits))
        if self.inception is not None:
            spaces.append(("inception", self._inception))
        for name, extract in spaces:
            if name not in self._real:
                self._real[name] = extract(real)
            r, f = self._real[name], extract(fake)
            fd = frechet_distance(*_stats(f), *_stats(r))
            size = min(self.s.kid_subset_size, len(f), len(r))
            kid, _ = kernel_distance(f, r, subsets=self.s.kid_subsets, subset_size=size)
            label = "" if name == "inception" else f"_{name}"
            metrics[f"val/{'fid' if name == 'inception' else 'fd'}{label}"] = fd
            metrics[f"val/kid{label}"] = kid
            if name == "random":
                precision, recall = precision_recall(r, f)
                metrics.update({"val/precision_random": precision, "val/recall_random": recall})
        if self.classifier is not None:
            metrics["val/digit_classes"] = float(self._digit_classes(fake))
        grid = generator(batches[0]["z_grid"]).float()
        media = [ImageItem(grid_image(grid), "fixed noise", "samples", animate=True),
                 ImageItem(grid_image(real[: self.s.grid]), "fixed noise", "held-out images", role="reference")]
        return ValidationResult(metrics, media)

    def _random(self, images: Tensor) -> np.ndarray:
        net = self.random_net.to(images.device)
        return torch.cat([net(c) for c in images.split(CHUNK)]).double().cpu().numpy()

    def _digits(self, images: Tensor) -> np.ndarray:
        assert self.classifier is not None
        return torch.cat([self.classifier(c)[1].cpu() for c in images.split(CHUNK)]).double().numpy()

    def _inception(self, images: Tensor) -> np.ndarray:
        assert self.inception is not None
        net = self.inception.to(images.device)
        x = images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1)
        return torch.cat([net(c) for c in x.split(CHUNK)]).double().cpu().numpy()

    def _digit_classes(self, fake: Tensor) -> int:
        """Digits present: at least `digit_min_count` of every 256 samples classified as it with confidence ≥
        `digit_confidence` (issue 15's rule, scaled to the sample count)."""
        assert self.classifier is not None
        probs = torch.cat([self.classifier(c)[0].cpu() for c in fake.split(CHUNK)])
        confident, label = probs.max(dim=1)
        counts = torch.bincount(label[confident >= self.s.digit_confidence], minlength=10)
        needed = max(1, round(self.s.digit_min_count * len(fake) / 256))
        return int((counts >= needed).sum())
