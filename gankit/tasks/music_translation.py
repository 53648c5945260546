"""Universal Music Translation on the shared engine (Mor et al. 2018; facebookresearch/music-translation `train.py`):
one encoder, one WaveNet decoder per domain, a domain-confusion classifier — every decoder trained in one process
(the public code trains one per process, and on one machine rotates every domain through one decoder).

Each step takes a batch holding every domain (the engine's domain-balanced sampler) and makes two updates:
- "d" (the confusion classifier): CE(C(E(x)), domain) × d_lambda over all domains' latents together (the encoder
  is frozen while it runs);
- "g" (encoder + decoders): each domain's items are reconstructed by that domain's decoder, teacher-forced on the
  clean µ-law segment and conditioned on the latent of its pitch-augmented copy; loss = reconstruction CE − d_lambda
  · CE(C(E(x_aug)), domain): the encoder learns to hide the domain from the classifier.
Every decoder is called on every step on every rank (DDP all-reduces each network from its own forward)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError, DataError
from gankit.models.music_translation import DomainClassifier, Encoder, MusicTranslationConfig, WaveNetDecoder
from gankit.settings import from_mapping
from gankit.tasks.base import ClassifierReadout, LossTerms, OptimizerGroup, StepContext, Update, ValidationResult
from gankit.tasks.music_translation_validation import TranslationValidation, TranslationValidationSettings


@dataclass
class MtDataSettings:
    """`data:`: a folder written by `gankit prepare SRC OUT --format domains` (or `--builtin instruments OUT`)."""

    dir: str | None = None
    batch_size: int = 6  # per rank: a multiple of the domain count (the same number of segments of each domain)
    num_workers: int = 0
    sample_rate: int = 16000
    segment: int = 12000  # samples per training segment (a multiple of model.encoder_pool)
    domains: list[str] | None = None  # train these domains only (default: every domain of domains.tsv)
    augment: dict[str, Any] = field(default_factory=dict)  # PitchAugment settings

    def __post_init__(self) -> None:
        if not self.dir:
            raise ConfigError("data.dir is not set: give the folder `gankit prepare SRC OUT --format domains` wrote "
                              "(or `gankit prepare --builtin instruments OUT`).")
        if self.batch_size < 1 or self.num_workers < 0 or self.segment < 1:
            raise ConfigError("data.batch_size and data.segment must be ≥ 1 and data.num_workers ≥ 0.")


@dataclass
class MtLossSettings:
    d_lambda: float = 1e-2  # the confusion term's weight, in both updates

    def __post_init__(self) -> None:
        if self.d_lambda < 0:
            raise ConfigError(f"loss.d_lambda must be ≥ 0, got {self.d_lambda}")


def decoder_key(domain: str) -> str:
    """The network name of a domain's decoder: `decoder_<domain>` with anything but letters, digits and _ as _."""
    return "decoder_" + re.sub(r"\W", "_", domain)


