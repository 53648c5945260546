"""Epoch batch sampler whose order depends only on (seed, epoch): reproducible, resumable mid-epoch, and
the same global batches for any number of ranks.

An epoch is a sequence of global positions 0 … L−1, L = batches · B · W (B per-rank batch, W ranks).
Global batch j holds positions [j·B·W, (j+1)·B·W); rank r takes the slice [r·B, (r+1)·B) of it, so one
process with batch B·W sees exactly the union of what W ranks see. Each position carries its own
`SampleKey`, from which the dataset derives its random crop; workers and resumption change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch.utils.data

from gankit.errors import DataError

# Item key under which a keyed dataset lists [(id, message)] of files it replaced because they failed to read;
# the engine's loader warns once per file and drops the key.
REPLACED_KEY = "replaced"

# Stream tags keep the sampler's and the dataset's random numbers independent for equal (seed, epoch).
ORDER_STREAM = 0
CROP_STREAM = 1


class SampleKey(NamedTuple):
    epoch: int
    position: int  # global position in the epoch (0 … L−1), the same for any world size
    index: int  # dataset item


def rng_for(seed: int, *words: int) -> np.random.Generator:
    """A generator fully determined by (seed, *words); independent streams for different words."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & (2**64 - 1), *words])))


class EpochBatchSampler(torch.utils.data.Sampler[list[SampleKey]]):
    """Yields this rank's batches of `SampleKey` for the current epoch (see the module docstring).

    Each epoch permutes the items (when `shuffle`) and drops the last incomplete global batch, as the
    original's `drop_last=True`. When that leaves fewer than `min_batches` batches (a corpus smaller
    than a global batch, or than one optimizer step's batches), the epoch is topped up with items drawn
    with replacement, so a batch is never empty or short.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        min_batches: int = 1,
        shuffle: bool = True,
    ) -> None:
        if n_items < 1:
            raise DataError("the training list has no usable items; check data.train_list / data.dir")
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or min_batches < 1:
            raise ValueError(
                f"invalid sampler settings: batch_size {batch_size}, rank {rank} of {world_size}, "
                f"min_batches {min_batches}"
            )
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.global_batch = batch_size * world_size
        self.global_batches = max(n_items // self.global_batch, min_batches)
        self.epoch_length = self.global_batches * self.global_batch
        self.epoch = 0
        self.skip_samples = 0

    @property
    def topped_up(self) -> int:
        """Positions per epoch drawn with replacement because the corpus is too small (0 normally)."""
        return max(0, self.epoch_length - self.n_items)

    def __len__(self) -> int:
        """Batches per (whole) epoch for this rank."""
        return self.global_batches

    def set_epoch(self, epoch: int, skip_samples: int = 0) -> None:
        """Iterate epoch `epoch` next, starting at global position `skip_samples` (to resume mid-epoch).

        `skip_samples` counts global positions (batches done × B × W), so a run may resume with
        another world size; positions past the epoch's end leave nothing to iterate.
        """
        if skip_samples < 0:
            raise ValueError(f"skip_samples must be ≥ 0, got {skip_samples}")
        self.epoch = epoch
        self.skip_samples = skip_samples

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Item index at each global position of `epoch` (length `epoch_length`)."""
        rng = rng_for(self.seed, ORDER_STREAM, epoch)
        order = rng.permutation(self.n_items) if self.shuffle else np.arange(self.n_items)
        if self.topped_up:
            extra = rng.integers(0, self.n_items, self.topped_up) if self.shuffle else np.resize(order, self.topped_up)
            order = np.concatenate([order, extra])
        return order[: self.epoch_length]

    def epoch_batches(self, epoch: int, skip_samples: int = 0) -> Iterator[list[SampleKey]]:
        """This rank's batches of `epoch` from global position `skip_samples` on; touches no state."""
        order = self.epoch_order(epoch)
        start = self.rank * self.batch_size
        for first in range(skip_samples, self.epoch_length - self.global_batch + 1, self.global_batch):
            positions = range(first + start, first + start + self.batch_size)
            yield [SampleKey(epoch, p, int(order[p])) for p in positions]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        return self.epoch_batches(self.epoch, self.skip_samples)


class DomainBalancedSampler(EpochBatchSampler):
    """An `EpochBatchSampler` whose every rank's every batch holds `batch_size / D` items of each of D domains.

    For tasks that train a network per domain (one decoder per domain, per-speaker statistics): a batch that
    lacks a domain leaves its network without a gradient that step. Each domain's items are visited in their
    own per-epoch permutation; an epoch lasts as long as the largest domain needs, smaller domains continue
    with fresh permutations of themselves. Positions keep the single-process layout (global batch j holds D
    blocks of k·W items, k = batch_size / D), and rank r takes the r-th k items of every block, so one process
    with batch B·W sees exactly the union of what W ranks see, with the same `SampleKey` per item.
    """

    def __init__(
        self,
        domains: list[int] | np.ndarray,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        min_batches: int = 1,
    ) -> None:
        labels = np.asarray(domains, dtype=np.int64)
        present = sorted(set(labels.tolist()))
        if not present:
            raise DataError("the training list has no usable items; check data.train_list / data.dir")
        self.members = [np.flatnonzero(labels == d) for d in present]
        self.n_domains = len(present)
        if batch_size % self.n_domains:
            raise DataError(
                f"data.batch_size {batch_size} (per rank) must be a multiple of the {self.n_domains} domains, "
                "so that every batch holds every domain equally"
            )
        super().__init__(len(labels), batch_size, seed, rank, world_size, min_batches)
        self.per_domain = batch_size // self.n_domains  # k
        block = self.per_domain * world_size
        largest = max(len(m) for m in self.members)
        self.global_batches = max(largest // block, min_batches)
        self.epoch_length = self.global_batches * self.global_batch

    @property
    def topped_up(self) -> int:
        """Positions per epoch that repeat an item of its domain (small domains cycle to the largest one's length)."""
        return sum(max(0, self.global_batches * self.per_domain * self.world_size - len(m)) for m in self.members)

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = rng_for(self.seed, ORDER_STREAM, epoch)
        block = self.per_domain * self.world_size
        need = self.global_batches * block
        streams = []
        for members in self.members:
            laps = -(-need // len(members))
            streams.append(np.concatenate([rng.permutation(members) for _ in range(laps)])[:need])
        order = np.empty(self.epoch_length, dtype=np.int64)
        for j in range(self.global_batches):
            for d, stream in enumerate(streams):
                start = j * self.global_batch + d * block
                order[start : start + block] = stream[j * block : (j + 1) * block]
        return order

    def epoch_batches(self, epoch: int, skip_samples: int = 0) -> Iterator[list[SampleKey]]:
        order = self.epoch_order(epoch)
        block = self.per_domain * self.world_size
        offset = self.rank * self.per_domain
        for first in range(skip_samples, self.epoch_length - self.global_batch + 1, self.global_batch):
            positions = [
                first + d * block + offset + i for d in range(self.n_domains) for i in range(self.per_domain)
            ]
            yield [SampleKey(epoch, p, int(order[p])) for p in positions]
