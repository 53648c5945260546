"""Distances between two sets of images, measured on feature vectors: Fréchet distance (FID's formula), kernel
distance (KID), k-NN precision/recall, and a fixed random convolutional feature extractor with a batch-diversity
measure for the health monitor's mode-collapse check. Pure functions over numpy arrays or torch tensors.

The features are whatever the caller extracts: the FID Inception network (`gankit.models.inception_fid`) when its
weights file is at hand, else `RandomConvFeatures` — whose numbers compare runs with each other but are not
comparable with published FID/KID values.
"""

from __future__ import annotations

import warnings
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from scipy.spatial.distance import pdist
from torch import Tensor, nn


def _as_float64(x: Any, ndim: int, name: str) -> np.ndarray:
    """`x` (array or tensor) as a float64 numpy array of `ndim` dimensions (fewer are promoted, as pytorch-fid does
    for means and covariances of one feature)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    a = np.atleast_1d(a) if ndim == 1 else np.atleast_2d(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return a


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # Covariances of fewer samples than features are singular, and scipy warns on every one; the result is checked
    # for finite values instead (pytorch-fid silences the same report with disp=False, which scipy now deprecates).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ‖mu1 − mu2‖² + Tr(sigma1 + sigma2 − 2·(sigma1·sigma2)^½) — FID when the statistics are Inception features'.

    As pytorch-fid: a product too singular for a finite square root is retried with `eps` added to both diagonals,
    and the small imaginary part rounding leaves in the root is dropped (a large one raises ValueError).
    """
    m1, m2 = _as_float64(mu1, 1, "mu1"), _as_float64(mu2, 1, "mu2")
    s1, s2 = _as_float64(sigma1, 2, "sigma1"), _as_float64(sigma2, 2, "sigma2")
    if m1.shape != m2.shape:
        raise ValueError(f"the means differ in length: {m1.shape} and {m2.shape}")
    if s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise ValueError(f"the covariances must both be {m1.size}×{m1.size}, got {s1.shape} and {s2.shape}")
    diff = m1 - m2
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: the matrix square root has an imaginary component "
                             f"{np.max(np.abs(covmean.imag)):.3g}; are both covariances positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def kernel_distance(
    feats1: Any, feats2: Any, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): the unbiased estimate of the squared MMD with the cubic polynomial kernel
    k(x, y) = (x·y / d + 1)³, averaged over `subsets` random subsets of `subset_size` rows of each set (capped by
    the smaller set). Returns (mean, standard deviation over the subsets).

    Unbiased: its expectation is 0 for two samples of one distribution, so small negative values occur. With
    subset_size equal to both set sizes every subset is the whole set and the deviation is 0 (up to rounding).
    """
    x_all, y_all = _as_float64(feats1, 2, "feats1"), _as_float64(feats2, 2, "feats2")
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"the feature sets differ in width: {x_all.shape[1]} and {y_all.shape[1]}")
    m = min(len(x_all), len(y_all), subset_size)
    if m < 2 or subsets < 1:
        raise ValueError(f"kernel_distance needs at least 2 rows in each set and 1 subset (rows {m}, "
                         f"subsets {subsets})")
    d = x_all.shape[1]
    rng = np.random.Generator(np.random.PCG64(seed))
    estimates = np.empty(subsets)
    for i in range(subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        k_xx = (x @ x.T / d + 1.0) ** 3
        k_yy = (y @ y.T / d + 1.0) ** 3
        k_xy = (x @ y.T / d + 1.0) ** 3
        # Within a set the diagonal k(x_i, x_i) is left out (that makes it unbiased); across the sets every pair
        # is of independent samples, so all m² count.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[i] = within - 2.0 * k_xy.sum() / (m * m)
    return float(estimates.mean()), float(estimates.std())


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


_ROWS_PER_BLOCK = 1024  # bounds the distance matrices held at once to 1024 × N


def _knn_radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest other row."""
    radii = np.empty(len(feats))
    for start in range(0, len(feats), _ROWS_PER_BLOCK):
        block = _pairwise_distances(feats[start:start + _ROWS_PER_BLOCK], feats)
        # Index k of the sorted row, not k − 1: index 0 is the row's distance to itself.
        radii[start:start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


def _inside_manifold(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point: is it within radius of at least one centre (inside the union of the k-NN balls)?"""
    inside = np.empty(len(points), dtype=bool)
    for start in range(0, len(points), _ROWS_PER_BLOCK):
        block = _pairwise_distances(points[start:start + _ROWS_PER_BLOCK], centres)
        inside[start:start + len(block)] = (block <= radii[None, :]).any(axis=1)
    return inside


def precision_recall(real_feats: Any, fake_feats: Any, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019). Each set's manifold is the union of balls around
    its samples reaching their k-th nearest neighbour in the set. Precision: the share of fake samples inside the
    real manifold (are the fakes realistic?); recall: the share of real samples inside the fake manifold (do the
    fakes cover the real variety?)."""
    real, fake = _as_float64(real_feats, 2, "real_feats"), _as_float64(fake_feats, 2, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"the feature sets differ in width: {real.shape[1]} and {fake.shape[1]}")
    if k < 1 or min(len(real), len(fake)) <= k:
        raise ValueError(f"precision_recall needs k ≥ 1 and more than k rows in each set (k {k}, rows "
                         f"{len(real)} and {len(fake)})")
    precision = _inside_manifold(fake, real, _knn_radii(real, k)).mean()
    recall = _inside_manifold(real, fake, _knn_radii(fake, k)).mean()
    return float(precision), float(recall)


class RandomConvFeatures(nn.Module):
    """A fixed, untrained convolutional feature extractor: images [N, 1|3, H, W] in [-1, 1] (H, W ≥ 16) → [N, dim].

    Images are resized to 32×32 (antialiased bilinear; grey ones repeated to three channels), then pass four
    3×3 convolutions with leaky ReLUs, three 2×2 average pools between them, and a global average pool. The
    weights are drawn with NumPy's PCG64 from `seed`, not torch's generator, so the same seed gives the same
    features under any torch version; they are buffers (moved by `.to`, saved in state dicts, never trained).
    """

    SIZE = 32
    MIN_SIZE = 16

    def __init__(self, seed: int = 0, dim: int = 256) -> None:
        super().__init__()
        self.seed = seed
        self.dim = dim
        widths = [3, 32, 64, 128, dim]
        rng = np.random.Generator(np.random.PCG64(seed))
        for i, (c_in, c_out) in enumerate(pairwise(widths)):
            # He-scaled normal weights keep activations of a similar size through the layers; small random
            # biases break the sign symmetry of inputs in [-1, 1].
            w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / (c_in * 9))
            b = rng.standard_normal(c_out) * 0.1
            self.register_buffer(f"weight{i}", torch.from_numpy(w.astype(np.float32)))
            self.register_buffer(f"bias{i}", torch.from_numpy(b.astype(np.float32)))
        self.layers = len(widths) - 1

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3) or min(images.shape[2:]) < self.MIN_SIZE:
            raise ValueError(f"RandomConvFeatures: images must be [N, 1|3, H, W] with H, W ≥ {self.MIN_SIZE}, "
                             f"got {list(images.shape)}")
        weight0 = self.weight0
        x = images.to(weight0.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (self.SIZE, self.SIZE):
            x = F.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear", align_corners=False, antialias=True)
        for i in range(self.layers):
            x = F.leaky_relu(F.conv2d(x, getattr(self, f"weight{i}"), getattr(self, f"bias{i}"), padding=1), 0.2)
            if i < self.layers - 1:
                x = F.avg_pool2d(x, 2)
        return x.mean(dim=(2, 3))


def batch_diversity(feats: Any) -> float:
    """The mean Euclidean distance between the feature vectors of distinct pairs of a batch [N, D] (N ≥ 2):
    0 when every image is the same, so a fall far below the real images' value signals mode collapse."""
    f = _as_float64(feats, 2, "feats")
    n = len(f)
    if n < 2:
        raise ValueError(f"batch_diversity needs at least 2 feature vectors, got {n}")
    # pdist subtracts the vectors (exactly 0 for equal ones), unlike the dot-product expansion used for large sets.
    return float(pdist(f).mean())
