"""What a voice-conversion validation measures and shows (config section `validation:`).

Every held-out utterance is converted to a fixed other speaker of its group (chosen from its index, the same at
every validation) and scored as a set:
- `val/target_share`: the share of conversions a speaker classifier assigns to their target. The classifier is
  gankit's own, never trained against: logistic regression on each utterance's per-band mean and std of the
  normalised log-mel, fitted once on training utterances (chance is 1/speakers; real held-out speech is scored
  as `val/real_share`, the ceiling the measure can reach);
- `val/d_target_acc`: the discriminator's classification head on the same conversions (what the generator
  trains against — it can be fooled where the independent classifier is not);
- `val/content_margin`: DTW distance (per-utterance normalised frames of the scaled log-mel) from the conversion
  to another held-out sentence of the source speaker minus that to its own source sentence: positive while the
  words survive;
- `val/cycle_l1`, `val/identity_l1`: mel L1 of x_s → t → s and of x_s → s against x_s.
For the first `pairs_per_group` utterances of each group: source and converted spectrograms, the source audio
(once, as reference) and the conversion voiced by Griffin-Lim. Audio-domain measures (MFCC speaker classifier,
MCD, F0) are `gankit evaluate`'s: they need a vocoder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.audio.mel_scaling import MelScaling
from gankit.data.filelist import FileListEntry
from gankit.data.speaker_mels import SpeakerSet, utterance_mel
from gankit.data.speakers import speaker_of
from gankit.errors import ConfigError
from gankit.models.stargan_vc import VcArchitecture
from gankit.tasks.base import AudioItem, MediaItem, SpectrogramItem, ValidationResult


@dataclass
class ConversionValidationSettings:
    pairs_per_group: int = 3  # conversions kept as spectrograms and audio, per speaker group
    griffin_lim_iters: int = 32
    classifier_files: int = 20  # training utterances per speaker the validation speaker classifier is fitted on

    def __post_init__(self) -> None:
        if self.pairs_per_group < 0 or self.griffin_lim_iters < 1 or self.classifier_files < 2:
            raise ConfigError("validation: pairs_per_group ≥ 0, griffin_lim_iters ≥ 1 and classifier_files ≥ 2")


def utterance_features(mel: Tensor) -> np.ndarray:
    """[n_mels, frames] scaled log-mel → [2·n_mels]: per-band mean and std, a speaker's long-term colour."""
    m = mel.detach().float().cpu()
    return torch.cat([m.mean(dim=-1), m.std(dim=-1)]).numpy().astype(np.float64)


def _cmvn(mel: Tensor) -> np.ndarray:
    m = mel.detach().float().cpu().numpy().astype(np.float64)
    return (m - m.mean(axis=1, keepdims=True)) / (m.std(axis=1, keepdims=True) + 1e-8)


def dtw_distance(a: Tensor, b: Tensor) -> float:
    """Mean Euclidean frame distance along the DTW path of two [n_mels, frames] mels, each mean/variance
    normalised per band first (speaker colour removed, the sequence of sounds kept)."""
    import librosa

    cost, path = librosa.sequence.dtw(X=_cmvn(a), Y=_cmvn(b), metric="euclidean")
    return float(cost[-1, -1] / len(path))


