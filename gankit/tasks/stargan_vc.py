"""StarGAN-VC on the shared engine: many-to-many voice conversion on per-band normalised log-mels, the official
implementation's losses (kamepong/StarGAN-VC `net.py`): adversarial (WGAN, LSGAN or hinge) with a gradient penalty,
the discriminator's speaker classification, cycle consistency and identity mapping, weight 1 each.

Each item is a segment of one speaker with a conversion target drawn from the other speakers of its group (the
engine's domain-balanced sampler puts every speaker in every batch, as the original's data set does). Per
micro-batch the generator converts (x_s → t) and maps to itself (x_s → s) once, in `prepare`; the discriminator
scores real segments against both outputs and learns to name real segments' speakers; the generator learns to be
scored real, classified as its target, to come back to the source (cycle) and to leave a same-speaker mapping
unchanged (identity). Losses are averaged over frames as the original's; its classification losses divide by the
number of speakers too (its sum over frames × speakers), kept so that weight 1 means what it meant there."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.audio.mel import build_frontend
from gankit.audio.mel_scaling import BandStandardisation, MelScaling, MinMaxScaling
from gankit.data.sampler import SampleKey
from gankit.errors import ConfigError
from gankit.models.stargan_vc import vc_architecture
from gankit.settings import from_mapping
from gankit.tasks.base import (
    ClassifierReadout,
    CriticReadout,
    LossTerms,
    OptimizerGroup,
    OutputPair,
    StepContext,
    Update,
    ValidationResult,
)
from gankit.tasks.schedule import AdversarialSchedule
from gankit.tasks.stargan_vc_validation import ConversionValidation, ConversionValidationSettings

# Per objective: (D's adversarial loss when its scores carry no information, the real−fake score gap it aims for).
# The original's LSGAN halves both terms: D outputs 0.5 everywhere → 0.5·0.25 + 0.5·0.25.
CRITIC_REFERENCE: dict[str, tuple[float | None, float | None]] = {
    "lsgan": (0.25, 1.0), "hinge": (2.0, 2.0), "wgan": (None, None),
}


@dataclass
class VcLossSettings:
    """`loss:`. `identity_steps`: the identity term only for the first N steps (None: always, as the original;
    CycleGAN-VC practice turns it off after ~10⁴ steps)."""

    adversarial: str = "wgan"
    w_adv: float = 1.0
    w_gp: float = 1.0  # the original applies the gradient penalty whatever the objective
    w_cls: float = 1.0
    w_cyc: float = 1.0
    w_id: float = 1.0
    identity_steps: int | None = None

    def __post_init__(self) -> None:
        if self.adversarial not in CRITIC_REFERENCE:
            raise ConfigError(f"loss.adversarial: unknown objective {self.adversarial!r}; known: "
                              f"{', '.join(sorted(CRITIC_REFERENCE))}")
        for name in ("w_adv", "w_gp", "w_cls", "w_cyc", "w_id"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be ≥ 0, got {getattr(self, name)}")
        if self.identity_steps is not None and self.identity_steps < 0:
            raise ConfigError(f"loss.identity_steps must be ≥ 0 or null, got {self.identity_steps}")

    def identity_weight(self, step: int) -> float:
        return self.w_id if self.identity_steps is None or step < self.identity_steps else 0.0


@dataclass
class VcDataSettings:
    """`data:`: a folder written by `gankit prepare SRC OUT --format speakers --mel-stats hifigan` (or
    `gankit prepare --builtin vc-demo OUT`)."""

    dir: str | None = None
    batch_size: int = 8
    num_workers: int = 0
    segment_frames: int = 128  # frames per training segment (a multiple of 4)
    speakers: list[str] | None = None  # convert among these only (default: every speaker of data.groups)
    groups: list[str] | None = None  # keep these groups only (default: all)
    balanced: bool = True  # every speaker in every batch (needs batch_size a multiple of the speaker count)
    stats_file: str = "mel_stats.json"  # per-band statistics of the front-end, under data.dir
    val_max_frames: int = 512  # validation utterances are cut to this many frames
    # band_standardisation: (log-mel − mean) / scale per band with the statistics in stats_file (the 1-D network);
    # min_max: one range onto [0, 1] from up to range_files training files (the spec256 network's sigmoid output).
    scaling: str = "band_standardisation"
    range_files: int = 200

    def __post_init__(self) -> None:
        if not self.dir:
            raise ConfigError("data.dir is not set: give the folder `gankit prepare SRC OUT --format speakers "
                              "--mel-stats hifigan` wrote (or `gankit prepare --builtin vc-demo OUT`).")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("data.batch_size must be ≥ 1 and data.num_workers ≥ 0.")
        for name in ("segment_frames", "val_max_frames"):
            value = getattr(self, name)
            if value < 8 or value % 4:
                raise ConfigError(f"data.{name} must be a multiple of 4 and at least 8 (the generator halves "
                                  f"the time axis twice), got {value}")
        if self.scaling not in (BandStandardisation.kind, MinMaxScaling.kind):
            raise ConfigError(f"data.scaling: {self.scaling!r} is not {BandStandardisation.kind} or "
                              f"{MinMaxScaling.kind}")
        if self.range_files < 1:
            raise ConfigError(f"data.range_files must be ≥ 1, got {self.range_files}")


@dataclass
class Converted:
    """A micro-batch's generator outputs, computed once in `prepare`."""

    converted: Tensor  # x_s → t
    identity: Tensor  # x_s → s
    extra: dict[str, Tensor] = field(default_factory=dict)


