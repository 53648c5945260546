"""Shared fixtures: deterministic CPU threads and a small synthetic corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.support.corpus import write_corpus

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 speech-like clips at 22.05 kHz in `gankit prepare`'s layout (10 train, 2 val). Read-only: copy to change."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """For modules of tiny in-process forwards: they gain nothing from threads, and on a shared 2-core machine
    OpenMP workers spinning against other jobs cost 10-100×. Use with `pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