class ConversionValidation:
    def __init__(self, settings: ConversionValidationSettings, frontend: Any, speakers: SpeakerSet,
                 scaling: MelScaling, architecture: VcArchitecture, source_conditioning: bool) -> None:
        self.settings = settings
        self.frontend = frontend
        self.speakers = speakers
        self.scaling = scaling
        self.architecture = architecture
        self.source_conditioning = source_conditioning
        self.classifier: Any = None
        self._classifier_data: tuple[list[FileListEntry], Any, int] | None = None

    # --- set-up, once per run ---------------------------------------------------------------------
    def batches(self, held_out: Sequence[FileListEntry], train: Sequence[FileListEntry],
                wav_dir: str | os.PathLike[str], max_frames: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
        """One batch per held-out utterance: its mel (cut to `max_frames` — and to the crop length of a fixed-crop
        network —, padded to a length the generator takes), speaker, fixed target, true length, another sentence
        of the same speaker (for the content margin) and, for the shown pairs, its audio."""
        from pathlib import Path

        root = Path(wav_dir)
        max_frames = min(max_frames, self.architecture.frames or max_frames)
        entries = sorted(held_out, key=lambda e: (self.speakers.groups[self.speakers.label(speaker_of(e.id))], e.id))
        mels = [utterance_mel(root / f"{e.id}.wav", self.frontend, self.scaling) for e in entries]
        shown: dict[str, int] = {}
        batches: list[dict[str, Any]] = []
        for i, (entry, (mel, audio)) in enumerate(zip(entries, mels, strict=True)):
            source = self.speakers.label(speaker_of(entry.id))
            partners = self.speakers.partners(source)
            target = partners[i % len(partners)]
            same = [j for j, e in enumerate(entries) if j != i and speaker_of(e.id) == speaker_of(entry.id)]
            mel = mel[:, :max_frames]
            batch: dict[str, Any] = {
                "mel": self.architecture.pad(mel)[None], "frames": mel.shape[-1], "speaker": torch.tensor([source]),
                "target": torch.tensor([target]), "id": entry.id,
                "other": mels[same[0]][0][:, :max_frames] if same else None,
            }
            group = self.speakers.groups[source]
            # One shown pair per source speaker (its first held-out utterance), up to pairs_per_group per group.
            first_of_speaker = i == 0 or speaker_of(entries[i - 1].id) != speaker_of(entry.id)
            if first_of_speaker and shown.get(group, 0) < self.settings.pairs_per_group:
                shown[group] = shown.get(group, 0) + 1
                batch["audio"] = torch.from_numpy(audio[: self.frontend.output_length(mel.shape[-1])].copy())
            batches.append(batch)
        self._classifier_data = (list(train), root, max_frames)  # fitted at the first validation, not before
        log(f"validation: {len(batches)} held-out utterances, each converted to a fixed other speaker of its group; "
            f"{sum(shown.values())} kept as audio (at most {max_frames} frames each)")
        return batches

    def _fit_classifier(self, train: Sequence[FileListEntry], root: Any, max_frames: int) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        per_speaker: dict[str, list[FileListEntry]] = {}
        for entry in sorted(train, key=lambda e: e.id):
            per_speaker.setdefault(speaker_of(entry.id), []).append(entry)
        features, labels = [], []
        for name, entries in per_speaker.items():
            for entry in entries[: self.settings.classifier_files]:
                mel, _ = utterance_mel(root / f"{entry.id}.wav", self.frontend, self.scaling)
                features.append(utterance_features(mel[:, :max_frames]))
                labels.append(self.speakers.label(name))
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
        self.classifier.fit(np.stack(features), np.asarray(labels))

    # --- each validation --------------------------------------------------------------------------
    def run(self, generator: nn.Module, discriminator: nn.Module,
            batches: Sequence[dict[str, Any]]) -> ValidationResult:
        from gankit.metrics.griffin_lim import griffin_lim_from_mel

        if self.classifier is None:
            if self._classifier_data is None:
                raise RuntimeError("ConversionValidation.run before batches()")
            self._fit_classifier(*self._classifier_data)
        converted_features, real_features, targets, sources = [], [], [], []
        d_hits, margins, cycle, identity = [], [], [], []
        media: list[MediaItem] = []
        for batch in batches:
            x, s, t, frames = batch["mel"], batch["speaker"], batch["target"], batch["frames"]
            src = s if self.source_conditioning else None
            converted = generator(x, t, src)
            back = generator(converted, s, t if self.source_conditioning else None)
            same = generator(x, s, src)
            _, logits = discriminator(converted)
            d_hits.append(float(logits.argmax(dim=-1)[0] == t[0]))
            cycle.append(float((back - x)[..., :frames].abs().mean()))
            identity.append(float((same - x)[..., :frames].abs().mean()))
            out = converted[0, :, :frames]
            converted_features.append(utterance_features(out))
            real_features.append(utterance_features(x[0, :, :frames]))
            targets.append(int(t[0]))
            sources.append(int(s[0]))
            if batch["other"] is not None:
                margins.append(dtw_distance(out, batch["other"]) - dtw_distance(out, x[0, :, :frames]))
            if "audio" in batch:
                media.extend(self._media(batch, out, griffin_lim_from_mel))
        chance = 1.0 / len(self.speakers)
        metrics = {
            "val/target_share": float(np.mean(self.classifier.predict(np.stack(converted_features)) == targets)),
            "val/real_share": float(np.mean(self.classifier.predict(np.stack(real_features)) == sources)),
            "val/d_target_acc": float(np.mean(d_hits)),
            "val/cycle_l1": float(np.mean(cycle)),
            "val/identity_l1": float(np.mean(identity)),
            "val/chance": chance,
        }
        if margins:
            metrics["val/content_margin"] = float(np.mean(margins))
        return ValidationResult(metrics, media)

    def _media(self, batch: dict[str, Any], converted: Tensor,
               griffin_lim: Callable[..., np.ndarray]) -> list[MediaItem]:
        names = self.speakers.names
        source, target = names[int(batch["speaker"][0])], names[int(batch["target"][0])]
        utterance = batch["id"].split("/", 1)[-1]
        group = f"{source} to {target} {utterance}".replace("/", "_")  # file names stay ASCII where the ids are
        frames = batch["frames"]
        log_mel = self.scaling.denormalise(converted.float().cpu())
        wave = griffin_lim(log_mel.numpy(), self.frontend, n_iter=self.settings.griffin_lim_iters)
        rate, source_mel = self.frontend.sample_rate, batch["mel"][0, :, :frames].float().cpu()
        return [
            SpectrogramItem(source_mel, f"mel ({self.scaling.kind})", group, "source", "reference"),
            SpectrogramItem(converted.float().cpu(), f"mel ({self.scaling.kind})", group, "converted"),
            AudioItem(batch["audio"].float().cpu(), rate, group, "source", "reference"),
            AudioItem(torch.from_numpy(np.asarray(wave, dtype=np.float32)), rate, group, "converted"),
        ]
