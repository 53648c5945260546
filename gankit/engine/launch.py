"""Start a training run in this process: join torchrun's process group if there is one, train, leave it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gankit.engine.distributed import init_distributed, shutdown_distributed
from gankit.engine.run_lock import RunLock, RunLockedError
from gankit.engine.state import InitialWeights
from gankit.engine.trainer import Trainer
from gankit.tasks.base import GanTask

TaskFactory = Callable[[Mapping[str, Any]], GanTask]


def train(
    config: Mapping[str, Any],
    build_task: TaskFactory,
    run_dir: str | Path,
    init: InitialWeights | None = None,
    progress: bool = True,
) -> int:
    """Train (or resume) the run in `run_dir` with the task `build_task(config)` makes (the caller chooses the
    factory: `gankit.tasks.build_task` for the shipped systems, anything else for one's own); returns the
    process exit status. `init`: weights a new run starts from (ignored when the run directory resumes)."""
    dist = init_distributed(str(config.get("device", "auto")))
    trainer: Trainer | None = None
    lock = RunLock(run_dir)
    try:
        # Before anything is written. Rank 0 holds the lock for all ranks; they stop together if it is taken.
        locked: RunLockedError | None = None
        if dist.is_main:
            try:
                lock.acquire()
            except RunLockedError as exc:
                locked = exc
        if dist.agree_max(int(locked is not None)):
            raise locked or RunLockedError(f"{run_dir}: another gankit process is training in this run directory")
        trainer = Trainer(config, build_task(config), run_dir, dist, init=init, progress=progress)
        code = trainer.fit()
        # Ranks leave together: one tearing down its Gloo connections while a peer is still finishing can
        # abort that peer at exit ("terminate called without an active exception", seen once in CI).
        dist.barrier()
        if dist.is_main:
            print(f"run directory: {Path(run_dir).resolve()}\n"
                  f"  checkpoints: {trainer.ckpt.folder}\n  logs: metrics.jsonl, events.jsonl, tensorboard/ "
                  f"(tensorboard --logdir {Path(run_dir) / 'tensorboard'})")
        return code
    finally:
        trainer = None  # its DDP wrappers use the process group: release them before the group goes
        lock.release()
        shutdown_distributed()