class MusicTranslationTask:
    """Groups "d" (the confusion classifier) and "g" (encoder and every decoder), in that order each step."""

    name = "music_translation"
    best_metric = ("val/recon", "min")
    progress_keys: Mapping[str, str] = {"g/recon": "recon", "d/conf": "conf", "d/conf_acc": "acc"}
    ema_networks: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        from gankit.data.domain_audio import PitchAugment
        from gankit.data.domains import DOMAINS_FILE, read_domain_table

        self.data = from_mapping(MtDataSettings, config.get("data"), "data")
        self.loss_settings = from_mapping(MtLossSettings, config.get("loss"), "loss")
        self.augment = from_mapping(PitchAugment, self.data.augment, "data.augment")
        root = Path(self.data.dir)  # type: ignore[arg-type]
        known = [d.name for d in read_domain_table(root / DOMAINS_FILE)]
        if self.data.domains:
            unknown = [d for d in self.data.domains if d not in known]
            if unknown:
                raise DataError(f"data.domains: {', '.join(unknown)} not in {root} (its domains: {', '.join(known)})")
            known = [d for d in known if d in self.data.domains]
        if len(known) < 2:
            raise DataError(f"{root}: music translation needs at least two domains, got {', '.join(known) or 'none'}")
        self.domains: tuple[str, ...] = tuple(known)
        keys = [decoder_key(d) for d in self.domains]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"domains {', '.join(self.domains)} give clashing network names ({', '.join(keys)})")
        self.decoder_keys = tuple(keys)
        model = dict(config.get("model") or {})
        given = model.get("n_domains")
        if given is not None and given != len(self.domains):
            raise ConfigError(f"model.n_domains is {given} but the data holds {len(self.domains)} domains; leave it "
                              "out, it follows the data")
        model["n_domains"] = len(self.domains)
        self.model = MusicTranslationConfig.from_dict(model)
        if self.data.segment % self.model.encoder_pool:
            raise ConfigError(f"data.segment {self.data.segment} must be a multiple of model.encoder_pool "
                              f"{self.model.encoder_pool}")
        if self.data.batch_size % len(self.domains):
            raise ConfigError(f"data.batch_size {self.data.batch_size} must be a multiple of the {len(self.domains)} "
                              "domains (every domain in every batch)")
        self.validation = TranslationValidation(
            from_mapping(TranslationValidationSettings, config.get("validation"), "validation"),
            self.domains, self.decoder_keys, self.data.sample_rate, self.data.segment, self.model.encoder_pool)

    # --- networks and schedule --------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"encoder": Encoder(self.model), "classifier": DomainClassifier(self.model)}
        for key in self.decoder_keys:
            nets[key] = WaveNetDecoder(self.model)
        return nets

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("d", ("classifier",)), OptimizerGroup("g", ("encoder", *self.decoder_keys))]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return [Update("d"), Update("g")]

    def probe_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """One item of each domain from the example batch: every decoder is called, as in training."""
        domains = batch["domain"].tolist()
        pick = [domains.index(label) for label in range(len(self.domains)) if label in domains]
        index = torch.tensor(pick)
        return {k: (v[index] if torch.is_tensor(v) and v.dim() > 0 else [v[i] for i in pick]
                    if isinstance(v, list) else v) for k, v in batch.items()}

    # --- losses -----------------------------------------------------------------------------------
    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        """Nothing is shared between the two updates: the classifier reads E(x), the generator group E(x_aug)."""

    def _confusion(self, classifier: nn.Module, latent: Tensor, domains: Tensor) -> tuple[Tensor, float]:
        logits = classifier(latent)
        accuracy = float((logits.detach().argmax(dim=-1) == domains).float().mean())
        return F.cross_entropy(logits.float(), domains), accuracy

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        d_lambda = self.loss_settings.d_lambda
        domains: Tensor = batch["domain"]
        if group == "d":
            with torch.no_grad():
                latent = nets["encoder"](batch["audio"])
            ce, accuracy = self._confusion(nets["classifier"], latent, domains)
            readout = ClassifierReadout("classifier", accuracy, float(ce.detach()), chance=1.0 / len(self.domains),
                                        role="confusion")
            return LossTerms(ce * d_lambda, {"d/conf": float(ce.detach())}, classifiers=[readout],
                             scalars={"d/conf_acc": accuracy})
        latent = nets["encoder"](batch["augmented"])
        clean: Tensor = batch["audio"]
        logs: dict[str, float] = {}
        recon = clean.new_zeros((), dtype=torch.float32)
        for label, key in enumerate(self.decoder_keys):
            rows = (domains == label).nonzero(as_tuple=True)[0]
            # Called on every step, even on an empty share: DDP reduces a network's gradients from its own forward.
            logits = nets[key](clean[rows], latent[rows])
            if rows.numel() == 0:
                recon = recon + logits.sum() * 0.0
                continue
            ce = F.cross_entropy(logits.float(), clean[rows], reduction="sum")
            logs[f"g/recon_{self.domains[label]}"] = float(ce.detach()) / clean[rows].numel()
            recon = recon + ce
        recon = recon / clean.numel()
        confusion, accuracy = self._confusion(nets["classifier"], latent, domains)
        total = recon - d_lambda * confusion
        logs.update({"g/total": float(total.detach()), "g/recon": float(recon.detach()),
                     "g/conf": float(confusion.detach())})
        return LossTerms(total, logs, scalars={"g/conf_acc": accuracy})

    # --- data, validation, export -----------------------------------------------------------------
    def build_datasets(self, seed: int, log: Callable[[str], None] = print) -> tuple[Any, list[dict[str, Any]]]:
        from gankit.data.domain_audio import DomainAudioDataset
        from gankit.data.filelist import read_filelist
        from gankit.data.speakers import speaker_of

        root = Path(self.data.dir)  # type: ignore[arg-type]
        keep = set(self.domains)
        train = [e for e in read_filelist(root / "train.txt") if speaker_of(e.id) in keep]
        held_out = [e for e in read_filelist(root / "val.txt") if speaker_of(e.id) in keep]
        missing = sorted(keep - {speaker_of(e.id) for e in train})
        if missing:
            raise DataError(f"{root}/train.txt has no files of {', '.join(missing)}; prepare the corpus again or "
                            "leave them out (data.domains)")
        dataset = DomainAudioDataset(train, root / "wavs", self.domains, self.data.sample_rate, self.data.segment,
                                     seed, self.augment)
        dataset[0]  # fail now, not in a worker, when the first file cannot be used
        log(f"data: {len(train)} training and {len(held_out)} validation files of {len(self.domains)} domains "
            f"({', '.join(self.domains)}) in {root}; {self.data.batch_size // len(self.domains)} segment(s) of each "
            "domain per batch")
        return dataset, self.validation.batches(held_out, root / "wavs", log)

    def validate(self, nets: Mapping[str, nn.Module], batches: Sequence[Mapping[str, Any]],
                 is_new_best: Callable[[Mapping[str, float]], bool]) -> ValidationResult:
        return self.validation.run(nets, batches)

    def export(self, nets: Mapping[str, nn.Module], step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "generator", "version": 1, "task": self.name, "step": step,
                "model": self.model.to_dict(), "domains": list(self.domains), "sample_rate": self.data.sample_rate,
                "encoder": nets["encoder"].state_dict(),
                "decoders": {d: nets[k].state_dict() for d, k in zip(self.domains, self.decoder_keys, strict=True)}}


def build_music_translation_task(config: Mapping[str, Any]) -> MusicTranslationTask:
    return MusicTranslationTask(config)
