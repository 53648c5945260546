"""Music translation for inference: a `music_translation` generator file (the task's export: one encoder, one WaveNet
decoder per domain) as a `Translator` that turns audio into the same music played in a target domain. Imported only
by `gankit translate` given such a file (infer/registry.py).

The path of one input, as in training: resample to the model's rate, peak-normalise to 0.95, cut to `max_seconds`,
pad with silence to a multiple of the encoder's pool, µ-law encode, encode, then generate as many samples as the
input has with the target domain's decoder (cached sample-by-sample generation, `WaveNetDecoder.generate`) and decode
the µ-law classes to float audio.

Randomness: each input gets its own torch generator, seeded from (seed, the input's index), and its samples are
drawn from it exactly as a one-row `SoftmaxSampler` on that generator draws them. Inputs are generated in batches
(padded to the longest, cut back), but an input's result does not depend on which batch it is in or its size: the
decoder is causal, so the padding only affects samples after the input's end, and its draws come from its own
generator. (Batched and single-row matrix products may round differently, which flips a sample only where a draw
falls within rounding of a class boundary.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit.audio.io import resample
from gankit.audio.mulaw import mu_law_decode, mu_law_encode
from gankit.checkpoint_io import load_state_strict
from gankit.data.vocoder_data import peak_normalise
from gankit.errors import AudioReadError, CheckpointError, ConfigError
from gankit.infer.loading import load_generator_file, resolve_device
from gankit.infer.vocoder import prepare_for_inference
from gankit.models.music_translation import Encoder, MusicTranslationConfig, WaveNetDecoder

SEED_STREAM = 53  # the per-input generators' stream, apart from every other use of a seed
PROGRESS_EVERY = 256  # generation steps between progress reports

Progress = Callable[[int], None]
"""Called with the number of output samples generated since its last call."""


def input_seed(seed: int, index: int) -> int:
    """The seed of input `index`'s generator: fully determined by (seed, index), independent across indices."""
    state = np.random.SeedSequence([seed & (2**64 - 1), SEED_STREAM, index]).generate_state(1, np.uint64)
    return int(state[0]) & (2**63 - 1)


class PerInputSampler:
    """`SoftmaxSampler` with one generator per batch row: row i's class is drawn exactly as a one-row SoftmaxSampler
    on `generators[i]` draws it (one uniform per call from that generator), so a row's draws do not depend on the
    rows beside it. `on_step` is called after every draw."""

    def __init__(self, generators: Sequence[torch.Generator], temperature: float = 1.0,
                 on_step: Callable[[], None] | None = None) -> None:
        if not temperature > 0:
            raise ValueError(f"PerInputSampler: temperature must be positive, got {temperature!r}")
        self.generators = list(generators)
        self.temperature = float(temperature)
        self.on_step = on_step

    def __call__(self, logits: Tensor) -> Tensor:
        if logits.shape[0] != len(self.generators):
            raise ValueError(f"PerInputSampler: {logits.shape[0]} rows for {len(self.generators)} generators")
        probabilities = torch.softmax(logits / self.temperature, dim=-1)
        uniform = torch.cat([torch.rand(1, 1, generator=g, dtype=logits.dtype, device=logits.device)
                             for g in self.generators])
        classes = torch.searchsorted(probabilities.cumsum(dim=-1), uniform).squeeze(1)
        classes = classes.clamp_(max=logits.shape[-1] - 1)  # as SoftmaxSampler: a cumsum rounded below 1
        if self.on_step is not None:
            self.on_step()
        return classes


class _ProgressCounter:
    """Turns generation steps of a batch into output samples (a row counts until its own length) for `progress`,
    reported every PROGRESS_EVERY steps and at the end."""

    def __init__(self, lengths: Sequence[int], progress: Progress | None) -> None:
        self.lengths = list(lengths)
        self.progress = progress
        self.steps = 0
        self.reported = 0

    def _samples_before(self, step: int) -> int:
        return sum(min(length, step) for length in self.lengths)

    def step(self) -> None:
        self.steps += 1
        if self.steps % PROGRESS_EVERY == 0:
            self.flush()

    def flush(self) -> None:
        if self.progress is None or self.steps == self.reported:
            return
        count = self._samples_before(self.steps) - self._samples_before(self.reported)
        self.reported = self.steps
        if count:
            self.progress(count)


