"""Images per second the image loader delivers, against what a CPU DCGAN step consumes, in one process.

Prepares a corpus of random 64×64 RGB PNGs with `gankit prepare --format images` (timed too), then iterates
`ImageDataset` (flip on) through a DataLoader over the engine's `EpochBatchSampler` with its collate, at batch 64,
with 0 and 2 loader workers; and times one DCGAN 64×64 training step at batch 64 (the reference model: D on real
and fake + backward + Adam, G + backward + Adam). Prints images/s of each and the ratio loader / step.

    python benchmarks/bench_image_loader.py                    # 512 images, 24 batches, 3 DCGAN steps
    python benchmarks/bench_image_loader.py --images 2048 --batches 64 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gankit.data.images import ImageDataset, prepare_images
from gankit.data.sampler import EpochBatchSampler
from gankit.engine.data import collate_batch
from gankit.models.dcgan import DcganConfig, DcganDiscriminator, DcganGenerator


def make_corpus(root: Path, n: int) -> tuple[Path, float]:
    from PIL import Image

    src, out = root / "src", root / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):  # larger than 64 px and not square: prepare crops and resizes as it would real photos
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(src / f"{i:05d}.png")
    started = time.perf_counter()
    prepare_images(src, out, image_size=64, channels=3, progress=False)
    return out, time.perf_counter() - started


def loader_rate(folder: Path, batches: int, workers: int) -> float:
    dataset = ImageDataset(folder, "train", flip=True)
    sampler = EpochBatchSampler(len(dataset), batch_size=64, seed=0, min_batches=batches + 1)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         collate_fn=collate_batch, persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    started = time.perf_counter()
    count = sum(next(iterator)["image"].shape[0] for _ in range(batches))
    return count / (time.perf_counter() - started)


def dcgan_step_seconds(repeats: int) -> float:
    torch.manual_seed(0)
    cfg = DcganConfig(image_size=64, channels=3)
    g, d = DcganGenerator(cfg), DcganDiscriminator(cfg)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    real = torch.rand(64, 3, 64, 64) * 2 - 1
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        fake = g(torch.randn(64, cfg.latent_size))
        loss_d = bce(d(real), torch.ones(64)) + bce(d(fake.detach()), torch.zeros(64))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(d(fake), torch.ones(64))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])  # the first step pays one-time allocations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--steps", type=int, default=3, help="DCGAN steps timed (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if __package__ in (None, ""):  # run as a script: the repository root is not on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.machine import describe_machine

    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder, prepare_seconds = make_corpus(Path(tmp), args.images)
        print(f"prepare: {args.images} PNGs 128×96 → 64×64 in {prepare_seconds:.2f} s "
              f"({args.images / prepare_seconds:.0f} images/s)")
        rates = {w: loader_rate(folder, args.batches, w) for w in (0, 2)}
    step = dcgan_step_seconds(args.steps)
    consumed = 64 / step
    for workers, rate in rates.items():
        print(f"loader, {workers} workers: {rate:8.0f} images/s (batches of 64 64×64 RGB, flip)")
    print(f"DCGAN 64×64 step, batch 64: {step:.2f} s = {consumed:.0f} images/s")
    print(f"ratio loader (0 workers) / DCGAN step: {rates[0] / consumed:.0f}×")


if __name__ == "__main__":
    main()
