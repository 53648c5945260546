"""Scoring in parallel without oversubscribing the cores: `one_thread` (torch and BLAS on one thread each) and
`mapped` (a method over items here, or in forked worker processes, results in order), shared by the evaluations of
vocoders and voice-conversion models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

_TARGET: Any = None  # the object a forked worker calls methods of; set only while a pool runs


def _in_worker(method: str, item: Any) -> Any:
    assert _TARGET is not None  # the pool forked after it was set
    return getattr(_TARGET, method)(item)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch and BLAS on one thread each for the block (restored after): scoring's small matrices gain nothing from
    more, and N workers then use N cores, never more."""
    import torch
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency, installed with it

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def mapped(target: Any, method: str, items: Sequence[Any], workers: int) -> Iterator[Iterator[Any]]:
    """`target.<method>(item)` for each item, in order: here, or in `workers` processes forked on entry (before the
    caller starts a thread such as a progress bar's: a forked child inherits only the forking thread). Forking
    shares `target` (a model, a fitted classifier) with the workers without pickling it; each result is pickled
    back. Only for CPU models: a forked CUDA context is unusable."""
    global _TARGET
    if workers <= 1 or len(items) <= 1:
        yield (getattr(target, method)(item) for item in items)
        return
    _TARGET = target
    try:
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("fork")) as pool:
            yield pool.map(_in_worker, [method] * len(items), items)  # the first submission forks every worker
    finally:
        _TARGET = None


def default_workers() -> int:
    """One per CPU core this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
