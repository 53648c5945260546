"""Tiling a batch of images into one picture: shared by training's validation media and `gankit sample`."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def tile_images(images: Tensor, columns: int | None = None, pad: int = 2) -> Tensor:
    """[N, C, S, S] in [-1, 1] → one [C, H, W] image in [0, 1], `columns` wide (default ⌈√N⌉), `pad` white pixels
    between and around the tiles."""
    n, c, s, _ = images.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = torch.ones(c, rows * (s + pad) + pad, cols * (s + pad) + pad)
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    for i in range(n):
        r, k = divmod(i, cols)
        out[:, pad + r * (s + pad) : pad + r * (s + pad) + s, pad + k * (s + pad) : pad + k * (s + pad) + s] = x[i]
    return out
