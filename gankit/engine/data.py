"""The training loader: a DataLoader over an `EpochBatchSampler`, with a collate that stacks tensors.

Worker errors that are `GankitError`s come out as their own one-line message (the DataLoader would wrap
them in a traceback), and files a dataset had to replace (deleted mid-run) are warned about once each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gankit.data.sampler import REPLACED_KEY, DomainBalancedSampler, EpochBatchSampler
from gankit.engine.distributed import DistContext
from gankit.engine.settings import LoaderSettings
from gankit.errors import GankitError


def collate_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Tensors stacked on a new batch dimension, other values listed (ids); replacements gathered."""
    batch: dict[str, Any] = {}
    for key, value in items[0].items():
        if key == REPLACED_KEY:
            continue
        column = [item[key] for item in items]
        batch[key] = torch.stack(column) if isinstance(value, torch.Tensor) else column
    replaced = [pair for item in items for pair in item.get(REPLACED_KEY, ())]
    if replaced:
        batch[REPLACED_KEY] = replaced
    return batch


def _one_line(exc: GankitError) -> str:
    """The original message of a GankitError a DataLoader worker raised ("Caught X in worker…" + traceback)."""
    text = str(exc)
    if text.startswith("Caught ") and "\n" in text:
        last = text.rstrip().splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        if last.startswith(prefix):
            return last[len(prefix) :]
    return text


class TrainLoader(DataLoader):
    """A DataLoader whose batches lose the dataset's replacement notes after they are warned about."""

    def __init__(self, *args: Any, warn: Callable[[str], None] = print, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warn = warn
        self._warned: set[str] = set()

    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except GankitError as exc:
                failure = type(exc)(_one_line(exc))
                # The worker error's traceback is a reference cycle holding the worker iterator; break it so
                # dropping the iterator shuts the workers down now, not at a later garbage collection that
                # waits ~5 s for each of them.
                exc.__traceback__ = None
                break
            yield self.note_replacements(batch)
        del iterator
        raise failure

    def note_replacements(self, batch: dict[str, Any]) -> dict[str, Any]:
        for utterance_id, message in batch.pop(REPLACED_KEY, ()):
            if utterance_id not in self._warned:
                self._warned.add(utterance_id)
                self._warn(f"data: {message} — another training item takes its place (warned once per file)")
        return batch


@dataclass
class TrainData:
    loader: TrainLoader
    sampler: EpochBatchSampler
    batches_per_epoch: int
    dataset: Dataset
    num_workers: int = 0

    def describe(self) -> dict[str, Any]:
        """Plain facts for environment.json and the console."""
        s = self.sampler
        seconds = getattr(self.dataset, "total_seconds", None)
        return {
            "items": s.n_items,
            "hours": round(seconds / 3600, 3) if seconds is not None else None,
            "batch_size": s.batch_size,
            "world_size": s.world_size,
            "global_batch": s.global_batch,
            "batches_per_epoch": self.batches_per_epoch,
            "topped_up_per_epoch": s.topped_up,
            "num_workers": self.num_workers,
        }

    def example_batch(self) -> dict[str, Any]:
        """The first batch of epoch 0, made here in this process; the sampler and loader are untouched."""
        keys = next(self.sampler.epoch_batches(0))
        return self.loader.note_replacements(collate_batch([self.dataset[k] for k in keys]))


def build_train_data(
    dataset: Dataset,
    data: LoaderSettings,
    dist: DistContext,
    seed: int,
    min_batches: int = 1,
    log: Callable[[str], None] = print,
) -> TrainData:
    """A loader of this rank's batches: `data.batch_size` per rank, `min_batches` batches per epoch at least.

    A dataset with an `item_domains` attribute (each item's domain index) gets a `DomainBalancedSampler`:
    every batch on every rank holds every domain equally (docs/CONTRACTS.md, "data")."""
    n_items = len(dataset)  # type: ignore[arg-type]
    domains = getattr(dataset, "item_domains", None)
    sampler: EpochBatchSampler
    if domains is not None:
        sampler = DomainBalancedSampler(
            list(domains), data.batch_size, seed, rank=dist.rank, world_size=dist.world_size, min_batches=min_batches
        )
        note = (f"the {sampler.n_domains} domains differ in size or are smaller than an epoch needs; each epoch "
                f"repeats {sampler.topped_up} items of its domain so that every batch holds every domain equally")
    else:
        sampler = EpochBatchSampler(
            n_items, data.batch_size, seed, rank=dist.rank, world_size=dist.world_size, min_batches=min_batches
        )
        note = (f"{n_items} training items are fewer than the {sampler.epoch_length} an epoch needs "
                f"({sampler.global_batches} batch(es) of {sampler.global_batch}); each epoch is topped up with "
                f"{sampler.topped_up} items drawn with replacement")
    if sampler.topped_up and dist.is_main:
        log(f"data: {note}")
    loader = TrainLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=data.num_workers,
        collate_fn=collate_batch,
        persistent_workers=False,
        pin_memory=dist.device.type == "cuda",
        warn=log,
        # Its own generator: each iter() draws a worker base seed, and from the global RNG that draw would shift
        # every later random number of a task (noise, dropout) depending on where in an epoch a run resumed.
        generator=torch.Generator().manual_seed(seed),
    )
    return TrainData(loader, sampler, len(sampler), dataset, data.num_workers)
