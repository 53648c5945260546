"""Train a shipped system from its config: corpus statistics filled in, the task chosen by the config's `task`
key, then the engine (which knows the task only through its contract). What `gankit train` runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def train(
    config: Mapping[str, Any],
    run_dir: str | Path,
    init_from: str | None = None,
    reset_optimizer: bool = False,
    progress: bool = True,
) -> int:
    """Train (or resume) the run in `run_dir`; returns the process exit status."""
    from gankit.data.corpus_stats import with_corpus_statistics
    from gankit.engine.launch import train as run_engine
    from gankit.initial_weights import read_initial_weights
    from gankit.tasks import build_task

    # A preset normalising by corpus statistics takes them from data.dir now, so config.yaml, the checkpoints
    # and every generator file's frontend carry them (resuming keeps the saved ones). One line per run: rank 0's.
    config = with_corpus_statistics(config, log=print if os.environ.get("RANK", "0") == "0" else None)
    init = read_initial_weights(init_from, keep_optimizer=not reset_optimizer) if init_from else None
    return run_engine(config, build_task, run_dir, init=init, progress=progress)
