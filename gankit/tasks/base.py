"""The interface between the engine and a system's recipe: networks, optimizer groups, a per-step schedule,
step-aware losses, validation and export. The engine knows a task only through `GanTask`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from torch import Tensor, nn


@dataclass(frozen=True)
class OptimizerGroup:
    """An optimizer and the networks it steps. Its settings live under `optim.<name>` (type, arguments,
    clipping, scheduler); its logs are `lr/<name>` and `grad_norm/<name>`."""

    name: str
    networks: tuple[str, ...]


@dataclass(frozen=True)
class Update:
    """One entry of a step's schedule: optimise `group`, `repeats` times in a row (n_critic), or, with
    `apply=False`, compute and log its loss without stepping it (e.g. a discriminator that is ahead)."""

    group: str
    repeats: int = 1
    apply: bool = True


@dataclass
class StepContext:
    """What a task's `prepare` and `loss` know about the step they serve.

    `step` counts completed optimizer steps before this one. `groups` are the groups updated on this
    micro-batch's window, in order. `cache` is private to one micro-batch and shared by its window's updates
    (e.g. the generator's output computed once in `prepare`, read by the discriminator's and the generator's
    losses). `probe` is true while the health monitor's unused-parameter probe runs the schedule on copies."""

    step: int
    groups: tuple[str, ...]
    cache: dict[str, Any] = field(default_factory=dict)
    probe: bool = False


@dataclass
class CriticReadout:
    """What a critic's (discriminator's) update says about the adversarial balance, per sub-discriminator: mean
    scores on real and generated data and the loss. The optimizer group that returns it is the critic the
    health monitor judges (collapse, overpowering), with the objective's own reference values:
    `no_information_loss` is the loss per sub-discriminator when its scores carry no information (LSGAN 0.5,
    hinge 2.0, BCE 2·ln 2); None where the objective has none (WGAN), and then collapse is judged by the score
    gap and the gradients alone. `score_scale` is the real−fake separation the objective aims for (None:
    sqrt(2·no_information_loss), right for LSGAN and hinge). `sub_names` label the entries ("mpd.0"); None:
    the engine derives them from the group's networks where each lists its `discriminators`.
    `generator_losses` names the logged generator losses this critic's scores make (they move with the
    adversarial balance, within about `score_scale` per sub-discriminator, and `loss_spike` judges them so)."""

    real_scores: list[float]
    fake_scores: list[float]
    losses: list[float]
    no_information_loss: float | None = None
    score_scale: float | None = None
    objective: str = "adversarial"
    sub_names: list[str] | None = None
    generator_losses: tuple[str, ...] = ("g/adv",)


@dataclass
class ClassifierReadout:
    """A classifier's accuracy this update, for the health monitor. Role "confusion": trained against an
    encoder, chance is the goal (named when it keeps winning: the latent leaks what it should hide); role
    "auxiliary": it should learn (named when it stays at chance: it learns nothing)."""

    network: str
    accuracy: float
    loss: float
    chance: float  # 1 / number of classes
    role: Literal["confusion", "auxiliary"]


@dataclass
class OutputPair:
    """A batch of generated output and the real data it imitates, detached, for the health monitor's output
    statistics: audio ([B, 1, T]: DC offset, level, spectral flatness) or images ([B, C, H, W]: channel
    statistics and batch diversity)."""

    fake: Tensor
    real: Tensor
    kind: Literal["audio", "image"] = "audio"
    # Optional feature vectors [B, D] of fake and real (e.g. a fixed random network's): image diversity is then
    # measured between features rather than pixels, closer to what a person sees as "all alike".
    features: tuple[Tensor, Tensor] | None = None


@dataclass
class LossTerms:
    """A loss to back-propagate, the detached scalars to log (names like "g/mel", "d/mpd_0"), and what the
    health monitor may read of this update: a critic readout (this group is then a critic), the generated/real
    output, classifiers."""

    total: Tensor
    logs: dict[str, float] = field(default_factory=dict)
    readout: CriticReadout | None = None
    # Other scalars worth logging beside the losses (accuracies, mean probabilities, scores): logged and shown like
    # `logs`, never judged as losses (an accuracy rising is no loss spike).
    scalars: dict[str, float] = field(default_factory=dict)
    outputs: OutputPair | None = None
    classifiers: list[ClassifierReadout] = field(default_factory=list)


