"""Tasks that are not vocoders, written only against the contract in gankit/tasks/base.py: if the engine
needed a branch for them, the contract would be wrong.

`ThreeGroupTask`: a generator, a WGAN critic with a gradient penalty (double backward) and an auxiliary
classifier on real data optimised with RMSprop — three optimizer groups — and a generator loss term that
switches off after `id_steps` steps. Data: 2-D points from two labelled Gaussians."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gankit.data.sampler import SampleKey, rng_for
from gankit.tasks.base import (
    AudioItem,
    ClassifierReadout,
    CriticReadout,
    ImageItem,
    LossTerms,
    OptimizerGroup,
    OutputPair,
    SpectrogramItem,
    StepContext,
    Update,
    ValidationResult,
)

LATENT = 4


class Points(torch.utils.data.Dataset):
    """`size` labelled points; item i is fixed by (seed, i), so every epoch and rank sees the same data."""

    def __init__(self, size: int, seed: int, random_labels: bool = False) -> None:
        self.size, self.seed, self.random_labels = size, seed, random_labels

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        index = key.index
        rng = rng_for(self.seed, 7, index)
        # The step's randomness (latent noise, the gradient penalty's mixing weight) belongs to the sample's place
        # in the epoch: any split of a global batch over ranks draws the same numbers as one process.
        noise = rng_for(self.seed, 13, key.epoch, key.position)
        extra = {"z": torch.tensor(noise.normal(size=LATENT), dtype=torch.float32),
                 "alpha": torch.tensor([noise.uniform()], dtype=torch.float32)}
        centre = (2.0, 0.0) if index % 2 else (-2.0, 0.0)
        point = torch.tensor(rng.normal(centre, 0.3), dtype=torch.float32)
        label = int(rng.integers(2)) if self.random_labels else index % 2  # random: nothing to learn
        return {"x": point, "label": torch.tensor(label), "id": f"p{index}", **extra}


def histogram(points: torch.Tensor, size: int = 16, extent: float = 4.0) -> torch.Tensor:
    """2-D points drawn as a [1, size, size] image in [0, 1] (counts over [-extent, extent]², brightest = 1)."""
    cells = ((points.detach().float() + extent) / (2 * extent) * size).long().clamp(0, size - 1)
    image = torch.zeros(size, size)
    image.index_put_((size - 1 - cells[:, 1], cells[:, 0]), torch.ones(len(cells)), accumulate=True)
    return (image / image.max().clamp_min(1)).unsqueeze(0)


def tone(points: torch.Tensor, sample_rate: int = 8000, seconds: float = 0.25) -> torch.Tensor:
    """A point heard: a sine at 200·(1 + |point|) Hz per point, one after another, as one waveform [T]."""
    t = torch.arange(int(sample_rate * seconds)) / sample_rate
    return torch.cat([0.5 * torch.sin(2 * math.pi * 200 * (1 + float(p.norm())) * t) for p in points.detach()])


def mlp(inputs: int, outputs: int, hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, outputs))


class ThreeGroupTask:
    name = "toy_three_groups"
    best_metric = ("val/mean_distance", "min")
    progress_keys: Mapping[str, str] = {"g/total": "g", "d/total": "d", "c/ce": "c"}
    ema_networks = ("generator",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        toy = dict(config.get("toy") or {})
        self.id_steps = int(toy.get("id_steps", 3))  # the identity term is on for steps < id_steps
        self.gp_weight = float(toy.get("gp_weight", 10.0))
        self.size = int(toy.get("points", 16))
        self.classifier_role = str(toy.get("classifier_role", "auxiliary"))
        self.random_labels = bool(toy.get("random_labels", False))
        # What each training loss call saw, for tests: (group, step, micro-batch size); the health probe's apart.
        self.calls: list[tuple[str, int, int]] = []
        self.probe_calls: list[tuple[str, int, int]] = []

    def build_networks(self) -> dict[str, nn.Module]:
        return {"generator": mlp(LATENT, 2), "critic": mlp(2, 1), "classifier": mlp(2, 2)}

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("c", ("classifier",)), OptimizerGroup("d", ("critic",)),
                OptimizerGroup("g", ("generator",))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return [Update("c"), Update("d"), Update("g")]

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        ctx.cache["fake"] = nets["generator"](batch["z"])

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        (self.probe_calls if ctx.probe else self.calls).append((group, ctx.step, int(batch["x"].shape[0])))
        real, fake = batch["x"], ctx.cache["fake"]
        if group == "c":
            logits = nets["classifier"](real).float()
            ce = F.cross_entropy(logits, batch["label"])
            accuracy = float((logits.argmax(1) == batch["label"]).float().mean())
            readout = ClassifierReadout("classifier", accuracy, float(ce.detach()), 0.5,
                                        self.classifier_role)  # type: ignore[arg-type]
            return LossTerms(ce, {"c/ce": float(ce.detach()), "c/accuracy": accuracy}, classifiers=[readout])
        if group == "d":
            real_score, fake_score = nets["critic"](real).float().mean(), nets["critic"](fake.detach()).float().mean()
            wasserstein = fake_score - real_score
            gp = self.gradient_penalty(nets["critic"], real, fake.detach(), batch["alpha"])
            total = wasserstein + self.gp_weight * gp
            # WGAN has no no-information loss: the health monitor judges this critic by score gap and gradients.
            critic = CriticReadout([float(real_score.detach())], [float(fake_score.detach())],
                                   [float(wasserstein.detach())], no_information_loss=None, objective="wgan-gp")
            return LossTerms(total, {"d/w": float(wasserstein.detach()), "d/gp": float(gp.detach()),
                                     "d/total": float(total.detach())}, readout=critic)
        total = -nets["critic"](fake).float().mean()
        logs = {"g/adv": float(total.detach())}
        if ctx.step < self.id_steps:  # a loss term on only for the first id_steps steps (step-aware losses)
            identity = F.l1_loss(fake.float(), real)
            logs["g/id"] = float(identity.detach())
            total = total + identity
        logs["g/total"] = float(total.detach())
        return LossTerms(total, logs)

    @staticmethod
    def gradient_penalty(
        critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        score = critic(mixed).float().sum()
        (grad,) = torch.autograd.grad(score, mixed, create_graph=True)  # double backward through the critic
        return ((grad.float().norm(dim=1) - 1) ** 2).mean()

    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        points = Points(self.size, seed, self.random_labels)
        items = [points[i] for i in range(8)]
        validation = {"x": torch.stack([i["x"] for i in items]), "z": torch.stack([i["z"] for i in items])}
        return points, [validation]

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        """The distance between generated and real means, and both point clouds drawn as 16×16 histograms."""
        [batch] = batches
        fake = nets["generator"](batch["z"]).float()
        distance = float((fake.mean(0) - batch["x"].mean(0)).norm())
        return ValidationResult({"val/mean_distance": distance},
                                [ImageItem(histogram(fake), "points", "generated"),
                                 ImageItem(histogram(batch["x"]), "points", "data", role="reference")])

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                "state_dict": nets["generator"].state_dict()}


def toy_config(*, steps: int, **train: Any) -> dict[str, Any]:
    return {
        "task": ThreeGroupTask.name,
        "seed": 3,
        "device": "cpu",
        "toy": {"id_steps": 3, "points": 16},
        "optim": {
            "g": {"type": "Adam", "lr": 1e-3, "betas": [0.5, 0.9]},
            "d": {"type": "Adam", "lr": 1e-3, "betas": [0.5, 0.9], "clip": {"type": "value", "max": 0.5}},
            "c": {"type": "RMSprop", "lr": 1e-3, "scheduler": {"type": "StepLR", "step_size": 1, "gamma": 0.5,
                                                               "interval": 2}},
        },
        "data": {"batch_size": 4, "num_workers": 0},
        "train": {"max_steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "num_threads": 1,
                  **train},
        "health": {"layer_grads": True},
    }


class DomainPoints(torch.utils.data.Dataset):
    """Points of two domains (item i is domain i % 2: a ring of radius 1 or 3), one domain per item."""

    def __init__(self, size: int, seed: int, balanced: bool = True) -> None:
        self.size, self.seed = size, seed
        if balanced:  # the engine then gives every batch both domains (DomainBalancedSampler)
            self.item_domains = [i % 2 for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        index = key.index if isinstance(key, SampleKey) else int(key)
        rng = rng_for(self.seed, 11, index)
        domain = index % 2
        angle = rng.uniform(0, 2 * torch.pi)
        radius = 1.0 + 2.0 * domain
        point = torch.tensor([radius * float(torch.tensor(angle).cos()), radius * float(torch.tensor(angle).sin())])
        return {"x": point.float(), "domain": torch.tensor(domain), "id": f"d{domain}_{index}"}


class TwoDecoderTask:
    """An encoder, one decoder per domain and a domain-confusion classifier on the latent (the Universal Music
    Translation recipe in miniature): groups "ae" (encoder + decoders, reconstruction − λ·confusion CE) and
    "confusion" (the classifier on detached latents). Items hold one domain each; the dataset declares them
    (`item_domains`), so every batch holds both domains equally. With `toy.balanced: false` a batch may lack a
    domain: each decoder is still called on every rank every step (on no items where its domain is missing), DDP
    is told to look for unused parameters, and the unused-parameter probe runs on `probe_batch`, one item per
    domain. `toy.route_all_to: a` is the broken recipe: every item decoded by decoder A, so B never trains."""

    name = "toy_two_decoders"
    best_metric = ("val/recon", "min")
    progress_keys: Mapping[str, str] = {"ae/recon": "recon", "confusion/ce": "conf"}
    ema_networks = ("encoder",)
    find_unused_parameters = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        toy = dict(config.get("toy") or {})
        self.route_all_to = toy.get("route_all_to")  # None (correct) or "a" (the broken recipe)
        self.confusion_weight = float(toy.get("confusion_weight", 0.01))
        self.size = int(toy.get("points", 16))
        self.balanced = bool(toy.get("balanced", True))
        self.dataset: DomainPoints | None = None

    def build_networks(self) -> dict[str, nn.Module]:
        return {"encoder": mlp(2, LATENT), "decoder_a": mlp(LATENT, 2), "decoder_b": mlp(LATENT, 2),
                "confusion": mlp(LATENT, 2)}

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("confusion", ("confusion",)),
                OptimizerGroup("ae", ("encoder", "decoder_a", "decoder_b"))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return [Update("confusion"), Update("ae")]

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        ctx.cache["latent"] = nets["encoder"](batch["x"])

    def _decode(self, nets: Mapping[str, nn.Module], latent: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        if self.route_all_to == "a":
            return nets["decoder_a"](latent)
        out = torch.zeros(latent.shape[0], 2, device=latent.device, dtype=latent.dtype)
        for d, key in enumerate(("decoder_a", "decoder_b")):
            # Every decoder is called, on an empty batch where this rank's batch lacks its domain: under DDP a
            # network's gradient all-reduce starts from its own forward, so every rank must make it.
            rows = (domain == d).nonzero().squeeze(1)
            out = out.index_put((rows,), nets[key](latent[rows]).to(out.dtype))
        return out

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        latent, domain = ctx.cache["latent"], batch["domain"]
        if group == "confusion":
            logits = nets["confusion"](latent.detach()).float()
            ce = F.cross_entropy(logits, domain)
            accuracy = float((logits.argmax(1) == domain).float().mean())
            readout = ClassifierReadout("confusion", accuracy, float(ce.detach()), 0.5, "confusion")
            return LossTerms(ce, {"confusion/ce": float(ce.detach())}, classifiers=[readout])
        recon = F.mse_loss(self._decode(nets, latent, domain).float(), batch["x"])
        fooled = F.cross_entropy(nets["confusion"](latent).float(), domain)
        total = recon - self.confusion_weight * fooled
        return LossTerms(total, {"ae/recon": float(recon.detach()), "ae/total": float(total.detach())})

    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        self.dataset = DomainPoints(self.size, seed, self.balanced)
        items = [self.dataset[i] for i in range(4)]
        validation = {"x": torch.stack([i["x"] for i in items]), "domain": torch.stack([i["domain"] for i in items])}
        return self.dataset, [validation]

    def probe_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """One item of each domain (items 0 and 1), whatever the example batch holds."""
        assert self.dataset is not None
        items = [self.dataset[i] for i in (0, 1)]
        return {"x": torch.stack([i["x"] for i in items]).to(batch["x"].device),
                "domain": torch.stack([i["domain"] for i in items]).to(batch["x"].device),
                "id": [i["id"] for i in items]}

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        """Reconstruction error, and per domain its points heard as tones (source and reconstruction) with the
        reconstruction's spectrogram: audio and spectrogram media from a task that is not a vocoder."""
        [batch] = batches
        out = self._decode(nets, nets["encoder"](batch["x"]), batch["domain"]).float()
        media: list[Any] = []
        for d, name in enumerate(("domain a", "domain b")):
            rows = batch["domain"] == d
            wave = tone(out[rows])
            spectrum = torch.stft(wave, 256, 64, window=torch.hann_window(256), return_complex=True).abs()
            media += [AudioItem(tone(batch["x"][rows]), 8000, name, "input", role="source"),
                      AudioItem(wave, 8000, name, "reconstruction"),
                      SpectrogramItem(spectrum.clamp_min(1e-5).log(), "log-stft", name, "reconstruction")]
        return ValidationResult({"val/recon": float(F.mse_loss(out, batch["x"]))}, media)

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                "networks": {k: nets[k].state_dict() for k in ("encoder", "decoder_a", "decoder_b")}}


