"""8-bit µ-law companding exactly as the Universal Music Translation network's (facebookresearch/music-translation,
`src/utils.py` `mu_law` / `inv_mu_law`), whose models are trained on these classes.

Encoding: clip to [-1, 1], compand y = sign(x)·ln(1 + µ|x|)/ln(1 + µ), then class = ⌊(y + 1)/2 · µ⌋ (the original
truncates with `astype('int16')`, which is the floor here because (y + 1)/2 · µ ≥ 0). So −1 → 0, 0 → 127, +1 → 255:
class 255 is reached by exactly +1 only, and each other class c covers y ∈ [2c/255 − 1, 2(c + 1)/255 − 1).

Decoding is *not* the inverse of that: it reads class c as y' = c/128 − 1 (256 levels over [-1, 1), class 128 ↦ 0)
and expands x' = sign(y')·((1 + µ)^|y'| − 1)/µ. So y − y' ∈ [0, 1/64] and a round trip always rounds down: 0 ↦ 127
↦ −1.74e-4, +1 ↦ 255 ↦ 0.957, and just under +1 ↦ 254 ↦ 0.917. That asymmetry is the original's, kept so that
classes and waves mean what they meant to its trained models (the tests check the bound
x − x' ≤ (ln 256 / 64)·2^(1/8)·(|x| + 1/255) that follows).

Both functions take a torch tensor or anything numpy reads, and answer in the same kind (torch in, torch out on the
same device). They compute in float64, so the class of a sample never depends on the input's float precision.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

MU = 255
N_CLASSES = MU + 1


@overload
def mu_law_encode(wave: Tensor) -> Tensor: ...
@overload
def mu_law_encode(wave: npt.ArrayLike) -> npt.NDArray[np.int64]: ...
def mu_law_encode(wave: Tensor | npt.ArrayLike) -> Tensor | npt.NDArray[np.int64]:
    """Wave in [-1, 1] (values outside are clipped, as the original) → int64 classes in 0..255.

    Non-finite samples raise ValueError: the original would cast NaN to an arbitrary class."""
    if isinstance(wave, Tensor):
        x = wave.detach().to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("mu_law_encode: the wave has NaN or infinite samples")
        x = x.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(MU * x.abs()) / math.log1p(MU)
        return torch.floor((y + 1.0) / 2.0 * MU).to(torch.int64)
    x_np = np.asarray(wave, dtype=np.float64)
    if not np.isfinite(x_np).all():
        raise ValueError("mu_law_encode: the wave has NaN or infinite samples")
    x_np = np.clip(x_np, -1.0, 1.0)
    y_np = np.sign(x_np) * np.log1p(MU * np.abs(x_np)) / math.log1p(MU)
    return np.floor((y_np + 1.0) / 2.0 * MU).astype(np.int64)


@overload
def mu_law_decode(classes: Tensor) -> Tensor: ...
@overload
def mu_law_decode(classes: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
def mu_law_decode(classes: Tensor | npt.ArrayLike) -> Tensor | npt.NDArray[np.float32]:
    """Classes 0..255 (integer or float dtype) → float32 wave in [-1, 0.9575], the original's `inv_mu_law`.

    Classes outside 0..255 raise ValueError: they are not µ-law codes (the original would extrapolate)."""
    if isinstance(classes, Tensor):
        c = classes.detach().to(torch.float64)
        if not bool(((c >= 0) & (c <= MU)).all()):
            raise ValueError(f"mu_law_decode: classes must lie in 0..{MU}")
        y = 2.0 * (c - N_CLASSES / 2.0) / N_CLASSES
        return (torch.sign(y) * (torch.pow(float(N_CLASSES), y.abs()) - 1.0) / MU).to(torch.float32)
    c_np = np.asarray(classes, dtype=np.float64)
    if not ((c_np >= 0) & (c_np <= MU)).all():
        raise ValueError(f"mu_law_decode: classes must lie in 0..{MU}")
    y_np = 2.0 * (c_np - N_CLASSES / 2.0) / N_CLASSES
    return (np.sign(y_np) * (np.power(float(N_CLASSES), np.abs(y_np)) - 1.0) / MU).astype(np.float32)

