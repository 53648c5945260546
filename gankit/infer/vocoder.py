"""`Vocoder`: a generator prepared for inference (eval, weight norm folded, no autograd) plus its mel front-end.

Long mels are vocoded in pieces (`vocode_chunked`, `stream`) with the context `gankit.infer.chunking` derives, so
memory stays that of one piece and the audio equals the whole-utterance call within float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.audio.mel import MelFrontend, build_frontend
from gankit.errors import MelInputError
from gankit.infer.chunking import (
    DEFAULT_CHUNK_FRAMES,
    FrameContext,
    MelFrames,
    Window,
    generator_context,
    plan_windows,
    window_for,
)
from gankit.infer.mel_checks import check_batch_item, check_length, check_mel_shape, chunk_source_frames
from gankit.infer.precision import (
    DEFAULT_PRECISION,
    PrecisionChoice,
    apply_precision,
    check_precision,
    choose_precision,
)
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
        self.masks: dict[tuple[int, torch.dtype], Tensor] = {}
        self.handles = [
            m.register_forward_pre_hook(self._hook) for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)
        ]

    def _mask(self, length: int, dtype: torch.dtype) -> Tensor:
        # Keyed by dtype too: in bf16 (gankit.infer.precision) a float32 layer and a bf16 one can see the same
        # length, and a float32 mask would promote the bf16 layer's input back to float32.
        if (length, dtype) not in self.masks:
            valid = (self.frames * length) // self.total  # [B] positions each item owns at this resolution
            positions = torch.arange(length, device=self.frames.device)
            self.masks[length, dtype] = (positions[None, :] < valid[:, None]).unsqueeze(1).to(dtype)  # [B, 1, L]
        return self.masks[length, dtype]

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


def _as_tensor(mel: ArrayLike) -> Tensor:
    """A tensor sharing a numpy array's memory where it can; read-only arrays (a read-only memory map) are copied."""
    if not isinstance(mel, np.ndarray):
        return mel
    array = np.ascontiguousarray(mel)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _like(wave: Tensor, like: ArrayLike) -> ArrayLike:
    """`wave` as the kind of `like`: a float32 numpy array on the CPU, or a tensor on `like`'s device."""
    return wave.cpu().numpy() if isinstance(like, np.ndarray) else wave.to(like.device)


