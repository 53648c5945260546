"""Shared fixtures: deterministic CPU threads and a small synthetic corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.corpus import write_corpus

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 speech-like clips at 22.05 kHz in `gankit prepare`'s layout (10 train, 2 val). Read-only: copy to change."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))
