"""Image distances: the Fréchet distance against closed forms, KID's estimator and its null behaviour, k-NN
precision/recall on sets whose answer is known, the seeded random feature extractor and batch diversity, and the
FID Inception network's layout (every name and shape pytorch-fid's weights file holds), output and loading."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gankit.errors import CheckpointError
from gankit.metrics import image_distances
from gankit.metrics.image_distances import (
    RandomConvFeatures,
    batch_diversity,
    frechet_distance,
    kernel_distance,
    precision_recall,
)
from gankit.models.inception_fid import FidInceptionV3, load_fid_inception

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = Path(__file__).parent / "fixtures" / "fid_inception_state_dict.txt"


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.5 * np.eye(d)


# --- Fréchet distance ---------------------------------------------------------------------------------------


def test_frechet_distance_of_equal_gaussians_is_zero() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(8), _spd(rng, 8)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_frechet_distance_with_equal_covariances_is_the_squared_mean_distance() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2, sigma = rng.standard_normal(8), rng.standard_normal(8), _spd(rng, 8)
    assert abs(frechet_distance(mu1, sigma, mu2, sigma) - np.sum((mu1 - mu2) ** 2)) < 1e-6


def test_frechet_distance_of_diagonal_covariances() -> None:
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    std1, std2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((std1 - std2) ** 2) + np.sum((mu1 - mu2) ** 2)
    got = frechet_distance(mu1, np.diag(std1**2), mu2, np.diag(std2**2))
    assert abs(got - expected) < 1e-6
    # Torch tensors (float32) are accepted as well.
    got32 = frechet_distance(*(torch.tensor(a) for a in (mu1, np.diag(std1**2), mu2, np.diag(std2**2))))
    assert abs(got32 - expected) < 1e-6


def test_frechet_distance_of_general_covariances_matches_the_eigenvalue_form() -> None:
    # Tr((Σ1Σ2)^½) = Σ √λ over the eigenvalues λ of Σ1Σ2 (real and non-negative for two SPD matrices).
    rng = np.random.default_rng(3)
    mu1, mu2, s1, s2 = rng.standard_normal(5), rng.standard_normal(5), _spd(rng, 5), _spd(rng, 5)
    root_trace = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * root_trace
    assert abs(frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-6


def test_frechet_distance_retries_a_non_finite_root_with_an_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sqrtm = image_distances.linalg.sqrtm
    calls: list[np.ndarray] = []

    def first_call_fails(a: np.ndarray) -> np.ndarray:
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(image_distances.linalg, "sqrtm", first_call_fails)
    mu, sigma = np.zeros(3), np.diag([1.0, 2.0, 3.0])
    # As pytorch-fid: only the root is taken of the shifted matrices, the traces are the given ones'.
    assert abs(frechet_distance(mu, sigma, mu, sigma, eps=1e-3) - (-2 * 3 * 1e-3)) < 1e-6
    assert len(calls) == 2 and np.allclose(calls[1], (sigma + 1e-3 * np.eye(3)) ** 2)


def test_frechet_distance_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="means differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


# --- KID ----------------------------------------------------------------------------------------------------


def test_kid_estimator_is_the_unbiased_mmd_with_the_cubic_kernel() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)) + 0.3
    d, m = 3, 5

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1) ** 3)

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    # With subsets as large as both sets every subset is the whole set: one value, deviation 0 (up to rounding).
    mean, std = kernel_distance(x, y, subsets=3, subset_size=1000)
    assert abs(mean - (within - 2 * across)) < 1e-12 and std < 1e-12


def test_kid_of_one_distribution_is_zero_within_its_error_and_positive_for_two() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    subsets = 100
    mean, std = kernel_distance(a, b, subsets=subsets, subset_size=100, seed=0)
    standard_error = std / subsets**0.5
    assert std > 0 and abs(mean) < 3 * standard_error
    shifted = rng.standard_normal((1000, 16)) + 0.5
    mean2, std2 = kernel_distance(a, shifted, subsets=subsets, subset_size=100, seed=0)
    assert mean2 > 10 * std2 / subsets**0.5 and mean2 > 10 * abs(mean)
    assert kernel_distance(a, shifted, subsets=5, subset_size=100, seed=0) == kernel_distance(
        a, shifted, subsets=5, subset_size=100, seed=0)


# --- precision / recall -------------------------------------------------------------------------------------


def test_precision_recall_of_identical_and_of_far_apart_sets() -> None:
    rng = np.random.default_rng(6)
    real = rng.standard_normal((200, 8))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(real, rng.standard_normal((150, 8)) + 100.0, k=3) == (0.0, 0.0)


def test_precision_counts_fakes_inside_the_real_manifold() -> None:
    rng = np.random.default_rng(7)
    real = rng.standard_normal((100, 4))
    fake = np.concatenate([real[:50], rng.standard_normal((50, 4)) + 100.0])
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == 0.5 and 0.5 <= recall < 1.0


@pytest.mark.parametrize(("k", "edge"), [(1, 4.0), (2, 6.0)])
def test_radius_is_the_distance_to_the_kth_nearest_other_sample(k: int, edge: float) -> None:
    # 1-D points 0, 1, 3, 7: the point 7's k-th nearest other point is 3 (k = 1, radius 4) or 1 (k = 2, radius 6).
    real = np.array([[0.0], [1.0], [3.0], [7.0]])
    inside, outside = np.array([[7 + edge - 0.01]] * 4), np.array([[7 + edge + 0.01]] * 4)
    assert precision_recall(real, inside, k=k)[0] == 1.0
    assert precision_recall(real, outside, k=k)[0] == 0.0


def test_precision_recall_does_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    real, fake = rng.standard_normal((60, 5)), rng.standard_normal((45, 5)) * 1.5 + 0.3
    whole = precision_recall(real, fake, k=3)
    assert 0 < whole[0] < 1 and 0 < whole[1] < 1
    monkeypatch.setattr(image_distances, "_ROWS_PER_BLOCK", 7)
    assert precision_recall(real, fake, k=3) == whole


# --- random features and diversity --------------------------------------------------------------------------


def test_random_features_are_seeded_with_numpy_and_deterministic() -> None:
    a, b, other = RandomConvFeatures(seed=0), RandomConvFeatures(seed=0), RandomConvFeatures(seed=1)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name])
    assert not torch.equal(a.weight0, other.weight0)
    # The first weight is PCG64(0)'s first standard normal, He-scaled for 3·3·3 inputs: the same under any torch.
    assert a.weight0.flatten()[0].item() == pytest.approx(0.12573022 * (2 / 27) ** 0.5, rel=1e-6)
    images = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    feats = a(images)
    assert feats.shape == (4, 256) and torch.isfinite(feats).all()
    assert torch.equal(feats, b(images))
    assert not torch.allclose(feats, other(images))


def test_random_features_take_grey_and_small_images_and_refuse_tiny_ones() -> None:
    net = RandomConvFeatures(dim=32)
    grey = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(net(grey), net(grey.expand(-1, 3, -1, -1)))
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 32)
    with pytest.raises(ValueError, match="H, W ≥ 16"):
        net(torch.zeros(2, 3, 8, 8))


def test_batch_diversity_is_zero_for_identical_images_only() -> None:
    net = RandomConvFeatures()
    one = torch.rand(1, 3, 32, 32) * 2 - 1
    assert batch_diversity(net(one.expand(6, -1, -1, -1))) == 0.0
    varied = net(torch.rand(6, 3, 32, 32) * 2 - 1)
    assert batch_diversity(varied) > 0
    # The mean over the distinct pairs: 3 points at distances 3, 4 and 5.
    assert batch_diversity(np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 2"):
        batch_diversity(np.zeros((1, 4)))


# --- FID Inception --------------------------------------------------------------------------------------------


def _fixture_listing() -> dict[str, list[int]]:
    listing = {}
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            listing[name] = [int(n) for n in re.findall(r"\d+", shape)]
    return listing


def test_inception_state_dict_is_the_weights_files_layout() -> None:
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        model = FidInceptionV3()
    expected = _fixture_listing()
    assert len(expected) == 566
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected
    assert sum(p.numel() for p in model.parameters()) == 23_850_960


@pytest.fixture(scope="module")
def inception() -> FidInceptionV3:
    torch.manual_seed(0)
    return FidInceptionV3().eval()


def test_inception_gives_2048_features_with_the_fid_poolings(
    inception: FidInceptionV3, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict]] = []

    def spy(name: str):  # records each call of torch.nn.functional.<name> with its keyword arguments
        real = getattr(F, name)

        def wrapper(*args, **kwargs):
            calls.append((name, kwargs))
            return real(*args, **kwargs)

        return wrapper

    for name in ("interpolate", "avg_pool2d", "max_pool2d"):
        monkeypatch.setattr(F, name, spy(name))
    with torch.no_grad():
        feats = inception(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()

    assert calls[0] == ("interpolate", {"size": (299, 299), "mode": "bilinear", "align_corners": False})
    # TensorFlow's average pool (padding not counted) in Mixed_5b–5d, 6b–6e and 7b: 8 blocks.
    avg = [kw for name, kw in calls if name == "avg_pool2d"]
    assert len(avg) == 8 and all(kw["count_include_pad"] is False for kw in avg)
    # Max pools: two in the stem, Mixed_6a's and Mixed_7a's (stride 2), and Mixed_7c's pool branch (stride 1).
    strides = [kw["stride"] for name, kw in calls if name == "max_pool2d"]
    assert strides == [2, 2, 2, 2, 1]


def test_inception_weights_load_strictly_and_never_from_a_missing_file(
    inception: FidInceptionV3, tmp_path: Path
) -> None:
    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(CheckpointError, match="never downloads") as caught:
        load_fid_inception(missing)
    assert "\n" not in str(caught.value) and str(missing) in str(caught.value)

    torch.save(inception.state_dict(), missing)
    loaded = load_fid_inception(missing)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(loaded.Mixed_7c.branch_pool.conv.weight, inception.Mixed_7c.branch_pool.conv.weight)
    missing.unlink()  # 95 MB: not left for pytest's kept temporary folders

    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match=r"not the FID Inception weights.*missing: Conv2d_1a_3x3"):
        load_fid_inception(other)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        load_fid_inception(garbage)