class Vocoder:
    """Mel → waveform with one generator and the front-end it was trained on.

    `vocoder(mel)`: [n_mels, T] → [T·hop] or [B, n_mels, T] → [B, T·hop], float32 in [-1, 1], on the mel's device
    (numpy input → CPU tensor). `resynthesize(wave)`: audio at `sample_rate` → the front-end's mel → audio.

    `precision`: "fp32" (default), "bf16" (HiFi-GAN's convolutions in bfloat16 but the first, the last transposed and
    the last; other families stay fp32; `gankit.infer.precision`) or "auto" (bf16 where the generator's device has
    bf16 kernels). Inputs and outputs are
    float32 whatever the precision; `precision` then holds what was picked and `precision_reason` why.
    """

    def __init__(
        self,
        generator: nn.Module,
        frontend: MelFrontend | dict[str, Any],
        family: str = "hifigan",
        *,
        source: str = "(in memory)",
        step: int | None = None,
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        self.generator = prepare_for_inference(generator)
        # After weight norm is folded: bf16 rounds the weights the layers compute with, not g and v apart.
        self.precision_choice: PrecisionChoice = choose_precision(precision, self.device, family)
        self.float32_layers = apply_precision(self.generator, self.precision_choice.precision)
        self.frontend: MelFrontend = build_frontend(frontend) if isinstance(frontend, dict) else frontend
        self.family = family
        self.source = source
        self.step = step
        # Shortest mel the generator accepts; HiFi-GAN's zero-padded convolutions take a single frame.
        self.min_frames = int(getattr(generator, "min_frames", 1))
        self._context: FrameContext | None = None

    def __repr__(self) -> str:
        return (
            f"Vocoder({self.family}, {self.sample_rate} Hz, hop {self.hop_length}, {self.n_mels} mels "
            f"[{self.frontend.preset}], {self.device}, {self.precision}, from {self.source})"
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
    def precision(self) -> str:
        """What the generator runs in: fp32 or bf16 (never auto: that is resolved when the vocoder is made)."""
        return self.precision_choice.precision

    @property
    def precision_reason(self) -> str:
        return self.precision_choice.reason

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device) -> Vocoder:
        self.generator.to(device)
        return self

    # --- vocoding ----------------------------------------------------------------------------------------
    def _forward(self, mel: Tensor) -> Tensor:
        """The generator on a float32 [B, n_mels, T] mel → float32 [B, 1, T·hop], whatever the precision (in bf16
        the last layer is float32 already; `.float()` returns an fp32 tensor itself, so fp32 stays bit-identical)."""
        return self.generator(mel).float()

    def _check_mel(self, mel: Tensor, *, whole: bool = True, dims: tuple[int, ...] = (2, 3)) -> None:
        """Shape, dtype, values; `whole=False` for a piece of a mel, which may be shorter than `min_frames`."""
        check_mel_shape(mel.shape, n_mels=self.n_mels, preset=self.frontend.preset, min_frames=self.min_frames,
                        whole=False, dims=dims)
        if not mel.is_floating_point():
            raise MelInputError(f"mel of dtype {mel.dtype}: a log-mel is floating point")
        if whole:
            check_length(mel.shape[-1], self.min_frames)
        if not bool(torch.isfinite(mel).all()):
            raise MelInputError("mel holds NaN or infinite values; the vocoder would output noise or silence")

    def __call__(self, mel: ArrayLike) -> Tensor:
        tensor = torch.from_numpy(np.asarray(mel)) if isinstance(mel, np.ndarray) else mel
        self._check_mel(tensor)
        single = tensor.dim() == 2
        with torch.inference_mode():
            x = tensor.to(self.device, torch.float32)
            wave = self._forward(x.unsqueeze(0) if single else x)  # [B, 1, T·hop]
        wave = wave.squeeze(1).to(tensor.device)
        return wave[0] if single else wave

    def vocode_batch(self, mels: Sequence[ArrayLike]) -> list[Tensor]:
        """Several [n_mels, T_i] mels in one forward: padded to the longest, masked so that each output equals
        what `vocoder(mel)` gives alone (float rounding aside), and cut back to T_i·hop samples. Generators that
        declare `exact_under_length_mask = False` get unequal lengths one at a time instead."""
        tensors = [torch.from_numpy(np.asarray(m)) if isinstance(m, np.ndarray) else m for m in mels]
        for t in tensors:
            check_batch_item(t.shape)
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
                waves = self._forward(batch).squeeze(1)
            else:
                with _ValidLengthMask(self.generator, frames, self.device):
                    waves = self._forward(batch).squeeze(1)
        return [waves[i, : self.frontend.output_length(n)].to(tensors[i].device) for i, n in enumerate(frames)]

    # --- long mels: pieces and streams --------------------------------------------------------------------
    @property
    def context(self) -> FrameContext:
        """Mel frames a piece needs on each side to come out as in the whole utterance (`gankit.infer.chunking`:
        from the architecture for HiFi-GAN and MelGAN, probed for other generators); computed once, on first use."""
        if self._context is None:
            self._context = generator_context(self.generator, self.n_mels, self.hop_length)
        return self._context

    def _vocode_window(self, held: Tensor, window: Window, held_start: int = 0) -> Tensor:
        """The audio of frames [keep_start, keep_end) computed from frames [start, end) of a mel of which `held`
        [n_mels, frames] holds frames from `held_start` on; on the vocoder's device."""
        piece = held[:, window.start - held_start : window.end - held_start]
        self._check_mel(piece, dims=(2,))
        with torch.inference_mode():
            wave = self._forward(piece.to(self.device, torch.float32)[None])[0, 0]
        hop = self.hop_length
        return wave[(window.keep_start - window.start) * hop : (window.keep_end - window.start) * hop]

    def vocode_chunked(
        self, mel: ArrayLike | MelFrames, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> Iterator[Tensor]:
        """A [n_mels, T] mel's audio in pieces of `chunk_frames`·hop samples (the last may be shorter) whose
        concatenation equals `vocoder(mel)` within float rounding (each piece is computed with `context` frames on
        each side). Memory is one piece's whatever T: a numpy memmap or a `MelFrames` source (a memory-mapped file,
        `gankit.infer.mel_input.MappedMel`) is read one window at a time, and checked as it is read. Tensors on the
        mel's device (numpy and `MelFrames`: CPU)."""
        total = chunk_source_frames(mel, n_mels=self.n_mels, preset=self.frontend.preset, min_frames=self.min_frames)
        out_device = mel.device if isinstance(mel, Tensor) else torch.device("cpu")
        for window in plan_windows(total, chunk_frames, self.context, self.min_frames):
            if isinstance(mel, Tensor):
                piece = mel[:, window.start : window.end]
            elif isinstance(mel, np.ndarray):
                piece = _as_tensor(mel[:, window.start : window.end])
            else:
                piece = _as_tensor(mel.read(window.start, window.end))
            yield self._vocode_window(piece, window, window.start).to(out_device)

    def stream(self, mel_chunks: Iterable[ArrayLike]) -> Iterator[ArrayLike]:
        """Vocode a mel arriving in pieces ([n_mels, t] each, any t ≥ 0, e.g. a TTS model's output as it is made):
        yields audio pieces whose concatenation equals `vocoder(whole mel)` within float rounding.

        A mel frame's audio is yielded as soon as `context.right` frames after it have arrived (that many frames are
        held back, and flushed when the chunks end); each step recomputes `context.left` frames before the new ones,
        so tiny chunks cost more compute per frame than large ones. Numpy pieces come back as float32 numpy arrays,
        tensors as tensors on the latest chunk's device. A stream of fewer than `min_frames` frames raises
        `MelInputError` at its end, as `vocoder(mel)` would."""
        context = self.context
        keep_before = max(context.left, self.min_frames)  # frames before the next output kept for its context
        held: Tensor | None = None  # mel frames [held_start, received), on the vocoder's device
        held_start = received = emitted = 0
        like: ArrayLike | None = None
        for chunk in mel_chunks:
            tensor = _as_tensor(chunk)
            self._check_mel(tensor, whole=False, dims=(2,))
            like = chunk
            if tensor.shape[-1] == 0:
                continue
            piece = tensor.to(self.device, torch.float32)
            held = piece if held is None else torch.cat([held, piece], dim=1)
            received += int(piece.shape[-1])
            ready = received - context.right  # frames whose right context has all arrived
            if ready > emitted and received >= self.min_frames:
                window = window_for(emitted, ready, received, context, self.min_frames)
                yield _like(self._vocode_window(held, window, held_start), like)
                emitted = ready
                drop = max(0, emitted - keep_before) - held_start
                if drop > 0:
                    held, held_start = held[:, drop:], held_start + drop
        if received < self.min_frames:
            raise MelInputError(
                f"the stream brought {received} mel frames: the generator needs at least {self.min_frames}"
            )
        if received > emitted and held is not None and like is not None:
            window = window_for(emitted, received, received, context, self.min_frames)
            yield _like(self._vocode_window(held, window, held_start), like)

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
    precision: str = DEFAULT_PRECISION,
) -> Vocoder:
    """A `Vocoder` from a gankit generator or state file, a run directory (its latest generator, or the best with
    `best=True`), or an original HiFi-GAN `g_` file (config.json beside it, or `config`). `device`: cpu, cuda,
    cuda:N or auto. `precision`: fp32 (default), bf16 or auto (bf16 where the device has it natively; see `Vocoder`)."""
    from gankit.infer.loading import build_generator_from, read_checkpoint, resolve_device

    check_precision(precision)  # a typo fails before the checkpoint is read
    target = resolve_device(device)
    loaded = read_checkpoint(source, config=config, best=best)
    generator = build_generator_from(loaded, target)
    return Vocoder(
        generator, build_frontend(loaded.frontend_config), loaded.family, source=loaded.describe(), step=loaded.step,
        precision=precision,
    )
