"""A small classifier of scikit-learn's 8×8 handwritten digits, to score generated 32×32 digits.

`gankit prepare --builtin digits OUT` (gankit/data/digits.py) upscales each 8×8 digit to 32×32 with Pillow's
bilinear filter and trains this network on 8×8 inputs made by `downsample` from those 32×32 images, so what
`classify` sees of a real digit is exactly what the network was trained on.

`downsample` is the area average of each 4×4 block (`avg_pool2d`, kernel 4). For a 4× bilinear upscale with
half-pixel centres (Pillow's and torch's `align_corners=False` convention) that average returns each original
pixel as 3/4 of itself plus 1/8 of each horizontal and vertical neighbour (per axis: [1/8, 3/4, 1/8]; border
pixels see their own value where a neighbour is missing): the mild blur a round trip through the prepared
32×32 images leaves, and no aliasing of whatever a generator adds above the 8×8 band.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.errors import ConfigError

INPUT_SIZE = 8  # the 8×8 digits of sklearn.datasets.load_digits
IMAGE_SIZE = 32  # the prepared images `classify` takes
CLASSES = 10


@dataclass
class DigitsClassifierConfig:
    hidden: int = 256
    features: int = 128  # D of `classify`'s features: the last hidden layer
    dropout: float = 0.2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DigitsClassifierConfig:
        unknown = sorted(set(d) - {"hidden", "features", "dropout"})
        if unknown:
            raise ConfigError(f"digits classifier: unknown key(s) {', '.join(unknown)}")
        cfg = cls(**d)
        if not (isinstance(cfg.hidden, int) and cfg.hidden > 0 and isinstance(cfg.features, int) and cfg.features > 0):
            raise ConfigError(f"digits classifier: hidden and features must be positive integers, got {d}")
        if not 0.0 <= float(cfg.dropout) < 1.0:
            raise ConfigError(f"digits classifier: dropout must be in [0, 1), got {cfg.dropout!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def downsample(images32: Tensor) -> Tensor:
    """[N, 1, 32, 32] → [N, 1, 8, 8]: the mean of each 4×4 block (see the module docstring)."""
    if images32.dim() != 4 or images32.shape[1] != 1 or images32.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected images of shape [N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {list(images32.shape)}")
    return F.avg_pool2d(images32, IMAGE_SIZE // INPUT_SIZE)


class DigitsClassifier(nn.Module):
    """An MLP over the 64 pixels of an 8×8 digit in [-1, 1]: 64 → hidden → features → 10 logits."""

    def __init__(self, config: DigitsClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or DigitsClassifierConfig()
        c = self.config
        self.body = nn.Sequential(
            nn.Linear(INPUT_SIZE * INPUT_SIZE, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.features), nn.ReLU(),
        )
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.features, CLASSES)

    def features_and_logits(self, images8: Tensor) -> tuple[Tensor, Tensor]:
        """[N, 1, 8, 8] (or [N, 64]) in [-1, 1] → (features [N, D], logits [N, 10])."""
        features = self.body(images8.reshape(images8.shape[0], -1))
        return features, self.head(self.dropout(features))

    def forward(self, images8: Tensor) -> Tensor:
        """Logits [N, 10] of 8×8 digits in [-1, 1]."""
        return self.features_and_logits(images8)[1]

    @torch.no_grad()
    def classify(self, images32: Tensor) -> tuple[Tensor, Tensor]:
        """32×32 digits [N, 1, 32, 32] in [-1, 1] → (probabilities [N, 10], features [N, D]), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            param = next(self.parameters())
            features, logits = self.features_and_logits(downsample(images32.to(param.device, param.dtype)))
        finally:
            self.train(was_training)
        return logits.softmax(dim=1), features
