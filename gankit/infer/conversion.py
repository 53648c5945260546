"""Voice conversion for inference: a StarGAN-VC generator file (`stargan_vc` task) as a `VoiceConverter` that turns
audio into a target speaker's log-mel, and voices it with Griffin-Lim or a gankit vocoder on the same mel front-end.
Imported only by `gankit convert` and `gankit evaluate` given a conversion file (infer/registry.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit.audio.io import resample
from gankit.audio.mel import StftMelFrontend, build_frontend
from gankit.audio.mel_scaling import BandStandardisation, MelScaling, scaling_from_dict
from gankit.checkpoint_io import load_state_strict
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import CheckpointError, ConfigError, MelInputError
from gankit.infer.loading import load_generator_file, resolve_device
from gankit.infer.vocoder import Vocoder, load_vocoder, prepare_for_inference
from gankit.models.stargan_vc import ARCHITECTURES, DOWNSAMPLING, MIN_FRAMES, VcArchitecture, vc_architecture

GRIFFIN_LIM = "griffin-lim"
CHUNK_FRAMES = 512  # longer inputs are converted in chunks of this many frames (5.9 s at hop 256) …
OVERLAP_FRAMES = 64  # … overlapping by at least this many, cross-faded in the mel domain
CHUNKS_PER_FORWARD = 16  # bounds the memory a very long input takes
# The fields of a mel front-end a vocoder must share with the conversion model to voice its mels.
FRONTEND_FIELDS = ("preset", "sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax")

SpeakerRef = str | int


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def chunk_starts(frames: int, chunk: int, overlap: int) -> list[int]:
    """Evenly spaced chunk starts covering `frames`: the fewest chunks whose neighbours overlap by ≥ `overlap`."""
    if frames <= chunk:
        return [0]
    count = 1 + -(-(frames - chunk) // (chunk - overlap))  # ceil
    return [round(k * (frames - chunk) / (count - 1)) for k in range(count)]


def describe_frontend(frontend: StftMelFrontend) -> str:
    c = frontend.to_config()
    return (f"{c['preset']}, {c['sample_rate']} Hz, n_fft {c['n_fft']}, hop {c['hop_length']}, win {c['win_length']}, "
            f"{c['n_mels']} mels {c['fmin']:g}–{c['fmax']:g} Hz")


def frontend_differences(a: StftMelFrontend, b: StftMelFrontend) -> list[str]:
    """`field a≠b` for each of FRONTEND_FIELDS that differs between two front-ends."""
    ca, cb = a.to_config(), b.to_config()
    out = []
    for name in FRONTEND_FIELDS:
        x, y = ca.get(name), cb.get(name)
        same = float(x) == float(y) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else x == y
        if not same:
            out.append(f"{name} {x}≠{y}")
    return out


@dataclass(repr=False)
class VoiceConverter:
    """A StarGAN-VC generator ready for inference, with the mel front-end, feature scaling and speakers it was
    trained with. The generator reads and writes scaled log-mels (per-band standardised, or min–max for spec256);
    `convert` goes from audio to the target's log-mel on the front-end's own scale, which `voice` turns into
    audio."""

    generator: torch.nn.Module
    model: Any  # the architecture's config (StarGanVcConfig or StarGanVcSpec256Config)
    frontend: StftMelFrontend
    scaling: MelScaling
    speakers: tuple[str, ...]  # label order
    groups: tuple[str, ...]  # each speaker's group ("" where the corpus has none)
    architecture: VcArchitecture = ARCHITECTURES["stargan_vc"]
    source: str = "(in memory)"  # where it was loaded from
    step: int | None = None
    warn: Callable[[str], None] = _stderr_warning  # how a warning reaches the user (the CLI prints it)
    _warned: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def __repr__(self) -> str:
        return (f"VoiceConverter({len(self.speakers)} speakers, {describe_frontend(self.frontend)}, "
                f"{self.device}, from {self.source})")

    # --- properties ------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def source_conditioning(self) -> bool:
        return self.architecture.source_conditioning(self.model)

    def group_of(self, speaker: str) -> str:
        return self.groups[self.label(speaker, "speaker")]

    def partners(self, speaker: str) -> list[str]:
        """The other speakers of `speaker`'s group: the targets it was trained to convert to."""
        group = self.group_of(speaker)
        return [name for name, g in zip(self.speakers, self.groups, strict=True) if g == group and name != speaker]

    def untrained(self, seed: int) -> VoiceConverter:
        """The same converter with the generator's weights freshly drawn from `seed` (the global RNG is left as it
        was): the no-training reference of `gankit evaluate --compare-untrained`."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = self.architecture.generator_class(self.model)
        generator = prepare_for_inference(generator.to(self.device))
        return replace(self, generator=generator, source=f"untrained (seed {seed})", step=0, _warned=set())

    # --- speakers ---------------------------------------------------------------------------------------
    def _known(self) -> str:
        named = [f"{n} ({g})" if g else n for n, g in zip(self.speakers, self.groups, strict=True)]
        return ", ".join(named)

    def label(self, speaker: SpeakerRef, role: str = "target") -> int:
        """The label of a speaker name (or a label, checked); ConfigError listing the known speakers."""
        if isinstance(speaker, int) and not isinstance(speaker, bool):
            if 0 <= speaker < len(self.speakers):
                return speaker
        elif speaker in self.speakers:
            return self.speakers.index(speaker)
        raise ConfigError(f"{role} speaker {speaker!r}: not a speaker of {self.source}; its speakers are "
                          f"{self._known()}")

    def check_speakers(self, target: SpeakerRef, source: SpeakerRef | None) -> tuple[int, int | None]:
        """(target label, source label or None). A source is required with source conditioning; a source of
        another group than the target's is converted (the model never trained on such a pair) with one warning
        per group pair."""
        t = self.label(target, "target")
        if source is None:
            if self.source_conditioning:
                raise ConfigError(f"{self.source}: this model was trained with source conditioning, so it needs the "
                                  f"source speaker (--source); its speakers are {self._known()}")
            return t, None
        s = self.label(source, "source")
        pair = (self.groups[s], self.groups[t])
        if pair[0] != pair[1] and pair not in self._warned:
            self._warned.add(pair)
            self.warn(f"converting across speaker groups ({self.speakers[s]} in {pair[0]!r} → {self.speakers[t]} "
                      f"in {pair[1]!r}): the model was trained within groups only; expect a poorer conversion")
        return t, s

    def _labels(self, value: SpeakerRef | Sequence[SpeakerRef] | Tensor, batch: int, role: str) -> Tensor:
        if isinstance(value, Tensor):
            labels = [int(v) for v in value.reshape(-1)]
        elif isinstance(value, (str, int)):
            labels = [self.label(value, role)] * batch
        else:
            labels = [self.label(v, role) for v in value]
        if len(labels) != batch:
            raise ValueError(f"VoiceConverter: {len(labels)} {role} speakers for a batch of {batch}")
        for v in labels:
            self.label(v, role)
        return torch.tensor(labels, dtype=torch.long, device=self.device)

    # --- mels -------------------------------------------------------------------------------------------
    def normalise(self, log_mel: Tensor) -> Tensor:
        return self.scaling.normalise(log_mel)

    def denormalise(self, norm_mel: Tensor) -> Tensor:
        return self.scaling.denormalise(norm_mel)

    @property
    def n_mels(self) -> int:
        return self.architecture.n_mels(self.model)

    def analyse(self, wave: np.ndarray, sample_rate: int) -> tuple[Tensor, np.ndarray]:
        """(scaled log-mel [n_mels, frames], the audio it came from: at the model's rate, peak-normalised to
        0.95 as in training). MelInputError for audio too short for the front-end."""
        audio = np.asarray(wave, dtype=np.float32)
        if audio.ndim != 1:
            raise MelInputError(f"expected a mono [samples] wave, got shape {list(audio.shape)}")
        if sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate)
        if audio.shape[0] < self.frontend.min_samples:
            raise MelInputError(f"{audio.shape[0]} samples at {self.sample_rate} Hz is too short for the "
                                f"{self.frontend.preset} mel (it needs at least {self.frontend.min_samples})")
        if not np.isfinite(audio).all():
            raise MelInputError("the audio holds NaN or infinite samples")
        audio = peak_normalise(audio)
        with torch.inference_mode():
            mel = self.frontend(torch.from_numpy(np.ascontiguousarray(audio)))
        return self.normalise(mel), audio

    def convert_mel(self, norm_mel: Tensor, target: SpeakerRef | Sequence[SpeakerRef] | Tensor,
                    source: SpeakerRef | Sequence[SpeakerRef] | Tensor | None = None, *,
                    chunk_frames: int = CHUNK_FRAMES, overlap_frames: int = OVERLAP_FRAMES) -> Tensor:
        """Scaled log-mel [n_mels, T] (or [B, n_mels, T]) → the same shape converted to `target` (a name or label, or
        one per batch item), on the input's device.

        Any T ≥ 1 is taken: the input is padded by repeating its last frame and the output cut back. Inputs longer than
        `chunk_frames` (a fixed-crop network's crop length, whatever is passed) are converted in evenly spaced chunks
        overlapping by at least `overlap_frames`; each chunk's weight ramps linearly over `overlap_frames` at its inner
        edges and overlapping outputs are averaged by those weights (a linear cross-fade). The generator normalises
        every layer over time (instance norm), so a chunked conversion is not the whole-utterance one. Measured on a
        seeded untrained model (tests/test_convert.py): six different sentences (1,550 frames, 4 chunks) differ from
        their whole conversion by 0.12 on average and 1.5 at most, in normalised-mel units against an output spread
        (std) of 0.5; one sentence repeated (steady statistics) by 0.012 on average."""
        single = norm_mel.dim() == 2
        x = norm_mel[None] if single else norm_mel
        if x.dim() != 3 or x.shape[1] != self.n_mels or x.shape[-1] < 1:
            raise MelInputError(f"mel of shape {list(norm_mel.shape)}: the converter takes [{self.n_mels}, "
                                f"frames] or [batch, {self.n_mels}, frames]")
        chunk_frames = self.architecture.frames or chunk_frames
        if chunk_frames < MIN_FRAMES or chunk_frames % DOWNSAMPLING or not 0 < overlap_frames <= chunk_frames // 2:
            raise ValueError(f"chunk_frames must be a multiple of {DOWNSAMPLING} ≥ {MIN_FRAMES} and overlap_frames in "
                             f"1..chunk_frames/2, got {chunk_frames} and {overlap_frames}")
        batch = x.shape[0]
        t = self._labels(target, batch, "target")
        s = None if source is None else self._labels(source, batch, "source")
        if self.source_conditioning and s is None:
            raise ConfigError(f"{self.source}: this model was trained with source conditioning, so it needs the "
                              "source speaker")
        if not self.source_conditioning:
            s = None  # the source only chose the group warning; this generator takes none
        with torch.inference_mode():
            x = x.to(self.device, torch.float32)
            if x.shape[-1] <= chunk_frames:
                out = self.generator(self.architecture.pad(x), t, s)[..., : x.shape[-1]]
            else:
                out = self._chunked(x, t, s, chunk_frames, overlap_frames)
        out = out.to(norm_mel.device)
        return out[0] if single else out

    def _chunked(self, x: Tensor, t: Tensor, s: Tensor | None, chunk: int, overlap: int) -> Tensor:
        frames, batch = x.shape[-1], x.shape[0]
        starts = chunk_starts(frames, chunk, overlap)
        ramp = (torch.arange(overlap, device=x.device, dtype=x.dtype) + 0.5) / overlap
        total = torch.zeros_like(x)
        weight = torch.zeros(frames, device=x.device, dtype=x.dtype)
        for first in range(0, len(starts), CHUNKS_PER_FORWARD):
            group = starts[first: first + CHUNKS_PER_FORWARD]
            pieces = torch.cat([x[..., a: a + chunk] for a in group])  # [len(group)·B, n_mels, chunk]
            repeat = len(group)
            out = self.generator(pieces, t.repeat(repeat), None if s is None else s.repeat(repeat))
            for k, a in enumerate(group):
                w = torch.ones(chunk, device=x.device, dtype=x.dtype)
                if first + k > 0:
                    w[:overlap] = ramp
                if first + k < len(starts) - 1:
                    w[-overlap:] = ramp.flip(0)
                total[..., a: a + chunk] += out[k * batch: (k + 1) * batch] * w
                weight[a: a + chunk] += w
        return total / weight

    def convert(self, wave: np.ndarray, sample_rate: int, target: SpeakerRef, source: SpeakerRef | None = None,
                **chunking: int) -> Tensor:
        """Audio (any rate: resampled to the model's) → `target`'s log-mel [n_mels, frames] on the front-end's own
        scale (denormalised), on the CPU; `frames` is the front-end's count for the audio at the model's rate, so
        voicing it gives the input's duration to within a hop. `chunking`: see `convert_mel`."""
        t, s = self.check_speakers(target, source)
        norm_mel, _ = self.analyse(wave, sample_rate)
        return self.denormalise(self.convert_mel(norm_mel, t, s, **chunking)).cpu()

    # --- voicing ----------------------------------------------------------------------------------------
    def check_vocoder(self, vocoder: Vocoder) -> None:
        """CheckpointError naming both front-ends when `vocoder`'s mel is not the one this model converts."""
        differences = frontend_differences(vocoder.frontend, self.frontend)
        if differences:
            raise CheckpointError(
                f"{vocoder.source}: this vocoder's mel ({describe_frontend(vocoder.frontend)}) is not the conversion "
                f"model's ({describe_frontend(self.frontend)}, {self.source}): {', '.join(differences)}; use a "
                "vocoder trained on the model's mel, or griffin-lim")

    def voice(self, log_mel: Tensor | np.ndarray, vocoder: Vocoder | str = GRIFFIN_LIM,
              griffin_lim_iters: int = 32) -> np.ndarray:
        """A [n_mels, frames] log-mel (the front-end's scale, as `convert` returns) → float32 audio of frames × hop
        samples at `sample_rate`, by Griffin-Lim ("griffin-lim") or a gankit `Vocoder` on the same front-end."""
        if isinstance(vocoder, str):
            if vocoder != GRIFFIN_LIM:
                raise ConfigError(f"vocoder {vocoder!r}: give a Vocoder (gankit.infer.load_vocoder) or "
                                  f"{GRIFFIN_LIM!r}")
            from gankit.metrics.griffin_lim import griffin_lim_from_mel

            return griffin_lim_from_mel(np.asarray(log_mel, dtype=np.float32), self.frontend,
                                        n_iter=griffin_lim_iters)
        self.check_vocoder(vocoder)
        mel = torch.as_tensor(np.asarray(log_mel, dtype=np.float32))
        return vocoder(mel).float().cpu().numpy()


def load_voicer(spec: str | Path, converter: VoiceConverter, device: str | torch.device = "cpu") -> Vocoder | str:
    """"griffin-lim", or the gankit vocoder at `spec` (a generator file or run directory) after checking that its
    mel front-end is the converter's."""
    if str(spec) == GRIFFIN_LIM:
        return GRIFFIN_LIM
    vocoder = load_vocoder(spec, device=device)
    converter.check_vocoder(vocoder)
    return vocoder


def _floats(obj: dict[str, Any], key: str, count: int, path: Path) -> tuple[float, ...]:
    value = obj.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"{path}: malformed conversion file ({key!r} must be {count} numbers, one per mel "
                              "band); export it again from its run")
    return tuple(float(v) for v in value)


def _names(obj: dict[str, Any], key: str, count: int, path: Path) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != count or not all(isinstance(v, str) for v in value):
        raise CheckpointError(f"{path}: malformed conversion file ({key!r} must list {count} names, one per speaker "
                              "label); export it again from its run")
    return tuple(value)


def load_converter(source: str | Path, device: str | torch.device = "cpu", *, best: bool = False) -> VoiceConverter:
    """A `VoiceConverter` from a `stargan_vc` generator file (`RUN/checkpoints/generator_N.pt`) or its run directory
    (the latest generator, or the best with `best=True`). Read with `torch.load(weights_only=True)`; another kind of
    file is refused naming what it holds and the commands that take it."""
    path, obj = load_generator_file(source, best, "converter", "a voice-conversion model", "stargan_vc",
                                    "convert takes voice-conversion generator files", " (a vocoder goes to --vocoder)")
    model_dict, state = obj.get("model"), obj.get("state_dict")
    if not isinstance(model_dict, dict) or not isinstance(state, dict) or not isinstance(obj.get("frontend"), dict):
        raise CheckpointError(f"{path}: malformed conversion file ('model', 'state_dict' or 'frontend' missing); "
                              "export it again from its run")
    try:
        architecture = vc_architecture(str(obj.get("architecture", "stargan_vc")))
        model = architecture.config_class.from_dict(model_dict)
        frontend = build_frontend(obj["frontend"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config does not build a converter: {exc}") from None
    n_mels, n_speakers = architecture.n_mels(model), architecture.n_speakers(model)
    if frontend.n_mels != n_mels:
        raise CheckpointError(f"{path}: the model takes {n_mels} mels but its front-end makes "
                              f"{frontend.n_mels}; the file is inconsistent")
    scaling = _scaling(obj, n_mels, path)
    speakers = _names(obj, "speakers", n_speakers, path)
    groups = (_names(obj, "speaker_groups", n_speakers, path) if "speaker_groups" in obj
              else ("",) * n_speakers)
    target = resolve_device(device)
    with torch.device(target):
        generator = architecture.generator_class(model)
    load_state_strict(generator, state, "generator", path)
    step = obj.get("step")
    return VoiceConverter(prepare_for_inference(generator), model, frontend, scaling, speakers, groups, architecture,
                          source=str(path), step=step if isinstance(step, int) else None)


def _scaling(obj: dict[str, Any], n_mels: int, path: Path) -> MelScaling:
    """The file's feature scaling: its `scaling` entry, or (files written before it existed) per-band statistics."""
    if "scaling" in obj:
        if not isinstance(obj["scaling"], dict):
            raise CheckpointError(f"{path}: malformed conversion file ('scaling' must be a mapping)")
        try:
            scaling = scaling_from_dict(obj["scaling"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: malformed conversion file ('scaling': {exc}); export it again") from None
        if isinstance(scaling, BandStandardisation) and scaling.n_mels != n_mels:
            raise CheckpointError(f"{path}: its scaling has {scaling.n_mels} bands but the model takes {n_mels}")
        return scaling
    band_mean = _floats(obj, "band_mean", n_mels, path)
    band_scale = _floats(obj, "band_scale", n_mels, path)
    if min(band_scale) <= 0:
        raise CheckpointError(f"{path}: 'band_scale' holds a value ≤ 0; export it again from its run")
    return BandStandardisation(band_mean, band_scale)
