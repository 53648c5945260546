"""The mel → waveform GAN recipe shared by HiFi-GAN and MelGAN: adversarial + feature matching + mel/STFT L1."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import Self

from gankit.audio.mel import MelFrontend, build_frontend
from gankit.data.settings import DataSettings
from gankit.errors import ConfigError
from gankit.losses.adversarial import build_adversarial
from gankit.losses.feature_matching import feature_matching_loss
from gankit.settings import from_mapping
from gankit.tasks.base import (
    AdversarialObjective,
    AudioItem,
    CriticReadout,
    LossTerms,
    MediaItem,
    OptimizerGroup,
    OutputPair,
    SpectrogramItem,
    StepContext,
    Update,
    ValidationResult,
)
from gankit.tasks.schedule import AdversarialSchedule
from gankit.tasks.vocoder_validation import VocoderValidationSettings, objective_measures


@dataclass
class GeneratorPass:
    """What one generator forward produced: generated and real audio, [B, 1, T] each."""

    fake: Tensor
    real: Tensor


@dataclass
class VocoderLossSettings:
    adversarial: str = "lsgan"
    lambda_adv: float = 1.0
    lambda_fm: float = 2.0
    lambda_mel: float = 45.0
    lambda_stft: float = 0.0
    feature_weights: str = "uniform"  # "uniform" (HiFi-GAN) or "melgan" (4/(layers+1) · 1/num_D)


@dataclass
class AugmentSettings:
    """Training-audio augmentation (config section `augment`); off unless set."""

    random_gain: list[float] | None = None  # [low, high]: each crop × U(low, high) after peak normalisation

    def gain_range(self) -> tuple[float, float] | None:
        if self.random_gain is None:
            return None
        gain = self.random_gain
        numbers = len(gain) == 2 and all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in gain)
        if not numbers or not 0 < gain[0] <= gain[1]:
            raise ConfigError(
                f"augment.random_gain must be [low, high] with 0 < low ≤ high (MelGAN: [0.3, 1.0]), got {gain!r}"
            )
        return float(gain[0]), float(gain[1])


NetworkFactory = Callable[[], nn.Module]


class _GeneratorConfig(Protocol):
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self: ...


ConfigT = TypeVar("ConfigT", bound=_GeneratorConfig)


def generator_config_of(config: Mapping[str, Any], config_cls: type[ConfigT]) -> ConfigT:
    """The config's `model.generator` section as `config_cls` (a model family's config dataclass, which has
    `from_dict`), its mel band count taken from the front-end unless the section names one."""
    gen = dict(config["model"]["generator"])
    gen.setdefault("n_mels", config["frontend"].get("n_mels", 80))
    return config_cls.from_dict(gen)


def check_shapes(
    rates_key: str, rates: Sequence[int], n_mels: int, frontend: MelFrontend, segment_size: int
) -> None:
    """The generator, the mel front-end and the training segment must agree; say how to fix it if not."""
    hop = math.prod(rates)
    if hop != frontend.hop_length:
        raise ConfigError(
            f"model.generator.{rates_key} {list(rates)} multiply to {hop}, but frontend.hop_length is "
            f"{frontend.hop_length}: the generator must upsample each mel frame to exactly one hop of audio."
        )
    if n_mels != frontend.n_mels:
        raise ConfigError(
            f"model.generator.n_mels {n_mels} differs from frontend.n_mels {frontend.n_mels}; make them equal."
        )
    if segment_size <= 0 or segment_size % hop:
        fixed = max(1, round(segment_size / hop)) * hop
        raise ConfigError(f"data.segment_size {segment_size} is not a multiple of the hop {hop}; use {fixed}.")


def vocoder_inference_file(
    task: str, generator_config: Mapping[str, Any], frontend: Mapping[str, Any], state_dict: Mapping[str, Tensor],
    step: int,
) -> dict[str, Any]:
    """A vocoder's inference file: enough to vocode without the training config (docs/CONTRACTS.md)."""
    return {
        "format": "gankit",
        "kind": "generator",
        "version": 1,
        "task": task,
        "generator": dict(generator_config),
        "frontend": dict(frontend),
        "state_dict": dict(state_dict),
        "step": step,
    }


