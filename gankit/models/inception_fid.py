"""Inception-v3 in the variant FID is defined with: the network of TensorFlow's 2015-12-05 Inception graph, as
ported by pytorch-fid (mseitzer/pytorch-fid, `src/pytorch_fid/inception.py`) on top of torchvision's Inception3.

Built here without torchvision, with torchvision's module names (`Conv2d_1a_3x3`, …, `Mixed_7c`, each convolution a
`BasicConv2d`: bias-free conv, BatchNorm with eps 1e-3, ReLU) so that pytorch-fid's weights file
`pt_inception-2015-12-05-6726825d.pth` loads strictly. What the FID variant changes, after pytorch-fid:
- every InceptionA and InceptionC block (Mixed_5b–5d, Mixed_6b–6e) and the first InceptionE block (Mixed_7b)
  average-pools its pool branch without counting the zero padding (TensorFlow's average pool);
- the second InceptionE block (Mixed_7c) max-pools its pool branch instead;
- a 1008-class `fc` and no auxiliary classifier (the file holds that `fc`; the features never use it).

The forward resizes bilinearly to 299×299 and returns the 2048 features of the final average pool. It takes images in
[-1, 1] (gankit's image range), which is what pytorch-fid feeds the network after mapping its [0, 1] inputs with
2x − 1 (bilinear resizing and that affine map commute, so the order does not matter).

Not verified here: numerical equality of the features with pytorch-fid's. This project has neither the weights
file nor torchvision; what the tests check is the layout — every state-dict name and shape the weights file holds
(`tests/fixtures/fid_inception_state_dict.txt`, derived from the two sources above), the parameter count and the
output shape.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import CheckpointError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
INPUT_SIZE = 299
FEATURES = 2048
NUM_CLASSES = 1008  # the 2015-12-05 graph's classifier: 1000 ImageNet classes and 8 unused outputs
BN_EPS = 1e-3


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3, TensorFlow's), ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: Tensor) -> Tensor:
    """3×3 stride-1 average pool whose border windows average only the pixels inside the image."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Mixed_5b–5d (35×35): 1×1, 5×5 and double-3×3 branches and a pooled 1×1 branch."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_tf(x))], 1)


class InceptionB(nn.Module):
    """Mixed_6a: 35×35 → 17×17 with strided 3×3 and double-3×3 branches and a max pool (as torchvision's)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """Mixed_6b–6e (17×17): factorised 7×7 branches (1×7 then 7×1) of width `c7`, and a pooled 1×1 branch."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        row, col = (1, 7), (7, 1)
        pad_row, pad_col = (0, 3), (3, 0)
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row, padding=pad_row)
        self.branch7x7_3 = BasicConv2d(c7, 192, col, padding=pad_col)
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col, padding=pad_col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row, padding=pad_row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col, padding=pad_col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row, padding=pad_row)
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_tf(x))], 1)


class InceptionD(nn.Module):
    """Mixed_7a: 17×17 → 8×8 with strided 3×3 and 7×7-then-3×3 branches and a max pool (as torchvision's)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _InceptionE(nn.Module):
    """Mixed_7b/7c (8×8): 1×1, split 3×3 (1×3 and 3×1 side by side) and double split-3×3 branches and a pooled
    1×1 branch; the subclasses choose the pool."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(s), self.branch3x3_2b(s),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(self.pool(x)),
        ], 1)


class FIDInceptionE_1(_InceptionE):  # pytorch-fid's name
    """Mixed_7b: TensorFlow's average pool (padding not counted)."""

    def pool(self, x: Tensor) -> Tensor:
        return _avg_pool_tf(x)


class FIDInceptionE_2(_InceptionE):  # pytorch-fid's name
    """Mixed_7c: a 3×3 stride-1 max pool where other Inception-v3s average — the FID graph's (probably
    accidental) choice, kept because FID is defined by that graph."""

    def pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class FidInceptionV3(nn.Module):
    """Images [B, 1|3, H, W] in [-1, 1] → FID features [B, 2048] (grey images are repeated to three channels).

    Built with PyTorch's default random initialisation; `load_fid_inception` gives the real network."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, c7=128)
        self.Mixed_6c = FIDInceptionC(768, c7=160)
        self.Mixed_6d = FIDInceptionC(768, c7=160)
        self.Mixed_6e = FIDInceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        # Unused by the features; present because the weights file holds it and is loaded strictly.
        self.fc = nn.Linear(FEATURES, NUM_CLASSES)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"FidInceptionV3: images must be [B, 1|3, H, W], got {list(images.shape)}")
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # 147×147
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 73×73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # 71×71
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 35×35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)  # 35×35 → 17×17 at Mixed_6a → 8×8 at Mixed_7a; 2048 channels after Mixed_7c
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def _describe_mismatch(expected: Mapping[str, Tensor], given: Mapping[str, Any], limit: int = 3) -> str:
    missing = [k for k in expected if k not in given]
    unexpected = [str(k) for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)}≠{tuple(v.shape)}" for k, v in expected.items()
              if k in given and isinstance(given[k], Tensor) and given[k].shape != v.shape]
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)):
        if names:
            more = f" … (+{len(names) - limit})" if len(names) > limit else ""
            parts.append(f"{label}: {', '.join(names[:limit])}{more}")
    return "; ".join(parts) or "values of the wrong type"


def load_fid_inception(path: str | Path) -> FidInceptionV3:
    """The FID Inception network with pytorch-fid's weights from the local file `path`, in eval mode and frozen.

    Never downloads. Read with `torch.load(weights_only=True)` (tensors only, no code) and loaded strictly; a
    missing, unreadable or different file raises `CheckpointError` with a one-line message."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file; FID needs pytorch-fid's Inception weights {WEIGHTS_FILE}, which "
                              f"gankit never downloads: fetch it from {WEIGHTS_URL} and pass its path")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            IndexError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(f"{p}: not a readable weights file (corrupt, or holding more than tensors?): "
                              f"{first[:200]}") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{p}: holds a {type(state).__name__}, not a state dict; expected {WEIGHTS_FILE}")
    model = FidInceptionV3()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise CheckpointError(f"{p}: not the FID Inception weights ({_describe_mismatch(model.state_dict(), state)}); "
                              f"expected pytorch-fid's {WEIGHTS_FILE}") from None
    model.eval()
    model.requires_grad_(False)
    return model
