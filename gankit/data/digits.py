"""`gankit prepare --builtin digits OUT`: scikit-learn's handwritten digits as a 32×32 image corpus, with a
classifier to score generated digits.

`sklearn.datasets.load_digits` ships 1,797 8×8 digits (values 0..16) inside scikit-learn: no download. Each is
scaled to 0..255 (round(v · 255 / 16)), upscaled to 32×32 with Pillow's bilinear filter (half-pixel centres) and
written in the image layout of gankit/data/images.py (`images.npy` uint8 [1797, 1, 32, 32], `images.txt` with ids
`digit_0000` … `digit_1796` = the row in load_digits, `train.txt`/`val.txt`: the last `--val-size` ids validate,
default min(100, 10 %) = 100, `skipped.txt` empty) plus `labels.npy` (int64 [1797], the digit of each row).

The same command trains `gankit.models.digits_classifier.DigitsClassifier` on the training rows — seeded, on one
CPU thread, about 2 s — from 8×8 inputs made by `downsample` (the mean of each 4×4 block) of the prepared 32×32
images, so a real digit reaches the network exactly as `classify` will bring a generated one; its accuracy on the
validation rows is printed and saved with it in `digits_classifier.pt` (`load_classifier`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.images import IMAGE_OUTPUTS, ImagePrepareReport, write_image_corpus
from gankit.errors import CheckpointError, DataError
from gankit.models.digits_classifier import DigitsClassifier, DigitsClassifierConfig, downsample

BUILTINS = ("digits",)
IMAGE_SIZE = 32
LABELS_FILE = "labels.npy"
CLASSIFIER_FILE = "digits_classifier.pt"
DIGITS_OUTPUTS = (*IMAGE_OUTPUTS, LABELS_FILE, CLASSIFIER_FILE)
# Training: Adam with a one-cycle learning rate, mini-batches of 128; seeded, so every run trains the same network.
EPOCHS = 30
BATCH_SIZE = 128
MAX_LR = 5e-3


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [1797, 1, 32, 32], labels int64 [1797]) from scikit-learn's digits (module docstring)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    large = np.stack([
        np.asarray(Image.fromarray(pixels).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
        for pixels in small
    ])
    return large[:, None], np.asarray(digits.target, dtype=np.int64)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 images → float32 in [-1, 1], as `ImageDataset` gives them."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(127.5).sub_(1.0)  # a copy: memmaps are read-only


def train_classifier(
    images32: np.ndarray, labels: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray, seed: int = 0,
    epochs: int = EPOCHS,
) -> tuple[DigitsClassifier, float, float]:
    """Train on `train_rows` of the uint8 [N, 1, 32, 32] images; (classifier in eval mode, accuracy of
    `classify` on `val_rows`, seconds). Runs on one thread and leaves torch's global RNG and threads as they were."""
    started = time.perf_counter()
    inputs = downsample(to_unit_range(images32))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    x, y = inputs[torch.from_numpy(train_rows)], targets[torch.from_numpy(train_rows)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 64×256 matrices: threads only add overhead, and --workers' cores stay divided
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # initial weights and dropout
            order = torch.Generator().manual_seed(seed)
            model = DigitsClassifier(DigitsClassifierConfig())
            optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR)
            steps = epochs * -(-len(x) // BATCH_SIZE)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, MAX_LR, total_steps=steps)
            model.train()
            for _ in range(epochs):
                for batch in torch.randperm(len(x), generator=order).split(BATCH_SIZE):
                    loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
            model.eval()
            accuracy = classifier_accuracy(model, images32[val_rows], labels[val_rows])
    finally:
        torch.set_num_threads(threads)
    return model, accuracy, time.perf_counter() - started


def classifier_accuracy(model: DigitsClassifier, images32: np.ndarray, labels: np.ndarray) -> float:
    """Share of uint8 [N, 1, 32, 32] digits whose most probable class by `classify` is the label."""
    if not len(labels):
        return float("nan")
    probabilities, _ = model.classify(to_unit_range(images32))
    return float((probabilities.argmax(dim=1).numpy() == np.asarray(labels)).mean())


def save_classifier(path: Path, model: DigitsClassifier, meta: dict[str, Any]) -> None:
    """Plain tensors and numbers only, written atomically: `torch.load(path, weights_only=True)` reads it."""
    from gankit.checkpoint_io import save_torch

    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    save_torch(path, {"format": "gankit", "kind": "digits_classifier", "version": 1,
                      "config": model.config.to_dict(), "state_dict": state, **meta})


def load_classifier(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DigitsClassifier:
    """The classifier `gankit prepare --builtin digits` saved: its file, or the prepared folder; in eval mode.
    `classifier.classify(images32 [N, 1, 32, 32] in [-1, 1]) -> (probabilities [N, 10], features [N, 128])`."""
    file = Path(path)
    if file.is_dir():
        file = file / CLASSIFIER_FILE
    try:
        data = torch.load(file, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{file} not found; write it with `gankit prepare --builtin digits OUT`") from None
    except Exception as exc:
        raise CheckpointError(f"{file}: not a readable digits classifier ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "digits_classifier":
        raise CheckpointError(f"{file}: not a digits classifier file (gankit prepare --builtin digits writes one)")
    model = DigitsClassifier(DigitsClassifierConfig.from_dict(data["config"]))
    model.load_state_dict(data["state_dict"])
    return model.to(device).eval()


def prepare_builtin(
    name: str,
    out: str | os.PathLike[str],
    val_size: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> ImagePrepareReport:
    """Write built-in corpus `name` (only "digits") into `out` (module docstring), with gankit prepare's rules for
    OUT: files it did not write are refused before any work, its own earlier files replaced or removed."""
    from gankit.data import prepare as common

    if name not in BUILTINS:
        raise DataError(f"unknown built-in corpus {name!r}; choose one of {', '.join(BUILTINS)}")
    if val_size is not None and not 0 < val_size < 1797:
        raise DataError(f"--val-size must be between 1 and 1796 for the digits (the classifier needs held-out "
                        f"digits), got {val_size}")
    started = time.perf_counter()
    out_path = Path(out)
    planned = set(DIGITS_OUTPUTS)
    recorded = common._read_record(out_path)
    common._refuse_foreign(out_path, planned, recorded)
    images, labels = digit_images()
    ids = [f"digit_{i:04d}" for i in range(len(images))]
    lines: list[str] = []

    def labels_and_classifier(train_ids: list[str], val_ids: list[str]) -> None:
        from gankit.atomic import atomic_open

        with atomic_open(out_path / LABELS_FILE, "wb") as handle:
            np.save(handle, labels)
        train_rows, val_rows = np.arange(len(train_ids)), np.arange(len(train_ids), len(ids))
        model, accuracy, seconds = train_classifier(images, labels, train_rows, val_rows, seed=seed)
        save_classifier(out_path / CLASSIFIER_FILE, model, {
            "accuracy": accuracy, "val_images": len(val_rows), "seed": seed, "train_seconds": seconds,
            "input": "avg_pool2d(kernel 4) of the 32×32 images in [-1, 1] (gankit.models.digits_classifier)",
        })
        correct = round(accuracy * len(val_rows))
        lines.append(f"digits classifier: held-out accuracy {accuracy:.3f} ({correct} of {len(val_rows)} val "
                     f"digits), trained in {seconds:.1f} s → {out_path / CLASSIFIER_FILE}")
        lines.append(f"labels → {out_path / LABELS_FILE}")

    out_path.mkdir(parents=True, exist_ok=True)
    common._write_record(out_path, recorded | planned)
    try:
        train, val = write_image_corpus(out_path, images, np.arange(len(images)), ids, [], val_size,
                                        extra=labels_and_classifier)
        removed = len(common._remove_stale(out_path, recorded, planned))
    finally:
        common._write_record(out_path, {p for p in recorded | planned if os.path.lexists(out_path / p)})
    return ImagePrepareReport(
        out=out_path, found=len(images), written=len(images), train=train, val=val, image_size=IMAGE_SIZE,
        channels=1, seconds=time.perf_counter() - started, removed_stale=removed, lines=lines,
    )
