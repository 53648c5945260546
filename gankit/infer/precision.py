"""Inference precision: which one `--precision fp32|bf16|auto` picks, and how a generator runs in bfloat16.

bf16 here means: every convolution computes in bfloat16 (its weights cast once, after weight norm is folded; its
input cast on entry) and hands float32 back, so the activations between layers — the residual sums, the leaky
ReLUs, the averaging of a HiFi-GAN stage's blocks — stay float32. Three layers stay float32 altogether:

- the first convolution: it reads the raw log-mel, whose values of −11…0 bf16's 8-bit mantissa would round by up to
  ±0.02 before any layer has seen them (alone in bf16 it moved the output's mel by only 0.002, but it is one layer at
  the frame rate: keeping it costs nothing measurable);
- the last transposed convolution: it makes the full-rate signal the output layer sees; measured on HiFi-GAN V1 with
  seeded weights, in bf16 alone it moved the output's mel by 0.044 (L1), six times the other three upsamplers
  together;
- the last convolution (and the tanh after it): its output *is* the waveform, and bf16 there adds white noise at
  about −55 dB of the signal, which alone made the mel of weak bands differ by 0.09–0.29 (L1).
With them in float32, seeded HiFi-GAN V1 and V3 stay above 65 dB SNR and within 0.016 mel L1 of float32
(tests/test_precision.py; benchmarks/bench_precision.py prints the numbers).

Only the families in `BF16_FAMILIES` (HiFi-GAN) run in bf16; a MelGAN generator stays float32 whatever is asked, and the
reason says so: with the same three layers float32, seeded MelGAN measured 55 dB SNR but a mel L1 of 0.89 (its
output leaves two thirds of the mel bins at the log floor, which bf16's noise lifts), far outside the quality bar, and
no trained MelGAN is at hand to show that a trained one holds it.

Why cast weights rather than `torch.autocast`: for the same layers in bf16 the two give identical outputs (autocast
runs the same bf16 kernels) and ran equally fast on the AVX2 CPU we measured, but autocast casts every weight again on
every forward (a V1 generator's 14 M on each call, each chunk of a stream), keeps float32 copies, cannot keep the
activations float32 (its convolutions return bf16, and the bf16 residual sums cost accuracy: V1 mel L1 0.017 against
0.014), and needs the float32 layers patched to leave the autocast region.

`choose_precision(requested, device, family)` is the one place that decides; `bf16_support(device)` is the hardware
probe (tests monkeypatch it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError

# gankit/commands/vocode.py spells these out again so that building the parser imports no torch (a test keeps them
# equal).
PRECISIONS = ("fp32", "bf16", "auto")
DEFAULT_PRECISION = "fp32"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Generator families measured against the quality bar in bf16 (tests/test_precision.py); any other runs in fp32.
BF16_FAMILIES = ("hifigan",)


@dataclass(frozen=True)
class PrecisionChoice:
    """What a vocoder runs in (`precision`: fp32 or bf16) and why, in words for the `loaded …` line."""

    precision: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    def describe(self) -> str:
        return f"{self.precision} ({self.reason})"


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether `device` has fast bfloat16 kernels, and what says so. CPU: oneDNN's own check (AVX-512 or
    AVX-NE-CONVERT; AVX-512 BF16 and AMX compute bf16 natively); without it PyTorch's bf16 convolutions take its
    reference path (slow_conv2d, slow_conv_dilated2d), measured on an AVX2 CPU 3× (transposed) to 34× slower than
    fp32 per layer, 20–55× for whole HiFi-GAN generators. CUDA: `torch.cuda.is_bf16_supported()`."""
    if device.type == "cpu":
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, "this CPU has oneDNN's bf16 kernels"
        return False, "this CPU has no bf16 kernels (oneDNN needs AVX-512 or AVX-NE-CONVERT)"
    if device.type == "cuda":
        supported = bool(torch.cuda.is_bf16_supported())
        name = f"cuda:{device.index}" if device.index is not None else "this CUDA device"
        return supported, f"{name} {'supports' if supported else 'does not support'} bf16"
    return False, f"no bf16 check for {device.type} devices"


def check_precision(requested: str) -> str:
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    return requested


def choose_precision(requested: str, device: str | torch.device, family: str = "hifigan") -> PrecisionChoice:
    """fp32 and bf16 as asked (bf16 where the hardware lacks it still runs, slowly, and the reason says so); `auto`:
    bf16 where `bf16_support` says the device has it natively, else fp32. A generator family outside `BF16_FAMILIES`
    gets fp32 either way."""
    requested = check_precision(requested)
    device = torch.device(device)
    if requested == "fp32":
        return PrecisionChoice("fp32", "the default")
    if family not in BF16_FAMILIES:
        return PrecisionChoice("fp32", f"{requested} asked; {family} generators run in fp32: bf16 misses the quality "
                               "bar on them")
    supported, why = bf16_support(device)
    if requested == "bf16":
        return PrecisionChoice("bf16", "asked" if supported else f"asked; {why}: much slower than fp32 here")
    return PrecisionChoice("bf16" if supported else "fp32", f"auto: {why}")


def float32_layers(generator: nn.Module) -> list[str]:
    """Names of the convolutions that stay float32 in bf16: the first convolution, the last transposed one and the
    last one, in registration order (HiFi-GAN: conv_pre, ups[-1], conv_post; MelGAN: model.1, its last upsampler and
    its output conv); see the module's docstring for the measurements."""
    convs = [(name, m) for name, m in generator.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        return []
    keep = {convs[0][0], convs[-1][0]}
    transposed = [name for name, m in convs if isinstance(m, nn.modules.conv._ConvTransposeNd)]
    if transposed:
        keep.add(transposed[-1])
    return [name for name, _ in convs if name in keep]


def _cast_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: the input in the layer's weight dtype (a float64 copy, the context probe's, stays float64)."""
    dtype = module.weight.dtype
    x = args[0]
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dtype == dtype:
        return None
    return (x.to(dtype), *args[1:])


def _float_output(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
    """Forward hook: a reduced-precision output back in float32, so what runs between convolutions stays float32."""
    if isinstance(output, Tensor) and output.dtype in (torch.bfloat16, torch.float16):
        return output.float()
    return None


def apply_precision(generator: nn.Module, precision: str) -> list[str]:
    """Run `generator` (weight norm already folded) in `precision`, in place; returns the layers left float32.
    fp32 touches nothing (its output stays bit-identical)."""
    if precision == "fp32":
        return []
    dtype = DTYPES[precision]
    keep = set(float32_layers(generator))
    for name, module in generator.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd) and name not in keep:
            module.to(dtype)
            module.register_forward_pre_hook(_cast_input)
            module.register_forward_hook(_float_output)
    return sorted(keep)