MediaRole = Literal["generated", "reference", "source"]


@dataclass
class AudioItem:
    """A waveform [T] in [-1, 1]."""

    wave: Tensor
    sample_rate: int
    group: str  # what it belongs to: an utterance id, a conversion "spk1→spk2", a domain
    label: str  # what it is within the group: "audio", "converted"
    role: MediaRole = "generated"


@dataclass
class ImageItem:
    """Pixels [C, H, W] in [0, 1], C = 1 or 3 (a grid of samples is one image). `animate`: the engine keeps an
    animated GIF of this item over the run's validations (`samples/progress.gif`; with several animated items,
    `samples/progress__<group>__<label>.gif` each) — e.g. a fixed-noise grid."""

    pixels: Tensor
    group: str
    label: str
    role: MediaRole = "generated"
    animate: bool = False


@dataclass
class SpectrogramItem:
    """Values [bins, frames] as the task computed them (`kind` says which: "mel" for a log-mel)."""

    values: Tensor
    kind: str
    group: str
    label: str
    role: MediaRole = "generated"


MediaItem = AudioItem | ImageItem | SpectrogramItem


@dataclass
class ValidationResult:
    """One validation: set-level metrics ("val/<name>") and the media to keep and show. The engine writes
    "generated" and "source" media under samples/step_N/, "reference" media once under samples/reference/."""

    metrics: dict[str, float]
    media: list[MediaItem] = field(default_factory=list)


class AdversarialObjective(Protocol):
    """The adversarial loss pair; it also states its own no-information values for the health monitor."""

    name: str
    no_information_d_loss: float  # per sub-discriminator: D scores carry no information (LSGAN 0.5, hinge 2.0)

    def discriminator_loss(self, real: list[Tensor], fake: list[Tensor]) -> tuple[Tensor, list[Tensor]]: ...

    def generator_loss(self, fake: list[Tensor]) -> tuple[Tensor, list[Tensor]]: ...


Log = Callable[[str], None]


class GanTask(Protocol):
    """A GAN system's recipe. Adding a system adds one of these, a model file and a config — never a branch in
    the engine. See docs/CONTRACTS.md ("tasks") for the order in which the engine calls these."""

    name: str
    best_metric: tuple[str, Literal["min", "max"]]  # the validation metric that picks the best checkpoint
    progress_keys: Mapping[str, str]  # loss log name → short label on the progress bar
    ema_networks: tuple[str, ...]  # networks `train.ema` averages unless it names others

    def build_networks(self) -> dict[str, nn.Module]: ...

    def optimizer_groups(self) -> list[OptimizerGroup]: ...

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        """The updates of step `step` (completed steps before it), in order; `last_losses` holds the latest
        rank-averaged value of every logged loss (carried over steps that did not compute it). The same
        inputs give the same schedule on every rank and after a resume."""
        ...

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        """Once per micro-batch before its updates, every network trainable: shared forwards go into ctx.cache."""
        ...

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        """The loss of `group`'s update; networks outside the group are frozen while it runs."""
        ...

    def build_datasets(self, seed: int, log: Log = print) -> tuple[Any, list[dict[str, Any]]]:
        """(training dataset keyed by the engine's sampler keys, validation batches) from the task's `data.*`."""
        ...

    def validate(
        self,
        nets: Mapping[str, nn.Module],
        batches: Sequence[Mapping[str, Any]],
        is_new_best: Callable[[Mapping[str, float]], bool],
    ) -> ValidationResult:
        """Validate on the task's validation batches (already on the device; networks in eval mode, no grad).
        `is_new_best(metrics)` says whether metrics holding `best_metric` would make a new best checkpoint, so
        a task can add measures worth their cost only then."""
        ...

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        """The inference file's payload (plain types and tensors: `torch.load(weights_only=True)` reads it)."""
        ...