class VocoderGanTask:
    """How a batch of waveforms becomes discriminator and generator losses for a mel vocoder.

    Two optimizer groups: "g" (the generator) and "d" (every discriminator). The generator runs once per
    micro-batch in `prepare`; both losses read its output. Discriminators see real and generated audio in one
    concatenated batch: one forward per network (DDP-friendly; spectral-norm power iterations advance once
    per forward).
    """

    generator_keys: tuple[str, ...] = ("generator",)
    best_metric: tuple[str, str] = ("val/mel_l1", "min")
    progress_keys: Mapping[str, str] = {"g/mel": "mel", "g/adv": "adv", "g/fm": "fm", "d/total": "d"}
    ema_networks: tuple[str, ...] = ("generator",)

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        generator_config: Mapping[str, Any],
        generator_factory: NetworkFactory,
        discriminator_factories: Mapping[str, NetworkFactory],
        feature_matching_layers: int | None = None,
    ) -> None:
        """`feature_matching_layers`: the discriminators' layer count in MelGAN's 4/(n_layers + 1) weighting
        (None: counted from the features)."""
        self.name = name
        self.data = from_mapping(DataSettings, config.get("data"), "data")
        self.steps = from_mapping(AdversarialSchedule, config.get("schedule"), "schedule")
        self.validation = from_mapping(VocoderValidationSettings, config.get("validation"), "validation")
        self._generator_config = dict(generator_config)
        self.frontend: MelFrontend = build_frontend(config["frontend"])
        self.loss_frontend: MelFrontend = self.frontend.with_fmax(config.get("fmax_for_loss"))
        self.weights = from_mapping(VocoderLossSettings, config.get("loss"), "loss")
        self.adversarial: AdversarialObjective = build_adversarial(self.weights.adversarial)
        self.feature_matching_layers = feature_matching_layers
        augment = from_mapping(AugmentSettings, config.get("augment"), "augment")
        self.random_gain = augment.gain_range()
        self.discriminator_keys: tuple[str, ...] = tuple(discriminator_factories)
        self._generator_factory = generator_factory
        self._discriminator_factories = dict(discriminator_factories)
        self._stft_loss: nn.Module | None = None
        if self.weights.lambda_stft > 0:
            from gankit.losses.spectral import MultiResolutionSTFTLoss

            self._stft_loss = MultiResolutionSTFTLoss()

    def generator_config(self) -> dict[str, Any]:
        """The generator's config as plain types (stored in generator files so inference can rebuild it)."""
        return dict(self._generator_config)

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return vocoder_inference_file(self.name, self.generator_config(), self.frontend.to_config(),
                              nets["generator"].state_dict(), step)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("g", self.generator_keys), OptimizerGroup("d", self.discriminator_keys)]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return self.steps.updates(step, last_losses)

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        """The generator's output for every update of this micro-batch (no graph when G is not trained on it)."""
        with contextlib.nullcontext() if "g" in ctx.groups else torch.no_grad():
            ctx.cache["gen"] = self.generate(nets, batch)

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        gen: GeneratorPass = ctx.cache["gen"]
        if group == "d":
            terms, readout = self.discriminator_loss(nets, batch, gen)
            terms.readout = readout
            return terms
        if group == "g":
            terms = self.generator_loss(nets, batch, gen, self.steps.adversarial(ctx.step))
            terms.outputs = OutputPair(gen.fake, gen.real)
            return terms
        raise KeyError(f"{self.name} has no optimizer group '{group}'")

    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        """Random training crops keyed by (epoch, position) and whole validation utterances."""
        from gankit.data.vocoder_data import build_vocoder_datasets

        data = self.data
        if self.random_gain is not None and data.mels_dir:
            raise ConfigError(
                "augment.random_gain scales the training audio, but data.mels_dir gives fixed mels that would no "
                "longer describe it; unset one of them"
            )
        return build_vocoder_datasets(data, self.frontend, seed, log=log, random_gain=self.random_gain)

    def build_networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self._generator_factory()}
        for key, factory in self._discriminator_factories.items():
            nets[key] = factory()
        return nets

    def input_mel(self, batch: Mapping[str, Any]) -> Tensor:
        """The generator's input: given mels (fine-tuning) or mels of the batch's audio."""
        if batch.get("mel") is not None:
            return batch["mel"]
        with torch.autocast(batch["audio"].device.type, enabled=False):
            return self.frontend(batch["audio"].float())

    def generate(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> GeneratorPass:
        real = batch["audio"].unsqueeze(1)
        fake = nets["generator"](self.input_mel(batch))
        length = min(real.shape[-1], fake.shape[-1])  # given mels may be a frame short of the audio
        return GeneratorPass(fake=fake[..., :length], real=real[..., :length])

    def discriminator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass
    ) -> tuple[LossTerms, CriticReadout]:
        total = gen.real.new_zeros(())
        logs: dict[str, float] = {}
        objective = self.adversarial
        readout = CriticReadout(
            real_scores=[], fake_scores=[], losses=[], no_information_loss=objective.no_information_d_loss,
            score_scale=getattr(objective, "score_scale", None), objective=objective.name,
        )
        n = gen.real.shape[0]
        for key in self.discriminator_keys:
            out = nets[key](torch.cat([gen.real, gen.fake.detach()], dim=0))
            real = [s[:n].float() for s in out.scores]
            fake = [s[n:].float() for s in out.scores]
            loss, per_sub = self.adversarial.discriminator_loss(real, fake)
            total = total + loss
            logs[f"d/{key}"] = float(loss.detach())
            readout.real_scores.extend(float(s.detach().mean()) for s in real)
            readout.fake_scores.extend(float(s.detach().mean()) for s in fake)
            readout.losses.extend(float(v.detach()) for v in per_sub)
        logs["d/total"] = float(total.detach())
        return LossTerms(total=total, logs=logs), readout

    def mel_l1(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.autocast(fake.device.type, enabled=False):
            return F.l1_loss(self.loss_frontend(fake.squeeze(1).float()), self.loss_frontend(real.squeeze(1).float()))

    def generator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass, adversarial: bool
    ) -> LossTerms:
        logs: dict[str, float] = {}
        mel = self.mel_l1(gen.fake, gen.real)
        logs["g/mel"] = float(mel.detach())
        total = self.weights.lambda_mel * mel
        if self._stft_loss is not None:
            with torch.autocast(gen.fake.device.type, enabled=False):
                sc, mag = self._stft_loss(gen.fake.squeeze(1).float(), gen.real.squeeze(1).float())
            logs["g/stft"] = float((sc + mag).detach())
            total = total + self.weights.lambda_stft * (sc + mag)
        if adversarial:
            n = gen.real.shape[0]
            adv_total = gen.real.new_zeros(())
            fm_total = gen.real.new_zeros(())
            for key in self.discriminator_keys:
                out = nets[key](torch.cat([gen.real, gen.fake], dim=0))
                fake_scores = [s[n:].float() for s in out.scores]
                adv, _ = self.adversarial.generator_loss(fake_scores)
                real_feats = [[f[:n].detach().float() for f in layer] for layer in out.features]
                fake_feats = [[f[n:].float() for f in layer] for layer in out.features]
                fm = feature_matching_loss(
                    real_feats, fake_feats, mode=self.weights.feature_weights, n_layers=self.feature_matching_layers
                )
                adv_total = adv_total + adv
                fm_total = fm_total + fm
            logs["g/adv"] = float(adv_total.detach())
            logs["g/fm"] = float(fm_total.detach())
            total = total + self.weights.lambda_adv * adv_total + self.weights.lambda_fm * fm_total
        logs["g/total"] = float(total.detach())
        return LossTerms(total=total, logs=logs)

    @torch.no_grad()
    def validate(
        self,
        nets: Mapping[str, nn.Module],
        batches: Sequence[Mapping[str, Any]],
        is_new_best: Callable[[Mapping[str, float]], bool],
    ) -> ValidationResult:
        """Whole utterances (batches of 1): mel L1 on the loss mel, as the original's validation, averaged; the
        configured objective measures on the first `validation.measure_items`; audio and mel of each utterance."""
        media: list[MediaItem] = []
        l1: list[float] = []
        pairs: list[tuple[Any, Any]] = []
        rate = self.frontend.sample_rate
        for batch in batches:
            gen = self.generate(nets, batch)
            fake, real = gen.fake.float(), gen.real.float()
            fake_mel = self.loss_frontend(fake.squeeze(1))
            real_mel = self.loss_frontend(real.squeeze(1))
            frames = min(fake_mel.shape[-1], real_mel.shape[-1])
            l1.append(float(F.l1_loss(fake_mel[..., :frames], real_mel[..., :frames])))
            uid = str(batch["id"][0])
            fake_wave, real_wave = fake[0, 0].cpu(), real[0, 0].cpu()
            pairs.append((real_wave.numpy(), fake_wave.numpy()))
            media += [AudioItem(fake_wave, rate, uid, "audio"), SpectrogramItem(fake_mel[0].cpu(), "mel", uid, "mel"),
                      AudioItem(real_wave, rate, uid, "audio", role="reference"),
                      SpectrogramItem(real_mel[0].cpu(), "mel", uid, "mel", role="reference")]
        metrics = {"val/mel_l1": float(sum(l1) / len(l1))} if l1 else {}
        measures = self.validation.wanted(bool(metrics) and is_new_best(metrics))
        metrics.update(objective_measures(pairs[: self.validation.measure_items], measures, rate))
        return ValidationResult(metrics, media)