def _ce_per_frame(logits: Tensor, labels: Tensor) -> Tensor:
    """The original's classification loss: CE summed over frames ÷ (frames × speakers), i.e. mean CE ÷ speakers."""
    b, n, t = logits.shape
    flat = logits.permute(0, 2, 1).reshape(b * t, n).float()
    return F.cross_entropy(flat, labels.repeat_interleave(t)) / n


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    """Utterance-level accuracy: the frame-averaged logits' arg-max against the labels."""
    return float((logits.mean(dim=-1).argmax(dim=-1) == labels).float().mean())


class StarGanVcTask:
    """Groups "d" (discriminator with its classification head) and "g" (generator); `schedule:` orders them."""

    name = "stargan_vc"
    best_metric = ("val/target_share", "max")
    progress_keys: Mapping[str, str] = {"d/adv": "D", "g/adv": "G", "g/cycle": "cyc", "d/cls_acc": "acc"}
    ema_networks = ("generator",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.data = from_mapping(VcDataSettings, config.get("data"), "data")
        self.loss_settings = from_mapping(VcLossSettings, config.get("loss"), "loss")
        self.schedule_settings = from_mapping(AdversarialSchedule, config.get("schedule"), "schedule")
        self.frontend = build_frontend(config.get("frontend") or {"preset": "hifigan"})
        from gankit.data.speaker_mels import SpeakerSet
        from gankit.data.speakers import SPEAKERS_FILE, read_speaker_table

        root = Path(self.data.dir)  # type: ignore[arg-type]
        self.speakers = SpeakerSet.select(read_speaker_table(root / SPEAKERS_FILE), self.data.speakers,
                                          self.data.groups, str(root))
        model = dict(config.get("model") or {})
        self.architecture = vc_architecture(str(model.pop("type", "stargan_vc")))
        self.model = self.architecture.make_config(model, len(self.speakers), self.frontend.n_mels)
        self.architecture.check_frames(self.data.segment_frames, "data.segment_frames")
        self.scaling = self._scaling(root)
        if self.data.balanced and self.data.batch_size % len(self.speakers):
            raise ConfigError(f"data.batch_size {self.data.batch_size} must be a multiple of the "
                              f"{len(self.speakers)} speakers with data.balanced (every speaker in every batch); "
                              "change it or set data.balanced=false")
        self.critic_l0, self.critic_scale = CRITIC_REFERENCE[self.loss_settings.adversarial]
        self.validation = ConversionValidation(
            from_mapping(ConversionValidationSettings, config.get("validation"), "validation"),
            self.frontend, self.speakers, self.scaling, self.architecture,
            self.architecture.source_conditioning(self.model))

    def _scaling(self, root: Path) -> MelScaling:
        """The features' scaling: the corpus statistics file's per-band standardisation, or a min–max range taken
        from the training files now (the same files give the same range, so a resume scales as the run began)."""
        from gankit.data.corpus_stats import read_band_statistics
        from gankit.data.filelist import read_filelist
        from gankit.data.speaker_mels import corpus_log_mel_range
        from gankit.data.speakers import speaker_of

        if self.data.scaling == BandStandardisation.kind:
            if self.architecture.output_range is not None:
                raise ConfigError(f"model.type {self.architecture.name} outputs values in "
                                  f"{list(self.architecture.output_range)}: it needs data.scaling={MinMaxScaling.kind}")
            mean, scale = read_band_statistics(root / self.data.stats_file, self.frontend)
            return BandStandardisation(tuple(mean), tuple(scale))
        keep = set(self.speakers.names)
        train = [e for e in read_filelist(root / "train.txt") if speaker_of(e.id) in keep]
        low, high = corpus_log_mel_range(train, root / "wavs", self.frontend, self.data.range_files)
        return MinMaxScaling(low, high)

    # --- networks and schedule --------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        arch = self.architecture
        return {"generator": arch.generator_class(self.model), "discriminator": arch.discriminator_class(self.model)}

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("d", ("discriminator",)), OptimizerGroup("g", ("generator",))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return self.schedule_settings.updates(step, last_losses, d_loss="d/adv")

    # --- losses -----------------------------------------------------------------------------------
    def _source(self, labels: Tensor) -> Tensor | None:
        return labels if self.architecture.source_conditioning(self.model) else None

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        g, x, s, t = nets["generator"], batch["mel"], batch["speaker"], batch["target"]
        ctx.cache["vc"] = Converted(converted=g(x, t, self._source(s)), identity=g(x, s, self._source(s)))

    def _adversarial_d(self, real: Tensor, fake: Tensor) -> Tensor:
        kind = self.loss_settings.adversarial
        if kind == "wgan":
            return -real.mean() + fake.mean()
        if kind == "lsgan":
            return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
        return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()

    def _adversarial_g(self, fake: Tensor) -> Tensor:
        kind = self.loss_settings.adversarial
        if kind == "lsgan":
            return 0.5 * ((fake - 1) ** 2).mean()
        return -fake.mean()  # WGAN and hinge

    def gradient_penalty(self, d: nn.Module, real: Tensor, fake: Tensor, mix: Tensor) -> Tensor:
        """WGAN-GP (Gulrajani et al. 2017) on x̂ = α·real + (1 − α)·fake, α per item from the batch (drawn by
        the data set from the item's key, so accumulation and any rank layout see the same α): mean over items of
        (‖∇ₓ̂ Σ D(x̂)‖₂ − 1)², the norm over bands × frames as the original's."""
        alpha = mix.to(real.dtype).view(-1, 1, 1)
        mixed = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
        scores, _ = d(mixed, per_frame=True)
        (grad,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
        return ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        d, x, s, t = nets["discriminator"], batch["mel"], batch["speaker"], batch["target"]
        vc: Converted = ctx.cache["vc"]
        w = self.loss_settings
        if group == "d":
            real_scores, real_logits = d(x, per_frame=True)
            fake = torch.cat([vc.converted.detach(), vc.identity.detach()])
            fake_scores, _ = d(fake, per_frame=True)
            adv = self._adversarial_d(real_scores.float(), fake_scores.float())
            gp = self.gradient_penalty(d, x, vc.converted.detach(), batch["gp_mix"]) if w.w_gp > 0 else adv * 0
            cls = _ce_per_frame(real_logits, s)
            total = w.w_adv * adv + w.w_gp * gp + w.w_cls * cls
            accuracy = _accuracy(real_logits.detach(), s)
            real_mean, fake_mean = float(real_scores.detach().mean()), float(fake_scores.detach().mean())
            readout = CriticReadout([real_mean], [fake_mean], [float(adv.detach())], no_information_loss=self.critic_l0,
                                    score_scale=self.critic_scale, objective=w.adversarial,
                                    sub_names=["discriminator"])
            classifier = ClassifierReadout("discriminator", accuracy, float(cls.detach()),
                                           chance=1.0 / len(self.speakers), role="auxiliary")
            logs = {"d/total": float(total.detach()), "d/adv": float(adv.detach()), "d/gp": float(gp.detach()),
                    "d/cls": float(cls.detach())}
            scalars = {"d/cls_acc": accuracy, "d/real": real_mean, "d/fake": fake_mean}
            return LossTerms(total, logs, readout=readout, classifiers=[classifier], scalars=scalars)
        g = nets["generator"]
        converted_scores, converted_logits = d(vc.converted, per_frame=True)
        identity_scores, identity_logits = d(vc.identity, per_frame=True)
        adv = self._adversarial_g(torch.cat([converted_scores, identity_scores]).float())
        cls = 0.5 * (_ce_per_frame(converted_logits, t) + _ce_per_frame(identity_logits, s))
        cycle = (g(vc.converted, s, self._source(t)) - x).abs().mean()
        identity = (vc.identity - x).abs().mean()
        id_weight = w.identity_weight(ctx.step)
        total = w.w_adv * adv + w.w_cls * cls + w.w_cyc * cycle + id_weight * identity
        logs = {"g/total": float(total.detach()), "g/adv": float(adv.detach()), "g/cls": float(cls.detach()),
                "g/cycle": float(cycle.detach()), "g/identity": float(identity.detach())}
        # Health reads the converted mels as one-channel images: level, spread and batch diversity against the real.
        outputs = OutputPair(vc.converted.detach()[:, None], x[:, None], kind="image")
        return LossTerms(total, logs, outputs=outputs,
                         scalars={"g/target_acc": _accuracy(converted_logits.detach(), t)})

    # --- data, validation, export -----------------------------------------------------------------
    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        from gankit.data.filelist import read_filelist
        from gankit.data.speaker_mels import SpeakerMelDataset
        from gankit.data.speakers import speaker_of

        root = Path(self.data.dir)  # type: ignore[arg-type]
        keep = set(self.speakers.names)
        train = [e for e in read_filelist(root / "train.txt") if speaker_of(e.id) in keep]
        held_out = [e for e in read_filelist(root / "val.txt") if speaker_of(e.id) in keep]
        missing = sorted(keep - {speaker_of(e.id) for e in train})
        if missing:
            raise ConfigError(f"{root}/train.txt has no files of {', '.join(missing)}; prepare the corpus again or "
                              "leave them out (data.speakers)")
        dataset = SpeakerMelDataset(train, root / "wavs", self.frontend, self.speakers, self.scaling,
                                    self.data.segment_frames, seed, balanced=self.data.balanced)
        dataset[SampleKey(0, 0, 0)]  # fail now, not in a worker, when the first file cannot be used
        log(f"data: {len(train)} training and {len(held_out)} validation files of {len(self.speakers)} speakers "
            f"({', '.join(self.speakers.names)}) in {root}")
        return dataset, self.validation.batches(held_out, train, root / "wavs", self.data.val_max_frames, log)

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        return self.validation.run(nets["generator"], nets["discriminator"], batches)

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        payload = {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                   "architecture": self.architecture.name, "model": self.model.to_dict(),
                   "state_dict": nets["generator"].state_dict(), "frontend": self.frontend.to_config(),
                   "scaling": self.scaling.to_dict(), "speakers": list(self.speakers.names),
                   "speaker_groups": list(self.speakers.groups)}
        if isinstance(self.scaling, BandStandardisation):  # as files written before `scaling` existed hold them
            payload.update(band_mean=list(self.scaling.mean), band_scale=list(self.scaling.scale))
        return payload


def build_stargan_vc_task(config: Mapping[str, Any]) -> StarGanVcTask:
    return StarGanVcTask(config)
