"""DCGAN image generation on the shared engine: BCE on logits with the non-saturating generator loss, the controls
image-GAN users reach for (one-sided label smoothing, instance noise, n_critic, D/G loss thresholds — the shared
`schedule:` section —, discriminator dropout, per-network optimizers), and set-level validation: fixed-noise grids
(animated over the run) and distances between generated and held-out real images (tasks/dcgan_validation.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.data.sampler import SampleKey, rng_for
from gankit.errors import ConfigError
from gankit.models.dcgan import DcganConfig, DcganDiscriminator, DcganGenerator
from gankit.settings import from_mapping
from gankit.tasks.base import (
    CriticReadout,
    LossTerms,
    OptimizerGroup,
    OutputPair,
    StepContext,
    Update,
    ValidationResult,
)
from gankit.tasks.dcgan_validation import ImageValidation, ImageValidationSettings
from gankit.tasks.schedule import AdversarialSchedule

NOISE_STREAM = 21  # the latent noise and instance noise of a sample: its own stream of (seed, epoch, position)
NO_INFORMATION_BCE = 2 * math.log(2)  # D's real + fake BCE when it outputs p = 0.5 for everything


@dataclass
class DcganLossSettings:
    """`loss:`. `label_smoothing`: one-sided, real targets 1 − s (Salimans et al. 2016); `instance_noise`: the
    std of Gaussian noise added to every image D sees (real and generated), decayed linearly to 0 over
    `instance_noise_steps` (0: constant)."""

    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    instance_noise_steps: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"loss.label_smoothing must be in [0, 0.5), got {self.label_smoothing}.")
        if self.instance_noise < 0 or self.instance_noise_steps < 0:
            raise ConfigError("loss.instance_noise and loss.instance_noise_steps must be ≥ 0.")

    def noise_std(self, step: int) -> float:
        if self.instance_noise_steps <= 0:
            return self.instance_noise
        return self.instance_noise * max(0.0, 1.0 - step / self.instance_noise_steps)


@dataclass
class ImageDataSettings:
    """`data:` of the image tasks: a folder written by `gankit prepare --format images` (or `--builtin digits`)."""

    dir: str | None = None
    batch_size: int = 64
    num_workers: int = 0
    flip: bool = False  # horizontal flip augmentation

    def __post_init__(self) -> None:
        if not self.dir:
            raise ConfigError("data.dir is not set: give the folder `gankit prepare --format images` wrote "
                              "(or `gankit prepare --builtin digits OUT`).")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("data.batch_size must be ≥ 1 and data.num_workers ≥ 0.")


class NoisedImages(torch.utils.data.Dataset):
    """The prepared images with each sample's latent vector (and instance noise) drawn from its place in the epoch,
    so any split of a global batch over ranks, and any resume, draws the same numbers."""

    def __init__(self, images: Any, latent_size: int, seed: int, instance_noise: bool) -> None:
        self.images = images
        self.latent_size = latent_size
        self.seed = seed
        self.instance_noise = instance_noise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        item = dict(self.images[key])
        rng = rng_for(self.seed, NOISE_STREAM, key.epoch, key.position)
        item["z"] = torch.from_numpy(rng.standard_normal(self.latent_size).astype("float32"))
        if self.instance_noise:
            shape = tuple(item["image"].shape)
            item["noise_real"] = torch.from_numpy(rng.standard_normal(shape).astype("float32"))
            item["noise_fake"] = torch.from_numpy(rng.standard_normal(shape).astype("float32"))
        return item


class DcganTask:
    """Groups "d" (discriminator) and "g" (generator); `schedule:` decides their updates each step."""

    name = "dcgan"
    best_metric = ("val/fd_random", "min")
    progress_keys: Mapping[str, str] = {"d/total": "D", "g/adv": "G", "d/real_prob": "D(x)"}
    ema_networks = ("generator",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.model = DcganConfig.from_dict(config.get("model") or {})
        self.loss_settings = from_mapping(DcganLossSettings, config.get("loss"), "loss")
        self.schedule_settings = from_mapping(AdversarialSchedule, config.get("schedule"), "schedule")
        self.data = from_mapping(ImageDataSettings, config.get("data"), "data")
        self.validation = ImageValidation(from_mapping(ImageValidationSettings, config.get("validation"),
                                                       "validation"), self.model)

    # --- networks and schedule --------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        return {"generator": DcganGenerator(self.model), "discriminator": DcganDiscriminator(self.model)}

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("d", ("discriminator",)), OptimizerGroup("g", ("generator",))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return self.schedule_settings.updates(step, last_losses)

    # --- losses -----------------------------------------------------------------------------------
    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        ctx.cache["fake"] = nets["generator"](batch["z"])

    def _seen_by_d(self, images: Tensor, batch: Mapping[str, Any], which: str, step: int) -> Tensor:
        std = self.loss_settings.noise_std(step)
        if std > 0 and f"noise_{which}" in batch:
            return images + std * batch[f"noise_{which}"].to(images.dtype)
        return images

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        real, fake = batch["image"], ctx.cache["fake"]
        d = nets["discriminator"]
        if group == "d":
            real_logits = d(self._seen_by_d(real, batch, "real", ctx.step)).float()
            fake_logits = d(self._seen_by_d(fake.detach(), batch, "fake", ctx.step)).float()
            target = 1.0 - self.loss_settings.label_smoothing
            real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, target))
            fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            total = real_loss + fake_loss
            p_real, p_fake = float(real_logits.detach().sigmoid().mean()), float(fake_logits.detach().sigmoid().mean())
            readout = CriticReadout([p_real], [p_fake], [float(total.detach())], no_information_loss=NO_INFORMATION_BCE,
                                    score_scale=1.0, objective="bce", sub_names=["discriminator"])
            logs = {"d/total": float(total.detach()), "d/real": float(real_loss.detach()),
                    "d/fake": float(fake_loss.detach())}
            return LossTerms(total, logs, readout=readout, scalars={"d/real_prob": p_real, "d/fake_prob": p_fake})
        logits = d(self._seen_by_d(fake, batch, "fake", ctx.step)).float()
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # non-saturating
        features = self.validation.features_pair(fake.detach(), real) if not ctx.probe else None
        outputs = OutputPair(fake.detach(), real, kind="image", features=features)
        return LossTerms(adv, {"g/adv": float(adv.detach())}, outputs=outputs)

    # --- data, validation, export -----------------------------------------------------------------
    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        from gankit.data.images import ImageDataset

        train = ImageDataset(self.data.dir, "train", flip=self.data.flip, seed=seed)
        held_out = ImageDataset(self.data.dir, "val")
        shape = tuple(train[SampleKey(0, 0, 0)]["image"].shape)
        expected = (self.model.channels, self.model.image_size, self.model.image_size)
        if shape != expected:
            raise ConfigError(f"{self.data.dir}: its images are {shape[0]}×{shape[1]}×{shape[2]} but the model makes "
                              f"{expected[0]}×{expected[1]}×{expected[2]}; set model.image_size/model.channels to "
                              "match or prepare the images again with --image-size/--channels")
        noisy = NoisedImages(train, self.model.latent_size, seed, self.loss_settings.instance_noise > 0)
        log(f"data: {len(train)} training images, {len(held_out)} held out for validation ({self.data.dir})")
        return noisy, self.validation.batches(held_out, seed, self.data.dir, log)

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        return self.validation.run(nets["generator"], batches)

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                "model": self.model.to_dict(), "state_dict": nets["generator"].state_dict()}


def build_dcgan_task(config: Mapping[str, Any]) -> DcganTask:
    return DcganTask(config)
