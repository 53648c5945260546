"""How much mel context a generator needs so that audio vocoded in pieces equals the whole-utterance audio.

A generator made of convolutions computes each output sample from a bounded span of mel frames, its receptive field.
Vocoding frames [a, b) from a window [a − left, b + right) of the mel gives the samples of [a, b) exactly (float
rounding aside) when every sample's receptive field lies inside the window: positions the window lacks — the zero
padding (HiFi-GAN) or reflection (MelGAN) each layer applies at the window's edges — then reach no kept sample,
because every intermediate position depends on its own mel frame (true of the families here: a transposed
convolution with padding ≤ kernel − stride), so a kept sample that saw one would have a frame outside the window in
its receptive field. At the utterance's own ends the window stops at the mel's ends and pads exactly as the
whole-utterance call does.

`generator_context` derives (left, right) in frames: from the architecture for HiFi-GAN and MelGAN (interval
arithmetic backwards through every layer), by probing any other generator (the input frames that get a non-zero
gradient from one output frame, in float64). The tests check that both ways agree on every shipped layout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # torch only where a context is computed: the window plan serves the torch-free ONNX path too
    from torch import Tensor, nn

# `gankit vocode --chunk-frames` default: 512 frames (≈ 6 s at 22.05 kHz, hop 256) keep a V1 generator's
# activations near 130 MB on CPU while the recomputed context (V1: 13 + 13 frames) costs ≈ 5 % more compute.
DEFAULT_CHUNK_FRAMES = 512


@dataclass(frozen=True)
class FrameContext:
    """Mel frames a piece of output needs beyond its own: `left` before its first frame, `right` after its last."""

    left: int
    right: int


class MelFrames(Protocol):
    """Random access to the frames of a long [n_mels, frames] mel, read piece by piece (e.g. a memory-mapped file:
    `gankit.infer.mel_input.MappedMel`)."""

    @property
    def frames(self) -> int: ...

    def read(self, start: int, end: int) -> np.ndarray | Tensor:
        """Frames [start, end) as a float [n_mels, end − start] array."""
        ...


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _through_conv(span: tuple[int, int], radius: int) -> tuple[int, int]:
    """Inputs of a stride-1 'same' convolution (or a chain of them) of `radius` that feed outputs [lo, hi]."""
    return span[0] - radius, span[1] + radius


def _through_transposed(span: tuple[int, int], stride: int, kernel: int, padding: int) -> tuple[int, int]:
    """Inputs of a ConvTranspose1d that feed outputs [lo, hi]: input i writes outputs
    [i·stride − padding, i·stride − padding + kernel − 1]."""
    lo, hi = span
    return _ceil_div(lo + padding - kernel + 1, stride), (hi + padding) // stride


def _hifigan_context(generator: nn.Module) -> FrameContext:
    from gankit.models.hifigan import HifiGanGeneratorConfig

    cfg: HifiGanGeneratorConfig = generator.cfg  # type: ignore[assignment]
    span = (0, cfg.hop_length - 1)  # the samples of output frame 0
    span = _through_conv(span, 3)  # conv_post, kernel 7
    stages = list(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
    for rate, kernel in reversed(stages):
        # The stage's resblocks run side by side (their outputs averaged): the widest one counts.
        radii = []
        for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
            half = (k - 1) // 2
            # ResBlock1: a dilated conv then a plain one per dilation; ResBlock2: the dilated conv alone.
            radii.append(sum(d * half + (half if cfg.resblock == "1" else 0) for d in dilations))
        span = _through_conv(span, max(radii))
        span = _through_transposed(span, rate, kernel, (kernel - rate) // 2)
    lo, hi = _through_conv(span, 3)  # conv_pre, kernel 7
    return FrameContext(left=-lo, right=hi)


def _melgan_context(generator: nn.Module) -> FrameContext:
    from gankit.models.melgan import MelGanGeneratorConfig

    cfg: MelGanGeneratorConfig = generator.cfg  # type: ignore[assignment]
    span = (0, cfg.hop_length - 1)
    span = _through_conv(span, 3)  # reflection pad 3 + conv kernel 7 at the end
    # A ResnetBlock of dilation d: reflection pad d + kernel-3 conv of dilation d, then 1×1 convs (radius d).
    stack_radius = cfg.residual_stacks * sum(3**j for j in range(cfg.residual_layers))
    for rate in reversed(cfg.ratios):
        span = _through_conv(span, stack_radius)
        span = _through_transposed(span, rate, 2 * rate, rate // 2 + rate % 2)
    lo, hi = _through_conv(span, 3)  # reflection pad 3 + conv kernel 7 at the start
    return FrameContext(left=-lo, right=hi)


def architecture_context(generator: nn.Module) -> FrameContext | None:
    """The context computed from the layer layout, for the families whose layout is known here; else None."""
    from gankit.models.hifigan import HifiGanGenerator
    from gankit.models.melgan import MelGanGenerator

    if isinstance(generator, HifiGanGenerator):
        return _hifigan_context(generator)
    if isinstance(generator, MelGanGenerator):
        return _melgan_context(generator)
    return None


def probe_context(generator: nn.Module, n_mels: int, hop_length: int, max_frames: int = 4096) -> FrameContext:
    """The context measured: the mel frames whose gradient is non-zero for one output frame in the middle of a random
    mel, on a float64 copy of the generator (so tanh saturating in float32 cannot hide a dependence). The mel doubles
    until the dependence stops short of both of its ends."""
    import torch

    model = copy.deepcopy(generator).to("cpu", torch.float64).eval()
    rng = torch.Generator().manual_seed(0)
    frames = 64
    while frames <= max_frames:
        mel = (torch.randn(1, n_mels, frames, generator=rng, dtype=torch.float64) * 2.5 - 5.0).requires_grad_(True)
        middle = frames // 2
        weights = torch.rand(hop_length, generator=rng, dtype=torch.float64) + 0.5  # no cancelling of samples
        with torch.enable_grad():
            wave = model(mel)[0, 0, middle * hop_length : (middle + 1) * hop_length]
            (wave * weights).sum().backward()
        assert mel.grad is not None
        touched = torch.nonzero(mel.grad[0].abs().sum(0)).flatten()
        first, last = int(touched[0]), int(touched[-1])
        if first > 0 and last < frames - 1:
            return FrameContext(left=middle - first, right=last - middle)
        frames *= 2
    raise ValueError(f"the generator's receptive field spans more than {max_frames} frames; it cannot be chunked")


def generator_context(generator: nn.Module, n_mels: int, hop_length: int) -> FrameContext:
    """The context from the architecture where it is known (no compute), else by probing (see the module doc)."""
    known = architecture_context(generator)
    return known if known is not None else probe_context(generator, n_mels, hop_length)


@dataclass(frozen=True)
class Window:
    """One forward pass: mel frames [start, end) computed, the audio of frames [keep_start, keep_end) kept."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def window_for(keep_start: int, keep_end: int, total: int, context: FrameContext, min_frames: int) -> Window:
    """The window that vocodes frames [keep_start, keep_end) of a `total`-frame mel exactly: the context on each side,
    clipped at the mel's ends, widened to the generator's shortest input where the mel allows."""
    start = max(0, keep_start - context.left)
    end = min(total, keep_end + context.right)
    if end - start < min_frames:
        start = max(0, end - min_frames)
        end = min(total, start + min_frames)
    return Window(start, end, keep_start, keep_end)


def plan_windows(total: int, chunk_frames: int, context: FrameContext, min_frames: int = 1) -> list[Window]:
    """Windows that vocode a `total`-frame mel in pieces of `chunk_frames` output frames (the last may be shorter)."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
    return [
        window_for(a, min(a + chunk_frames, total), total, context, min_frames) for a in range(0, total, chunk_frames)
    ]
