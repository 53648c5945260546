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


class StepRecorder:
    """Counts `StepRunner.run` calls (optimizer steps computed in this process) and calls `on_step(stepper)`
    before each one; install with `StepRecorder(monkeypatch)`, reset `calls` between launches."""

    def __init__(self, monkeypatch: Any, on_step: Any = None) -> None:
        from gankit.engine.step import StepRunner

        self.calls = 0
        self.on_step = on_step
        original = StepRunner.run

        def run(stepper: StepRunner, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.on_step is not None:
                self.on_step(stepper)
            return original(stepper, *args, **kwargs)

        monkeypatch.setattr(StepRunner, "run", run)


def latest_state(run_dir: Path) -> dict[str, Any]:
    """The newest train_state of a run (the manifest's latest)."""
    import json

    name = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())["latest"]
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)


def assert_identical(a: Any, b: Any, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values: equal, tensors bit for bit."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_resume_continues(
    config_for: Any, root: Path, monkeypatch: Any, split: int, total: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train `total` steps in one launch ("whole"), and `split` then `total` in two ("split"): the second launch
    computes only the remaining steps, keeps the first launch's metrics rows byte for byte (their `time` too), and
    ends bit-identical to the whole run (networks, optimizers, schedulers, EMA, gradient scaler).
    `config_for(*overrides)` makes the config. Returns the final (whole, split) train states."""
    recorder = StepRecorder(monkeypatch)
    assert train(config_for(f"train.max_steps={total}"), root / "whole", progress=False) == 0
    assert recorder.calls == total
    recorder.calls = 0
    assert train(config_for(f"train.max_steps={split}"), root / "split", progress=False) == 0
    assert recorder.calls == split
    first_rows = (root / "split" / "metrics.jsonl").read_bytes()
    assert len(first_rows.splitlines()) == split
    recorder.calls = 0
    assert train(config_for(f"train.max_steps={total}"), root / "split", progress=False) == 0
    assert recorder.calls == total - split, "the second launch must compute only the steps after the checkpoint"
    rows = (root / "split" / "metrics.jsonl").read_bytes()
    assert rows.startswith(first_rows), "the first launch's rows must survive the resume unchanged"
    assert [json_step(line) for line in rows.splitlines()] == list(range(1, total + 1))
    whole, resumed = latest_state(root / "whole"), latest_state(root / "split")
    for key in ("step", "epoch", "samples_in_epoch", "networks", "optimizers", "schedulers", "ema", "scaler"):
        assert_identical(whole[key], resumed[key], key)
    return whole, resumed


def json_step(line: bytes) -> int:
    import json

    return int(json.loads(line)["step"])


def small_initial_loss_scale(monkeypatch: Any, scale: float = 16.0) -> None:
    """The tiny generator's fp16 gradients overflow at loss scales above ~16, so from the default 2^16 its first ~13
    steps are skipped while the scaler backs off (as designed, but slow on CPU, where fp16 runs ~4 s a step): start
    lower. The scaler still backs off on an overflow and counts steps towards growing."""
    import functools

    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=scale))
