"""`Vocoder`: a generator prepared for inference (eval, weight norm folded, no autograd) plus its mel front-end."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.audio.mel import MelFrontend, build_frontend
from gankit.errors import MelInputError
from gankit.models.layers import remove_parametrizations

ArrayLike = Tensor | np.ndarray


def prepare_for_inference(generator: nn.Module) -> nn.Module:
    """eval(), weight norm folded into plain weights (same output, fewer ops per call), no gradients."""
    generator.eval()
    remover = getattr(generator, "remove_weight_norm", None)
    if callable(remover):
        remover()  # the family's own (CONTRACTS.md: models offer it for inference)
    else:
        remove_parametrizations(generator)
    return generator.requires_grad_(False)


class _ValidLengthMask:
    """Makes a padded batch compute what each item computes alone.

    A lone item's convolutions see zeros beyond its end (their zero padding). In a batch padded to the longest
    item, they would see what the padding frames turned into instead, and the last frames of every shorter item
    would differ. A forward pre-hook on every convolution zeroes each item's positions beyond its own length (at
    that layer's resolution, an integer multiple of the mel frames), so each valid output sees exactly what it
    sees alone. Exact for generators whose convolutions zero-pad (HiFi-GAN); the cost is one multiply per layer.
    """

    def __init__(self, module: nn.Module, frames: Sequence[int], device: torch.device) -> None:
        self.frames = torch.tensor(list(frames), device=device)
        self.total = max(frames)
        self.masks: dict[int, Tensor] = {}
        self.handles = [
            m.register_forward_pre_hook(self._hook) for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)
        ]

    def _mask(self, length: int, dtype: torch.dtype) -> Tensor:
        if length not in self.masks:
            valid = (self.frames * length) // self.total  # [B] positions each item owns at this resolution
            positions = torch.arange(length, device=self.frames.device)
            self.masks[length] = (positions[None, :] < valid[:, None]).unsqueeze(1).to(dtype)  # [B, 1, L]
        return self.masks[length]

    def _hook(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0]
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[0] != len(self.frames):
            return None
        return (x * self._mask(x.shape[-1], x.dtype), *args[1:])

    def __enter__(self) -> _ValidLengthMask:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.handles:
            handle.remove()


class Vocoder:
    """Mel → waveform with one generator and the front-end it was trained on.

    `vocoder(mel)`: [n_mels, T] → [T·hop] or [B, n_mels, T] → [B, T·hop], float32 in [-1, 1], on the mel's device
    (numpy input → CPU tensor). `resynthesize(wave)`: audio at `sample_rate` → the front-end's mel → audio.
    """

    def __init__(
        self,
        generator: nn.Module,
        frontend: MelFrontend | dict[str, Any],
        family: str = "hifigan",
        *,
        source: str = "(in memory)",
        step: int | None = None,
    ) -> None:
        self.generator = prepare_for_inference(generator)
        self.frontend: MelFrontend = build_frontend(frontend) if isinstance(frontend, dict) else frontend
        self.family = family
        self.source = source
        self.step = step
        # Shortest mel the generator accepts; HiFi-GAN's zero-padded convolutions take a single frame.
        self.min_frames = int(getattr(generator, "min_frames", 1))

    def __repr__(self) -> str:
        return (
            f"Vocoder({self.family}, {self.sample_rate} Hz, hop {self.hop_length}, {self.n_mels} mels "
            f"[{self.frontend.preset}], {self.device}, from {self.source})"
        )

    # --- properties --------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def hop_length(self) -> int:
        return self.frontend.hop_length

    @property
    def n_mels(self) -> int:
        return self.frontend.n_mels

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device) -> Vocoder:
        self.generator.to(device)
        return self

    # --- vocoding ----------------------------------------------------------------------------------------
    def _check_mel(self, mel: Tensor) -> None:
        shape = tuple(mel.shape)
        if mel.dim() not in (2, 3) or shape[-2] != self.n_mels:
            raise MelInputError(
                f"mel of shape {list(shape)}: this vocoder takes [{self.n_mels}, frames] or "
                f"[batch, {self.n_mels}, frames] (preset {self.frontend.preset})"
            )
        if not mel.is_floating_point():
            raise MelInputError(f"mel of dtype {mel.dtype}: a log-mel is floating point")
        if shape[-1] < self.min_frames:
            raise MelInputError(f"mel of {shape[-1]} frames: the generator needs at least {self.min_frames}")
        if not bool(torch.isfinite(mel).all()):
            raise MelInputError("mel holds NaN or infinite values; the vocoder would output noise or silence")

    def __call__(self, mel: ArrayLike) -> Tensor:
        tensor = torch.from_numpy(np.asarray(mel)) if isinstance(mel, np.ndarray) else mel
        self._check_mel(tensor)
        single = tensor.dim() == 2
        with torch.inference_mode():
            x = tensor.to(self.device, torch.float32)
            wave = self.generator(x.unsqueeze(0) if single else x)  # [B, 1, T·hop]
        wave = wave.squeeze(1).to(tensor.device)
        return wave[0] if single else wave

    def vocode_batch(self, mels: Sequence[ArrayLike]) -> list[Tensor]:
        """Several [n_mels, T_i] mels in one forward: padded to the longest, masked so that each output equals
        what `vocoder(mel)` gives alone (float rounding aside), and cut back to T_i·hop samples. Generators that
        declare `exact_under_length_mask = False` get unequal lengths one at a time instead."""
        tensors = [torch.from_numpy(np.asarray(m)) if isinstance(m, np.ndarray) else m for m in mels]
        for t in tensors:
            if t.dim() != 2:
                raise MelInputError(f"vocode_batch takes [n_mels, frames] mels, got shape {list(t.shape)}")
            self._check_mel(t)
        if len(tensors) == 1:
            return [self(tensors[0])]
        frames = [int(t.shape[-1]) for t in tensors]
        if len(set(frames)) > 1 and not getattr(self.generator, "exact_under_length_mask", True):
            # Reflection padding (MelGAN) sees the padding frames whatever the mask does: one item at a time.
            return [self(t) for t in tensors]
        longest = max(frames)
        with torch.inference_mode():
            batch = torch.zeros(len(tensors), self.n_mels, longest, device=self.device)
            for i, t in enumerate(tensors):
                batch[i, :, : frames[i]] = t.to(self.device, torch.float32)
            if len(set(frames)) == 1:
                waves = self.generator(batch).squeeze(1)
            else:
                with _ValidLengthMask(self.generator, frames, self.device):
                    waves = self.generator(batch).squeeze(1)
        return [waves[i, : self.frontend.output_length(n)].to(tensors[i].device) for i, n in enumerate(frames)]

    # --- analysis ----------------------------------------------------------------------------------------
    def mel(self, wave: ArrayLike) -> Tensor:
        """The front-end's mel of audio at `sample_rate`: [T] → [n_mels, frames], [B, T] → [B, n_mels, frames]."""
        tensor = torch.from_numpy(np.asarray(wave, dtype=np.float32)) if isinstance(wave, np.ndarray) else wave
        if tensor.dim() not in (1, 2):
            raise ValueError(f"expected a [T] or [B, T] wave, got shape {list(tensor.shape)}")
        minimum = getattr(self.frontend, "min_samples", 1)
        if tensor.shape[-1] < minimum:
            raise ValueError(
                f"a wave of {tensor.shape[-1]} samples is too short: the {self.frontend.preset} front-end needs at "
                f"least {minimum} ({1000 * minimum / self.sample_rate:.0f} ms)"
            )
        with torch.inference_mode():
            return self.frontend(tensor.to(self.device, torch.float32))

    def resynthesize(self, wave: ArrayLike) -> Tensor:
        """Audio at `sample_rate` → mel → audio of frames × hop samples, on the input's device."""
        tensor = torch.from_numpy(np.asarray(wave, dtype=np.float32)) if isinstance(wave, np.ndarray) else wave
        return self(self.mel(tensor)).to(tensor.device)


def load_vocoder(
    source: str | Path,
    *,
    config: str | Path | None = None,
    best: bool = False,
    device: str | torch.device = "cpu",
) -> Vocoder:
    """A `Vocoder` from a gankit generator or state file, a run directory (its latest generator, or the best with
    `best=True`), or an original HiFi-GAN `g_` file (config.json beside it, or `config`). `device`: cpu, cuda,
    cuda:N or auto."""
    from gankit.infer.loading import build_generator_from, read_checkpoint, resolve_device

    target = resolve_device(device)
    loaded = read_checkpoint(source, config=config, best=best)
    generator = build_generator_from(loaded, target)
    return Vocoder(
        generator, build_frontend(loaded.frontend_config), loaded.family, source=loaded.describe(), step=loaded.step
    )
