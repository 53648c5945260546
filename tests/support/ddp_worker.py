"""`torchrun … -m tests.support.ddp_worker train …`: the gankit CLI with test-only instruments for DDP tests.

- GANKIT_TEST_FAULTS='{"rank": 1, "nan_logged_at": [2], "sigterm_at": [3]}': the faulty HiFi-GAN task
  (tests/support/faulty_tasks.py) on every rank, with these faults on the named rank only (rank-local
  events that the ranks must agree on).
- GANKIT_TEST_RANK_STATES=1: every rank also saves its own networks' state (weights and buffers) to
  RUN/rank_states/rank<r>_<step>.pt whenever the trainer saves a checkpoint, so a test can see whether
  the ranks' copies stayed identical (only rank 0's state reaches the real checkpoint).
- GANKIT_TEST_BLIND_RANK=r: rank r finds no checkpoint, as on a machine that does not see the run directory.
- GANKIT_TEST_NO_MKLDNN=1: PyTorch's native CPU kernels instead of oneDNN's, whose choice of algorithm by batch
  size changes a sample's result in the last bits (see tests/test_ddp.py for why that matters).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from gankit.cli import main
from gankit.engine.checkpoint import CheckpointManager
from gankit.engine.trainer import Trainer
from gankit.tasks import TASKS
from tests.support import faulty_tasks

RANK_STATES = "rank_states"


def install_faults() -> None:
    spec = os.environ.get("GANKIT_TEST_FAULTS")
    if not spec:
        return
    settings: dict[str, Any] = json.loads(spec)
    rank = int(settings.pop("rank"))
    TASKS["hifigan"] = faulty_tasks.TASK_ENTRY
    if int(os.environ.get("RANK", "0")) == rank:
        faulty_tasks.FAULTS = faulty_tasks.Faults(**{key: set(steps) for key, steps in settings.items()})


def install_rank_states() -> None:
    if not os.environ.get("GANKIT_TEST_RANK_STATES"):
        return
    save = Trainer.save_checkpoint

    def save_and_dump(self: Trainer, metric: float | None = None) -> None:
        save(self, metric)
        folder = Path(self.run.root) / RANK_STATES
        folder.mkdir(parents=True, exist_ok=True)
        nets = {key: net.state_dict() for key, net in self.nets.items()}
        torch.save(nets, folder / f"rank{self.dist.rank}_{self.step:08d}.pt")

    Trainer.save_checkpoint = save_and_dump  # type: ignore[method-assign]


def install_blind_rank() -> None:
    blind = os.environ.get("GANKIT_TEST_BLIND_RANK")
    if blind is not None and int(os.environ.get("RANK", "0")) == int(blind):
        CheckpointManager.latest_loadable = lambda self, map_location="cpu", set_aside=False: None  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("GANKIT_TEST_NO_MKLDNN"):
        torch.backends.mkldnn.enabled = False
    install_faults()
    install_rank_states()
    install_blind_rank()
    raise SystemExit(main(sys.argv[1:]))