@dataclass(repr=False)
class Translator:
    """A music-translation model ready for inference: the encoder, one decoder per domain, the sample rate it was
    trained at. `translate` turns audio into each target domain's rendition of it (see the module docstring)."""

    encoder: Encoder
    decoders: dict[str, WaveNetDecoder]  # by domain, in the file's domain order
    model: MusicTranslationConfig
    sample_rate: int
    source: str = "(in memory)"  # where it was loaded from
    step: int | None = None

    def __repr__(self) -> str:
        return (f"Translator({len(self.domains)} domains: {', '.join(self.domains)}; {self.sample_rate} Hz, "
                f"{self.device}, from {self.source})")

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.decoders)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def pool(self) -> int:
        """Samples per latent frame: inputs are padded to a multiple of it."""
        return self.model.encoder_pool

    def check_domain(self, domain: str) -> str:
        """`domain`, or a ConfigError naming the known domains."""
        if domain not in self.decoders:
            raise ConfigError(f"target domain {domain!r}: not a domain of {self.source}; its domains are "
                              f"{', '.join(self.domains)}")
        return domain

    def prepare(self, wave: np.ndarray, sample_rate: int | None = None, max_seconds: float | None = None) -> np.ndarray:
        """Mono audio at `sample_rate` (default: the model's) → float32 at the model's rate, peak-normalised to 0.95
        as in training, cut to `max_seconds`: exactly what is translated, and as long as its translation."""
        audio = np.asarray(wave, dtype=np.float32)
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if audio.ndim != 1:
            raise AudioReadError(f"expected a mono [samples] wave, got shape {list(audio.shape)}")
        if audio.size == 0:
            raise AudioReadError("the audio is empty")
        if not np.isfinite(audio).all():
            raise AudioReadError("the audio holds NaN or infinite samples")
        if max_seconds is not None and not max_seconds > 0:
            raise ConfigError(f"max_seconds must be positive, got {max_seconds!r}")
        if rate != self.sample_rate:
            audio = resample(audio, rate, self.sample_rate)
        audio = peak_normalise(audio)
        if max_seconds is not None:
            audio = audio[: max(1, int(max_seconds * self.sample_rate))]
        return np.ascontiguousarray(audio, dtype=np.float32)

    def encode(self, prepared: np.ndarray) -> Tensor:
        """A prepared wave (`prepare`) → its latent [1, latent_channels, ⌈samples / pool⌉] on the model's device; the
        wave is padded with silence to whole latent frames before µ-law encoding."""
        padded = np.zeros(-(-len(prepared) // self.pool) * self.pool, dtype=np.float32)
        padded[: len(prepared)] = prepared
        classes = torch.from_numpy(mu_law_encode(padded))[None].to(self.device)
        with torch.inference_mode():
            return self.encoder(classes)

    def translate_prepared(self, prepared: Sequence[np.ndarray], to: str, *, seed: int = 0, temperature: float = 1.0,
                           indices: Sequence[int] | None = None, batch_size: int = 8,
                           progress: Progress | None = None) -> list[np.ndarray]:
        """Prepared waves (`prepare`) → their translations to domain `to`, float32 at the model's rate, each as long
        as its input. Input k is generated from `input_seed(seed, indices[k])` (default index: k); batches of up to
        `batch_size` inputs of similar length (longest first) run together without changing any result.
        `progress(n)` is told of generated output samples as they come."""
        decoder = self.decoders[self.check_domain(to)]
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}")
        indices = list(range(len(prepared))) if indices is None else list(indices)
        if len(indices) != len(prepared):
            raise ValueError(f"translate: {len(indices)} indices for {len(prepared)} inputs")
        latents = [self.encode(wave) for wave in prepared]
        order = sorted(range(len(prepared)), key=lambda k: len(prepared[k]), reverse=True)
        results: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(prepared)
        for first in range(0, len(order), batch_size):
            group = order[first: first + batch_size]
            lengths = [len(prepared[k]) for k in group]
            generators = [torch.Generator(device=self.device).manual_seed(input_seed(seed, indices[k])) for k in group]
            counter = _ProgressCounter(lengths, progress)
            sampler = PerInputSampler(generators, temperature, on_step=counter.step)
            with torch.inference_mode():
                # Shorter inputs' latents padded with zero frames: only samples after their end see them.
                frames = max(latents[k].shape[-1] for k in group)  # the longest's: ⌈max(lengths) / pool⌉
                latent = torch.cat([torch.nn.functional.pad(latents[k], (0, frames - latents[k].shape[-1]))
                                    for k in group])
                classes = decoder.generate(latent, n_samples=max(lengths), sampler=sampler).cpu()
            counter.flush()
            for row, k in enumerate(group):
                results[k] = mu_law_decode(classes[row, : lengths[row]]).numpy()
        return results

    def translate(self, waves: Sequence[np.ndarray], to: str, *, sample_rate: int | Sequence[int] | None = None,
                  max_seconds: float | None = None, seed: int = 0, temperature: float = 1.0,
                  indices: Sequence[int] | None = None, batch_size: int = 8,
                  progress: Progress | None = None) -> list[np.ndarray]:
        """Mono waves at `sample_rate` (one rate for all, one per wave, or None: the model's) → their translations to
        domain `to`, float32 at the model's `sample_rate`, each as long as its input (cut to `max_seconds`). See
        `prepare` and `translate_prepared`."""
        self.check_domain(to)
        rates = sample_rate if isinstance(sample_rate, Sequence) else [sample_rate] * len(waves)
        if len(rates) != len(waves):
            raise ValueError(f"translate: {len(rates)} sample rates for {len(waves)} waves")
        prepared = [self.prepare(wave, rate, max_seconds) for wave, rate in zip(waves, rates, strict=True)]
        return self.translate_prepared(prepared, to, seed=seed, temperature=temperature, indices=indices,
                                       batch_size=batch_size, progress=progress)


def _state(value: Any, what: str, path: Path) -> dict[str, Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(f"{path}: malformed music-translation file ({what} must be a state dict); export it "
                              "again from its run")
    return value


def load_translator(source: str | Path, device: str | torch.device = "cpu", *, best: bool = False) -> Translator:
    """A `Translator` from a `music_translation` generator file (`RUN/checkpoints/generator_N.pt`) or its run
    directory (the latest generator, or the best with `best=True`). Read with `torch.load(weights_only=True)`;
    another kind of file is refused naming what it holds and the commands that take it."""
    path, obj = load_generator_file(source, best, "translator", "a music-translation model", "music_translation",
                                    "translate takes music-translation generator files")
    if not isinstance(obj.get("model"), dict):
        raise CheckpointError(f"{path}: malformed music-translation file ('model' missing); export it again from "
                              "its run")
    try:
        model = MusicTranslationConfig.from_dict(obj["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config does not build a translator: {exc}") from None
    domains = obj.get("domains")
    if not isinstance(domains, list) or len(domains) != model.n_domains or not all(isinstance(d, str) for d in domains):
        raise CheckpointError(f"{path}: malformed music-translation file ('domains' must list {model.n_domains} "
                              "names); export it again from its run")
    sample_rate = obj.get("sample_rate")
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 1:
        raise CheckpointError(f"{path}: malformed music-translation file ('sample_rate' must be a positive integer); "
                              "export it again from its run")
    decoder_states = obj.get("decoders")
    if not isinstance(decoder_states, dict) or sorted(decoder_states) != sorted(domains):
        held = ", ".join(sorted(decoder_states)) if isinstance(decoder_states, dict) else "none"
        raise CheckpointError(f"{path}: malformed music-translation file (decoders for {held}, but its domains are "
                              f"{', '.join(domains)}); export it again from its run")
    target = resolve_device(device)
    with torch.device(target):
        encoder = Encoder(model)
        decoders = {domain: WaveNetDecoder(model) for domain in domains}
    load_state_strict(encoder, _state(obj.get("encoder"), "'encoder'", path), "encoder", path)
    for domain, decoder in decoders.items():
        load_state_strict(decoder, _state(decoder_states[domain], f"the {domain} decoder", path),
                          f"{domain} decoder", path)
        prepare_for_inference(decoder)
    prepare_for_inference(encoder)
    step = obj.get("step")
    return Translator(encoder, decoders, model, sample_rate, source=str(path),
                      step=step if isinstance(step, int) else None)