def two_decoder_config(*, steps: int, **train: Any) -> dict[str, Any]:
    return {
        "task": TwoDecoderTask.name,
        "seed": 5,
        "device": "cpu",
        "toy": {"points": 16},
        "optim": {"ae": {"type": "Adam", "lr": 1e-3}, "confusion": {"type": "Adam", "lr": 1e-3}},
        "data": {"batch_size": 4, "num_workers": 0},
        "train": {"max_steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "num_threads": 1,
                  **train},
        "health": {},
    }


class Blobs(torch.utils.data.Dataset):
    """16×16 grey images of one bright Gaussian blob at a place fixed by (seed, index), in [-1, 1]; the item's
    latent noise belongs to its place in the epoch (so any split over ranks draws the same)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        grid = torch.arange(16, dtype=torch.float32)
        self.yy, self.xx = torch.meshgrid(grid, grid, indexing="ij")

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        rng = rng_for(self.seed, 17, key.index)
        cy, cx = rng.uniform(4, 12, size=2)
        image = torch.exp(-((self.yy - cy) ** 2 + (self.xx - cx) ** 2) / 8.0) * 2 - 1
        noise = rng_for(self.seed, 19, key.epoch, key.position)
        return {"image": image[None], "z": torch.tensor(noise.normal(size=LATENT), dtype=torch.float32),
                "id": f"blob{key.index}"}


class ImageGanTask:
    """A 16×16 DCGAN in miniature: transposed convolutions with BatchNorm in the generator, strided convolutions
    with BatchNorm in the discriminator, BCE on logits. `toy.ghost_batch: k` runs the networks on chunks of k
    items (BatchNorm statistics per chunk), the single-process stand-in for k items on each of several ranks."""

    name = "toy_image_gan"
    best_metric = ("val/mean_gap", "min")
    progress_keys: Mapping[str, str] = {"g/adv": "g", "d/total": "d"}
    ema_networks = ("generator",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        toy = dict(config.get("toy") or {})
        self.size = int(toy.get("images", 16))
        self.ghost_batch = toy.get("ghost_batch")
        self.dataset: Blobs | None = None

    def build_networks(self) -> dict[str, nn.Module]:
        generator = nn.Sequential(
            nn.Unflatten(1, (LATENT, 1, 1)),
            nn.ConvTranspose2d(LATENT, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(),  # 4×4
            nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),  # 8×8
            nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=False), nn.Tanh())  # 16×16
        discriminator = nn.Sequential(
            nn.Conv2d(1, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),  # 8×8
            nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),  # 4×4
            nn.Conv2d(16, 1, 4, 1, 0, bias=False), nn.Flatten())
        return {"generator": generator, "discriminator": discriminator}

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("d", ("discriminator",)), OptimizerGroup("g", ("generator",))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return [Update("d"), Update("g")]

    def _run(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.ghost_batch:
            return net(x)
        return torch.cat([net(chunk) for chunk in x.split(int(self.ghost_batch))])

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        ctx.cache["fake"] = self._run(nets["generator"], batch["z"])

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        fake, real = ctx.cache["fake"], batch["image"]
        if group == "d":
            real_logits = self._run(nets["discriminator"], real).float()
            fake_logits = self._run(nets["discriminator"], fake.detach()).float()
            total = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                     + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            # Scores as probabilities (real → 1, fake → 0: separation 1); no information: both 0.5, loss 2·ln 2.
            critic = CriticReadout([float(real_logits.detach().sigmoid().mean())],
                                   [float(fake_logits.detach().sigmoid().mean())], [float(total.detach())],
                                   no_information_loss=2 * math.log(2), score_scale=1.0, objective="bce")
            return LossTerms(total, {"d/total": float(total.detach())}, readout=critic)
        logits = self._run(nets["discriminator"], fake).float()
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return LossTerms(adv, {"g/adv": float(adv.detach())}, outputs=OutputPair(fake, real, kind="image"))

    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        self.dataset = Blobs(self.size, seed)
        items = [self.dataset[i] for i in range(8)]
        fixed = torch.Generator().manual_seed(seed)
        validation = {"image": torch.stack([i["image"] for i in items]), "z": torch.randn(8, LATENT, generator=fixed)}
        return self.dataset, [validation]

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        [batch] = batches
        fake = nets["generator"](batch["z"])
        gap = float((fake.mean(0) - batch["image"].mean(0)).abs().mean())
        grid = (torch.cat(list(fake), dim=-1) + 1) / 2  # [1, 16, 8·16] in [0, 1]
        real = (torch.cat(list(batch["image"]), dim=-1) + 1) / 2
        return ValidationResult({"val/mean_gap": gap}, [ImageItem(grid, "fixed noise", "samples", animate=True),
                                                        ImageItem(real, "fixed noise", "data", role="reference")])

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                "latent_size": LATENT, "state_dict": nets["generator"].state_dict()}


def image_gan_config(*, steps: int, **train: Any) -> dict[str, Any]:
    return {
        "task": ImageGanTask.name,
        "seed": 7,
        "device": "cpu",
        "toy": {"images": 16},
        "optim": {"g": {"type": "Adam", "lr": 2e-4, "betas": [0.5, 0.999]},
                  "d": {"type": "Adam", "lr": 2e-4, "betas": [0.5, 0.999]}},
        "data": {"batch_size": 4, "num_workers": 0},
        "train": {"max_steps": steps, "log_every": 1, "val_every": 2, "ckpt_every": 1000, "num_threads": 1,
                  **train},
        "health": {},
    }
