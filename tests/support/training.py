"""Run short trainings of the tiny config in-process or as a `gankit` subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gankit.config import load_config
from gankit.training import train

# Small and fast: ~0.2 s a step on 2 cores; two validation utterances.
FAST = ("data.segment_size=4096", "data.batch_size=2", "train.val_every=1000", "train.ckpt_every=1000")
REPO = Path(__file__).resolve().parents[2]


def tiny_config(corpus: Path, *overrides: str) -> dict[str, Any]:
    _, config = load_config("hifigan_tiny", [f"data.dir={corpus}", "device=cpu", *FAST, *overrides])
    return config


def train_tiny(corpus: Path, run_dir: Path, *overrides: str, **kwargs: Any) -> int:
    return train(tiny_config(corpus, *overrides), run_dir, progress=False, **kwargs)


def generator_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    manifest = (run_dir / "checkpoints" / "manifest.json").read_text()
    import json

    name = json.loads(manifest)["latest_generator"]
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)["state_dict"]


def run_gankit(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m gankit ARGS` with 2 threads; output captured as text."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or REPO)
